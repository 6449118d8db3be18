/**
 * Copying entries of any tree (tree.ts) out into a folder on this computer: the one restorer for
 * filesystems inside drive images, folders on disk, and file snapshots when speed does not matter
 * (a whole file snapshot restores through files/restore.ts, which reads packs in order with worker
 * threads and keeps owners, attributes and devices).
 *
 * Everything a tree yields is untrusted. Names that are not plain (tree.ts isPlainName) are refused
 * with a warning; every folder on the way is created here or lstat'ed and must be a real folder;
 * files and symlinks are made under a fresh temporary name with O_EXCL|O_NOFOLLOW and renamed into
 * place, so an existing symlink in the target is replaced, never followed. A folder that contains
 * itself is cut off. Nothing is written outside the target. May import util and tree.
 */
import { constants as C } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { LifeboatError, errnoCode } from '../util/errors.js';
import { Hole, isPlainName, nodeName, type Tree, type TreeNode } from './tree.js';

const MAX_DEPTH = 256;
/** Files of a folder offered to the tree's read-ahead (Tree.prefetch) before each is copied. */
const PREFETCH_FILES = 64;
const TMP_PREFIX = '.lifeboat-restore-';
const TMP_RANDOM_BYTES = 8;
/** Exactly the names tmpName() makes: TMP_PREFIX and 2 × TMP_RANDOM_BYTES lowercase hex digits. */
const TMP_NAME = /^\.lifeboat-restore-[0-9a-f]{16}$/;

/** Whether `name` has the form of a restore's temporary names (a leftover when the snapshot does not list it). */
export function isRestoreTemporary(name: Buffer): boolean {
  return name.length === TMP_PREFIX.length + TMP_RANDOM_BYTES * 2 && TMP_NAME.test(name.toString('latin1'));
}

/** A fresh temporary name in folder `dir`, for a file written and then renamed into place. */
export function tmpName(dir: Buffer): Buffer {
  return Buffer.concat([dir, Buffer.from(`/${TMP_PREFIX}${randomBytes(TMP_RANDOM_BYTES).toString('hex')}`)]);
}

export interface CopyOutSummary {
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  bytesWritten: number;
  errors: number;
}

export interface CopyOutOptions {
  readonly signal?: AbortSignal;
  /** Problems with one item (refused names, damaged metadata, unsupported types); the copy goes on. */
  readonly onWarning?: (path: string, message: string) => void;
  /** Give entries their stored owners (needs root; otherwise files belong to the current user). */
  readonly owners?: boolean;
  /** Sets a path's times to the nanosecond without following a symlink (files/platform); else microseconds through lutimes. */
  readonly setTimes?: (path: Buffer, atimeNs: bigint, mtimeNs: bigint) => Promise<void>;
}

