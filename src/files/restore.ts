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
import { constants as C, mkdirSync, type BigIntStats } from 'node:fs';
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
import { fileAttributes, fileContent, loadDir, type TreeEntry } from './tree.js';
import { MetadataWriter } from './metadata.js';
import { FileWriters, replyError, type RestoreOutcome } from './restore-workers.js';
import { ContentPlan, type SmallFiles } from './restore-plan.js';

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
/** Files whose walk part (look, decide, hand over to the plan) runs at once. */
const FILES_IN_FLIGHT = 16;
/** Folders walked at the same time (beyond the one each task is in): their listings come from the cache. */
const DIR_TASKS = 8;

/** Include paths as name components; refuses '.' and '..' so an include cannot point outside. */
export function parseInclude(p: string): Buffer[] {
  const parts = p.split('/').filter((x) => x.length > 0);
  if (parts.length === 0) return [];
  if (parts.some((x) => x === '.' || x === '..')) throw new LifeboatError('usage', `--include ${p}: "." and ".." are not allowed; name the path as "lifeboat ls" shows it.`);
  return parts.map((x) => Buffer.from(x, 'utf8'));
}

type Select = 'all' | { readonly rest: Buffer[]; readonly idx: number }[];

/**
 * The walk of an entry is over (its folders made, its files handed to the restore plan); `done`
 * settles once it is restored (rejects only with an error that stops the restore).
 */
interface Walked {
  readonly done: Promise<void>;
}

const NOTHING: Walked = { done: Promise.resolve() };
const ignore = (): void => undefined;

/** `done` with its rejection marked as handled (it is awaited later, or not at all once the restore stopped). */
function walked(done: Promise<void>): Walked {
  done.catch(ignore);
  return { done };
}

class Restorer {
  /** Entries restored so far, and those of the distinct listings they came from (see tree/tree.ts runaway). */
  private visited = 0;
  private distinct = 0;
  private readonly listings = new Set<Hex>();
  /** The error that stopped a walk through a snapshot that repeats its folders endlessly (never a warning). */
  private runaway: LifeboatError | undefined;
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

  /** Worker threads that write the contents (with the real platform only: tests inject their own). */
  readonly writers: FileWriters | undefined;
  /** Every file's contents, read pack by pack once the walk has gathered them (restore-plan.ts). */
  readonly plan: ContentPlan;
  private readonly fileSlots = new Semaphore(FILES_IN_FLIGHT);
  private readonly dirTasks = new Semaphore(DIR_TASKS);
  /** The error that stops the restore, once one did: the walk goes no further. */
  private fatal: unknown;

  constructor(readonly repo: Repository, readonly opts: RestoreOptions) {
    this.plat = opts.platform ?? defaultPlatform();
    this.writers = opts.platform === undefined ? new FileWriters(repo) : undefined;
    this.plan = new ContentPlan(
      repo,
      this.writers,
      (n) => {
        this.s.bytesWritten += n;
        this.progress();
      },
      opts.signal,
    );
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
    if (e === this.fatal) throw e;
    if (e instanceof Error && e.name === 'AbortError') throw this.stop(e);
    if (e === this.runaway) throw this.stop(e);
    if (e instanceof LifeboatError && (e.code === 'corrupt' || e.code === 'not-found')) {
      // Damage to the repository: this entry is lost; the others are restored (exit 3).
      this.warn(path, `${path} could not be restored: ${e.message}`);
      return;
    }
    if (e instanceof LifeboatError && e.code !== 'unsafe-path') throw this.stop(e); // the store failed (unreachable, no space, ...): stop
    const drive = driveProblem(e, path);
    if (drive) throw this.stop(drive);
    this.warn(path, `${path}: could not ${what} (${errnoCode(e) ?? (e instanceof Error ? e.message : String(e))}).`);
  }

