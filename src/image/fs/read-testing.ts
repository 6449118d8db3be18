/** Test helpers for the read-only filesystem readers: whole-tree comparison with a folder on the host. */
import assert from 'node:assert/strict';
import { lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { FilesystemReader, FsEntry } from './types.js';

export async function readAll(r: FilesystemReader, e: FsEntry, stream?: string): Promise<Buffer> {
  const f = await r.open(e, stream);
  const parts: Uint8Array[] = [];
  for (let o = 0; o < f.size; o += 1 << 20) parts.push(await f.read(o, 1 << 20));
  return Buffer.concat(parts);
}

export interface CompareOptions {
  /** Compare permission bits, owners and mtimes (ext only). */
  readonly posix?: boolean;
  /** Host names to leave out of the comparison (e.g. lost+found). */
  readonly ignore?: readonly string[];
}

/** Asserts that the reader's tree equals the host folder: names, types, sizes, contents, symlink targets. Returns the number of entries compared. */
export async function compareTree(r: FilesystemReader, host: string, opts: CompareOptions = {}): Promise<number> {
  let count = 0;
  const walk = async (dir: FsEntry, path: string): Promise<void> => {
    const entries = await r.list(dir);
    const names = entries.map((e) => e.name).filter((n) => !(opts.ignore ?? []).includes(n)).sort();
    const want = readdirSync(join(host, path)).filter((n) => !(opts.ignore ?? []).includes(n)).sort();
    assert.deepEqual(names, want, `names in /${path}`);
    for (const e of entries) {
      if ((opts.ignore ?? []).includes(e.name)) continue;
      count++;
      const hp = join(host, path, e.name);
      const st = lstatSync(hp);
      const where = `/${path ? path + '/' : ''}${e.name}`;
      assert.equal(e.damaged, undefined, where);
      assert.equal(e.type, st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : 'other', `type of ${where}`);
      if (opts.posix) {
        assert.equal(e.mode, st.mode & 0o7777, `mode of ${where}`);
        assert.equal(e.uid, st.uid, `uid of ${where}`);
        assert.equal(Math.floor(e.mtime! / 1000), Math.floor(st.mtimeMs / 1000), `mtime of ${where}`);
      }
      if (e.type === 'file') {
        assert.equal(e.size, st.size, `size of ${where}`);
        assert.ok((await readAll(r, e)).equals(readFileSync(hp)), `content of ${where}`);
      } else if (e.type === 'symlink') {
        assert.equal((await r.readlink(e)).toString(), readlinkSync(hp), `target of ${where}`);
      } else if (e.type === 'dir') {
        await walk(e, path ? `${path}/${e.name}` : e.name);
      }
    }
  };
  await walk(await r.root(), '');
  return count;
}
