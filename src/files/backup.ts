/**
 * The backup pipeline: walk → compare with the parent snapshot → read → chunk → save → listings.
 *
 * Directories are walked with bounded concurrency (lstat calls in flight per folder, a few folders
 * at once), files are read two at a time, each file's chunks are compressed several at once by
 * Repository.saveBlob (which applies backpressure), and each folder's listing is written once all
 * its entries are known. Memory is bounded by the folders in progress, not by the tree's size (and
 * every few thousand files read, V8 is asked to collect what they left: util/memory.ts COLLECTION).
 * The parent snapshot's listings are loaded lazily, one folder at a time as the walk reaches it; a
 * file whose size, mtime, ctime and inode match its parent entry is not opened at all.
 * With `scanTotal`, a size walk runs beside the backup (scan.ts); progress events carry its total
 * once it has finished, never an estimate from an earlier snapshot.
 */
import { constants as C, lstatSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';
import { getSystemErrorName } from 'node:util';
import * as fsp from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { userInfo } from 'node:os';
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { chunkStream, DEFAULT_PARAMS, type ZeroRun } from '../chunking/fastcdc.js';
import { pool, Semaphore } from '../util/concurrency.js';
import { BufferPool, FileCollector } from '../util/memory.js';
import { SmallFileSaver, type SmallFileReply } from './small-files.js';
import { BlobType, Repository, type SaveResult } from '../repo/repository.js';
import { worthAWorker } from '../repo/worker-codec.js';
import { toHex, type Hex } from '../repo/ids.js';
import type { Snapshot } from '../repo/snapshot.js';
import { LifeboatError, errnoCode } from '../util/errors.js';
import { PathMatcher } from './pattern.js';
import { scanTotal, type ScanTotal } from './scan.js';
import { platform as defaultPlatform, LSTAT_FIELDS, type DirAccess, type Platform } from './platform/platform.js';
import { ListingCache, ListingDigest } from './listing-cache.js';
import { ChangedFolders, FullScanNeeded, type TreeSummary } from './changed-folders.js';
import { entryFromStat, entryType } from './metadata.js';
import { ListingWriter, loadDir, MAX_INLINE_CONTENT, TREE_VERSION, sameEntry, sameMetadata, saveContentParts, saveDir, type EntryType, type TreeEntry } from './tree.js';
import { systemClock } from '../util/clock.js';
import { rootName } from './browse.js';
import type { OwnFolder } from './own-folders.js';

export { lifeboatOwnFolders, type OwnFolder } from './own-folders.js';

/**
 * The lstat fields the walker uses (a BigIntStats, or a test double with just these), and
 * `noXattrs` where the lstat also found the entry has no extended attributes (Platform.lstatMany).
 */
export type FileMeta = Pick<
  BigIntStats,
  'mode' | 'dev' | 'ino' | 'nlink' | 'uid' | 'gid' | 'rdev' | 'size' | 'atimeNs' | 'mtimeNs' | 'ctimeNs' |
  'isFile' | 'isDirectory' | 'isSymbolicLink' | 'isFIFO' | 'isCharacterDevice' | 'isBlockDevice' | 'isSocket'
> & { readonly noXattrs?: boolean };

/** The file-system calls the walker makes; tests inject wrappers to count reads or make files vanish. */
export interface FileAccess {
  /**
   * A folder's names as latin1 strings (one character per byte: any name round-trips through
   * Buffer.from(name, 'latin1')). A Buffer per name cost ~230 bytes and readdir took 2.7x as long
   * (a folder of 500,000 names: 99 against 26 MiB of heap).
   */
  readdir(path: Buffer): Promise<string[]>;
  lstat(path: Buffer): Promise<FileMeta>;
  readlink(path: Buffer): Promise<Buffer>;
  open(path: Buffer, flags: number): Promise<fsp.FileHandle>;
}

const enum Kind {
  File,
  Dir,
  Symlink,
  Fifo,
  CharDevice,
  BlockDevice,
  Socket,
  Other,
}

/** The lstat fields CompactStat keeps (a BigIntStats has them). */
type StatFields = Pick<BigIntStats, 'mode' | 'dev' | 'ino' | 'nlink' | 'uid' | 'gid' | 'rdev' | 'size' | 'atimeNs' | 'mtimeNs' | 'ctimeNs'>;

/** The file type in a mode's S_IFMT bits (Node's BigIntStats carries them on every platform). */
function kindOf(mode: bigint): Kind {
  switch (Number(mode) & 0o170000) {
    case 0o100000:
      return Kind.File;
    case 0o040000:
      return Kind.Dir;
    case 0o120000:
      return Kind.Symlink;
    case 0o010000:
      return Kind.Fifo;
    case 0o020000:
      return Kind.CharDevice;
    case 0o060000:
      return Kind.BlockDevice;
    case 0o140000:
      return Kind.Socket;
    default:
      return Kind.Other;
  }
}

/**
 * The lstat fields the walker keeps, and nothing else. A folder's entries are held until its
 * listing is saved, and Node 20's BigIntStats carries 18 bigints and four Date objects (~1 KB):
 * a 100,000-entry folder peaked at 500 MiB, 60 MB of it BigIntStats, their bigints and Dates
 * (heap snapshot, bench/README.md session 9).
 */
export class CompactStat implements FileMeta {
  readonly mode: bigint;
  readonly dev: bigint;
  readonly ino: bigint;
  readonly nlink: bigint;
  readonly uid: bigint;
  readonly gid: bigint;
  readonly rdev: bigint;
  readonly size: bigint;
  readonly atimeNs: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
  readonly noXattrs: boolean;
  private readonly kind: Kind;
  constructor(st: StatFields, noXattrs = false) {
    this.mode = st.mode;
    this.dev = st.dev;
    this.ino = st.ino;
    this.nlink = st.nlink;
    this.uid = st.uid;
    this.gid = st.gid;
    this.rdev = st.rdev;
    this.size = st.size;
    this.atimeNs = st.atimeNs;
    this.mtimeNs = st.mtimeNs;
    this.ctimeNs = st.ctimeNs;
    this.noXattrs = noXattrs;
    this.kind = kindOf(st.mode);
  }
  /** Row `k` of Platform.lstatMany's answer. */
  static fromRow(rows: BigInt64Array, k: number): CompactStat {
    const o = k * LSTAT_FIELDS;
    return new CompactStat({
      mode: rows[o + 1]!,
      dev: rows[o + 2]!,
      ino: rows[o + 3]!,
      nlink: rows[o + 4]!,
      uid: rows[o + 5]!,
      gid: rows[o + 6]!,
      rdev: rows[o + 7]!,
      size: rows[o + 8]!,
      atimeNs: rows[o + 9]!,
      mtimeNs: rows[o + 10]!,
      ctimeNs: rows[o + 11]!,
    }, rows[o + 12] === 0n);
  }
  isFile(): boolean {
    return this.kind === Kind.File;
  }
  isDirectory(): boolean {
    return this.kind === Kind.Dir;
  }
  isSymbolicLink(): boolean {
    return this.kind === Kind.Symlink;
  }
  isFIFO(): boolean {
    return this.kind === Kind.Fifo;
  }
  isCharacterDevice(): boolean {
    return this.kind === Kind.CharDevice;
  }
  isBlockDevice(): boolean {
    return this.kind === Kind.BlockDevice;
  }
  isSocket(): boolean {
    return this.kind === Kind.Socket;
  }
}

/**
 * Metadata calls are made synchronously: a no-change backup is thousands of lstat calls, and each
 * costs a few µs directly but tens of µs as a thread-pool round trip (see bench/README.md).
 */
export const nodeFileAccess: FileAccess = {
  readdir: async (p) => readdirSync(p, { encoding: 'latin1' }),
  lstat: async (p) => new CompactStat(lstatSync(p, { bigint: true })),
  readlink: async (p) => readlinkSync(p, { encoding: 'buffer' }),
  open: (p, flags) => fsp.open(p, flags),
};

export type WarningKind = 'unreadable' | 'vanished' | 'changed' | 'skipped' | 'metadata';

export type BackupEvent =
  | {
      readonly type: 'progress';
      readonly files: number;
      readonly dirs: number;
      /** Bytes of files handled so far (read, or unchanged and skipped). */
      readonly bytesDone: number;
      readonly bytesRead: number;
      readonly bytesAdded: number;
      /** The files and bytes of the whole backup (bytesDone's total), once the size walk has finished. */
      readonly filesTotal?: number;
      readonly bytesTotal?: number;
      /** The file last started on, as shown in warnings (several are read at once: this is the newest). */
      readonly current?: string;
    }
  | { readonly type: 'warning'; readonly kind: WarningKind; readonly path: string; readonly message: string }
  /** A folder left out on purpose: Lifeboat's own data, or a cache marked with CACHEDIR.TAG. */
  | { readonly type: 'excluded'; readonly path: string; readonly reason: string };

/** The first bytes of a CACHEDIR.TAG file (https://bford.info/cachedir/). */
const CACHEDIR_SIGNATURE = Buffer.from('Signature: 8a477f597d28d172789f06886806bc55');
const CACHEDIR_TAG_NAME = 'CACHEDIR.TAG';
const CACHEDIR_TAG = Buffer.from(CACHEDIR_TAG_NAME);

export interface BackupOptions {
  readonly paths: readonly string[];
  readonly excludes?: readonly string[];
  readonly excludeLargerThan?: number;
  readonly oneFileSystem?: boolean;
  /** Folders never backed up (the repository, Lifeboat's cache and state): found by identity, so a symlinked or bind-mounted path is caught too. */
  readonly ownFolders?: readonly OwnFolder[];
  /** Leave out the contents of folders tagged with CACHEDIR.TAG (the folder and its tag are kept), as restic's and borg's --exclude-caches. */
  readonly excludeCaches?: boolean;
  readonly tags?: readonly string[];
  /** The snapshot's time (ISO-8601); now by default. */
  readonly time?: string;
  readonly host?: string;
  /** A parent snapshot id, null for none, undefined to pick the latest with the same host and paths. */
  readonly parent?: Hex | null;
  readonly signal?: AbortSignal;
  readonly onEvent?: (e: BackupEvent) => void;
  readonly fs?: FileAccess;
  readonly platform?: Platform;
  /** A folder for the listing cache (listing-cache.ts); without one every folder is compared with the parent's listing. */
  readonly cacheDir?: string;
  /** Walk the sources' sizes beside the backup, so progress events carry a real total (scan.ts). */
  readonly scanTotal?: boolean;
  /**
   * Only these folders (absolute paths, as a watcher names them) changed since `parent`, which must
   * be a snapshot id taken with the same paths and options: every other folder is carried from it
   * without a stat (changed-folders.ts). The listing cache is not asked, but kept up to date (the
   * folders looked at recorded, the carried ones carried), so the next full rescan can use it.
   * Without such a parent (none given, gone, of other paths, a listing unreadable) this is an
   * ordinary backup from the latest.
   */
  readonly changedFolders?: readonly string[];
}

/** The tree's counts (TreeSummary: files and folders new, changed, unchanged, totals, unreadable) and the work done. */
export interface BackupSummary extends TreeSummary {
  bytesRead: number;
  /** Bytes of pack files written to the repository (after compression and encryption). */
  bytesAdded: number;
  dataBlobsAdded: number;
  treeBlobsAdded: number;
  /** Uncompressed bytes of new data blocks. */
  dataBytesAdded: number;
  /** Of `unreadable`: files and folders deleted or moved while the backup ran (a folder counts once, not its contents). */
  vanished: number;
  changedWhileRead: number;
  durationSeconds: number;
}

export interface BackupResult {
  readonly snapshotId: Hex;
  readonly snapshot: Snapshot;
  readonly summary: BackupSummary;
  readonly parent?: Hex;
  /** Paths not saved (unreadable or vanished). */
  readonly incomplete: readonly string[];
  /** Paths saved but changed while they were read. */
  readonly changed: readonly string[];
  /** With changedFolders honoured: the folders looked at, and those carried from the parent without a look. */
  readonly changedOnly?: { readonly lookedAt: number; readonly carried: number };
}

/** What reading a file gives its entry: the content, and the size and holes of what was read. */
type FileData = Pick<TreeEntry, 'content' | 'contentParts' | 'holes' | 'size' | 'changed'>;

const SLASH = Buffer.from('/');
const LIST_CAP = 1000;
/** lstat/readlink calls in flight within one folder. */
const ENTRY_WINDOW = 32;
/** Entries of one folder lstat'ed by one platform call (Backup.lstatAll). */
const LSTAT_BATCH = 4096;
/**
 * Entries of a folder new to the backup examined and backed up at a time (Backup.newFolder), so a
 * huge folder costs memory for its names and one window, not for all of its entries at once.
 * Changed by tests only.
 */
export const FOLDER_WINDOW = { entries: LSTAT_BATCH };
/**
 * Folders walked at the same time (beyond the one each task is in). Real trees have few files per
 * folder (95,000 files in 13,000 folders for a copy of /usr): with 4, too few files were in flight
 * to keep the worker and the main thread busy (first backup on tmpfs 27.6 s, 16: 22.6 s, 64: 22.3 s).
 */
const DIR_TASKS = 16;
/** Large files read at the same time (restic's measured value). */
const READ_CONCURRENCY = 2;
/** Small files are latency-bound (open, fstat, read, close): more of them in flight. */
const SMALL_FILE = 256 * 1024;
const SMALL_READ_CONCURRENCY = 64;
/**
 * Chunks of one file being compressed/saved at once. Each costs a chunk and an envelope buffer:
 * 4 peaked 20 MiB higher than 2 on a folder of large incompressible files (media: 148 against
 * 128 MiB) and 17 MiB on the bench's generated files, for the same wall time (farm-bench, 4-5
 * pairs each; bench/README.md, session 18).
 */
const CHUNKS_IN_FLIGHT = 2;
const READ_SIZE = 1024 * 1024;
/**
 * Bytes of a free chunk or envelope buffer kept resident (BufferPool): chunks are ~1 MiB on
 * average, 8 MiB at most. Kept whole, each of the 20 buffers held pages for the largest chunk it
 * ever carried (media: peak 159 -> 147 MiB at 2 MiB, same CPU); at 1 MiB the pages faulted in
 * again cost 26 % more CPU.
 */
const POOL_RESIDENT = 2 * 1024 * 1024;
/** A backup of at most this many changed folders reads its files without worker threads (starting them costs more). */
const FEW_FOLDERS = 32;
/** Folders whose path is longer than this are opened and reached through a short handle path. */
const DEEP_PATH = 1024;

/** A folder's entry as the walker found it: `i` is its place in the folder's listing. */
interface Item {
  readonly name: Buffer;
  readonly path: Buffer;
  readonly logical: Buffer;
  readonly st: FileMeta;
  readonly i: number;
}

const latin1 = (b: Buffer) => b.toString('latin1');
const display = (b: Buffer) => b.toString('utf8');

/** Finds the parent: the latest files snapshot of the same host with the same set of paths. */
export async function findParent(repo: Repository, host: string, paths: readonly string[]): Promise<{ id: Hex; snapshot: Snapshot } | undefined> {
  const key = JSON.stringify([...paths].sort());
  const all = await repo.listSnapshots(() => undefined);
  for (let i = all.length - 1; i >= 0; i--) {
    const s = all[i]!;
    if (s.snapshot.kind === 'files' && s.snapshot.host === host && JSON.stringify([...s.snapshot.paths].sort()) === key) return s;
  }
  return undefined;
}

/**
 * The part of the change rule a listing alone answers: a file whose size and mtime are as in the
 * parent's listing is not read again (the backup also compares ctime and inode, which a snapshot
 * listing does not show; a dry run's estimate uses this part alone).
 */
export function sameSizeAndTime(prev: { readonly size: number; readonly mtime?: bigint | undefined }, size: number, mtimeNs: bigint): boolean {
  return prev.size === size && prev.mtime === mtimeNs;
}

function sameAsBefore(e: TreeEntry, prev: Map<string, TreeEntry>): boolean {
  const p = prev.get(latin1(e.name));
  return p !== undefined && sameEntry(e, p);
}

/**
 * Which sources are missing; every source missing is a typo or an unplugged drive, not an empty
 * backup: refuses with `what` ("Nothing was backed up").
 */
export async function missingSources(abs: readonly string[], what: string): Promise<boolean[]> {
  const missing = await Promise.all(abs.map((p) => fsp.lstat(p).then(() => false, (e: unknown) => errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR')));
  if (missing.every((m) => m)) {
    throw new LifeboatError('not-found', `${what}: ${abs.join(', ')} ${abs.length === 1 ? 'does' : 'do'} not exist. Check the ${abs.length === 1 ? 'path' : 'paths'}, or connect the drive that holds ${abs.length === 1 ? 'it' : 'them'}.`);
  }
  return missing;
}

/** "dev:ino" of each of `folders` that exists, with why it is left out. */
async function ownFolderIds(folders: readonly OwnFolder[]): Promise<Map<string, string>> {
  const own = new Map<string, string>();
  for (const f of folders) {
    const st = await fsp.stat(f.path, { bigint: true }).catch(() => undefined);
    if (st?.isDirectory()) own.set(`${st.dev}:${st.ino}`, f.reason);
  }
  return own;
}

/**
 * The sources of a backup (absolute, each once, sorted) and which of them are missing. Refuses a
 * backup that would save nothing, every source missing or Lifeboat's own data: the caller checks
 * this before it locks the repository, so such a backup writes nothing at all.
 */
export async function checkSources(paths: readonly string[], ownFolders: readonly OwnFolder[] = []): Promise<{ abs: string[]; missing: boolean[] }> {
  if (paths.length === 0) throw new LifeboatError('usage', 'Name at least one file or folder to back up.');
  const abs = [...new Set(paths.map((p) => resolve(p)))].sort();
  const missing = await missingSources(abs, 'Nothing was backed up');
  const own = await ownFolderIds(ownFolders);
  const ownSources: string[] = [];
  for (const [i, p] of abs.entries()) {
    const st = missing[i] ? undefined : await fsp.lstat(p, { bigint: true }).catch(() => undefined);
    if (st?.isDirectory() && own.has(`${st.dev}:${st.ino}`)) ownSources.push(p);
  }
  if (ownSources.length > 0 && ownSources.length + missing.filter((m) => m).length === abs.length) {
    throw new LifeboatError('not-found', `Nothing was backed up: ${ownSources.join(', ')} ${ownSources.length === 1 ? 'is' : 'are'} Lifeboat's own data, which no backup includes.`);
  }
  return { abs, missing };
}

class Backup {
  readonly fs: FileAccess;
  readonly plat: Platform;
  readonly excludes: PathMatcher;
  readonly s: BackupSummary = {
    filesNew: 0, filesChanged: 0, filesUnchanged: 0, dirsNew: 0, dirsChanged: 0, dirsUnchanged: 0, otherEntries: 0,
    totalFiles: 0, totalBytes: 0, bytesRead: 0, bytesAdded: 0, dataBlobsAdded: 0, treeBlobsAdded: 0, dataBytesAdded: 0,
    unreadable: 0, vanished: 0, changedWhileRead: 0, durationSeconds: 0,
  };
  readonly incomplete: string[] = [];
  readonly changed: string[] = [];
  private readonly dirTasks = new Semaphore(DIR_TASKS);
  private readonly reads = new Semaphore(READ_CONCURRENCY);
  private readonly smallReads = new Semaphore(SMALL_READ_CONCURRENCY);
  private readonly zeroChunks = new Map<number, Promise<Hex>>();
  /**
   * The buffers of large files' chunks (and their read buffers), which the workers send back once
   * a chunk is sealed: enough for the chunks in flight, the chunker's and the reads' own.
   */
  readonly chunkBuffers = new BufferPool(DEFAULT_PARAMS.max, READ_CONCURRENCY * (CHUNKS_IN_FLIGHT + 2), true, POOL_RESIDENT);
  /**
   * The envelopes those chunks are sealed into (a chunk's, plus the codec byte and the envelope's
   * nonce and tag). Both pools are shared memory, lent to the workers rather than moved there and
   * back: each 8 MiB buffer moved back counted as 8 MiB of new outside memory for V8, which ran
   * ~170 scavenges and ~12 full collections per backup of a developer's home folder for it
   * (bench/README.md, session 15).
   */
  readonly envelopeBuffers = new BufferPool(DEFAULT_PARAMS.max + 64, READ_CONCURRENCY * CHUNKS_IN_FLIGHT, true, POOL_RESIDENT);
  private readonly hardlinks = new Map<string, Promise<FileData | undefined>>();
  private bytesDone = 0;
  /** Collects the main thread's old garbage every so many files read (util/memory.ts COLLECTION). */
  private readonly collector = new FileCollector();
  /** Paths with a warning, and the folders above them: these are never entered in the listing cache. */
  private readonly dirty = new Set<string>();
  /** Set by backup() when the options name a cache folder. */
  cache: ListingCache | undefined;
  /** Set by backup() for a backup of the changed folders only. */
  only: ChangedFolders | undefined;
  /** "dev:ino" of each own folder that exists, with why it is left out. */
  readonly own = new Map<string, string>();
  private lastProgress = 0;
  /** The file last started on, for progress. */
  private current: string | undefined;
  readonly bytesBefore: number;
  /** The size walk's result, once it has finished. */
  scanned: ScanTotal | undefined;

  /** Worker threads for small files; only with the real filesystem (tests inject their own). */
  readonly saver: SmallFileSaver | undefined;

  constructor(readonly repo: Repository, readonly opts: BackupOptions) {
    this.fs = opts.fs ?? nodeFileAccess;
    // Not for a few changed folders: starting the threads would cost more than the files.
    const few = opts.changedFolders !== undefined && opts.changedFolders.length <= FEW_FOLDERS && typeof opts.parent === 'string';
    this.saver = opts.fs === undefined && !few ? new SmallFileSaver(repo) : undefined;
    this.plat = opts.platform ?? defaultPlatform();
    this.excludes = new PathMatcher(opts.excludes ?? []);
    this.bytesBefore = repo.bytesWritten;
  }

  warn(kind: WarningKind, path: string, message: string): void {
    if (kind === 'vanished' && this.insideVanished(path) !== undefined) return; // its folder was reported
    // The path and every folder above it (paths as shown, '/'-separated) had a warning.
    for (let p = path; !this.dirty.has(p); ) {
      this.dirty.add(p);
      const k = p.lastIndexOf('/');
      if (k <= 0) break;
      p = p.slice(0, k);
    }
    if (kind === 'unreadable' || kind === 'vanished') {
      this.s.unreadable++;
      if (kind === 'vanished') this.s.vanished++;
      if (this.incomplete.length < LIST_CAP) this.incomplete.push(path);
    } else if (kind === 'changed') {
      this.s.changedWhileRead++;
      if (this.changed.length < LIST_CAP) this.changed.push(path);
    }
    this.opts.onEvent?.({ type: 'warning', kind, path, message });
  }

  /** Emits a progress event (at most every 100 ms unless forced); `end` is the last one, complete by definition. */
  progress(force = false, end = false): void {
    if (!this.opts.onEvent) return;
    const now = performance.now();
    if (!force && now - this.lastProgress < 100) return;
    this.lastProgress = now;
    // A total only while it is one: a file that grew beyond its walked size leaves none, until the end.
    const total = end ? { filesTotal: this.s.totalFiles, bytesTotal: this.bytesDone } : this.scanned && this.bytesDone <= this.scanned.bytes ? { filesTotal: this.scanned.files, bytesTotal: this.scanned.bytes } : {};
    this.opts.onEvent({
      type: 'progress',
      files: this.s.totalFiles,
      dirs: this.s.dirsNew + this.s.dirsChanged + this.s.dirsUnchanged,
      bytesDone: this.bytesDone,
      bytesRead: this.s.bytesRead,
      bytesAdded: this.repo.bytesWritten - this.bytesBefore,
      ...total,
      ...(this.current !== undefined && !end ? { current: this.current } : {}),
    });
  }

  /** Folders found deleted or moved during the backup: one warning each, none for what was inside. */
  private readonly vanishedDirs = new Set<string>();

  private insideVanished(path: string): string | undefined {
    for (let p = dirname(path); this.vanishedDirs.size > 0; p = dirname(p)) {
      if (this.vanishedDirs.has(p)) return p;
      if (dirname(p) === p) break;
    }
    return undefined;
  }

  /**
   * The outermost folder above `path` (shown as `shown`) that no longer exists (deleted or moved
   * meanwhile), if any, as shown. The folders are looked up by their bytes: a shown path is UTF-8
   * decoded, so a name that is not UTF-8 would look gone. Both lose one name per step (names hold
   * no '/'); the bytes of a deep folder's path start at a descriptor, which always exists.
   */
  private goneFolder(path: Buffer, shown: string): string | undefined {
    const exists = (p: Buffer) => {
      try {
        return lstatSync(p).isDirectory();
      } catch (e) {
        return errnoCode(e) !== 'ENOENT' && errnoCode(e) !== 'ENOTDIR';
      }
    };
    let gone: string | undefined;
    for (let p = path, s = shown; ; ) {
      const k = p.lastIndexOf(0x2f);
      const j = s.lastIndexOf('/');
      if (k <= 0 || j <= 0) break;
      p = p.subarray(0, k);
      s = s.slice(0, j);
      if (exists(p)) break;
      gone = s;
    }
    return gone;
  }

  private fsProblem(e: unknown, physical: Buffer, path: string, what: string): void {
    const code = errnoCode(e);
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      if (this.insideVanished(path) !== undefined) return;
      const gone = this.goneFolder(physical, path);
      if (gone !== undefined) {
        this.warn('vanished', gone, `${gone} was deleted or moved during the backup; what was read of it before that is saved.`);
        this.vanishedDirs.add(gone);
        return;
      }
      this.warn('vanished', path, `${path} vanished during the backup and was not saved.`);
    }
    else this.warn('unreadable', path, `${path} could not be ${what} (${code ?? (e instanceof Error ? e.message : String(e))}) and was not saved.`);
  }

  /** The metadata every entry has. `prev` supplies xattrs when the inode's ctime is unchanged. */
  meta(path: Buffer, logical: Buffer, name: Buffer, type: EntryType, st: FileMeta, prev: TreeEntry | undefined): TreeEntry {
    const e = entryFromStat(name, type, st);
    const user = this.plat.userName(e.uid);
    if (user !== undefined) e.user = user;
    const group = this.plat.groupName(e.gid);
    if (group !== undefined) e.group = group;
    const same = prev !== undefined && prev.type === type && prev.inode === st.ino && prev.ctime === st.ctimeNs && prev.mtime === st.mtimeNs;
    // Listing a folder or reading a symlink moves its atime (relatime), and Node cannot do either
    // with O_NOATIME: keep the atime of the first backup that saw this version of it, so that an
    // unchanged folder keeps an unchanged listing. (Files are read with O_NOATIME.)
    if (same && (type === 'dir' || type === 'symlink')) e.atime = prev.atime;
    if (same) {
      if (prev.xattrs) e.xattrs = prev.xattrs;
    } else if (!st.noXattrs) {
      try {
        const x = this.plat.listXattrs(path);
        if (x.length > 0) e.xattrs = x;
      } catch (err) {
        // Gone since its lstat: what reads it next reports that, once.
        const code = errnoCode(err);
        if (code !== 'ENOENT' && code !== 'ENOTDIR') this.warn('metadata', display(logical), `The extended attributes of ${display(logical)} could not be read (${code ?? String(err)}).`);
      }
    }
    return e;
  }

  /** Handles one path (already lstat'ed): returns its entry, or undefined when it is not saved. */
  async entry(path: Buffer, logical: Buffer, name: Buffer, st: FileMeta, prev: TreeEntry | undefined, rootDev: bigint): Promise<TreeEntry | undefined> {
    this.opts.signal?.throwIfAborted();
    const shown = display(logical);
    const type = entryType(st);
    if (type === undefined || type === 'socket') {
      this.warn('skipped', shown, `${shown} is a ${type ?? 'special file'} and was skipped (sockets cannot be backed up).`);
      return undefined;
    }
    if (type === 'file' && this.opts.excludeLargerThan !== undefined && Number(st.size) > this.opts.excludeLargerThan) return undefined;
    const e = this.meta(path, logical, name, type, st, prev);
    switch (type) {
      case 'dir':
        return this.dirEntry(path, logical, e, st, prev, rootDev);
      case 'symlink':
        try {
          e.target = await this.fs.readlink(path);
        } catch (err) {
          this.fsProblem(err, path, shown, 'read');
          return undefined;
        }
        this.s.otherEntries++;
        return e;
      case 'fifo':
        this.s.otherEntries++;
        return e;
      case 'chardev':
      case 'blockdev':
        e.rdev = st.rdev;
        this.s.otherEntries++;
        return e;
      case 'file':
        return this.fileEntry(path, shown, e, st, prev);
    }
  }

  async fileEntry(path: Buffer, shown: string, e: TreeEntry, st: FileMeta, prev: TreeEntry | undefined): Promise<TreeEntry | undefined> {
    this.s.totalFiles++;
    this.s.totalBytes += e.size;
    this.current = shown;
    if (prev && prev.type === 'file' && !prev.changed && sameSizeAndTime(prev, e.size, st.mtimeNs) && prev.ctime === st.ctimeNs && prev.inode === st.ino && (prev.content || prev.contentParts)) {
      if (prev.content) e.content = prev.content;
      if (prev.contentParts) e.contentParts = prev.contentParts;
      if (prev.holes) e.holes = prev.holes;
      if (prev.changed) e.changed = prev.changed;
      this.s.filesUnchanged++;
      this.bytesDone += e.size;
      this.progress();
      return e;
    }
    let data: FileData | undefined;
    const linkKey = e.nlink > 1 ? `${st.dev}:${st.ino}` : undefined;
    const first = linkKey !== undefined ? this.hardlinks.get(linkKey) : undefined;
    if (first) data = await first;
    else {
      const p = this.saver && st.size < BigInt(DEFAULT_PARAMS.min) && path.length < DEEP_PATH ? this.readSmall(path, shown, st) : this.readFile(path, shown, st);
      if (linkKey !== undefined) this.hardlinks.set(linkKey, p);
      data = await p;
    }
    if (!data) return undefined;
    Object.assign(e, data);
    if (prev && prev.type === 'file') this.s.filesChanged++;
    else this.s.filesNew++;
    this.collector.done();
    this.progress();
    return e;
  }

  /** A small file, read, hashed and sealed by a worker thread; the general path if it is not plain. */
  async readSmall(path: Buffer, shown: string, st: FileMeta): Promise<FileData | undefined> {
    await this.smallReads.acquire();
    let r: SmallFileReply;
    try {
      r = await this.saver!.save({ path: path.toString('latin1'), ino: st.ino.toString(), size: st.size.toString(), mtimeNs: st.mtimeNs.toString(), type: BlobType.data, limit: DEFAULT_PARAMS.min });
    } finally {
      this.smallReads.release();
    }
    switch (r.status) {
      case 'fallback':
        return this.readFile(path, shown, st);
      case 'replaced':
        this.warn('vanished', shown, `${shown} was replaced during the backup and was not saved.`);
        return undefined;
      case 'open-failed':
        this.fsProblem(Object.assign(new Error(r.code), { code: r.code }), path, shown, 'opened');
        return undefined;
      case 'read-failed':
        this.fsProblem(Object.assign(new Error(r.code), { code: r.code }), path, shown, 'read');
        return undefined;
      case 'ok': {
        this.s.bytesRead += r.bytesRead;
        this.bytesDone += r.bytesRead;
        const marks = r.changed ? this.changedWhileRead(shown) : {};
        if (!r.id || !r.env || r.rawLength === undefined) return { content: [], size: 0, ...marks };
        let saved: SaveResult;
        try {
          saved = await this.repo.saveSealedBlob(BlobType.data, r.id, r.env, r.rawLength);
        } finally {
          this.saver!.done(r); // the envelope is in the pack (or was not needed): its ring space is free
        }
        if (saved.added) {
          this.s.dataBlobsAdded++;
          this.s.dataBytesAdded += r.rawLength;
        }
        return { content: [toHex(saved.id)], size: r.bytesRead, ...marks };
      }
    }
  }

  async readFile(path: Buffer, shown: string, st: FileMeta): Promise<FileData | undefined> {
    const sem = Number(st.size) < SMALL_FILE ? this.smallReads : this.reads;
    await sem.acquire();
    let fh: fsp.FileHandle | undefined;
    try {
      try {
        try {
          fh = await this.fs.open(path, C.O_RDONLY | C.O_NOFOLLOW | (C.O_NOATIME ?? 0));
        } catch (err) {
          if (errnoCode(err) !== 'EPERM') throw err;
          fh = await this.fs.open(path, C.O_RDONLY | C.O_NOFOLLOW); // O_NOATIME needs ownership
        }
      } catch (err) {
        this.fsProblem(err, path, shown, 'opened');
        return undefined;
      }
      const before = await fh.stat({ bigint: true });
      if (before.ino !== st.ino || !before.isFile()) {
        this.warn('vanished', shown, `${shown} was replaced during the backup and was not saved.`);
        return undefined;
      }
      const size = Number(before.size);
      const out: FileData = { size: 0 };
      let holes: readonly number[] = [];
      if (Number(before.blocks) * 512 < size) holes = this.plat.holes(fh.fd, size) ?? [];
      let readError: unknown;
      const handle = fh;
      const signal = this.opts.signal;
      // Pooled only where the workers send chunk buffers back (saveBlob).
      const buffers = this.saver ? this.chunkBuffers : undefined;
      /** Bytes of the file covered so far: read, or known to be a hole. */
      let covered = 0;
      const onRead = (n: number) => {
        covered += n;
        this.s.bytesRead += n;
        this.bytesDone += n;
      };
      const onHole = (n: number) => {
        covered += n;
        this.bytesDone += n;
      };
      async function* source(): AsyncGenerator<Uint8Array | ZeroRun> {
        // One buffer for the whole file: chunkStream copies what it keeps before asking for more.
        // Holes are not read (SEEK_HOLE found them): they are given to the chunker as zeros.
        const buf = buffers ? buffers.take(READ_SIZE) : Buffer.allocUnsafeSlow(READ_SIZE);
        try {
          let k = 0; // the next hole
          for (let pos = 0; ; ) {
            signal?.throwIfAborted();
            if (k < holes.length && pos >= holes[k]!) {
              const end = holes[k]! + holes[k + 1]!;
              k += 2;
              if (end > pos) {
                onHole(end - pos);
                yield { zeros: end - pos };
                pos = end;
              }
              continue;
            }
            let n: number;
            try {
              n = (await handle.read(buf, 0, k < holes.length ? Math.min(READ_SIZE, holes[k]! - pos) : READ_SIZE, pos)).bytesRead;
            } catch (err) {
              readError = err;
              return;
            }
            if (n === 0) break; // the end of the file (it may have grown or shrunk since the stat)
            onRead(n);
            pos += n;
            yield n === READ_SIZE ? buf : buf.subarray(0, n);
          }
        } finally {
          buffers?.give(buf); // the chunker has copied what it keeps
        }
      }
      const ids: Promise<Hex>[] = [];
      const inFlight: Promise<Hex>[] = [];
      // A file smaller than the minimum chunk is always exactly one chunk: read it in one go into
      // a buffer of its size (no 1 MiB read buffer, no chunker copies per small file).
      const chunks = size > 0 && size < DEFAULT_PARAMS.min ? readWhole(handle, size, onRead, (err) => (readError = err)) : chunkStream(source(), {}, buffers);
      for await (const chunk of chunks) {
        // A whole chunk of a hole: the same zero chunk every time, sealed once per backup.
        const p = chunk instanceof Uint8Array ? this.saveData(chunk) : this.zeroChunk(chunk.zeros);
        p.catch(() => undefined);
        ids.push(p);
        inFlight.push(p);
        if (inFlight.length >= CHUNKS_IN_FLIGHT) await inFlight.shift();
        this.progress();
      }
      const content = await Promise.all(ids);
      if (readError !== undefined) {
        this.fsProblem(readError, path, shown, 'read');
        return undefined;
      }
      // The entry describes what was read: a file that grew or shrank meanwhile keeps the size
      // read (so it restores cleanly) and is marked as changed.
      out.size = covered;
      const kept = clipHoles(holes, covered);
      if (kept.length > 0) out.holes = kept;
      const after = await fh.stat({ bigint: true });
      if (after.size !== st.size || after.mtimeNs !== st.mtimeNs || covered !== Number(st.size)) Object.assign(out, this.changedWhileRead(shown));
      if (content.length > MAX_INLINE_CONTENT) out.contentParts = await saveContentParts(this, content);
      else out.content = content;
      return out;
    } finally {
      await fh?.close().catch(() => undefined);
      sem.release();
    }
  }

  /** A CACHEDIR.TAG counts only when it is a regular file that starts with the signature. */
  private async isCacheTag(tag: Buffer): Promise<boolean> {
    try {
      // O_NONBLOCK: a FIFO named CACHEDIR.TAG must not block the backup until something writes to it.
      const fh = await this.fs.open(tag, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
      try {
        if (!(await fh.stat()).isFile()) return false;
        const head = Buffer.alloc(CACHEDIR_SIGNATURE.length);
        const { bytesRead } = await fh.read(head, 0, head.length, 0);
        return bytesRead === head.length && head.equals(CACHEDIR_SIGNATURE);
      } finally {
        await fh.close();
      }
    } catch {
      return false;
    }
  }

  /**
   * Stores a blob unless the repository has it (Backup is the TreeSink of saveDir). One worth a
   * worker thread is sealed on the small-file workers (SmallFileSaver.seal, which takes `data`)
   * and handed to the repository sealed; smaller ones, and all of them without workers, are
   * sealed inline by Repository.saveBlob.
   */
  async saveBlob(type: BlobType, data: Uint8Array): Promise<SaveResult> {
    const pooled = this.saver !== undefined && this.chunkBuffers.owns(data);
    if (!this.saver || !worthAWorker(data.length)) {
      const r = await this.repo.saveBlob(type, data); // sealed on this thread: done with data
      if (pooled) this.chunkBuffers.give(data);
      return r;
    }
    const id = this.repo.blobId(data);
    if (this.repo.hasBlob(id)) {
      if (pooled) this.chunkBuffers.give(data);
      return { id, added: false };
    }
    const rawLength = data.length; // read now: seal() takes data
    const into = pooled ? this.envelopeBuffers.take(this.envelopeBuffers.capacity) : undefined;
    const sealed = await this.saver.seal(type, id, data, pooled, into);
    if (sealed.data) this.chunkBuffers.give(sealed.data);
    try {
      // The repository copies the envelope into its pack (and frees only buffers it owns whole).
      return await this.repo.saveSealedBlob(type, id, sealed.env, rawLength);
    } finally {
      this.envelopeBuffers.give(sealed.env);
    }
  }

  /** Saves one chunk of file data, counting it when it is new. */
  private saveData(chunk: Uint8Array): Promise<Hex> {
    const length = chunk.length; // saveBlob may hand the chunk's buffer to a worker
    return this.saveBlob(BlobType.data, chunk).then((r) => {
      if (r.added) {
        this.s.dataBlobsAdded++;
        this.s.dataBytesAdded += length;
      }
      return toHex(r.id);
    });
  }

  /** The id of a chunk of `length` zeros, saved once per backup. */
  private zeroChunk(length: number): Promise<Hex> {
    let p = this.zeroChunks.get(length);
    if (!p) {
      p = this.saveData(new Uint8Array(length));
      this.zeroChunks.set(length, p);
    }
    return p;
  }

  /** Warns that a file changed while it was read; returns the mark its entry keeps. */
  private changedWhileRead(shown: string): { changed: true } {
    this.warn('changed', shown, `${shown} changed while it was read; the saved copy may be inconsistent. Back it up again when it is not in use.`);
    return { changed: true };
  }

  async dirEntry(path: Buffer, logical: Buffer, e: TreeEntry, st: FileMeta, prev: TreeEntry | undefined, rootDev: bigint): Promise<TreeEntry> {
    const before = prev?.type === 'dir' ? prev : undefined;
    const carried = this.only?.carried(logical, st, before);
    if (carried !== undefined) this.cache?.carry(carried);
    e.subtree = carried ?? (await this.subtreeOf(path, logical, st, before?.subtree, rootDev));
    // Counted as `lifeboat diff` shows it: changed when its own metadata changed, not when
    // only something inside it did (that is counted where it is).
    if (before === undefined) this.s.dirsNew++;
    else if (sameMetadata(before, e)) this.s.dirsUnchanged++;
    else this.s.dirsChanged++;
    return e;
  }

  /** A folder's listing id: walked, or kept when unchanged. */
  private async subtreeOf(path: Buffer, logical: Buffer, st: FileMeta, prevSub: Hex | undefined, rootDev: bigint): Promise<Hex> {
    return this.opts.oneFileSystem && st.dev !== rootDev
      ? await this.saveListing([]) // a mount point: kept, empty, as restic does
      : await this.dir(path, logical, prevSub, rootDev);
  }

  async saveListing(entries: readonly TreeEntry[]): Promise<Hex> {
    return saveDir(this, entries, this.onTreeBlob);
  }

  private readonly onTreeBlob = (_bytes: number, added: boolean): void => {
    if (added) this.s.treeBlobsAdded++;
  };

  async loadPrev(id: Hex | undefined, shown: string): Promise<Map<string, TreeEntry> | undefined> {
    if (id === undefined) return undefined;
    try {
      const m = new Map<string, TreeEntry>();
      for (const e of await loadDir(this.repo, id)) m.set(latin1(e.name), e);
      return m;
    } catch (err) {
      // A damaged parent only costs speed: this folder is read in full.
      this.warn('metadata', shown, `The previous backup's listing of ${shown} could not be read (${err instanceof Error ? err.message : String(err)}); reading the folder in full.`);
      return undefined;
    }
  }

  /** Walks one folder and stores its listing. */
  async dir(path: Buffer, logical: Buffer, prevSubtree: Hex | undefined, rootDev: bigint): Promise<Hex> {
    this.opts.signal?.throwIfAborted();
    const shown = display(logical);
    let handle: DirAccess | undefined;
    let names: string[];
    try {
      // Deep folders are reached through a short handle path, so paths longer than PATH_MAX work.
      if (path.length > DEEP_PATH) {
        handle = await this.plat.dirAccess(path);
        path = handle.base;
      }
      names = await this.fs.readdir(path);
      if (this.opts.excludeCaches && names.includes(CACHEDIR_TAG_NAME) && (await this.isCacheTag(Buffer.concat([path, SLASH, CACHEDIR_TAG])))) {
        this.opts.onEvent?.({ type: 'excluded', path: shown, reason: 'it is a cache (it holds a CACHEDIR.TAG file); only the tag is kept' });
        names = [CACHEDIR_TAG_NAME];
      }
    } catch (err) {
      this.fsProblem(err, path, shown, 'listed');
      names = [];
    }
    try {
      return await this.dirEntries(path, logical, names, prevSubtree, rootDev, shown);
    } finally {
      await handle?.close();
    }
  }

  /**
   * The lstat of each entry of the folder `base`, or the error that stopped it: with the walker's
   * own file access, one platform call per LSTAT_BATCH entries (Platform.lstatMany; its answer is
   * 104 bytes per entry, so a folder of 500,000 entries is asked in parts), else one lstat per path.
   */
  private async lstatAll(base: Buffer, entries: readonly { name: Buffer; path: Buffer }[], probeXattrs: boolean): Promise<({ st: FileMeta } | { err: unknown })[]> {
    const out: ({ st: FileMeta } | { err: unknown })[] = new Array(entries.length);
    for (let from = 0; from < entries.length; from += LSTAT_BATCH) {
      const part = entries.slice(from, from + LSTAT_BATCH);
      const rows = this.fs === nodeFileAccess ? this.plat.lstatMany(base, part.map((x) => x.name), probeXattrs) : undefined;
      await pool(part.length, ENTRY_WINDOW, async (i) => {
        const errno = rows?.[i * LSTAT_FIELDS];
        try {
          if (errno === 0n) out[from + i] = { st: CompactStat.fromRow(rows!, i) };
          else if (errno === undefined || errno === -1n) out[from + i] = { st: await this.fs.lstat(part[i]!.path) };
          else {
            const code = getSystemErrorName(-Number(errno));
            out[from + i] = { err: Object.assign(new Error(code), { code }) };
          }
        } catch (err) {
          out[from + i] = { err };
        }
      });
    }
    return out;
  }

  private async dirEntries(path: Buffer, logical: Buffer, names: string[], prevSubtree: Hex | undefined, rootDev: bigint, shown: string): Promise<Hex> {
    names.sort(); // latin1: by UTF-16 code units, which are the bytes
    const base = path.length > 0 && path[path.length - 1] === 0x2f ? path : Buffer.concat([path, SLASH]);
    const logicalBase = logical.length > 0 && logical[logical.length - 1] === 0x2f ? logical : Buffer.concat([logical, SLASH]);
    if (prevSubtree === undefined && !this.only) return this.newFolder(base, logicalBase, names, rootDev, shown);
    const items = await this.itemsOf(base, logicalBase, names, prevSubtree === undefined);
    const digest = this.cache ? new ListingDigest().add(items).digest(this.ownerNames) : undefined;
    // A changed-folders backup looks at its folders in full (its parent's listing is what it counts against) and records them.
    const cached = prevSubtree !== undefined && !this.only ? this.cache?.get(prevSubtree) : undefined;
    const subtrees = new Map<string, Hex>();

    let prev: Map<string, TreeEntry> | undefined;
    let entries: (TreeEntry | undefined)[];
    if (cached && cached.digest === digest && !this.dirty.has(shown)) {
      // Nothing here changed since the parent's backup: only sub-folders can still differ.
      const dirs = items.filter((x) => x.st.isDirectory());
      await this.eachDir(dirs, async (d) => {
        const prevSub = cached.children.get(latin1(d.name));
        subtrees.set(latin1(d.name), await this.subtreeOf(d.path, d.logical, d.st, prevSub, rootDev));
        // Its own metadata is as cached (the digest covers it): unchanged unless it is new.
        if (prevSub === undefined) this.s.dirsNew++;
        else this.s.dirsUnchanged++;
      });
      if (dirs.every((d) => subtrees.get(latin1(d.name)) === cached.children.get(latin1(d.name)))) {
        for (const { st } of items) this.countUnchanged(st);
        this.cache!.record(prevSubtree!, digest, subtrees);
        this.progress();
        return prevSubtree!;
      }
      prev = await this.loadPrev(prevSubtree, shown);
      entries = await Promise.all(
        items.map(async (x) => {
          const before = prev?.get(latin1(x.name));
          if (!x.st.isDirectory()) return this.entry(x.path, x.logical, x.name, x.st, before, rootDev);
          const e = this.meta(x.path, x.logical, x.name, 'dir', x.st, before);
          e.subtree = subtrees.get(latin1(x.name))!;
          return e;
        }),
      );
    } else {
      prev = await this.loadPrev(prevSubtree, shown);
      this.only?.lookAt(logical, shown, prevSubtree, prev);
      entries = await this.entriesOf(items, prev, rootDev, subtrees);
    }
    const kept = entries.filter((e): e is TreeEntry => e !== undefined);
    await this.only?.gone(prev, (name) => Buffer.concat([logicalBase, name]));
    // Nothing in the folder changed: its previous listing is this listing (no encoding, no hashing).
    const id =
      prevSubtree !== undefined && prev !== undefined && prev.size === kept.length && kept.every((e) => sameAsBefore(e, prev))
        ? prevSubtree
        : await this.saveListing(kept);
    if (digest !== undefined && !this.dirty.has(shown)) this.cache!.record(id, digest, subtrees);
    return id;
  }

  /**
   * A folder the parent snapshot does not have (all of a first backup), walked FOLDER_WINDOW
   * entries at a time: each window's entries go into the listing (ListingWriter) before the next
   * window is examined, so what the walk holds for a huge folder is its names and one window, not
   * a stat, paths and an entry for each of its entries. Its digest for the listing cache is made
   * the same way, window by window.
   */
  private async newFolder(base: Buffer, logicalBase: Buffer, names: readonly string[], rootDev: bigint, shown: string): Promise<Hex> {
    const digest = this.cache ? new ListingDigest() : undefined;
    const listing = new ListingWriter(this, this.onTreeBlob);
    const subtrees = new Map<string, Hex>();
    const window = FOLDER_WINDOW.entries;
    for (let from = 0; from < names.length; from += window) {
      const items = await this.itemsOf(base, logicalBase, names.slice(from, from + window), true);
      digest?.add(items);
      for (const e of await this.entriesOf(items, undefined, rootDev, subtrees)) {
        const saving = e && listing.add(e);
        if (saving) await saving;
      }
    }
    const id = await listing.finish();
    if (digest !== undefined && !this.dirty.has(shown)) this.cache!.record(id, digest.digest(this.ownerNames), subtrees);
    return id;
  }

  /**
   * Entries `names` of the folder `base` as the walker will back them up: lstat'ed (excluded ones
   * left out, and those that could not be examined reported), in name order. `probeXattrs`: the
   * lstat also finds which entries have no extended attributes (meta() then skips asking), for a
   * folder new to this backup; elsewhere unchanged entries take them from the previous listing.
   */
  private async itemsOf(base: Buffer, logicalBase: Buffer, names: readonly string[], probeXattrs: boolean): Promise<Item[]> {
    // Memory: a folder holds its entries until its sub-folders are done, so what it keeps per entry
    // is kept for every folder in progress (~19,000 entries at the peak of a /usr backup). One item
    // per entry, of one shape (spread copies gave each entry a hidden class of its own), and the
    // steps' arrays only in this scope's registers: captured by a closure, they lived as long as it.
    const named: { name: Buffer; path: Buffer; logical: Buffer }[] = [];
    for (const latin1Name of names) {
      const name = Buffer.from(latin1Name, 'latin1');
      const childLogical = Buffer.concat([logicalBase, name]);
      if (!this.excludes.empty && this.excludes.matches(display(childLogical))) continue;
      named.push({ name, path: Buffer.concat([base, name]), logical: childLogical });
    }
    const stats = await this.lstatAll(base, named, probeXattrs);
    const items: Item[] = [];
    for (let k = 0; k < named.length; k++) {
      const x = named[k]!;
      const r = stats[k]!;
      if (!('st' in r)) {
        this.fsProblem(r.err, x.path, display(x.logical), 'examined');
        continue;
      }
      const st = r.st;
      if (st.isFile() && this.opts.excludeLargerThan !== undefined && Number(st.size) > this.opts.excludeLargerThan) continue;
      const own = st.isDirectory() && this.own.size > 0 ? this.own.get(`${st.dev}:${st.ino}`) : undefined;
      if (own !== undefined) {
        this.opts.onEvent?.({ type: 'excluded', path: display(x.logical), reason: own });
        continue;
      }
      items.push({ name: x.name, path: x.path, logical: x.logical, st, i: items.length });
    }
    return items;
  }

  /**
   * The entries of `items` (undefined for one that is not backed up), files a few at once and then
   * sub-folders (DIR_TASKS), their listing ids recorded in `subtrees`. `items` is emptied: a file's
   * item goes once its entry is made, and only entries are needed while sub-folders are walked (a
   * suspended async function keeps what its variables hold).
   */
  private async entriesOf(items: Item[], prev: Map<string, TreeEntry> | undefined, rootDev: bigint, subtrees: Map<string, Hex>): Promise<(TreeEntry | undefined)[]> {
    const entries = new Array<TreeEntry | undefined>(items.length);
    const dirs = items.filter((x) => x.st.isDirectory());
    const others: (Item | undefined)[] = items.filter((x) => !x.st.isDirectory());
    items.length = 0;
    await pool(others.length, ENTRY_WINDOW, async (k) => {
      const x = others[k]!;
      others[k] = undefined;
      entries[x.i] = await this.entry(x.path, x.logical, x.name, x.st, prev?.get(latin1(x.name)), rootDev);
    });
    await this.eachDir(dirs, async (d) => {
      const e = await this.entry(d.path, d.logical, d.name, d.st, prev?.get(latin1(d.name)), rootDev);
      entries[d.i] = e;
      if (e?.subtree !== undefined) subtrees.set(latin1(d.name), e.subtree);
    });
    return entries;
  }

  /** The user and group names a listing stores for a uid and gid, as the listing cache's digest covers them. */
  private readonly ownerNames = (uid: number, gid: number): string => JSON.stringify([this.plat.userName(uid) ?? null, this.plat.groupName(gid) ?? null]);

  /** Runs `fn` for each sub-folder, a few at once (DIR_TASKS beyond this one). */
  private async eachDir<T>(dirs: readonly T[], fn: (d: T) => Promise<void>): Promise<void> {
    const tasks: Promise<void>[] = [];
    for (const d of dirs) {
      if (this.dirTasks.tryAcquire()) {
        const t = fn(d).finally(() => this.dirTasks.release());
        t.catch(() => undefined);
        tasks.push(t);
      } else await fn(d);
    }
    await Promise.all(tasks);
  }

  /** What a kept entry adds to the summary (as entry() counts an unchanged one). */
  private countUnchanged(st: FileMeta): void {
    if (st.isDirectory()) return; // counted where its listing is made
    if (st.isFile()) {
      const size = Number(st.size);
      this.s.totalFiles++;
      this.s.totalBytes += size;
      this.s.filesUnchanged++;
      this.bytesDone += size;
    } else this.s.otherEntries++;
  }
}

/**
 * Backs up `paths` into a new snapshot. Per-file problems become warnings and the snapshot's
 * `incomplete` list; repository errors and aborts reject (nothing is written for the snapshot).
 * The caller holds the repository lock.
 */
/**
 * V8's old generation may grow to twice its live size between full collections while a backup
 * runs (V8's own factor, up to 4x, is restored afterwards). Full collections used to come for the
 * outside memory of buffers moved between threads (~40-60 per backup of a real tree); with those
 * buffers shared, V8 ran ~5 and the main thread's heap grew to 150 MiB of mostly garbage on a copy
 * of /usr; at 100% it runs ~14 and stays near 100 (bench/README.md, session 15).
 */
const HEAP_GROWING_PERCENT = 100;

export async function backup(repo: Repository, opts: BackupOptions): Promise<BackupResult> {
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  try {
    return await backupOnce(repo, opts);
  } catch (e) {
    if (!(e instanceof FullScanNeeded)) throw e;
    const { changedFolders: _, parent: __, ...full } = opts;
    return await backupOnce(repo, full);
  } finally {
    setFlagsFromString('--heap-growing-percent=0'); // 0: V8's own growth
  }
}

async function backupOnce(repo: Repository, opts: BackupOptions): Promise<BackupResult> {
  const started = performance.now();
  const { abs } = await checkSources(opts.paths, opts.ownFolders);
  const names = new Map<string, string>();
  for (const p of abs) {
    const n = rootName(p);
    const other = names.get(n);
    if (other !== undefined) throw new LifeboatError('usage', `${other} and ${p} would both be called "${n}" in the snapshot; back them up in separate snapshots.`);
    names.set(n, p);
  }
  let time = new Date(systemClock.now()).toISOString();
  if (opts.time !== undefined) {
    const d = new Date(opts.time);
    if (Number.isNaN(d.getTime())) throw new LifeboatError('usage', `"${opts.time}" is not a date and time; use ISO-8601 such as 2026-11-25T10:00:00Z.`);
    time = d.toISOString();
  }
  const host = opts.host ?? Repository.hostname();
  await repo.ensureIndexLoaded(); // loaded already when backupFiles indexed an interrupted run's packs
  const parent =
    opts.parent === null
      ? undefined
      : opts.parent !== undefined
        ? await repo.findSnapshot(opts.parent).catch((e: unknown) => {
            // A parent to carry folders from that is gone (thinned or forgotten meanwhile): an ordinary backup.
            throw opts.changedFolders ? new FullScanNeeded() : e;
          })
        : await findParent(repo, host, abs);
  const b = new Backup(repo, opts);
  for (const [id, reason] of await ownFolderIds(opts.ownFolders ?? [])) b.own.set(id, reason);
  const prevRoot = parent ? await b.loadPrev(parent.snapshot.root, 'the previous snapshot') : undefined;
  if (opts.changedFolders && typeof opts.parent === 'string' && parent && prevRoot && JSON.stringify(parent.snapshot.paths) === JSON.stringify(abs)) {
    b.only = ChangedFolders.create(repo, parent.snapshot, abs, opts.changedFolders);
    b.only?.lookAt(Buffer.alloc(0), '', parent.snapshot.root, prevRoot);
  }
  if (opts.cacheDir !== undefined) {
    const shaping = { tree: TREE_VERSION, excludeLargerThan: opts.excludeLargerThan ?? null, oneFileSystem: opts.oneFileSystem === true };
    b.cache = await ListingCache.open(opts.cacheDir, repo.config.id, repo.authenticator, abs, shaping, parent?.id);
  }

  const scanning = new AbortController();
  if (opts.scanTotal && opts.onEvent && !b.only) {
    scanTotal(abs, { excludes: b.excludes, excludeLargerThan: opts.excludeLargerThan, oneFileSystem: opts.oneFileSystem, signal: scanning.signal }).then(
      (t) => {
        if (scanning.signal.aborted) return;
        b.scanned = t;
        b.progress(true);
      },
      () => undefined, // stopped: the backup finished first
    );
  }
  const rootEntries: TreeEntry[] = [];
  try {
  for (const p of abs) {
    const path = Buffer.from(p);
    const name = Buffer.from(rootName(p));
    let st: FileMeta;
    try {
      st = await b.fs.lstat(path);
    } catch (err) {
      const code = errnoCode(err);
      b.warn('unreadable', p, code === 'ENOENT' ? `${p} does not exist and was not saved.` : `${p} could not be examined (${code ?? String(err)}) and was not saved.`);
      continue;
    }
    const own = st.isDirectory() ? b.own.get(`${st.dev}:${st.ino}`) : undefined;
    if (own !== undefined) {
      // Named as a source, Lifeboat's own folder is left out all the same (a repository backed up into itself grows forever).
      opts.onEvent?.({ type: 'excluded', path: p, reason: own });
      continue;
    }
    const e = await b.entry(path, path, name, st, prevRoot?.get(latin1(name)), st.dev);
    if (e) rootEntries.push(e);
  }
  } finally {
    scanning.abort();
    await b.saver?.close();
  }
  rootEntries.sort((x, y) => Buffer.compare(x.name, y.name));
  await b.only?.gone(prevRoot, (name) => (names.has(name.toString()) ? Buffer.from(names.get(name.toString())!) : undefined));
  const root = await b.saveListing(rootEntries);
  b.progress(true, true);

  const s = b.s;
  if (b.only) b.incomplete.push(...b.only.finish(s).slice(0, Math.max(0, LIST_CAP - b.incomplete.length)));
  s.durationSeconds = Math.round((performance.now() - started) / 10) / 100;
  const meta: Record<string, unknown> = {};
  if (b.changed.length > 0) meta['files'] = { changedWhileRead: b.changed };
  const snapshot: Snapshot = {
    version: 1,
    kind: 'files',
    time,
    host,
    user: safeUser(),
    paths: abs,
    tags: [...(opts.tags ?? [])],
    root,
    ...(parent ? { parent: parent.id } : {}),
    ...(s.unreadable > 0 ? { incomplete: { count: s.unreadable, paths: b.incomplete } } : {}),
    summary: {},
    ...(Object.keys(meta).length > 0 ? { meta } : {}),
  };
  await repo.flush();
  s.bytesAdded = repo.bytesWritten - b.bytesBefore;
  const final: Snapshot = { ...snapshot, summary: { ...s } };
  const snapshotId = await repo.saveSnapshot(final);
  await b.cache?.save(snapshotId);
  return { snapshotId, snapshot: final, summary: s, ...(parent ? { parent: parent.id } : {}), incomplete: b.incomplete, changed: b.changed, ...(b.only ? { changedOnly: { lookedAt: b.only.lookedAt, carried: b.only.carriedFolders } } : {}) };
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? '');
  }
}

/** The holes (flat offset, length pairs) that lie within the first `size` bytes. */
function clipHoles(holes: readonly number[], size: number): number[] {
  const out: number[] = [];
  for (let k = 0; k < holes.length && holes[k]! < size; k += 2) out.push(holes[k]!, Math.min(holes[k + 1]!, size - holes[k]!));
  return out;
}

/** Reads a small file whole, yielding it as its single chunk (nothing if reading failed). */
async function* readWhole(fh: fsp.FileHandle, size: number, onRead: (n: number) => void, onError: (e: unknown) => void): AsyncGenerator<Uint8Array> {
  const buf = Buffer.allocUnsafeSlow(size);
  let got = 0;
  try {
    while (got < size) {
      const { bytesRead } = await fh.read(buf, got, size - got, got);
      if (bytesRead === 0) break; // shrank meanwhile: the after-read stat reports it
      got += bytesRead;
    }
  } catch (err) {
    onError(err);
    return;
  }
  onRead(got);
  if (got > 0) yield got === size ? buf : buf.subarray(0, got);
}
