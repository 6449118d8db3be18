/**
 * Browsing an image snapshot without restoring it: open a partition's filesystem through the
 * repository (snapshot-source.ts fetches only the chunks it needs), resolve paths, and copy files
 * and folders out into a target folder.
 *
 * Everything read from the image is untrusted. Names that are empty, "." or "..", or hold "/" or
 * NUL are refused with a warning; every folder on the way is created by us or lstat'ed and must be a
 * real folder; files and symlinks are made under a fresh temporary name with O_EXCL|O_NOFOLLOW and
 * renamed into place, so an existing symlink in the target is replaced, never followed. A folder
 * that contains itself (a damaged filesystem) is cut off. Nothing is written outside the target.
 */
import { constants as C } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { LifeboatError, errnoCode } from '../util/errors.js';
import { isSafeName, replaceWith } from '../files/restore.js';
import type { Repository } from '../repo/repository.js';
import type { Snapshot } from '../repo/snapshot.js';
import { loadManifest } from './imager.js';
import type { ImageManifest, ImagePartition } from './manifest.js';
import { snapshotSource, type SnapshotSource } from './snapshot-source.js';
import { filesystems } from './fs/index.js';
import { FilesystemError, type FilesystemReader, type FsEntry } from './fs/types.js';
const PIECE = 1024 * 1024;
const MAX_DEPTH = 256;
const TMP_PREFIX = '.lifeboat-restore-';

export interface OpenedImage {
  readonly id: string;
  readonly snapshot: Snapshot;
  readonly manifest: ImageManifest;
  readonly source: SnapshotSource;
}

export async function openImageSnapshot(repo: Repository, ref: string): Promise<OpenedImage> {
  const { id, snapshot } = await repo.findSnapshot(ref, (s) => s.kind === 'image');
  if (snapshot.kind !== 'image') throw new LifeboatError('invalid-argument', `Snapshot ${id.slice(0, 8)} is a file backup, not a system image; use "lifeboat ls".`);
  const manifest = await loadManifest(repo, snapshot.root);
  return { id, snapshot, manifest, source: snapshotSource(repo, manifest) };
}

/** "2", "2:", "2:/docs/a.txt" → partition 2 and the path ('/' when none). */
export function parseLocation(arg: string): { partition: number; path: string } {
  const m = /^(\d+)(?::(.*))?$/s.exec(arg);
  if (!m) throw new LifeboatError('usage', `"${arg}" is not PARTITION[:PATH], for example 1:/home/me/notes.txt.`);
  return { partition: Number(m[1]), path: m[2] || '/' };
}

/** The partitions of an image; a drive without a partition table is partition 0 (the whole drive). */
export function imagePartitions(m: ImageManifest): ImagePartition[] {
  if (m.partitions.length > 0) return [...m.partitions];
  return [{ index: 0, start: 0, size: m.size, type: '', typeName: 'whole drive', usedBytes: m.bytesUsed, method: 'all' }];
}

export async function openPartition(img: OpenedImage, index: number): Promise<{ partition: ImagePartition; fs: FilesystemReader }> {
  const parts = imagePartitions(img.manifest);
  const partition = parts.find((p) => p.index === index);
  if (!partition) throw new LifeboatError('not-found', `This image has no partition ${index}; it has ${parts.map((p) => p.index).join(', ') || 'none'}. See "lifeboat image ls ${img.id.slice(0, 8)}".`);
  if (partition.start + partition.size > img.source.size) throw new LifeboatError('corrupt', `Partition ${index} reaches past the end of the image; the image manifest is damaged.`);
  for (const module of filesystems) {
    if (!(await module.detect(img.source, partition.start, partition.size))) continue;
    return { partition, fs: await module.open(img.source, partition.start, partition.size) };
  }
  throw new LifeboatError('invalid-argument', `Partition ${index} (${partition.typeName}) holds no filesystem Lifeboat can read files from (ext2/3/4, FAT or NTFS).`);
}

/** Walks `path` from the root; "." and ".." are refused so a path cannot climb out. */
export async function resolvePath(fs: FilesystemReader, path: string): Promise<FsEntry> {
  let e = await fs.root();
  const parts = path.split('/').filter((x) => x.length > 0);
  if (parts.some((x) => x === '.' || x === '..')) throw new LifeboatError('usage', `${path}: "." and ".." are not allowed; name the path as "lifeboat image ls" shows it.`);
  for (let i = 0; i < parts.length; i++) {
    if (e.type !== 'dir') throw new LifeboatError('not-found', `/${parts.slice(0, i).join('/')} is not a folder.`);
    const next = (await fs.list(e)).find((x) => x.name === parts[i]);
    if (!next) throw new LifeboatError('not-found', `Nothing is called /${parts.slice(0, i + 1).join('/')} in this partition; see "lifeboat image ls".`);
    e = next;
  }
  return e;
}

