/**
 * A drive image seen through the one tree interface (tree/tree.ts): its partitions are the top
 * folders ("/1", "/2", or "/0" for a drive without a partition table), and inside each the
 * folders and files of its ext, FAT or NTFS filesystem, read through the repository without
 * restoring anything. So find, diff and dump work on system images as on file snapshots.
 */
import type { Hex } from '../repo/ids.js';
import type { Repository } from '../repo/repository.js';
import { LifeboatError } from '../util/errors.js';
import { Hole, type NodeType, type Tree, type TreeNode } from '../tree/tree.js';
import { imagePartitions, openImageSnapshot, openPartition, type OpenedImage } from './browse.js';
import { FilesystemError, type FilesystemReader, type FsEntry } from './fs/types.js';

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

/** One filesystem (ext, FAT, NTFS) as a tree; `partition` tags its nodes' keys so partitions never share one. */
export class FilesystemTree implements Tree {
  constructor(readonly fs: FilesystemReader, readonly partition = 0) {}

  async root(): Promise<ImageNode> {
    return this.node(await this.fs.root());
  }

  async list(dir: TreeNode): Promise<ImageNode[]> {
    const entries = await this.fs.list((dir as ImageNode).fsEntry!);
    return entries.map((e) => this.node(e)).sort((a, b) => Buffer.compare(a.name, b.name));
  }

  node(e: FsEntry): ImageNode {
    const type: NodeType = e.type;
    const mtimeNs = msToNs(e.mtime);
    const atimeNs = msToNs(e.atime);
    const p = this.partition;
    return {
      name: e.nameBytes,
      type,
      size: e.size,
      mode: e.mode,
      ...(e.uid !== undefined ? { uid: e.uid } : {}),
      ...(e.gid !== undefined ? { gid: e.gid } : {}),
      ...(mtimeNs !== undefined ? { mtimeNs } : {}),
      ...(atimeNs !== undefined ? { atimeNs } : {}),
      ...(e.type === 'dir' ? { folderKey: `${p}:${e.ref}` } : {}),
      ...(e.type === 'file' && (e.nlink ?? 1) > 1 ? { linkKey: `${p}:${e.ref}` } : {}),
      ...(e.streams?.length ? { lossy: `it has alternate data streams (${e.streams.map((x) => x.name).join(', ')}); only its main content was restored` } : {}),
      ...(e.damaged !== undefined ? { damaged: e.damaged } : {}),
      partition: p,
      fsEntry: e,
    };
  }

  async *read(file: TreeNode, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    const f = file as ImageNode;
    if (f.fsEntry === undefined || f.type !== 'file') return;
    const src = await this.fs.open(f.fsEntry);
    for (let o = 0; o < src.size; ) {
      signal?.throwIfAborted();
      const next = Math.min(src.size, src.nextData?.(o) ?? o);
      if (next > o) {
        // A hole: zeros, without reading anything.
        const n = Math.min(next - o, PIECE);
        yield new Hole(n);
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
    return l.fsEntry === undefined ? Buffer.alloc(0) : this.fs.readlink(l.fsEntry);
  }

  confined(e: unknown): boolean {
    return e instanceof FilesystemError;
  }
}

/** A drive image: its partitions as the top folders, each a FilesystemTree. */
export class ImageTree implements Tree {
  private readonly opened = new Map<number, Promise<FilesystemTree>>();

  private constructor(readonly img: OpenedImage) {}

  static async open(repo: Repository, ref: string): Promise<ImageTree> {
    return new ImageTree(await openImageSnapshot(repo, ref));
  }

  get id(): Hex {
    return this.img.id;
  }

  /** The tree of one partition's filesystem (opened once). */
  partition(index: number): Promise<FilesystemTree> {
    let p = this.opened.get(index);
    if (!p) {
      p = openPartition(this.img, index).then((x) => new FilesystemTree(x.fs, index));
      this.opened.set(index, p);
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
          const t = await this.partition(p.index);
          out.push({ ...node, fsEntry: await t.fs.root() });
        } catch (e) {
          if (!(e instanceof LifeboatError) || e.code === 'interrupted') throw e;
          out.push({ ...node, damaged: e.message });
        }
      }
      return out;
    }
    return (await this.partition(d.partition)).list(d);
  }

  async *read(file: TreeNode, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    const f = file as ImageNode;
    if (f.partition === undefined) return;
    yield* (await this.partition(f.partition)).read(f, signal);
  }

  async readlink(link: TreeNode): Promise<Buffer> {
    const l = link as ImageNode;
    return l.partition === undefined ? Buffer.alloc(0) : (await this.partition(l.partition)).readlink(l);
  }

  confined(e: unknown): boolean {
    return e instanceof FilesystemError;
  }
}
