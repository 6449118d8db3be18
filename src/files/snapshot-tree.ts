/**
 * A file snapshot seen through the one tree interface (tree/tree.ts), for ls, find, diff and dump.
 * A folder's content key is its listing id and a file's is its list of data blob ids, so diff
 * never opens what two snapshots share.
 */
import { fromHex, type Hex } from '../repo/ids.js';
import type { ReadAhead, Repository } from '../repo/repository.js';
import type { Snapshot } from '../repo/snapshot.js';
import { LifeboatError } from '../util/errors.js';
import type { Listing, Tree, TreeNode } from '../tree/tree.js';
import { DirPages, fileContent, loadDir, type TreeEntry } from './tree.js';

/** Chunks of a file asked for ahead while it is read (1 MiB on average), within READ_KEEP. */
const READ_AHEAD = 16;
/** The planner's budget for reading files, and the part of it blobs read ahead may hold. */
const READ_BUDGET = 32 * 1024 * 1024;
const READ_KEEP = 16 * 1024 * 1024;

export interface SnapshotNode extends TreeNode {
  /** The stored entry (undefined for the root). */
  readonly entry?: TreeEntry;
  readonly subtree?: Hex;
}

function toNode(e: TreeEntry): SnapshotNode {
  const content = e.content ?? e.contentParts;
  const xattrs = e.xattrs?.length ? `|${e.xattrs.map(([k, v]) => `${k}=${v.toString('base64')}`).join(',')}` : '';
  return {
    name: e.name,
    type: e.type,
    size: e.size,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    ...(e.user !== undefined ? { user: e.user } : {}),
    ...(e.group !== undefined ? { group: e.group } : {}),
    mtimeNs: e.mtime,
    ...(e.rdev !== undefined ? { rdev: e.rdev } : {}),
    ...(e.target !== undefined ? { target: e.target } : {}),
    ...(e.type === 'dir' && e.subtree !== undefined ? { subtree: e.subtree, folderKey: e.subtree, contentKey: `d${e.subtree}` } : {}),
    ...(e.type === 'file' && e.nlink > 1 ? { linkKey: `${e.device}:${e.inode}` } : {}),
    ...(e.atime !== undefined ? { atimeNs: e.atime } : {}),
    ...(e.type === 'file' && content ? { contentKey: `f${e.contentParts ? 'p' : ''}${content.join(',')}` } : {}),
    ...(xattrs ? { attributesKey: xattrs } : {}),
    ...(e.changed ? { changedWhileRead: true } : {}),
    ...(e.damaged ? { damaged: 'its data was lost from the repository ("lifeboat repair snapshots" marked it)' } : {}),
    entry: e,
  };
}

export class SnapshotTree implements Tree {
  /** Reads file contents pack by pack, ahead of where they are read (see read and prefetch). */
  private ahead: ReadAhead | undefined;

  constructor(
    readonly repo: Repository,
    readonly snapshot: Snapshot,
  ) {
    if (snapshot.kind !== 'files') throw new LifeboatError('usage', 'That is an image snapshot; it is browsed as a drive image.');
  }

  root(): Promise<SnapshotNode> {
    const root = this.snapshot.root;
    return Promise.resolve({ name: Buffer.alloc(0), type: 'dir', size: 0, mode: 0o755, subtree: root, folderKey: root, contentKey: `d${root}` });
  }

  async list(dir: TreeNode): Promise<SnapshotNode[]> {
    const id = (dir as SnapshotNode).subtree;
    return id === undefined ? [] : (await loadDir(this.repo, id)).map(toNode);
  }

  async listing(dir: TreeNode): Promise<Listing> {
    const id = (dir as SnapshotNode).subtree;
    if (id === undefined) return { length: 0, count: () => Promise.resolve(0), slice: () => Promise.resolve([]) };
    const pages = await DirPages.open(this.repo, id);
    return {
      get length() {
        return pages.length;
      },
      count: () => pages.count(),
      slice: async (from, to) => (await pages.slice(from, to)).map(toNode),
    };
  }

  /**
   * A file's chunks in order (dump, tar, copy-out, the dashboard's downloads), a few ahead through
   * the restore planner, so a large file costs a request per pack span, not one per chunk.
   */
  async *read(file: TreeNode, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    const e = (file as SnapshotNode).entry;
    if (e === undefined || e.type !== 'file') return;
    const ids = (await fileContent(this.repo, e)).map(fromHex);
    const ahead = this.readAhead();
    for (let k = 0; k < ids.length; k++) {
      signal?.throwIfAborted();
      ahead.prefetch(ids.slice(k, k + READ_AHEAD));
      yield await ahead.load(ids[k]!);
    }
  }

  /**
   * The files a caller will read next, in order (a tar of a folder, a copy of one): their first
   * chunks are read ahead, with the others asked for meanwhile, until READ_KEEP bytes are held. A
   * folder of small files then costs a request per pack span, not one per file.
   */
  prefetch(files: readonly TreeNode[]): number {
    const ahead = this.readAhead();
    for (const [k, f] of files.entries()) {
      const content = (f as SnapshotNode).entry?.content;
      if (f.type === 'file' && content && !ahead.prefetch(content.slice(0, READ_AHEAD).map(fromHex))) return k;
    }
    return files.length;
  }

  private readAhead(): ReadAhead {
    return (this.ahead ??= this.repo.readAhead({ budget: READ_BUDGET, keep: READ_KEEP }));
  }

  readlink(link: TreeNode): Promise<Buffer> {
    return Promise.resolve(link.target ?? Buffer.alloc(0));
  }
}