  /** The restore stops with `e` (the first such error): the walk goes no further and the plan gives up what it holds. */
  private stop(e: unknown): unknown {
    if (this.fatal === undefined) {
      this.fatal = e;
      this.plan.abandon(e);
    }
    return this.fatal;
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
   * Resolves once the folder is walked (its files handed to the plan, its sub-folders walked).
   */
  async restoreDir(treeId: Hex, dir: Buffer, logical: string, select: Select, full: Buffer): Promise<Walked> {
    if (this.fatal !== undefined) throw this.fatal;
    this.opts.signal?.throwIfAborted();
    let entries: TreeEntry[];
    try {
      entries = await loadDir(this.repo, treeId);
    } catch (e) {
      this.fail(logical || '/', e, 'read the folder listing');
      return NOTHING;
    }
    // A crafted snapshot can name one listing at every level: bounded, not 2^40 folders.
    this.visited += entries.length;
    if (!this.listings.has(treeId)) {
      this.listings.add(treeId);
      this.distinct += entries.length;
    }
    if (runaway(this.visited, this.distinct)) throw (this.runaway = runawayError(logical || '/'));
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
    // Files and sub-folders are walked together (a few folders at once); what they write is read
    // once the plan holds the whole restore (or a segment of it) and done is awaited after that.
    const dones: Promise<void>[] = [];
    const walks: Promise<void>[] = [];
    const track = (w: Promise<void>): void => {
      w.catch(ignore); // awaited below; a rejection meanwhile is not unhandled
      walks.push(w);
    };
    track(this.restoreDirect(base, logical, direct, dones));
    for (const e of others) {
      track(
        (async () => {
          await this.fileSlots.acquire();
          try {
            dones.push((await this.startNonDir(base, fullBase, e, `${logical}/${e.name.toString('utf8')}`)).done);
          } finally {
            this.fileSlots.release();
          }
        })(),
      );
    }
    for (const p of picked) {
      if (p.e.type !== 'dir') continue;
      const run = async () => {
        dones.push((await this.restoreDirEntry(base, fullBase, p.e, `${logical}/${p.e.name.toString('utf8')}`, p.sel)).done);
      };
      if (this.dirTasks.tryAcquire()) track(run().finally(() => this.dirTasks.release()));
      else await run();
    }
    await Promise.all(walks);
    // Symlinks last, once everything else in the folder is there (only they are held till then).
    const links = picked.filter((p) => p.e.type === 'symlink').map((p) => p.e);
    return walked(
      Promise.all(dones).then(async () => {
        for (const e of links) await (await this.startNonDir(base, fullBase, e, `${logical}/${e.name.toString('utf8')}`)).done;
      }),
    );
  }

  /**
   * Whether restoreDirect may write a file: a regular file of at most one small chunk, stored in
   * full (or empty), not hard-linked, not damaged or changed while backed up (both warn), not to be
   * verified. The others go the general way (restoreNonDir).
   */
  private isDirect(e: TreeEntry): boolean {
    if (!this.writers || this.opts.verify || e.type !== 'file' || e.nlink > 1 || e.damaged || e.changed || e.holes?.length || e.contentParts) return false;
    if (e.content && e.content.length > 1) return false;
    const id = e.content?.[0];
    return id === undefined || this.smallBlob(id);
  }

  /** Whether blob `id` can be a single-chunk file's content on a worker: held in full, as data. */
  private smallBlob(id: Hex): boolean {
    const loc = this.repo.index.get(fromHex(id));
    return loc !== undefined && loc.type !== BlobType.delta && loc.type !== BlobType.tree;
  }

  /**
   * Files of a folder this run created, as isDirect picked them, straight to the plan: nothing can
   * be in the way there, so no temporary name, no lookup and no hard link to wait for. A worker
   * creates each one with its data once the plan has read it (a folder's small files usually lie
   * side by side in one pack). The main thread spends a few µs per file, not a chain of async
   * calls: a restore of 100k small files was bound by the main thread's share of the two cores
   * (bench/README.md). Adds one completion to `dones` for all of them, which fails with what stops the restore.
   */
  private async restoreDirect(dir: Buffer, logical: string, files: readonly TreeEntry[], dones: Promise<void>[]): Promise<void> {
    if (files.length === 0) return;
    const writers = this.writers!;
    // One completion for the folder's files, not a promise per file: a remote restore plans
    // 100,000 files at once.
    let left = 1; // the adding, until it is over
    let failure: unknown;
    let end!: (error: unknown) => void;
    const done = new Promise<void>((resolve, reject) => (end = (error) => (error === undefined ? resolve() : reject(error))));
    done.catch(ignore);
    dones.push(done);
    const one = (): void => {
      if (--left === 0) end(failure);
    };
    const sink: SmallFiles = {
      path: (e) => Buffer.concat([dir, SLASH, e.name]),
      owner: (e) => this.meta.owner(e),
      settled: (e, error, outcome) => {
        try {
          if (error !== undefined) throw error;
          this.written(outcome!, e, () => `${logical}/${e.name.toString('utf8')}`);
          this.s.files++;
        } catch (x) {
          // The worker may have made the file before failing (a full disk): not left half written.
          if (errnoCode(x) !== 'EEXIST') void fsp.rm(sink.path(e), { force: true }).catch(ignore);
          try {
            this.fail(`${logical}/${e.name.toString('utf8')}`, x, 'restore it');
          } catch (stop) {
            failure ??= stop; // the restore stops
          }
        }
        one();
      },
    };
    try {
      for (const e of files) {
        const id = e.content?.[0];
        if (id === undefined) {
          left++;
          writers.writeEmpty(sink.path(e), e, sink.owner(e)).then(
            (r) => sink.settled(e, undefined, r),
            (x: unknown) => sink.settled(e, x),
          );
          continue;
        }
        await this.plan.room();
        this.plan.addSmall(sink, fileAttributes(e), id);
        left++;
      }
    } finally {
      one();
    }
  }

  private async lstatOrUndefined(p: Buffer): Promise<BigIntStats | undefined> {
    try {
      return await fsp.lstat(p, { bigint: true });
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return undefined;
      throw e;
    }
  }

  /** Makes folder `e` and walks it; its metadata is set once all of it is restored (done). */
  private async restoreDirEntry(parent: Buffer, parentFull: Buffer, e: TreeEntry, shown: string, sel: Select): Promise<Walked> {
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
          return NOTHING;
        }
        await fsp.unlink(path); // a file or symlink: removed, never followed
      }
      if (!st || !st.isDirectory()) {
        // Synchronous: a thread-pool round trip cost ~45 µs of this thread's time per folder, the
        // call itself 5-30 µs (bench/README.md, session 19).
        mkdirSync(path, { mode: 0o700 }); // fails if anything appeared meanwhile
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
      const inside = await this.restoreDir(e.subtree!, access, shown, sel, full);
      // The handle is the way into a deep folder until everything in it is written.
      const h = handle;
      handle = undefined;
      return walked(
        (async () => {
          try {
            await inside.done;
          } finally {
            await h?.close();
          }
          await this.meta.apply(path, e, shown);
        })().catch((err: unknown) => this.fail(shown, err, 'restore the folder')),
      );
    } catch (err) {
      this.fail(shown, err, 'restore the folder');
      return NOTHING;
    } finally {
      await handle?.close();
    }
  }

  /**
   * Starts restoreNonDir; resolves once its walk part is over (the file handed to the plan, or
   * waiting for the first of its hard links), with the rest as `done`.
   */
  private async startNonDir(dir: Buffer, dirFull: Buffer, e: TreeEntry, shown: string): Promise<Walked> {
    let handedOver!: () => void;
    const over = new Promise<void>((resolve) => (handedOver = resolve));
    const done = this.restoreNonDir(dir, dirFull, e, shown, handedOver);
    await Promise.race([over, done.then(ignore, ignore)]);
    return walked(done);
  }

  /** Restores a file, symlink or special file; calls `handedOver` before it waits for the plan or for another file. */
  private async restoreNonDir(dir: Buffer, dirFull: Buffer, e: TreeEntry, shown: string, handedOver: () => void): Promise<void> {
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
      if (first) handedOver();
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
          await this.writeFile(t, e, shown, handedOver);
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

  /**
   * Writes file `e` at `tmp` through the plan: a single-chunk file as one job (a worker creates
   * it), a larger one chunk by chunk (chunks wholly inside a hole are not even read: a sparse disk
   * image restores in time proportional to its data), then its length and metadata here. Calls
   * `handedOver` once the plan holds it.
   */
  private async writeFile(tmp: Buffer, e: TreeEntry, shown: string, handedOver: () => void): Promise<void> {
    const ids = await fileContent(this.repo, e);
    const holes = e.holes ?? [];
    if (this.writers && ids.length <= 1 && holes.length === 0) {
      const id = ids[0];
      if (id !== undefined && this.repo.index.get(fromHex(id))?.type === BlobType.tree) throw new Error(LISTING_AS_DATA);
      if (id === undefined || this.smallBlob(id)) {
        if (id !== undefined) await this.plan.room();
        const reply = id === undefined ? this.writers.writeEmpty(tmp, e, this.meta.owner(e)) : this.plan.addOne(tmp, e, this.meta.owner(e), id);
        handedOver();
        return this.written(await reply, e, () => shown);
      }
    }
    // Every chunk's place in the file, from the index, so chunks are written in any order.
    const chunks: [Hex, number][] = [];
    let end = 0;
    let h = 0; // the first hole that does not end before the current chunk
    for (const id of ids) {
      const loc = this.repo.index.get(fromHex(id));
      if (!loc) throw this.repo.notIndexed(fromHex(id));
      if (loc.type === BlobType.tree) throw new Error(LISTING_AS_DATA);
      const start = end;
      end += loc.rawLength;
      while (h < holes.length && holes[h]! + holes[h + 1]! <= start) h += 2;
      if (h < holes.length && holes[h]! <= start && end <= holes[h]! + holes[h + 1]!) this.s.bytesWritten += end - start; // zeros, left as a hole
      else chunks.push([id, start]);
    }
    await this.plan.room();
    const written = this.plan.addChunked(tmp, holes, chunks);
    handedOver();
    const fh = (await written) ?? (await fsp.open(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600));
    try {
      if (end !== e.size) this.warn(shown, `${shown}: the stored content is ${end} bytes, but the file was ${e.size} bytes when it was saved; restored as stored.`);
      await fh.truncate(end); // extends over a trailing hole
      await this.meta.apply(tmp, e, shown, fh);
    } finally {
      await fh.close();
    }
  }

  /** Accounts for a single-chunk file a worker wrote; `shown` names it in messages. */
  private written(r: RestoreOutcome, e: { readonly size: number }, shown: () => string): void {
    if (r.status !== 'ok') throw replyError(r);
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
    // The walk first (folders made, every file's contents planned), then the reads, then metadata.
    const walk = await r.restoreDir(snapshot.root, target, '', select, target);
    await r.plan.finish();
    await walk.done;
  } catch (e) {
    r.plan.abandon(e);
    await r.plan.finish();
    throw e;
  } finally {
    r.plan.close();
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