export interface ExtractSummary {
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  bytesWritten: number;
  errors: number;
}

export interface ExtractOptions {
  readonly signal?: AbortSignal;
  /** Problems with one item (refused names, damaged metadata, unsupported types); extraction goes on. */
  readonly onWarning?: (path: string, message: string) => void;
  /** Restore owners (ext only; needs root, otherwise files belong to the current user). */
  readonly owners?: boolean;
}

class Extractor {
  readonly s: ExtractSummary = { files: 0, dirs: 0, symlinks: 0, hardlinks: 0, bytesWritten: 0, errors: 0 };
  private readonly links = new Map<number, Buffer>();
  private readonly isRoot = process.getuid?.() === 0;
  private chownWarned = false;

  constructor(readonly fs: FilesystemReader, readonly opts: ExtractOptions) {}

  warn(path: string, message: string, error = true): void {
    if (error) this.s.errors++;
    this.opts.onWarning?.(path, message);
  }

  /** Problems confined to one item become warnings; repository damage and aborts stop everything. */
  private fail(shown: string, e: unknown, what: string): void {
    if (e instanceof Error && e.name === 'AbortError') throw e;
    if (e instanceof FilesystemError) return this.warn(shown, `${shown}: ${e.message}`);
    if (e instanceof LifeboatError && e.code !== 'unsafe-path') throw e;
    this.warn(shown, `${shown}: could not ${what} (${errnoCode(e) ?? (e instanceof Error ? e.message : String(e))}).`);
  }

  private tmp(dir: Buffer): Buffer {
    return Buffer.concat([dir, Buffer.from(`/${TMP_PREFIX}${randomBytes(8).toString('hex')}`)]);
  }

  private async meta(path: Buffer, e: FsEntry, fh?: fsp.FileHandle): Promise<void> {
    if (this.opts.owners && e.uid !== undefined && e.gid !== undefined) {
      try {
        if (fh) await fh.chown(e.uid, e.gid);
        else await fsp.lchown(path, e.uid, e.gid);
      } catch (err) {
        if (this.isRoot || !['EPERM', 'EINVAL'].includes(errnoCode(err) ?? '')) throw err;
        if (!this.chownWarned) {
          this.chownWarned = true;
          this.warn(e.name, 'Owners and groups are restored only when running as root; files belong to you instead.', false);
        }
      }
    }
    if (e.type !== 'symlink') {
      if (fh) await fh.chmod(e.mode);
      else await fsp.chmod(path, e.mode);
    }
    if (e.mtime !== undefined) {
      const atime = (e.atime ?? e.mtime) / 1000;
      if (fh) await fh.utimes(atime, e.mtime / 1000);
      else await fsp.lutimes(path, atime, e.mtime / 1000);
    }
  }

