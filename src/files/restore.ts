/**
 * The restorer: a snapshot's tree → a target folder, contents first, then metadata, folder times
 * last (deepest first, as each folder is finished).
 *
 * Names from the repository are untrusted. Every name is checked ('' . .. '/' NUL and duplicates
 * are refused); every folder on the way is created by us or lstat'ed and must be a real folder
 * (never a symlink); files, symlinks and special files are made under a fresh temporary name with
 * O_CREAT|O_EXCL|O_NOFOLLOW and renamed into place, so an existing symlink or hard link in the
 * target is replaced, never written through; symlinks of a folder are made after everything else
 * in it. Nothing can therefore be written outside the target, whatever the repository holds.
 *
 * A killed restore leaves its temporaries (`.lifeboat-restore-` and 16 hex digits) behind; the next
 * restore into the same target removes those in each folder it restores into, except names the
 * snapshot lists in that folder (a snapshot may hold a file named like one). Two restores into the
 * same target at the same time would remove each other's temporaries: run them one after another.
 *
 * Owners: as root, the stored user and group names are looked up on this machine and their ids
 * used when they exist (the stored numbers otherwise, or always with `numericOwner`), as tar and
 * restic do. Without root the stored numbers are tried; the system refuses all but your own user
 * and groups, and the files then belong to you (one warning).
 */
import { constants as C, writeSync, type BigIntStats } from 'node:fs';
import { Semaphore } from '../util/concurrency.js';
import * as fsp from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { basename, dirname } from 'node:path';
import { fromHex, type Hex } from '../repo/ids.js';
import { BlobType, Repository } from '../repo/repository.js';
import type { Snapshot } from '../repo/snapshot.js';
import { LifeboatError, errnoCode } from '../util/errors.js';
import { systemClock, type Clock } from '../util/clock.js';
import { PathMatcher } from './pattern.js';
import { isPlainName, resolve as resolveNode, runaway, runawayError, walk } from '../tree/tree.js';
import { SnapshotTree } from './snapshot-tree.js';
import { isRestoreTemporary, replaceWith, tmpName } from '../tree/restore.js';
import { platform as defaultPlatform, type DirAccess, type Platform } from './platform/platform.js';
import { fileContent, loadDir, type TreeEntry } from './tree.js';
import { MetadataWriter } from './metadata.js';
import { DIRECT_IN_FLIGHT, FileWriters, writeSkippingHoles, type ChunkSource, type RestoreFileReply } from './restore-workers.js';

/** 'keep-both': a file changed since the backup stays, and the backed-up one is restored beside it as "x (restored 2026-12-05).odt". */
export type OverwriteMode = 'always' | 'if-changed' | 'never' | 'keep-both';

export type RestoreEvent =
  | {
      readonly type: 'progress';
      readonly files: number;
      readonly bytesWritten: number;
      /** Bytes written, and of files skipped as already there or linked (totalBytes's counterpart). */
      readonly bytesDone: number;
      /** The snapshot's file bytes, when the whole snapshot is restored. */
      readonly totalBytes?: number;
    }
  | { readonly type: 'warning'; readonly path: string; readonly message: string };

export interface RestoreOptions {
  readonly target: string;
  /** Paths inside the snapshot ('/'-separated, leading '/' optional): exactly these, with everything under them. */
  readonly includes?: readonly string[];
  readonly excludes?: readonly string[];
  /** Default 'if-changed': an existing file of the same type, size and mtime is kept. */
  readonly overwrite?: OverwriteMode;
  readonly verify?: boolean;
  /**
   * Owners as root: by default an entry's stored user and group names are looked up on this
   * machine and their ids used (the stored numbers when a name is unknown here, as tar and restic
   * do); true always uses the stored numbers. Without root nothing is looked up: the stored
   * numbers are tried, which the system allows only for your own user and groups (one warning).
   */
  readonly numericOwner?: boolean;
  /**
   * Create device nodes of a snapshot made on another computer. A crafted snapshot could otherwise
   * make, as root, a world-writable node of this computer's disk inside the target (tar and restic
   * would). Snapshots of this host restore their devices either way.
   */
  readonly devices?: boolean;
  readonly signal?: AbortSignal;
  readonly onEvent?: (e: RestoreEvent) => void;
  readonly platform?: Platform;
  /** With includes, read their listings first so progress events carry a total (only worth it when progress is shown). */
  readonly scanTotal?: boolean;
  /** The day in the names of copies restored beside changed files (overwrite 'keep-both'); default the clock's local date. */
  readonly clock?: Clock;
}

export interface RestoreSummary {
  files: number;
  dirs: number;
  symlinks: number;
  special: number;
  hardlinks: number;
  bytesWritten: number;
  /** Existing paths left as they were (never, or unchanged with if-changed). */
  skipped: number;
  /** Device nodes not created: the snapshot comes from another computer and `devices` was not given. */
  devicesRefused: number;
  /** Of `skipped`: files that differ from the snapshot (changed since the backup), left by --overwrite never. */
  keptChanged: number;
  /** Existing files or links that were replaced with the snapshot's version. */
  replaced: number;
  /** Of the changed files (overwrite 'keep-both'): restored beside them under a new name. */
  keptBoth: number;
  /** Entries refused or failed (see the warnings). */
  errors: number;
  verified: number;
  verifyFailures: number;
  /** Temporaries (.lifeboat-restore-…) left by an interrupted restore, removed from the folders restored into. */
  leftoversRemoved: number;
  durationSeconds: number;
}

