/**
 * A folder on this computer seen through the one tree interface (tree/tree.ts), so diff, find
 * and copyOut work on it as on snapshots: "what changed since the last backup" is a diff of a
 * snapshot's folder and the live one. Reads through the same FileAccess as the backup; nothing is
 * followed through a symlink. Files have no content key: diff compares them by size and time.
 */
import { constants as C } from 'node:fs';
import { errnoCode } from '../util/errors.js';
import type { NodeType, Tree, TreeNode } from '../tree/tree.js';
import { nodeFileAccess, type FileAccess, type FileMeta } from './backup.js';
import { entryType } from './metadata.js';

const PIECE = 1024 * 1024;

export interface LocalNode extends TreeNode {
  readonly path: Buffer;
}

function typeOf(st: FileMeta): NodeType {
  const t = entryType(st);
  return t === undefined || t === 'socket' ? 'other' : t;
}

export class LocalTree implements Tree {
  /** The tree of folder `root` (its own name is the root node's, as a snapshot's root has none). */
  constructor(readonly folder: string, private readonly fs: FileAccess = nodeFileAccess) {}

  private async node(path: Buffer, name: Buffer): Promise<LocalNode> {
    const st = await this.fs.lstat(path);
    const type = typeOf(st);
    return {
      name,
      type,
      size: type === 'file' || type === 'symlink' ? Number(st.size) : 0,
      mode: Number(st.mode) & 0o7777,
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtimeNs: st.mtimeNs,
      atimeNs: st.atimeNs,
      ...(type === 'chardev' || type === 'blockdev' ? { rdev: st.rdev } : {}),
      ...(type === 'symlink' ? { target: await this.fs.readlink(path) } : {}),
      ...(type === 'dir' ? { folderKey: `${st.dev}:${st.ino}` } : {}),
      ...(type === 'file' && st.nlink > 1n ? { linkKey: `${st.dev}:${st.ino}` } : {}),
      path,
    };
  }

  root(): Promise<LocalNode> {
    return this.node(Buffer.from(this.folder), Buffer.alloc(0));
  }

  async list(dir: TreeNode): Promise<LocalNode[]> {
    const d = dir as LocalNode;
    const names = await this.fs.readdir(d.path);
    const out: LocalNode[] = [];
    for (const latin1Name of names.sort()) {
      const name = Buffer.from(latin1Name, 'latin1');
      try {
        out.push(await this.node(Buffer.concat([d.path, Buffer.from('/'), name]), name));
      } catch (e) {
        if (errnoCode(e) !== 'ENOENT') throw e; // deleted while listed: not there
      }
    }
    return out;
  }

  async *read(file: TreeNode, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    const fh = await this.fs.open((file as LocalNode).path, C.O_RDONLY | C.O_NOFOLLOW);
    try {
      for (;;) {
        signal?.throwIfAborted();
        const { bytesRead, buffer } = await fh.read(Buffer.allocUnsafe(PIECE), 0, PIECE, null);
        if (bytesRead === 0) return;
        yield buffer.subarray(0, bytesRead);
      }
    } finally {
      await fh.close();
    }
  }

  async readlink(link: TreeNode): Promise<Buffer> {
    return (link as LocalNode).target ?? this.fs.readlink((link as LocalNode).path);
  }

}