  /** Restores `e` as `dir`/`e.nameBytes` (or, for `asRoot`, its contents into `dir` itself). */
  async entry(dir: Buffer, e: FsEntry, shown: string, depth: number, ancestors: Set<number>, asRoot = false): Promise<void> {
    this.opts.signal?.throwIfAborted();
    if (!asRoot && !isSafeName(e.nameBytes)) {
      this.warn(shown, `The image holds an entry named ${JSON.stringify(e.name)} in ${shown.slice(0, shown.lastIndexOf('/')) || '/'}; it is unsafe and was not restored.`);
      return;
    }
    if (e.damaged !== undefined) {
      this.warn(shown, `${shown}: its metadata is damaged (${e.damaged}); not restored.`);
      return;
    }
    const path = asRoot ? dir : Buffer.concat([dir, Buffer.from('/'), e.nameBytes]);
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

  private async folder(path: Buffer, e: FsEntry, shown: string, depth: number, ancestors: Set<number>, asRoot: boolean): Promise<void> {
    if (depth > MAX_DEPTH) return this.warn(shown, `${shown} is nested more than ${MAX_DEPTH} folders deep; it was not restored.`);
    if (ancestors.has(e.ref)) return this.warn(shown, `${shown} contains itself (the filesystem is damaged); the loop was cut.`);
    const children = await this.fs.list(e);
    if (!asRoot) {
      const st = await fsp.lstat(path).catch((err: unknown) => (errnoCode(err) === 'ENOENT' ? undefined : Promise.reject(err)));
      if (st && !st.isDirectory()) await fsp.unlink(path); // a file or symlink: removed, never followed
      if (!st || !st.isDirectory()) await fsp.mkdir(path, { mode: 0o700 });
      if (!(await fsp.lstat(path)).isDirectory()) throw new LifeboatError('unsafe-path', `${shown} is not a folder`);
    }
    this.s.dirs++;
    const inner = new Set(ancestors).add(e.ref);
    const seen = new Set<string>();
    // Symlinks last, as the file restorer does: nothing is created through a link made here.
    const ordered = [...children.filter((c) => c.type !== 'symlink'), ...children.filter((c) => c.type === 'symlink')];
    for (const c of ordered) {
      const key = c.nameBytes.toString('latin1');
      const childShown = `${shown === '/' ? '' : shown}/${c.name}`;
      if (seen.has(key)) {
        this.warn(childShown, `The image lists ${childShown} twice; only the first was restored.`);
        continue;
      }
      seen.add(key);
      await this.entry(path, c, childShown, depth + 1, inner);
    }
    if (!asRoot) await this.meta(path, e);
  }

  private async file(dir: Buffer, path: Buffer, e: FsEntry, shown: string): Promise<void> {
    const tmp = this.tmp(dir);
    let live = true;
    try {
      const first = (e.nlink ?? 1) > 1 ? this.links.get(e.ref) : undefined;
      if (first) {
        await fsp.link(first, tmp);
        await replaceWith(tmp, path);
        live = false;
        this.s.hardlinks++;
        return;
      }
      const src = await this.fs.open(e);
      const fh = await fsp.open(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
      try {
        for (let o = src.nextData?.(0) ?? 0; o < src.size; ) {
          this.opts.signal?.throwIfAborted();
          const data = await src.read(o, PIECE);
          if (data.length === 0) break;
          await writeSparse(fh, data, o);
          this.s.bytesWritten += data.length;
          o += data.length;
          if (src.nextData) o = Math.max(o, src.nextData(o)); // skip holes without reading them
        }
        await fh.truncate(src.size);
        if (src.size !== e.size) this.warn(shown, `${shown}: the folder says ${e.size} bytes, the file holds ${src.size}; restored as held.`, false);
        await this.meta(tmp, e, fh);
      } finally {
        await fh.close();
      }
      await replaceWith(tmp, path);
      live = false;
      this.s.files++;
      if (e.streams?.length) this.warn(shown, `${shown} has alternate data streams (${e.streams.map((x) => x.name).join(', ')}); only its main content was restored.`, false);
      if ((e.nlink ?? 1) > 1) this.links.set(e.ref, path);
    } finally {
      if (live) await fsp.rm(tmp, { force: true }).catch(() => undefined);
    }
  }

  private async symlink(dir: Buffer, path: Buffer, e: FsEntry): Promise<void> {
    const target = await this.fs.readlink(e);
    const tmp = this.tmp(dir);
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

function isZero(b: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (b[i] !== 0) return false;
  return true;
}

/** Writes `data` at `pos`, leaving 4 KiB blocks of zeros unwritten: sparse files stay sparse (the caller sets the size). */
async function writeSparse(fh: fsp.FileHandle, data: Uint8Array, pos: number): Promise<void> {
  const G = 4096;
  let run = -1;
  for (let o = 0; o < data.length; o += G) {
    const zero = isZero(data, o, Math.min(data.length, o + G));
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
 * Copies `items` (entries resolved in `fs`, with the path shown in messages) into `target`: a
 * folder or file goes to target/<its name>; the root folder's contents go into target itself.
 */
export async function extractEntries(fs: FilesystemReader, items: readonly { entry: FsEntry; shown: string }[], target: string, opts: ExtractOptions = {}): Promise<ExtractSummary> {
  await fsp.mkdir(target, { recursive: true });
  const t = Buffer.from(target);
  if (!(await fsp.stat(t)).isDirectory()) throw new LifeboatError('invalid-argument', `${target} is not a folder.`);
  const x = new Extractor(fs, opts);
  for (const it of items) {
    const isRoot = it.shown === '/' || it.shown === '';
    await x.entry(t, it.entry, it.shown || '/', 0, new Set(), isRoot);
  }
  return x.s;
}