const DEEP_PATH = 1024;
/** A file whose content names a folder listing (type confusion): refused, never written. */
const LISTING_AS_DATA = 'the snapshot names a folder listing as its data (the repository is damaged or hostile); it was not restored';
const SLASH = Buffer.from('/');
const FILES_IN_FLIGHT = 4;
/** With worker threads writing the small files: enough queued to keep every worker busy. */
const FILES_IN_FLIGHT_WORKERS = 64;
/** Folders restored at the same time (beyond the one each task is in). */
const DIR_TASKS = 8;
/** Chunks of one large file being written at once. */
const CHUNKS_PER_FILE = 8;
/**
 * Chunks of large files in flight across all files: each holds its sealed blob (~1 MiB, up to
 * 8 MiB) in memory until a worker has written it. Per file alone, 64 large files in flight could
 * hold 512 chunks: 150 MB of photos and videos (14 files) peaked at 220 MiB, 111 MiB of it
 * envelopes in the main thread's heap (bench/README.md, session 9).
 */
const LARGE_CHUNKS_IN_FLIGHT = 16;
/** Pack ranges each folder's restoreDirect reads ahead (Repository.sealedBlobs); DIR_TASKS folders run at once. */
const DIRECT_READS_AHEAD = 4;

/** Include paths as name components; refuses '.' and '..' so an include cannot point outside. */
export function parseInclude(p: string): Buffer[] {
  const parts = p.split('/').filter((x) => x.length > 0);
  if (parts.length === 0) return [];
  if (parts.some((x) => x === '.' || x === '..')) throw new LifeboatError('usage', `--include ${p}: "." and ".." are not allowed; name the path as "lifeboat ls" shows it.`);
  return parts.map((x) => Buffer.from(x, 'utf8'));
}

type Select = 'all' | { readonly rest: Buffer[]; readonly idx: number }[];

class Restorer {
  /** Entries restored so far, and those of the distinct listings they came from (see tree/tree.ts runaway). */
  private visited = 0;
  private distinct = 0;
  private readonly listings = new Set<Hex>();
  /** Whether device nodes may be created (see RestoreOptions.devices). */
  devicesAllowed = false;
  readonly plat: Platform;
  readonly excludes: PathMatcher;
  readonly overwrite: OverwriteMode;
  /** YYYY-MM-DD, for the names of copies restored beside changed files. */
  private readonly restoredOn: string;
  readonly s: RestoreSummary = { files: 0, dirs: 0, symlinks: 0, special: 0, hardlinks: 0, bytesWritten: 0, skipped: 0, devicesRefused: 0, keptChanged: 0, replaced: 0, keptBoth: 0, errors: 0, verified: 0, verifyFailures: 0, leftoversRemoved: 0, durationSeconds: 0 };
  /** First restored path of each hard-linked inode (device:inode), as a full path. */
  private readonly links = new Map<string, Promise<Buffer | undefined>>();
  /** Folders this run created (latin1 keys of their paths): nothing pre-existing can be inside. */
  private readonly freshDirs = new Set<string>();
  readonly meta: MetadataWriter;
  private lastProgress = 0;
  totalBytes: number | undefined;
  private bytesSkipped = 0;
  matched = new Set<number>();

  /** Worker threads for single-chunk files (with the real platform only: tests inject their own). */
  readonly writers: FileWriters | undefined;
  private readonly fileSlots: Semaphore;
  /** For restoreDirect, whose jobs hold no data (FileWriters reads it on the workers). */
  private readonly directSlots = new Semaphore(DIRECT_IN_FLIGHT);
  private readonly chunkSlots = new Semaphore(LARGE_CHUNKS_IN_FLIGHT);
  private readonly dirTasks = new Semaphore(DIR_TASKS);

  constructor(readonly repo: Repository, readonly opts: RestoreOptions) {
    this.plat = opts.platform ?? defaultPlatform();
    this.writers = opts.platform === undefined ? new FileWriters(repo) : undefined;
    this.fileSlots = new Semaphore(this.writers ? FILES_IN_FLIGHT_WORKERS : FILES_IN_FLIGHT);
    this.excludes = new PathMatcher(opts.excludes ?? []);
    this.overwrite = opts.overwrite ?? 'if-changed';
    const d = new Date((opts.clock ?? systemClock).now());
    this.restoredOn = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
    this.meta = new MetadataWriter(this.plat, { ...(opts.numericOwner ? { numericOwner: true } : {}), warn: (path, message) => this.warn(path, message, false) });
  }

  warn(path: string, message: string, error = true): void {
    if (error) this.s.errors++;
    this.opts.onEvent?.({ type: 'warning', path, message });
  }