/** Moves a finished temporary into place, replacing a file, link or folder there (never following a link). */
export async function replaceWith(tmp: Buffer, path: Buffer): Promise<void> {
  try {
    await fsp.rename(tmp, path);
  } catch (e) {
    const code = errnoCode(e);
    if (code !== 'EISDIR' && code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOTDIR') throw e;
    await fsp.rm(path, { recursive: true, force: true }); // a folder where a file goes (rm never follows symlinks)
    await fsp.rename(tmp, path);
  }
}

class Copier {
  readonly s: CopyOutSummary = { files: 0, dirs: 0, symlinks: 0, hardlinks: 0, bytesWritten: 0, errors: 0 };
  private readonly links = new Map<string, Buffer>();
  private readonly isRoot = process.getuid?.() === 0;
  private chownWarned = false;

  constructor(readonly tree: Tree, readonly opts: CopyOutOptions) {}

  warn(path: string, message: string, error = true): void {
    if (error) this.s.errors++;
    this.opts.onWarning?.(path, message);
  }

  /** Problems confined to one item become warnings; damage to the repository and aborts stop everything. */
  private fail(shown: string, e: unknown, what: string): void {
    if (e instanceof Error && e.name === 'AbortError') throw e;
    if (this.tree.confined?.(e)) return this.warn(shown, `${shown}: ${(e as Error).message}`);
    if (e instanceof LifeboatError && e.code !== 'unsafe-path') throw e;
    this.warn(shown, `${shown}: could not ${what} (${errnoCode(e) ?? (e instanceof Error ? e.message : String(e))}).`);
  }

  private async meta(path: Buffer, e: TreeNode, fh?: fsp.FileHandle): Promise<void> {
    if (this.opts.owners && e.uid !== undefined && e.gid !== undefined) {
      try {
        if (fh) await fh.chown(e.uid, e.gid);
        else await fsp.lchown(path, e.uid, e.gid);
      } catch (err) {
        if (this.isRoot || !['EPERM', 'EINVAL'].includes(errnoCode(err) ?? '')) throw err;
        if (!this.chownWarned) {
          this.chownWarned = true;
          this.warn(nodeName(e), 'Owners and groups are restored only when running as root; files belong to you instead.', false);
        }
      }
    }
    if (e.type !== 'symlink') {
      if (fh) await fh.chmod(e.mode);
      else await fsp.chmod(path, e.mode);
    }
    if (e.mtimeNs !== undefined) {
      const atime = e.atimeNs ?? e.mtimeNs;
      if (this.opts.setTimes) await this.opts.setTimes(path, atime, e.mtimeNs);
      else await fsp.lutimes(path, Number(atime) / 1e9, Number(e.mtimeNs) / 1e9);
    }
  }

  /** Restores `e` as `dir`/its name (or, for `asRoot`, its contents into `dir` itself). */
  async entry(dir: Buffer, e: TreeNode, shown: string, depth: number, ancestors: ReadonlySet<string>, asRoot = false): Promise<void> {
    this.opts.signal?.throwIfAborted();
    if (!asRoot && !isPlainName(e.name)) {
      this.warn(shown, `The backup holds an entry named ${JSON.stringify(nodeName(e))} in ${shown.slice(0, shown.lastIndexOf('/')) || '/'}; it is unsafe and was not restored.`);
      return;
    }
    if (e.damaged !== undefined) {
      this.warn(shown, `${shown}: it is damaged (${e.damaged}); not restored.`);
      return;
    }
    const path = asRoot ? dir : Buffer.concat([dir, Buffer.from('/'), e.name]);
    try {
      switch (e.type) {
        case 'dir':
          return await this.folder(path, e, shown, depth, ancestors, asRoot);
        case 'file':
          return await this.file(dir, path, e, shown);
        case 'symlink':
          return await this.symlink(dir, path, e);
        default:
          this.warn(shown, `${shown} is a special file (device, FIFO, socket or reparse point); it was not restored.`, false);
      }
    } catch (err) {
      this.fail(shown, err, 'restore it');
    }
  }

  private async folder(path: Buffer, e: TreeNode, shown: string, depth: number, ancestors: ReadonlySet<string>, asRoot: boolean): Promise<void> {
    if (depth > MAX_DEPTH) return this.warn(shown, `${shown} is nested more than ${MAX_DEPTH} folders deep; it was not restored.`);
    if (e.folderKey !== undefined && ancestors.has(e.folderKey)) return this.warn(shown, `${shown} contains itself (the backup is damaged); the loop was cut.`);
    const children = await this.tree.list(e);
    if (!asRoot) {
      const st = await fsp.lstat(path).catch((err: unknown) => (errnoCode(err) === 'ENOENT' ? undefined : Promise.reject(err)));
      if (st && !st.isDirectory()) await fsp.unlink(path); // a file or symlink: removed, never followed
      if (!st || !st.isDirectory()) await fsp.mkdir(path, { mode: 0o700 });
      if (!(await fsp.lstat(path)).isDirectory()) throw new LifeboatError('unsafe-path', `${shown} is not a folder`);
    }
    this.s.dirs++;
    const inner = e.folderKey !== undefined ? new Set(ancestors).add(e.folderKey) : ancestors;
    const seen = new Set<string>();
    // Symlinks last: nothing is created through a link made here.
    const ordered = [...children.filter((c) => c.type !== 'symlink'), ...children.filter((c) => c.type === 'symlink')];
    for (const [i, c] of ordered.entries()) {
      // The files about to be copied, read ahead where the tree reads from a repository.
      if (c.type === 'file' && this.tree.prefetch) this.tree.prefetch(ordered.slice(i, i + PREFETCH_FILES));
      const key = c.name.toString('latin1');
      const childShown = `${shown === '/' ? '' : shown}/${nodeName(c)}`;
      if (seen.has(key)) {
        this.warn(childShown, `The backup lists ${childShown} twice; only the first was restored.`);
        continue;
      }
      seen.add(key);
      await this.entry(path, c, childShown, depth + 1, inner);
    }
    if (!asRoot) await this.meta(path, e);
  }

  private async file(dir: Buffer, path: Buffer, e: TreeNode, shown: string): Promise<void> {
    const tmp = tmpName(dir);
    let live = true;
    try {
      const first = e.linkKey !== undefined ? this.links.get(e.linkKey) : undefined;
      if (first) {
        await fsp.link(first, tmp);
        await replaceWith(tmp, path);
        live = false;
        this.s.hardlinks++;
        return;
      }
      const fh = await fsp.open(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
      let size = 0;
      try {
        for await (const data of this.tree.read(e, this.opts.signal)) {
          await writeSparse(fh, data, size);
          this.s.bytesWritten += data.length;
          size += data.length;
        }
        await fh.truncate(size);
        if (size !== e.size) this.warn(shown, `${shown}: the folder says ${e.size} bytes, the file holds ${size}; restored as held.`, false);
        await this.meta(tmp, e, fh);
      } finally {
        await fh.close();
      }
      await replaceWith(tmp, path);
      live = false;
      this.s.files++;
      if (e.lossy !== undefined) this.warn(shown, `${shown}: ${e.lossy}.`, false);
      if (e.linkKey !== undefined) this.links.set(e.linkKey, path);
    } finally {
      if (live) await fsp.rm(tmp, { force: true }).catch(() => undefined);
    }
  }

  private async symlink(dir: Buffer, path: Buffer, e: TreeNode): Promise<void> {
    const target = e.target ?? (await this.tree.readlink(e));
    const tmp = tmpName(dir);
    await fsp.symlink(target, tmp);
    try {
      await this.meta(tmp, e);
      await replaceWith(tmp, path);
    } catch (err) {
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      throw err;
    }
    this.s.symlinks++;
  }
}

const G = 4096;
const ZEROS = Buffer.alloc(G);

/** Writes `data` at `pos`, leaving 4 KiB blocks of zeros unwritten: sparse files stay sparse (the caller sets the size). */
async function writeSparse(fh: fsp.FileHandle, data: Uint8Array, pos: number): Promise<void> {
  if (data instanceof Hole) return;
  let run = -1;
  for (let o = 0; o < data.length; o += G) {
    const end = Math.min(data.length, o + G);
    const zero = Buffer.from(data.buffer, data.byteOffset + o, end - o).equals(end - o === G ? ZEROS : ZEROS.subarray(0, end - o));
    if (!zero && run < 0) run = o;
    else if (zero && run >= 0) {
      await writeAll(fh, data.subarray(run, o), pos + run);
      run = -1;
    }
  }
  if (run >= 0) await writeAll(fh, data.subarray(run), pos + run);
}

async function writeAll(fh: fsp.FileHandle, data: Uint8Array, pos: number): Promise<void> {
  let off = 0;
  while (off < data.length) {
    const { bytesWritten } = await fh.write(data, off, data.length - off, pos + off);
    off += bytesWritten;
  }
}

/**
 * Copies `items` (nodes of `tree`, each with the path shown in messages) into the folder `target`:
 * a folder or file goes to target/<its name>; a root folder ('/' or '') puts its contents into
 * target itself.
 */
export async function copyOut(tree: Tree, items: readonly { node: TreeNode; shown: string }[], target: string, opts: CopyOutOptions = {}): Promise<CopyOutSummary> {
  await fsp.mkdir(target, { recursive: true });
  const t = Buffer.from(target);
  if (!(await fsp.stat(t)).isDirectory()) throw new LifeboatError('invalid-argument', `${target} is not a folder.`);
  const x = new Copier(tree, opts);
  for (const it of items) {
    const isRoot = it.shown === '/' || it.shown === '';
    await x.entry(t, it.node, it.shown || '/', 0, new Set(), isRoot);
  }
  return x.s;
}
