/**
 * A drive image seen through the one tree interface (tree/tree.ts): its partitions are the top
 * folders ("/1", "/2", or "/0" for a drive without a partition table), and inside each the
 * folders and files of its ext, FAT or NTFS filesystem, read through the repository without
 * restoring anything. So find, diff and dump work on system images as on file snapshots.
 */
import type { Repository } from '../repo/repository.js';
import { LifeboatError } from '../util/errors.js';
import type { NodeType, Tree, TreeNode } from '../tree/tree.js';
import { imagePartitions, openImageSnapshot, openPartition, type OpenedImage } from './browse.js';
import type { FilesystemReader, FsEntry } from './fs/types.js';

const PIECE = 1024 * 1024;

export interface ImageNode extends TreeNode {
  readonly partition?: number;
  readonly fsEntry?: FsEntry;
}

/** "2:/Users/ann" (as "lifeboat image ls" takes it) or "/2/Users/ann": the path in an image tree. */
export function imageTreePath(location: string): string {
  const m = /^(\d+):(.*)$/s.exec(location);
  return m ? `/${m[1]}/${m[2]!.replace(/^\/+/, '')}` : location;
}

function msToNs(ms: number | undefined): bigint | undefined {
  return ms === undefined || !Number.isFinite(ms) ? undefined : BigInt(Math.round(ms * 1e6));
}

export class ImageTree implements Tree {
  private readonly opened = new Map<number, Promise<FilesystemReader>>();

  private constructor(readonly img: OpenedImage) {}

  static async open(repo: Repository, ref: string): Promise<ImageTree> {
    return new ImageTree(await openImageSnapshot(repo, ref));
  }

  get id(): string {
    return this.img.id;
  }

  private fs(partition: number): Promise<FilesystemReader> {
    let p = this.opened.get(partition);
    if (!p) {
      p = openPartition(this.img, partition).then((x) => x.fs);
      this.opened.set(partition, p);
    }
    return p;
  }

  root(): Promise<ImageNode> {
    return Promise.resolve({ name: Buffer.alloc(0), type: 'dir', size: this.img.manifest.size, mode: 0o755, folderKey: 'drive' });
  }

  async list(dir: TreeNode): Promise<ImageNode[]> {
    const d = dir as ImageNode;
    if (d.partition === undefined) {
      const out: ImageNode[] = [];
      for (const p of imagePartitions(this.img.manifest)) {
        const node: ImageNode = { name: Buffer.from(String(p.index)), type: 'dir', size: p.size, mode: 0o755, partition: p.index, folderKey: `${p.index}:` };
        try {
          const fs = await this.fs(p.index);
          out.push({ ...node, fsEntry: await fs.root() });
        } catch (e) {
          if (!(e instanceof LifeboatError) || e.code === 'interrupted') throw e;
          out.push({ ...node, damaged: e.message });
        }
      }
      return out;
    }
    const fs = await this.fs(d.partition);
    const entries = await fs.list(d.fsEntry!);
    return entries.map((e) => this.node(d.partition!, e)).sort((a, b) => Buffer.compare(a.name, b.name));
  }

  private node(partition: number, e: FsEntry): ImageNode {
    const type: NodeType = e.type;
    const mtimeNs = msToNs(e.mtime);
    return {
      name: e.nameBytes,
      type,
      size: e.size,
      mode: e.mode,
      ...(e.uid !== undefined ? { uid: e.uid } : {}),
      ...(e.gid !== undefined ? { gid: e.gid } : {}),
      ...(mtimeNs !== undefined ? { mtimeNs } : {}),
      ...(e.type === 'dir' ? { folderKey: `${partition}:${e.ref}` } : {}),
      ...(e.damaged !== undefined ? { damaged: e.damaged } : {}),
      partition,
      fsEntry: e,
    };
  }

  async *read(file: TreeNode, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    const f = file as ImageNode;
    if (f.partition === undefined || f.fsEntry === undefined || f.type !== 'file') return;
    const src = await (await this.fs(f.partition)).open(f.fsEntry);
    for (let o = 0; o < src.size; ) {
      signal?.throwIfAborted();
      const next = Math.min(src.size, src.nextData?.(o) ?? o);
      if (next > o) {
        // A hole: zeros, without reading anything.
        const n = Math.min(next - o, PIECE);
        yield new Uint8Array(n);
        o += n;
        continue;
      }
      const data = await src.read(o, Math.min(PIECE, src.size - o));
      if (data.length === 0) break;
      yield data;
      o += data.length;
    }
  }

  async readlink(link: TreeNode): Promise<Buffer> {
    const l = link as ImageNode;
    if (l.partition === undefined || l.fsEntry === undefined) return Buffer.alloc(0);
    return (await this.fs(l.partition)).readlink(l.fsEntry);
  }
}