  progress(force = false): void {
    if (!this.opts.onEvent) return;
    const now = performance.now();
    if (!force && now - this.lastProgress < 100) return;
    this.lastProgress = now;
    const bytesDone = this.s.bytesWritten + this.bytesSkipped;
    this.opts.onEvent({ type: 'progress', files: this.s.files, bytesWritten: this.s.bytesWritten, bytesDone, ...(this.totalBytes !== undefined ? { totalBytes: this.totalBytes } : {}) });
  }

  private fail(path: string, e: unknown, what: string): void {
    if (e instanceof Error && e.name === 'AbortError') throw e;
    if (e instanceof LifeboatError && e.code !== 'unsafe-path') throw e; // repository damage: stop
    const drive = driveProblem(e, path);
    if (drive) throw drive;
    this.warn(path, `${path}: could not ${what} (${errnoCode(e) ?? (e instanceof Error ? e.message : String(e))}).`);
  }

  /**
   * Removes the temporaries an interrupted restore left in `dir` (a folder about to be restored
   * into): names exactly of tmpName()'s form that the snapshot's listing of this folder does not
   * hold (`listed`, latin1 keys of every name in it). Only non-folders are removed, by unlink, which
   * never follows a symlink; folders are never made under such names, so one is not ours.
   */
  private async removeLeftovers(dir: Buffer, logical: string, listed: ReadonlySet<string>): Promise<void> {
    let names: Buffer[];
    try {
      names = await fsp.readdir(dir, { encoding: 'buffer' });
    } catch (e) {
      this.fail(logical || '/', e, 'list the folder');
      return;
    }
    for (const name of names) {
      if (!isRestoreTemporary(name) || listed.has(name.toString('latin1'))) continue;
      const path = Buffer.concat([dir, Buffer.from('/'), name]);
      const shown = `${logical}/${name.toString('latin1')}`;
      try {
        const st = await fsp.lstat(path);
        if (st.isDirectory()) continue;
        await fsp.unlink(path);
        this.s.leftoversRemoved++;
      } catch (e) {
        if (errnoCode(e) === 'ENOENT') continue;
        this.warn(shown, `${shown} looks like a temporary file left by an interrupted restore, but it could not be removed (${errnoCode(e) ?? String(e)}).`, false);
      }
    }
  }

  /**
   * Restores one folder's listing into `dir` (an access path to a real folder we verified).
   * `logical` is the path inside the snapshot ('' for the root) for messages and excludes.
   */
  async restoreDir(treeId: Hex, dir: Buffer, logical: string, select: Select, full: Buffer): Promise<void> {
    this.opts.signal?.throwIfAborted();
    let entries: TreeEntry[];
    try {
      entries = await loadDir(this.repo, treeId);
    } catch (e) {
      this.fail(logical || '/', e, 'read the folder listing');
      return;
    }
    // A crafted snapshot can name one listing at every level: bounded, not 2^40 folders.
    this.visited += entries.length;
    if (!this.listings.has(treeId)) {
      this.listings.add(treeId);
      this.distinct += entries.length;
    }
    if (runaway(this.visited, this.distinct)) throw runawayError(logical || '/');
    const seen = new Set<string>();
    const todo: TreeEntry[] = [];
    const shownIn = (e: TreeEntry): string => `${logical}/${e.name.toString('utf8')}`;
    for (const e of entries) {
      if (!isPlainName(e.name)) {
        const shown = shownIn(e);
        this.warn(shown, `The snapshot holds an entry named ${JSON.stringify(e.name.toString('utf8'))} in ${logical || '/'}; it is unsafe and was not restored (the repository may be damaged or hostile).`);
        continue;
      }
      const key = e.name.toString('latin1');
      if (seen.has(key)) {
        const shown = shownIn(e);
        this.warn(shown, `The snapshot lists ${shown} twice; only the first was restored (the repository may be damaged or hostile).`);
        continue;
      }
      seen.add(key);
      todo.push(e);
    }
    // A folder this run created holds nothing else; any other may hold a killed run's temporaries.
    if (!this.freshDirs.has(dir.toString('latin1'))) {
      const listed = new Set(entries.map((e) => e.name.toString('latin1')));
      await this.removeLeftovers(dir, logical, listed);
    }
    const picked: { e: TreeEntry; sel: Select }[] = [];
    for (const e of todo) {
      if (!this.excludes.empty && this.excludes.matches(shownIn(e))) continue;
      let sel: Select;
      if (select === 'all') sel = 'all';
      else {
        const here = select.filter((p) => p.rest[0]!.equals(e.name));
        if (here.length === 0) continue;
        for (const p of here) if (p.rest.length === 1) this.matched.add(p.idx);
        if (here.some((p) => p.rest.length === 1)) sel = 'all';
        else if (e.type === 'dir') sel = here.map((p) => ({ rest: p.rest.slice(1), idx: p.idx }));
        else continue;
      }
      picked.push({ e, sel });
    }
    const base = dir;
    const fullBase = full;
    const fresh = this.freshDirs.has(base.toString('latin1'));
    const direct: TreeEntry[] = [];
    const others: TreeEntry[] = [];
    for (const { e } of picked) {
      if (e.type === 'dir' || e.type === 'symlink') continue;
      if (fresh && this.isDirect(e)) direct.push(e);
      else others.push(e);
    }
    // Files and sub-folders go on together (a few folders at once, files bounded over the whole
    // restore), so the writers never wait for one folder to finish before the next one starts.
    const filesDone = Promise.all([
      this.restoreDirect(base, fullBase, logical, direct),
      ...others.map(async (e) => {
        await this.fileSlots.acquire();
        try {
          await this.restoreNonDir(base, fullBase, e, `${logical}/${e.name.toString('utf8')}`);
        } finally {
          this.fileSlots.release();
        }
      }),
    ]);
    filesDone.catch(() => undefined);
    const subdirs: Promise<void>[] = [];
    for (const p of picked) {
      if (p.e.type !== 'dir') continue;
      const run = () => this.restoreDirEntry(base, fullBase, p.e, `${logical}/${p.e.name.toString('utf8')}`, p.sel);
      if (this.dirTasks.tryAcquire()) {
        const t = run().finally(() => this.dirTasks.release());
        t.catch(() => undefined);
        subdirs.push(t);
      } else await run();
    }
    await filesDone;
    await Promise.all(subdirs);
    for (const p of picked) {
      if (p.e.type === 'symlink') await this.restoreNonDir(base, fullBase, p.e, `${logical}/${p.e.name.toString('utf8')}`);
    }
  }

  /**
   * Whether restoreDirect may write a file: a regular file of at most one small chunk, stored in
   * full (or empty), not hard-linked, not damaged or changed while backed up (both warn), not to be
   * verified. The others go the general way (restoreNonDir).
   */
  private isDirect(e: TreeEntry): boolean {
    if (!this.writers || this.opts.verify || e.type !== 'file' || e.nlink > 1 || e.damaged || e.changed || e.holes?.length || e.contentParts) return false;
    if (e.content && e.content.length > 1) return false;
    return this.writers.direct(e);
  }

  /**
   * Files of a folder this run created, as isDirect picked them, straight to the workers: nothing
   * can be in the way there, so no temporary name, no lookup and no hard link to wait for. Their
   * envelopes are read through the store a pack range at a time (Repository.sealedBlobs: a
   * folder's small files usually lie side by side in one pack). The main thread spends a few µs
   * per file, not a chain of async calls: a restore of 100k small files was bound by the main
   * thread's share of the two cores (bench/README.md).
   */
  private async restoreDirect(dir: Buffer, full: Buffer, logical: string, files: readonly TreeEntry[]): Promise<void> {
    const writers = this.writers!;
    const done: Promise<void>[] = [];
    let failed = false;
    const send = async (e: TreeEntry, blob: ChunkSource | undefined): Promise<boolean> => {
      if (!this.directSlots.tryAcquire()) await this.directSlots.acquire();
      if (failed || this.opts.signal?.aborted) {
        this.directSlots.release();
        return false;
      }
      const path = Buffer.concat([dir, SLASH, e.name]);
      const finish = (r: RestoreFileReply | undefined, err?: unknown): void => {
        this.directSlots.release();
        const shown = (): string => `${logical}/${e.name.toString('utf8')}`; // for messages only
        try {
          if (r === undefined) throw err;
          this.written(r, e, shown);
          this.s.files++;
        } catch (x) {
          // The worker may have made the file before failing (a full disk): not left half written.
          if (r?.status === 'failed' && r.code !== 'EEXIST') void fsp.rm(path, { force: true }).catch(() => undefined);
          this.fail(shown(), x, 'restore it');
        }
      };
      const p = writers.writeFrom(path, e, this.meta.owner(e), blob).then(finish, (err: unknown) => finish(undefined, err));
      p.catch(() => (failed = true)); // the restore stops (Promise.all below); nothing more is sent
      done.push(p);
      return true;
    };
    const stored: TreeEntry[] = [];
    for (const e of files) {
      if (e.content?.length) stored.push(e);
      else if (!(await send(e, undefined))) break;
    }
    try {
      for await (const { i, blob } of this.repo.sealedBlobs(stored.map((e) => fromHex(e.content![0]!)), DIRECT_READS_AHEAD)) {
        const e = stored[i]!;
        // Gone from the index meanwhile (isDirect saw it): the general path says what is wrong.
        if (!blob) done.push(this.restoreNonDir(dir, full, e, `${logical}/${e.name.toString('utf8')}`));
        else if (!(await send(e, blob))) break;
      }
    } finally {
      await Promise.allSettled(done); // every job sent settles before the folder is done, even on a failed read
    }
    await Promise.all(done);
    this.opts.signal?.throwIfAborted();
  }

  private async lstatOrUndefined(p: Buffer): Promise<BigIntStats | undefined> {
    try {
      return await fsp.lstat(p, { bigint: true });
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return undefined;
      throw e;
    }
  }

  private async restoreDirEntry(parent: Buffer, parentFull: Buffer, e: TreeEntry, shown: string, sel: Select): Promise<void> {
    let path = Buffer.concat([parent, Buffer.from('/'), e.name]);
    let full = Buffer.concat([parentFull, Buffer.from('/'), e.name]);
    let handle: DirAccess | undefined;
    try {
      // Nothing can be in the way in a folder this run created (and mkdir fails if anything appeared).
      let st = this.freshDirs.has(parent.toString('latin1')) ? undefined : await this.lstatOrUndefined(path);
      if (st && !st.isDirectory() && this.overwrite === 'keep-both') {
        const name = await this.besideName(parent, e.name);
        path = Buffer.concat([parent, Buffer.from('/'), name]);
        full = Buffer.concat([parentFull, Buffer.from('/'), name]);
        st = undefined;
      }
      if (st && !st.isDirectory()) {
        if (this.overwrite === 'never') {
          this.warn(shown, `${shown} exists and is not a folder; it was left as it is (--overwrite never).`, false);
          this.s.skipped++;
          return;
        }
        await fsp.unlink(path); // a file or symlink: removed, never followed
      }
      if (!st || !st.isDirectory()) {
        await fsp.mkdir(path, { mode: 0o700 }); // fails if anything appeared meanwhile
        this.freshDirs.add(path.toString('latin1'));
      } else {
        const check = await fsp.lstat(path);
        if (!check.isDirectory()) throw new LifeboatError('unsafe-path', `${shown} is not a folder`);
      }
      this.s.dirs++;
      let access: Buffer = path;
      if (path.length > DEEP_PATH) {
        handle = await this.plat.dirAccess(path);
        access = handle.base;
      }
      await this.restoreDir(e.subtree!, access, shown, sel, full);
      await handle?.close();
      handle = undefined;
      await this.meta.apply(path, e, shown);
    } catch (err) {
      this.fail(shown, err, 'restore the folder');
    } finally {
      await handle?.close();
    }
  }

  private async restoreNonDir(dir: Buffer, dirFull: Buffer, e: TreeEntry, shown: string): Promise<void> {
    this.opts.signal?.throwIfAborted();
    const path = Buffer.concat([dir, Buffer.from('/'), e.name]);
    const full = Buffer.concat([dirFull, Buffer.from('/'), e.name]);
    let tmp: Buffer | undefined;
    let live = false;
    // Hard links: the first entry of an inode registers a promise of its restored path at once, so
    // a later link (in this folder or another, restored concurrently) waits for it, then links.
    const linkKey = e.type === 'file' && e.nlink > 1 ? `${e.device}:${e.inode}` : undefined;
    const first = linkKey !== undefined ? this.links.get(linkKey) : undefined;
    let registered: ((path: Buffer | undefined) => void) | undefined;
    let restoredAt: Buffer | undefined;
    if (linkKey !== undefined && first === undefined) this.links.set(linkKey, new Promise((resolve) => (registered = resolve)));
    // Where the entry goes: its own name, or beside a changed file under a new one (keep-both).
    let dest = path;
    let destFull = full;
    try {
      // In a folder this run created, nothing can be in the way: create entries directly under
      // their names (O_EXCL still refuses anything that appeared meanwhile). Elsewhere, look first.
      const fresh = this.freshDirs.has(dir.toString('latin1'));
      const existing = fresh ? undefined : await this.lstatOrUndefined(path);
      if (existing) {
        const same = e.type === 'file' && existing.isFile() && Number(existing.size) === e.size && existing.mtimeNs === e.mtime;
        if (this.overwrite === 'never') {
          this.s.skipped++;
          if (!same) this.s.keptChanged++;
          if (e.type === 'file') this.bytesSkipped += e.size;
          return;
        }
        if ((this.overwrite === 'if-changed' || this.overwrite === 'keep-both') && same) {
          this.s.skipped++;
          this.bytesSkipped += e.size;
          restoredAt = full;
          return;
        }
        if (this.overwrite === 'keep-both') {
          // Created under a name nothing has (O_EXCL), so nothing that exists is ever replaced.
          const name = await this.besideName(dir, e.name);
          dest = Buffer.concat([dir, Buffer.from('/'), name]);
          destFull = Buffer.concat([dirFull, Buffer.from('/'), name]);
        }
      }
      const beside = dest !== path;
      const t = fresh || beside ? dest : tmpName(dir);
      tmp = t;
      live = true;
      const firstPath = await first;
      if (firstPath !== undefined) {
        try {
          await fsp.link(firstPath, t);
          if (t !== dest) await replaceWith(t, dest);
          if (beside) this.s.keptBoth++;
          else if (existing) this.s.replaced++;
          live = false;
          this.s.hardlinks++;
          if (e.type === 'file') this.bytesSkipped += e.size;
          return;
        } catch (err) {
          if (errnoCode(err) !== 'ENAMETOOLONG') throw err;
          // too deep to link by path: restored as a copy below
        }
      }
      if (e.damaged) this.warn(shown, `${shown}: its data was lost from the repository ("lifeboat repair snapshots" marked it damaged); restored ${e.type === 'dir' ? 'as an empty folder' : 'empty'}.`);
      if (e.changed && e.type === 'file') this.warn(shown, `${shown} changed while it was backed up; it was restored as it was read, which may be inconsistent.`, false);
      switch (e.type) {
        case 'file':
          await this.writeFile(t, e, shown);
          this.s.files++;
          break;
        case 'symlink':
          await fsp.symlink(e.target ?? Buffer.alloc(0), t);
          this.s.symlinks++;
          break;
        case 'fifo':
        case 'chardev':
        case 'blockdev': {
          if (e.type !== 'fifo' && !this.devicesAllowed) {
            this.warn(shown, `${shown} is a device node from a snapshot of another computer; it was not created (add --devices if you trust this snapshot).`, false);
            this.s.devicesRefused++;
            live = false;
            return;
          }
          const kind = e.type === 'fifo' ? C.S_IFIFO : e.type === 'chardev' ? C.S_IFCHR : C.S_IFBLK;
          if (!this.plat.mknod(t, kind | (e.mode & 0o777), e.rdev ?? 0n)) {
            this.warn(shown, `${shown} is a ${e.type === 'fifo' ? 'FIFO' : 'device node'}, which this installation cannot create (${this.plat.missing ?? 'not supported'}).`);
            live = false;
            return;
          }
          this.s.special++;
          break;
        }
        case 'dir':
          break;
      }
      if (e.type !== 'file') await this.meta.apply(t, e, shown);
      if (t !== dest) await replaceWith(t, dest);
      if (beside) this.s.keptBoth++;
      else if (existing) this.s.replaced++;
      live = false;
      restoredAt = destFull;
      if (e.type === 'file' && this.opts.verify) await this.verify(dest, e, shown);
      this.progress();
    } catch (err) {
      this.fail(shown, err, 'restore it');
    } finally {
      registered?.(restoredAt);
      if (live && tmp) await fsp.rm(tmp, { force: true }).catch(() => undefined);
    }
  }

  /**
   * A name in `dir` that nothing has, for the backed-up copy of `name` restored beside a changed
   * one: "x (restored 2026-12-05).odt", then "x (restored 2026-12-05 2).odt", … The extension stays
   * last so the copy opens as the original does; the stem is shortened to fit 255 bytes.
   */
  private async besideName(dir: Buffer, name: Buffer): Promise<Buffer> {
    const dot = name.lastIndexOf(0x2e);
    const [stem, ext] = dot > 0 ? [name.subarray(0, dot), name.subarray(dot)] : [name, Buffer.alloc(0)];
    for (let n = 1; ; n++) {
      const mark = Buffer.from(` (restored ${this.restoredOn}${n > 1 ? ` ${n}` : ''})`);
      let cut = Math.max(0, Math.min(stem.length, 255 - mark.length - ext.length));
      while (cut > 0 && cut < stem.length && (stem[cut]! & 0xc0) === 0x80) cut--; // not inside a UTF-8 character
      const candidate = Buffer.concat([stem.subarray(0, cut), mark, ext.length + mark.length < 255 ? ext : Buffer.alloc(0)]);
      if (!(await this.lstatOrUndefined(Buffer.concat([dir, Buffer.from('/'), candidate])))) return candidate;
    }
  }

  private async writeFile(tmp: Buffer, e: TreeEntry, shown: string): Promise<void> {
    if (e.content && e.content.length <= 1 && !e.holes?.length && !e.contentParts) return this.writeSmallFile(tmp, e, shown);
    const fh = await fsp.open(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
    try {
      const ids = await fileContent(this.repo, e);
      const holes = e.holes ?? [];
      // Every chunk's place in the file, from the index, so chunks are written in any order.
      const starts: number[] = [];
      let end = 0;
      for (const id of ids) {
        starts.push(end);
        const loc = this.repo.index.get(fromHex(id));
        if (!loc) throw this.repo.notIndexed(fromHex(id));
        if (loc.type === BlobType.tree) throw new Error(LISTING_AS_DATA);
        end += loc.rawLength;
      }
      // A worker writes through fh.fd, so every chunk in flight settles before fh is closed.
      const inFlight = new Set<Promise<void>>();
      let failure: unknown;
      let h = 0; // the first hole that does not end before the current chunk
      for (let k = 0; k < ids.length && failure === undefined; k++) {
        if (this.opts.signal?.aborted) {
          failure = this.opts.signal.reason;
          break;
        }
        // A chunk wholly inside a hole is zeros that would not be written: not even fetched (a
        // sparse disk image restores in time proportional to its data).
        const chunkEnd = k + 1 < ids.length ? starts[k + 1]! : end;
        while (h < holes.length && holes[h]! + holes[h + 1]! <= starts[k]!) h += 2;
        if (h < holes.length && holes[h]! <= starts[k]! && chunkEnd <= holes[h]! + holes[h + 1]!) {
          this.s.bytesWritten += chunkEnd - starts[k]!;
          continue;
        }
        await this.chunkSlots.acquire();
        const p = this.writeChunk(fh.fd, starts[k]!, holes, ids[k]!).then(
          (n) => {
            this.s.bytesWritten += n;
            this.progress();
          },
          (err: unknown) => {
            failure ??= err;
          },
        );
        inFlight.add(p);
        void p.finally(() => {
          inFlight.delete(p);
          this.chunkSlots.release();
        });
        if (inFlight.size >= CHUNKS_PER_FILE) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
      if (failure !== undefined) throw failure;
      if (end !== e.size) this.warn(shown, `${shown}: the stored content is ${end} bytes, but the file was ${e.size} bytes when it was saved; restored as stored.`);
      await fh.truncate(end); // extends over a trailing hole
      await this.meta.apply(tmp, e, shown, fh);
    } finally {
      await fh.close();
    }
  }

  /** Writes one chunk at `pos` (on a worker when it can); returns its length. */
  private async writeChunk(fd: number, pos: number, holes: readonly number[], id: Hex): Promise<number> {
    const r = this.writers ? await this.writers.writeChunk(fd, pos, holes, id) : undefined;
    if (r) {
      workerFailure(r);
      return r.bytes;
    }
    const data = await this.repo.loadBlob(fromHex(id));
    writeSkippingHoles(fd, data, pos, holes);
    return data.length;
  }

  /**
   * A file of at most one chunk: fetched, then created, written and given its owner and mode with
   * synchronous calls. For thousands of small files a thread-pool round trip per call costs more
   * than the calls themselves (see bench/README.md).
   */
  private async writeSmallFile(tmp: Buffer, e: TreeEntry, shown: string): Promise<void> {
    const first = e.content?.[0];
    if (first !== undefined && this.repo.index.get(fromHex(first))?.type === BlobType.tree) throw new Error(LISTING_AS_DATA);
    const r = this.writers ? await this.writers.write(tmp, e, this.meta.owner(e)) : undefined;
    if (r) return this.written(r, e, () => shown);
    const id = e.content?.[0];
    const data = id === undefined ? new Uint8Array(0) : await this.repo.loadBlob(fromHex(id));
    // Creating a file is the slow call on journaling filesystems (hundreds of µs): done on the
    // thread pool so several run at once; the quick calls after it are made directly.
    const fh = await fsp.open(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
    const fd = fh.fd;
    try {
      let off = 0;
      while (off < data.length) off += writeSync(fd, data, off, data.length - off, off);
      if (data.length !== e.size) {
        this.warn(shown, `${shown}: the stored content is ${data.length} bytes, but the file was ${e.size} bytes when it was saved; restored as stored.`);
      }
      this.s.bytesWritten += data.length;
      this.meta.ownerAndModeSync(fd, e, shown);
    } finally {
      await fh.close();
    }
    await this.meta.xattrsAndTimes(tmp, e, shown);
    this.progress();
  }

  /** Accounts for a file a worker wrote, as writeSmallFile would have; `shown` names it in messages. */
  private written(r: RestoreFileReply, e: TreeEntry, shown: () => string): void {
    workerFailure(r);
    if (r.bytes !== e.size) {
      this.warn(shown(), `${shown()}: the stored content is ${r.bytes} bytes, but the file was ${e.size} bytes when it was saved; restored as stored.`);
    }
    this.s.bytesWritten += r.bytes;
    if (r.chownError !== undefined) this.meta.chownRefused(Object.assign(new Error(r.chownError), { code: r.chownError }), shown());
    for (const [name, code] of r.xattrErrors) this.meta.xattrRefused(shown(), name, code);
    this.progress();
  }

  private async verify(path: Buffer, e: TreeEntry, shown: string): Promise<void> {
    const fh = await fsp.open(path, C.O_RDONLY | C.O_NOFOLLOW | (C.O_NOATIME ?? 0)); // reading must not move the restored atime
    try {
      let pos = 0;
      let ok = true;
      for (const id of await fileContent(this.repo, e)) {
        const loc = this.repo.index.get(fromHex(id));
        if (!loc) {
          ok = false;
          break;
        }
        const buf = Buffer.alloc(loc.rawLength);
        const { bytesRead } = await fh.read(buf, 0, loc.rawLength, pos);
        pos += loc.rawLength;
        if (bytesRead !== loc.rawLength || !this.repo.blobId(buf).equals(fromHex(id))) {
          ok = false;
          break;
        }
      }
      if (ok && Number((await fh.stat()).size) !== pos) ok = false;
      if (ok) this.s.verified++;
      else {
        this.s.verifyFailures++;
        this.warn(shown, `${shown}: the restored file does not match the snapshot.`);
      }
    } finally {
      await fh.close();
    }
  }
}

/**
 * A full or read-only target drive, which fails every file after this one: the restore stops and
 * says so once. Undefined for any other error.
 */
function driveProblem(e: unknown, path: string): LifeboatError | undefined {
  const code = errnoCode(e);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new LifeboatError('no-space', `The drive you are restoring to is full (${code === 'EDQUOT' ? 'your disk quota is used up' : 'no space left'} at ${path}); free some space or choose another target, then run the same restore again to finish it.`);
  }
  if (code === 'EROFS') return new LifeboatError('io', `The drive you are restoring to is read-only (at ${path}); choose another target.`);
  return undefined;
}

/** Creates the target folder and the folders above it, with a plain error when that fails. */
async function makeTarget(target: string): Promise<void> {
  let why: unknown;
  try {
    await fsp.mkdir(target, { recursive: true });
    return;
  } catch (e) {
    // Node's recursive mkdir reports ENOENT when the last step fails for another reason (on a
    // read-only drive, EROFS): that step again, alone, says why.
    why = await fsp.mkdir(target).then(() => undefined, (e2: unknown) => (errnoCode(e2) === 'ENOENT' ? e : e2));
  }
  if (why === undefined) return;
  throw driveProblem(why, target) ?? new LifeboatError('io', `The target folder ${target} could not be created (${errnoCode(why) ?? (why instanceof Error ? why.message : 'unknown error')}); check the path and that you may write there.`);
}

/** Throws what a worker's reply reports: repository damage (which stops the restore) or a failed call. */
function workerFailure(r: RestoreFileReply): asserts r is Extract<RestoreFileReply, { status: 'ok' }> {
  if (r.status === 'corrupt') throw new LifeboatError(r.notFound ? 'not-found' : 'corrupt', r.message);
  if (r.status === 'failed') throw Object.assign(new Error(r.code), { code: r.code });
}

export interface RestoreResult {
  readonly summary: RestoreSummary;
}

/** Restores `snapshot` (or the included parts of it) into `opts.target`. The caller holds a lock. */
export async function restore(repo: Repository, snapshot: Snapshot, opts: RestoreOptions): Promise<RestoreResult> {
  const started = performance.now();
  if (snapshot.kind !== 'files') throw new LifeboatError('usage', 'That is an image snapshot; restore it with "lifeboat image restore".');
  await repo.loadIndex();
  const includes = (opts.includes ?? []).map(parseInclude);
  const r = new Restorer(repo, opts);
  r.devicesAllowed = opts.devices === true || snapshot.host === Repository.hostname();
  if (includes.length === 0) {
    const t = snapshot.summary?.['totalBytes'];
    if (t !== undefined) r.totalBytes = t;
  } else if (opts.scanTotal && opts.onEvent && (opts.excludes ?? []).length === 0) {
    r.totalBytes = await includedBytes(repo, snapshot, opts.includes ?? [], opts.signal);
  }
  const target = Buffer.from(opts.target);
  await makeTarget(opts.target);
  const select: Select = includes.length === 0 || includes.some((p) => p.length === 0) ? 'all' : includes.map((rest, idx) => ({ rest, idx }));
  try {
    await r.restoreDir(snapshot.root, target, '', select, target);
  } finally {
    await r.writers?.close();
  }
  if (select !== 'all') {
    for (let i = 0; i < includes.length; i++) {
      if (!r.matched.has(i)) r.warn(opts.includes![i]!, `Nothing in the snapshot is called ${opts.includes![i]!}; see "lifeboat ls".`);
    }
  }
  r.progress(true);
  r.s.durationSeconds = Math.round((performance.now() - started) / 10) / 100;
  return { summary: r.s };
}

/**
 * The file bytes under `includes` (paths in the snapshot's form), for a real total in a partial
 * restore's progress; undefined when an include is not there (the restore says so) or the walk
 * fails. Reads only the listings of the included folders, which the restore reads next anyway.
 */
async function includedBytes(repo: Repository, snapshot: Snapshot, includes: readonly string[], signal?: AbortSignal): Promise<number | undefined> {
  const tree = new SnapshotTree(repo, snapshot);
  let total = 0;
  try {
    for (const inc of includes) {
      const node = await resolveNode(tree, inc);
      if (node.type === 'file') total += node.size;
      else if (node.type === 'dir') for await (const f of walk(tree, node, '', signal ? { signal } : {})) if (f.node.type === 'file') total += f.node.size;
    }
  } catch (e) {
    if (e instanceof Error && e.name === 'AbortError') throw e;
    return undefined;
  }
  return total;
}

/**
 * Where each backed-up folder of `snapshot` goes back to for a restore "in the original location":
 * the folder that held it, with the includes that fall inside it (every include is in the
 * snapshot's form). A snapshot of a whole drive's root has no folder above it: that is refused.
 */
export function originalPlaces(snapshot: Snapshot, includes: readonly string[]): { target: string; includes: string[] }[] {
  const out: { target: string; includes: string[] }[] = [];
  for (const p of snapshot.paths) {
    const name = basename(p);
    if (name === '') throw new LifeboatError('usage', `${p} is the root of a drive; restore it into a folder with --target instead.`);
    const mine = includes.length === 0 ? [`/${name}`] : includes.filter((i) => parseInclude(i)[0]?.toString('utf8') === name);
    if (mine.length > 0) out.push({ target: dirname(p), includes: mine });
  }
  return out;
}

