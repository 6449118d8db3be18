/**
 * The mirror: makes DST an ordinary copy of SRC, with the same names, contents, modes, owners
 * (as root), extended attributes and times, that any computer can read without Lifeboat.
 *
 * What the mirror made is recorded in DST/.lifeboat-mirror/manifest (one JSON line per entry:
 * the source's identity when it was copied and the copy's size and mtime as the drive stores
 * them), with every change appended to a journal first. A mirror never deletes or replaces a file
 * it did not make: an entry in the way that is not in the record, or that was changed in DST since,
 * is left as it is with a warning (except a file equal to SRC's by size and mtime, which is taken
 * as the copy). A file the mirror made that SRC deleted or changed is moved, not deleted, into
 * DST/.lifeboat-versions/DATE/PATH, and DATE folders older than `keepDays` are removed.
 *
 * Crash safety: a copy is written under DST/.lifeboat-mirror/tmp/ and renamed into place (an old
 * copy is hard-linked into the versions first, so the path never goes missing); the journal line
 * that records a change is written before the rename, naming the previous copy as an alternative,
 * so a killed mirror leaves DST consistent and the next run finishes the work. A renamed file (same
 * device, inode, size and mtime as a recorded copy whose path is gone) is renamed in DST, not copied.
 *
 * Paths of any depth work: a path longer than DEEP_PATH is reached through an open descriptor of
 * its folder (Platform.dirAccessSync), so every call stays under PATH_MAX.
 *
 * Names are bytes throughout (any byte but '/' and NUL; newlines and non-UTF-8 are fine); SRC's
 * names .lifeboat-mirror and .lifeboat-versions at its top are skipped, and nothing is written
 * through a symlink: every folder of DST written into was lstat'ed as a real folder in this run.
 */
import { constants as C, closeSync, fstatSync, fsyncSync, ftruncateSync, lstatSync, read, write, openSync, readdirSync, readFileSync, readlinkSync, readSync, renameSync, rmdirSync, symlinkSync, unlinkSync, writeSync, type BigIntStats } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { LifeboatError, errnoCode } from '../util/errors.js';
import { systemClock, type Clock } from '../util/clock.js';
import { platform as defaultPlatform, type DirAccessSync, type Platform } from './platform/platform.js';
import { entryFromStat, entryType, MetadataWriter } from './metadata.js';
import type { EntryType, TreeEntry } from './tree.js';

export const MIRROR_STATE = '.lifeboat-mirror';
export const MIRROR_VERSIONS = '.lifeboat-versions';
export const DEFAULT_KEEP_DAYS = 30;

export type MirrorEvent =
  | { readonly type: 'progress'; readonly files: number; readonly bytesCopied: number }
  | { readonly type: 'warning'; readonly path: string; readonly message: string };

export interface MirrorOptions {
  /** Days a deleted or overwritten file is kept under .lifeboat-versions (default 30; 0 keeps none). */
  readonly keepDays?: number;
  /**
   * Folders of SRC (relative, '/'-separated bytes; empty for SRC itself) in which something
   * changed since the last run: only these are listed again, with their new or changed
   * sub-folders. Without it every folder is listed (a full rescan).
   */
  readonly changed?: readonly Buffer[];
  /**
   * Mirror an empty SRC even though the mirror holds files from it (everything then goes into the
   * versions). Without it that is refused: an empty SRC is most often a drive not connected.
   */
  readonly allowEmptySource?: boolean;
  readonly clock?: Clock;
  readonly signal?: AbortSignal;
  readonly onEvent?: (e: MirrorEvent) => void;
  readonly platform?: Platform;
}

export interface MirrorSummary {
  /** Entries copied (files, symlinks, special files) and the file bytes written. */
  copied: number;
  bytesCopied: number;
  /** Of `copied`: hard links of a file copied or up to date in this run, made as hard links in DST too. */
  hardLinked: number;
  /** Files renamed or moved in SRC whose copy was renamed in DST instead of copied again. */
  renamed: number;
  /** Entries whose metadata alone changed and was applied again. */
  metadataUpdated: number;
  unchanged: number;
  /** Files already in DST equal to SRC's (size and mtime), taken as the mirror's copy. */
  adopted: number;
  /** Copies of deleted or overwritten files moved into .lifeboat-versions. */
  versioned: number;
  dirsCreated: number;
  dirsRemoved: number;
  /** Entries in DST in the way that the mirror did not make (or that were changed there): left as they were. */
  conflicts: number;
  /** Entries that could not be mirrored (see the warnings). */
  errors: number;
  /** Version folders older than keepDays removed. */
  versionsExpired: number;
  durationSeconds: number;
}

/** One entry the mirror made: its source's identity when copied, and the copy as DST stores it. */
interface Made {
  t: EntryType;
  sd: bigint;
  si: bigint;
  ss: number;
  sm: bigint;
  sc: bigint;
  ds: number;
  dm: bigint;
  /** The previous copy (a replacement that may have been interrupted): size and mtime. */
  as?: number;
  am?: bigint;
}

/** A folder's recorded ctime while its metadata is still to be set (Mirror.markDirty): no real ctime. */
const PENDING = -1n;

/** The size and mtime of a copy in DST. */
interface OldCopy {
  readonly ds: number;
  readonly dm: bigint;
}

interface Seen {
  readonly type: EntryType;
  readonly st: BigIntStats;
}

const SLASH = Buffer.from('/');
const READ_SIZE = 1024 * 1024;
/** Paths longer than this are reached through their folder's descriptor (PATH_MAX is 4096 on Linux). */
const DEEP_PATH = 2048;
/** Folder descriptors held open for deep paths before they are closed at the next safe point. */
const MAX_HANDLES = 256;
const STATE_NAME = Buffer.from(MIRROR_STATE);
const VERSIONS_NAME = Buffer.from(MIRROR_VERSIONS);
const VERSION_DIR = /^(\d{4})-(\d\d)-(\d\d)T(\d\d)-(\d\d)-(\d\d)Z(?:-\d+)?$/;
const TYPES: ReadonlySet<string> = new Set(['file', 'dir', 'symlink', 'fifo', 'chardev', 'blockdev']);
/** Errors after which a hard link is not possible here; the old copy is moved instead. */
const NO_LINK = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EXDEV', 'EMLINK', 'ENOSYS']);

const readAt = promisify(read);
const writeAt = promisify(write);
const keyOf = (rel: Buffer): string => rel.toString('latin1');
const relOf = (key: string): Buffer => Buffer.from(key, 'latin1');
const childKey = (parent: string, name: Buffer): string => (parent === '' ? name.toString('latin1') : `${parent}/${name.toString('latin1')}`);
const parentKey = (key: string): string => {
  const k = key.lastIndexOf('/');
  return k < 0 ? '' : key.slice(0, k);
};
const depth = (key: string): number => (key === '' ? 0 : key.split('/').length);

function typeOf(st: BigIntStats): EntryType | undefined {
  const t = entryType(st);
  return t === 'socket' ? undefined : t;
}

function lstatOrUndefined(p: Buffer): BigIntStats | undefined {
  try {
    return lstatSync(p, { bigint: true });
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') return undefined;
    throw e;
  }
}

/** The manifest line of an entry ('del' lines, in the journal, have only the path). */
function encodeMade(key: string, m: Made | undefined): string {
  const rel = relOf(key);
  const s = rel.toString('utf8');
  // Node decodes every invalid sequence to U+FFFD: without one, the name is valid UTF-8.
  const p = s.includes('\ufffd') ? `"pB64":"${rel.toString('base64')}"` : `"p":${JSON.stringify(s)}`;
  if (!m) return `{"del":true,${p}}\n`;
  let line = `{${p},"t":"${m.t}","sd":"${m.sd}","si":"${m.si}","ss":${m.ss},"sm":"${m.sm}","sc":"${m.sc}","ds":${m.ds},"dm":"${m.dm}"`;
  if (m.as !== undefined && m.am !== undefined) line += `,"as":${m.as},"am":"${m.am}"`;
  return line + '}\n';
}

/** Parses one line; undefined when it is not a line this version wrote. */
function decodeMade(line: string): { key: string; m: Made | undefined } | undefined {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const rel = typeof o['p'] === 'string' ? Buffer.from(o['p'], 'utf8') : typeof o['pB64'] === 'string' ? Buffer.from(o['pB64'], 'base64') : undefined;
  if (!rel) return undefined;
  const key = keyOf(rel);
  if (o['del'] === true) return { key, m: undefined };
  const big = (v: unknown): bigint => (typeof v === 'string' && /^\d+$/.test(v) ? BigInt(v) : -1n);
  const num = (v: unknown): number => (typeof v === 'number' && Number.isSafeInteger(v) ? v : -1);
  if (typeof o['t'] !== 'string' || !TYPES.has(o['t'])) return undefined;
  const m: Made = { t: o['t'] as EntryType, sd: big(o['sd']), si: big(o['si']), ss: num(o['ss']), sm: big(o['sm']), sc: big(o['sc']), ds: num(o['ds']), dm: big(o['dm']) };
  if (o['as'] !== undefined) {
    m.as = num(o['as']);
    m.am = big(o['am']);
  }
  return { key, m };
}

/** The record of what the mirror made, with its journal. */
class MirrorRecord {
  readonly made = new Map<string, Made>();
  /** The recorded names in each recorded folder, so a run looks only at the folders it listed. */
  readonly children = new Map<string, Set<string>>();
  private journal: number | undefined;
  /** Lines in the journal: the manifest is rewritten when there are many. */
  journalLines = 0;

  constructor(private readonly dir: Buffer) {}

  private path(name: string): Buffer {
    return Buffer.concat([this.dir, SLASH, Buffer.from(name)]);
  }

  /** Reads the manifest and replays the journal of an interrupted run. */
  load(): void {
    for (const name of ['manifest', 'journal']) {
      let text: string;
      try {
        text = readFileSync(this.path(name), 'utf8');
      } catch (e) {
        if (errnoCode(e) === 'ENOENT') continue;
        throw e;
      }
      const lines = text.split('\n');
      for (let i = 0; i < lines.length; i++) {
        if (lines[i] === '') continue;
        const r = decodeMade(lines[i]!);
        if (!r) {
          // A killed run may have left half a line at the end of its journal; nothing else is expected.
          if (name === 'journal' && i === lines.length - 1) continue;
          throw new LifeboatError('corrupt', `The mirror's record ${this.path(name).toString()} is damaged (line ${i + 1}). Move the folder ${this.dir.toString()} away to start the mirror afresh; files already in the mirror are then taken over when they equal the source's.`);
        }
        if (r.m) this.made.set(r.key, r.m);
        else this.made.delete(r.key);
        if (name === 'journal') this.journalLines++;
      }
    }
    for (const key of this.made.keys()) this.index(key, true);
    this.journal = openSync(this.path('journal'), 'a');
  }

  private index(key: string, add: boolean): void {
    if (key === '') return;
    const p = parentKey(key);
    let c = this.children.get(p);
    if (add) {
      if (!c) this.children.set(p, (c = new Set()));
      c.add(key);
    } else {
      c?.delete(key);
      if (c?.size === 0) this.children.delete(p);
    }
  }

  set(key: string, m: Made): void {
    if (!this.made.has(key)) this.index(key, true);
    this.made.set(key, m);
    this.append(encodeMade(key, m));
  }

  delete(key: string): void {
    if (!this.made.delete(key)) return;
    this.index(key, false);
    this.append(encodeMade(key, undefined));
  }

  private append(line: string): void {
    if (this.journal === undefined) throw new Error('mirror record not loaded');
    writeSync(this.journal, line);
    this.journalLines++;
  }

  /** Writes the whole record as the new manifest (temporary, fsync, rename), then empties the journal. */
  save(): void {
    const tmp = this.path('manifest.tmp');
    const fd = openSync(tmp, 'w');
    try {
      let chunk = '';
      for (const [key, m] of this.made) {
        chunk += encodeMade(key, m);
        if (chunk.length > 1 << 20) {
          writeSync(fd, chunk);
          chunk = '';
        }
      }
      writeSync(fd, chunk);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path('manifest'));
    this.close();
    unlinkSync(this.path('journal'));
    this.journal = openSync(this.path('journal'), 'a');
    this.journalLines = 0;
  }

  close(): void {
    if (this.journal !== undefined) closeSync(this.journal);
    this.journal = undefined;
  }
}

/** The lock file of a mirror into DST: one mirror at a time; a dead process's lock (same host) is taken over. */
function takeLock(stateDir: Buffer, dst: string): () => void {
  const lock = Buffer.concat([stateDir, Buffer.from('/lock')]);
  const me = `${process.pid} ${hostname()}\n`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lock, C.O_WRONLY | C.O_CREAT | C.O_EXCL, 0o644);
      writeSync(fd, me);
      closeSync(fd);
      return () => {
        try {
          unlinkSync(lock);
        } catch {
          // already gone
        }
      };
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST') throw e;
    }
    const [pid, host] = readFileSync(lock, 'utf8').trim().split(' ');
    let alive = true;
    if (host === hostname() && pid !== undefined && /^\d+$/.test(pid)) {
      try {
        process.kill(Number(pid), 0);
      } catch (e) {
        alive = errnoCode(e) !== 'ESRCH';
      }
    }
    if (alive) throw new LifeboatError('locked', `Another mirror into ${dst} is running (process ${pid ?? '?'} on ${host ?? '?'}); wait for it to finish or stop it.`);
    unlinkSync(lock);
  }
  throw new LifeboatError('locked', `The mirror into ${dst} could not be locked; try again.`);
}

/** "2026-12-05T19-30-12Z": a version folder's name (no colons, for drives any computer reads). */
function versionName(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
}

class Mirror {
  readonly s: MirrorSummary = { copied: 0, bytesCopied: 0, hardLinked: 0, renamed: 0, metadataUpdated: 0, unchanged: 0, adopted: 0, versioned: 0, dirsCreated: 0, dirsRemoved: 0, conflicts: 0, errors: 0, versionsExpired: 0, durationSeconds: 0 };
  readonly plat: Platform;
  readonly meta: MetadataWriter;
  readonly clock: Clock;
  /** Recorded entries gone from SRC (found by goneEntries), and recorded non-folders that are folders in SRC now. */
  private gone = new Set<string>();
  private nowFolders: string[] = [];
  /** SRC's entries found by this run, parents before children. */
  readonly seen = new Map<string, Seen>();
  readonly order: string[] = [];
  /** Folders of SRC listed in full by this run: a recorded entry below one that is not seen is gone. */
  readonly listed = new Set<string>();
  /** Folders of DST lstat'ed as real folders in this run (written into), and those not usable. */
  private readonly dstDirs = new Set<string>();
  private readonly blocked = new Set<string>();
  /** Folders of DST whose metadata must be applied again (created, changed, or entries added or removed). */
  private readonly dirty = new Set<string>();
  private versionDir: Buffer | undefined;
  private readonly runStart: number;
  private lastProgress = 0;
  private processed = 0;
  /** For each hard-linked source inode ("dev:ino"), an entry whose copy in DST is up to date in this run. */
  private readonly linked = new Map<string, string>();
  /** Files are copied one at a time, through this buffer. */
  private readonly buffer = Buffer.allocUnsafe(READ_SIZE);

  constructor(readonly src: Buffer, readonly dst: Buffer, readonly record: MirrorRecord, readonly tmpDir: Buffer, readonly o: MirrorOptions) {
    this.plat = o.platform ?? defaultPlatform();
    this.clock = o.clock ?? systemClock;
    this.runStart = this.clock.now();
    this.meta = new MetadataWriter(this.plat, { numericOwner: true, warn: (path, message) => this.warn(path, message, false) });
  }

  warn(path: string, message: string, error = true): void {
    if (error) this.s.errors++;
    this.o.onEvent?.({ type: 'warning', path, message });
  }

  progress(force = false): void {
    if (!this.o.onEvent) return;
    const now = performance.now();
    if (!force && now - this.lastProgress < 100) return;
    this.lastProgress = now;
    this.o.onEvent({ type: 'progress', files: this.processed, bytesCopied: this.s.bytesCopied });
  }

  /** Open folders through which deep paths are reached, by side ('s', 'd', 'v' for the versions) and key. */
  private readonly handles = new Map<string, DirAccessSync>();

  /**
   * The path of `key` under `root` to hand to a system call: the whole path, or for a deep one,
   * its name under a descriptor of its folder (valid until closeHandles()).
   */
  private reach(root: Buffer, side: string, key: string): Buffer {
    const full = key === '' ? root : Buffer.concat([root, SLASH, relOf(key)]);
    if (key === '' || full.length <= DEEP_PATH) return full;
    const parent = parentKey(key);
    let h = this.handles.get(side + parent);
    if (!h) {
      h = this.plat.dirAccessSync(this.reach(root, side, parent));
      this.handles.set(side + parent, h);
    }
    const rel = relOf(key);
    return Buffer.concat([h.base, SLASH, rel.subarray(rel.lastIndexOf(0x2f) + 1)]);
  }

  /** Closes the descriptors of deep folders: at the end, and between entries when many are open. */
  closeHandles(all = true): void {
    if (!all && this.handles.size < MAX_HANDLES) return;
    for (const h of this.handles.values()) h.close();
    this.handles.clear();
  }

  srcPath(key: string): Buffer {
    return this.reach(this.src, 's', key);
  }

  dstPath(key: string): Buffer {
    return this.reach(this.dst, 'd', key);
  }

  /** A path as shown in messages: SRC's path, UTF-8 decoded. */
  shown(key: string): string {
    return (key === '' ? this.src : Buffer.concat([this.src, SLASH, relOf(key)])).toString('utf8');
  }

  /** DST's path as shown in messages. */
  shownDst(key: string): string {
    return (key === '' ? this.dst : Buffer.concat([this.dst, SLASH, relOf(key)])).toString('utf8');
  }

  private fail(key: string, e: unknown, what: string): void {
    if (e instanceof Error && e.name === 'AbortError') throw e;
    if (e instanceof LifeboatError) throw e;
    const code = errnoCode(e);
    if (code === 'ENOSPC' || code === 'EDQUOT') throw new LifeboatError('no-space', `The mirror's drive is full (at ${this.shownDst(key)}); free some space (old versions are in ${MIRROR_VERSIONS}), then run the mirror again.`);
    if (code === 'EROFS') throw new LifeboatError('io', `The mirror's drive is read-only (at ${this.shownDst(key)}).`);
    this.warn(this.shown(key), `${this.shown(key)} could not be ${what} (${code ?? (e instanceof Error ? e.message : String(e))}).`);
  }

  // ---- walking SRC ----

  private see(key: string, st: BigIntStats): boolean {
    const type = typeOf(st);
    if (type === undefined) {
      this.warn(this.shown(key), `${this.shown(key)} is a socket and was skipped (sockets cannot be copied).`, false);
      return false;
    }
    if (!this.seen.has(key)) this.order.push(key);
    this.seen.set(key, { type, st });
    return true;
  }

  /** Lists a folder of SRC; sub-folders are listed too when `all`, else only those new or changed since the record. */
  private list(key: string, all: boolean): void {
    this.o.signal?.throwIfAborted();
    this.closeHandles(false);
    if (this.listed.has(key)) return;
    let names: Buffer[];
    try {
      names = readdirSync(this.srcPath(key), { encoding: 'buffer' });
    } catch (e) {
      if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') return; // gone meanwhile: its parent's listing says so
      this.fail(key, e, 'listed; what the mirror has of it is kept');
      return;
    }
    this.listed.add(key);
    for (const name of names) {
      if (key === '' && (name.equals(STATE_NAME) || name.equals(VERSIONS_NAME))) {
        this.warn(this.shown(childKey(key, name)), `${this.shown(childKey(key, name))} has the name of the mirror's own folder and was not mirrored; rename it to have it mirrored.`);
        continue;
      }
      const k = childKey(key, name);
      let st: BigIntStats;
      try {
        st = lstatSync(this.srcPath(k), { bigint: true });
      } catch (e) {
        if (errnoCode(e) !== 'ENOENT') this.fail(k, e, 'read');
        continue;
      }
      if (!this.see(k, st)) continue;
      if (!st.isDirectory()) continue;
      const m = this.record.made.get(k);
      if (all || !m || m.t !== 'dir' || m.si !== st.ino || m.sm !== st.mtimeNs) this.list(k, all);
    }
  }

  /** Finds what to look at: everything, or the changed folders (with the folders above them). */
  walk(): void {
    const root = lstatSync(this.src, { bigint: true });
    this.see('', root);
    if (this.o.changed === undefined) return this.list('', true);
    const keys = [...new Set(this.o.changed.map(keyOf))].sort((a, b) => depth(a) - depth(b));
    for (let key of keys) {
      // A changed folder that is gone or no longer a folder: its parent's listing shows that.
      for (;;) {
        const st = key === '' ? root : lstatOrUndefined(this.srcPath(key));
        if (st?.isDirectory()) break;
        key = parentKey(key);
      }
      const chain: string[] = [];
      for (let k = key; k !== ''; k = parentKey(k)) chain.unshift(k);
      let ok = true;
      for (const k of chain) {
        const st = lstatOrUndefined(this.srcPath(k));
        if (!st?.isDirectory()) {
          ok = false;
          break;
        }
        if (!this.seen.has(k)) this.see(k, st);
      }
      if (ok) this.list(key, false);
    }
  }

  /**
   * The recorded entries gone from SRC: those not seen in a folder listed by this run, with
   * everything recorded below them, and what is recorded below a folder that is now a file.
   * Only the listed folders' recorded names are looked at, so a run over a few changed folders
   * costs what they hold, not what the whole mirror holds.
   */
  private goneEntries(): void {
    const add = (key: string): void => {
      if (this.gone.has(key)) return;
      this.gone.add(key);
      for (const c of this.record.children.get(key) ?? []) add(c);
    };
    for (const dir of this.listed) {
      for (const key of this.record.children.get(dir) ?? []) {
        const e = this.seen.get(key);
        if (!e) add(key);
        else if (e.type !== 'dir') for (const c of this.record.children.get(key) ?? []) add(c);
        else if (this.record.made.get(key)?.t !== 'dir') this.nowFolders.push(key);
      }
    }
  }

  // ---- DST ----

  /** Whether DST's entry is the mirror's copy: 'current', 'previous' (an interrupted replacement), or false. */
  private made(m: Made | undefined, d: BigIntStats | undefined): 'current' | 'previous' | false {
    if (!m || !d || typeOf(d) !== m.t) return false;
    if (m.t === 'dir') return 'current';
    if (Number(d.size) === m.ds && d.mtimeNs === m.dm) return 'current';
    if (m.as !== undefined && Number(d.size) === m.as && d.mtimeNs === m.am) return 'previous';
    return false;
  }

  private sameSource(m: Made, st: BigIntStats): boolean {
    return m.sd === st.dev && m.si === st.ino && m.ss === Number(st.size) && m.sm === st.mtimeNs;
  }

  /** Whether DST's folder `key` is a real folder that may be written into (lstat'ed once per run). */
  private dstDir(key: string): boolean {
    if (this.dstDirs.has(key)) return true;
    if (this.blocked.has(key)) return false;
    if (key !== '' && !this.dstDir(parentKey(key))) {
      this.blocked.add(key);
      return false;
    }
    const d = lstatOrUndefined(this.dstPath(key));
    if (d?.isDirectory()) {
      this.dstDirs.add(key);
      return true;
    }
    this.blocked.add(key);
    return false;
  }

  private madeFrom(st: BigIntStats, type: EntryType, d: BigIntStats | undefined): Made {
    return { t: type, sd: st.dev, si: st.ino, ss: Number(st.size), sm: st.mtimeNs, sc: st.ctimeNs, ds: d ? Number(d.size) : 0, dm: d ? d.mtimeNs : 0n };
  }

  /** This run's version folder (made on first use): DST/.lifeboat-versions/DATE. */
  private async versions(): Promise<Buffer> {
    if (this.versionDir) return this.versionDir;
    const base = Buffer.concat([this.dst, SLASH, VERSIONS_NAME]);
    await fsp.mkdir(base, { recursive: true });
    const name = versionName(this.runStart);
    for (let n = 1; ; n++) {
      const dir = Buffer.concat([base, SLASH, Buffer.from(n === 1 ? name : `${name}-${n}`)]);
      try {
        await fsp.mkdir(dir);
        this.versionDir = dir;
        return dir;
      } catch (e) {
        if (errnoCode(e) !== 'EEXIST') throw e;
      }
    }
  }

  /**
   * Keeps DST's entry `key` (the mirror's copy) in this run's version folder: hard-linked when
   * `link` (the path is replaced right after, so it never goes missing), else moved.
   */
  private async keepVersion(key: string, link: boolean): Promise<void> {
    const versions = await this.versions();
    const rel = relOf(key);
    if (versions.length + 1 + rel.length <= DEEP_PATH) await fsp.mkdir(Buffer.concat([versions, SLASH, rel.subarray(0, Math.max(0, rel.lastIndexOf(0x2f)))]), { recursive: true });
    else {
      // One folder at a time, each reached through its parent's descriptor.
      const parents: string[] = [];
      for (let k = parentKey(key); k !== ''; k = parentKey(k)) parents.unshift(k);
      for (const k of parents) await fsp.mkdir(this.reach(versions, 'v', k)).catch((e: unknown) => (errnoCode(e) === 'EEXIST' ? undefined : Promise.reject(e)));
    }
    const target = this.reach(versions, 'v', key);
    const path = this.dstPath(key);
    if (link) {
      try {
        await fsp.link(path, target);
        this.s.versioned++;
        return;
      } catch (e) {
        if (!NO_LINK.has(errnoCode(e) ?? '')) throw e;
      }
    }
    await fsp.rename(path, target);
    this.s.versioned++;
  }

  /** The entry of SRC's `key` with its extended attributes, for the metadata writer. */
  private entry(key: string, seen: Seen): TreeEntry {
    const rel = relOf(key);
    const e = entryFromStat(rel.subarray(rel.lastIndexOf(0x2f) + 1), seen.type, seen.st);
    try {
      const x = this.plat.listXattrs(this.srcPath(key));
      if (x.length > 0) e.xattrs = x;
    } catch {
      // gone since its lstat: copied without them, and found changed next time
    }
    return e;
  }

  // ---- the steps ----

  /** Renamed files: SRC entries without an up-to-date copy whose inode is a recorded copy's whose path is gone. */
  findRenames(): Map<string, string> {
    const byInode = new Map<string, string[]>();
    for (const key of this.gone) {
      const m = this.record.made.get(key)!;
      if (m.t !== 'file') continue;
      const id = `${m.sd}:${m.si}`;
      const list = byInode.get(id);
      if (list) list.push(key);
      else byInode.set(id, [key]);
    }
    const renames = new Map<string, string>();
    if (byInode.size === 0) return renames;
    for (const key of this.order) {
      const e = this.seen.get(key)!;
      if (e.type !== 'file') continue;
      const m = this.record.made.get(key);
      if (m && m.t === 'file' && this.sameSource(m, e.st)) continue;
      const list = byInode.get(`${e.st.dev}:${e.st.ino}`);
      const i = list?.findIndex((k) => {
        const c = this.record.made.get(k)!;
        return c.ss === Number(e.st.size) && c.sm === e.st.mtimeNs;
      });
      if (list === undefined || i === undefined || i < 0) continue;
      renames.set(key, list[i]!);
      list.splice(i, 1);
    }
    return renames;
  }

  /** Recorded files (not folders) gone from SRC, or now folders there: into the versions. */
  async retireGone(renamedFrom: ReadonlySet<string>): Promise<void> {
    for (const key of this.gone) {
      const m = this.record.made.get(key);
      if (m && m.t !== 'dir' && !renamedFrom.has(key)) await this.retire(key, m, 'deleted');
    }
    for (const key of this.nowFolders) {
      const m = this.record.made.get(key);
      if (m) await this.retire(key, m, 'replaced by a folder');
    }
  }

  private async retire(key: string, m: Made, why: 'deleted' | 'replaced by a folder'): Promise<void> {
    try {
      if (!this.dstDir(parentKey(key))) return;
      const d = lstatOrUndefined(this.dstPath(key));
      if (d && this.made(m, d)) {
        await this.keepVersion(key, false);
        this.markDirty(parentKey(key));
      } else if (d) {
        this.warn(this.shown(key), `${this.shown(key)} was ${why} in the source, but its copy in the mirror was changed there since; the copy was left as it is.`, false);
      }
      this.record.delete(key);
    } catch (e) {
      this.fail(key, e, 'moved into the versions');
    }
  }

  async place(renames: ReadonlyMap<string, string>): Promise<void> {
    for (const key of this.order) {
      this.o.signal?.throwIfAborted();
      this.closeHandles(false);
      const e = this.seen.get(key)!;
      this.processed++;
      try {
        if (key === '') continue;
        if (!this.dstDir(parentKey(key))) continue; // its folder could not be made (a warning said why)
        if (e.type === 'dir') await this.placeDir(key, e);
        else await this.placeOther(key, e, renames.get(key));
      } catch (err) {
        this.fail(key, err, 'mirrored');
      }
      this.progress();
    }
  }

  /**
   * A folder whose times and metadata are set again at the end of the run (folderMetadata). Its
   * record says so at once (the journal is written as the run goes): a run killed before the end
   * then leaves the folder's record unlike the source's, and the next run sets them, even when
   * nothing in the folder changes then.
   */
  private markDirty(key: string): void {
    if (this.dirty.has(key)) return;
    this.dirty.add(key);
    const m = this.record.made.get(key);
    if (m?.t === 'dir' && m.sc !== PENDING) this.record.set(key, { ...m, sc: PENDING });
  }

  private async placeDir(key: string, e: Seen): Promise<void> {
    const m = this.record.made.get(key);
    let d = lstatOrUndefined(this.dstPath(key));
    if (d && !d.isDirectory()) {
      if (!this.made(m, d)) return this.conflict(key, 'is not a folder');
      await this.keepVersion(key, false);
      this.record.delete(key);
      d = undefined;
    }
    if (!d) {
      await fsp.mkdir(this.dstPath(key), { mode: 0o700 });
      this.s.dirsCreated++;
      this.markDirty(parentKey(key));
    }
    this.dstDirs.add(key);
    this.blocked.delete(key);
    if (!d || !m || m.t !== 'dir' || m.sc !== e.st.ctimeNs || m.sm !== e.st.mtimeNs) this.markDirty(key);
    if (!m || m.t !== 'dir' || m.si !== e.st.ino || m.sd !== e.st.dev) this.record.set(key, this.madeFrom(e.st, 'dir', undefined));
  }

  private conflict(key: string, what: string): void {
    this.s.conflicts++;
    this.blocked.add(key);
    const at = this.shownDst(key);
    this.warn(at, `${at} ${what} and was not made by the mirror (or was changed there since); it was left as it is, so ${this.shown(key)} is not mirrored. Move it away to have it mirrored.`, false);
  }

  private async placeOther(key: string, e: Seen, renamedFrom: string | undefined): Promise<void> {
    let m = this.record.made.get(key);
    const path = this.dstPath(key);
    let d = lstatOrUndefined(path);
    if (d?.isDirectory()) {
      // A folder of the mirror's, emptied by retireGone, makes way; anything else stays.
      if (m?.t !== 'dir') return this.conflict(key, 'is a folder');
      try {
        await fsp.rmdir(path);
      } catch (err) {
        if (errnoCode(err) === 'ENOTEMPTY' || errnoCode(err) === 'EEXIST') return this.conflict(key, 'is a folder that holds files');
        throw err;
      }
      this.s.dirsRemoved++;
      this.record.delete(key);
      m = undefined;
      d = undefined;
    }
    const made = this.made(m, d);
    if (d && !made) {
      if (e.type === 'file' && d.isFile() && d.size === e.st.size && d.mtimeNs === e.st.mtimeNs) {
        // Already there, equal by size and time (a copy made before the first mirror): taken over.
        await this.meta.apply(path, this.entry(key, e), this.shown(key));
        this.record.set(key, this.madeFrom(e.st, e.type, lstatSync(path, { bigint: true })));
        this.s.adopted++;
        return;
      }
      return this.conflict(key, 'exists');
    }
    if (made === 'current' && m && m.t === e.type && this.sameSource(m, e.st)) {
      this.linkable(key, e);
      if (m.sc === e.st.ctimeNs) {
        this.s.unchanged++;
        return;
      }
      await this.meta.apply(path, this.entry(key, e), this.shown(key)); // mode, owner or xattrs changed
      this.record.set(key, this.madeFrom(e.st, e.type, lstatSync(path, { bigint: true })));
      this.s.metadataUpdated++;
      return;
    }
    // The copy there now, which the new one replaces (into the versions).
    const old = made === 'current' && m ? { ds: m.ds, dm: m.dm } : made === 'previous' && m ? { ds: m.as!, dm: m.am! } : undefined;
    if (renamedFrom !== undefined && (await this.renameCopy(key, e, renamedFrom, old))) return;
    await this.copy(key, e, old);
  }

  /** Moves the copy of a renamed file to its new path; false when that copy is not usable (then it is copied). */
  private async renameCopy(key: string, e: Seen, from: string, old: OldCopy | undefined): Promise<boolean> {
    const m = this.record.made.get(from);
    if (!m || !this.dstDir(parentKey(from))) return false;
    const d = lstatOrUndefined(this.dstPath(from));
    if (this.made(m, d) !== 'current') return false;
    // Recorded first (with the copy now at `key` as the alternative), so a kill at any point leaves
    // a record that matches what DST holds.
    this.record.set(key, { ...this.madeFrom(e.st, e.type, d), ...(old ? { as: old.ds, am: old.dm } : {}) });
    if (old) await this.keepVersion(key, true);
    await fsp.rename(this.dstPath(from), this.dstPath(key));
    this.record.delete(from);
    this.markDirty(parentKey(from));
    this.markDirty(parentKey(key));
    if (m.sc !== e.st.ctimeNs) await this.meta.apply(this.dstPath(key), this.entry(key, e), this.shown(key));
    this.record.set(key, this.madeFrom(e.st, e.type, lstatSync(this.dstPath(key), { bigint: true })));
    this.s.renamed++;
    return true;
  }

  /** Copies SRC's entry to a temporary, then puts it in place (the mirror's old copy, if any, into the versions). */
  private async copy(key: string, e: Seen, old: OldCopy | undefined): Promise<void> {
    const tmp = Buffer.concat([this.tmpDir, SLASH, Buffer.from(randomBytes(8).toString('hex'))]);
    let placed = false;
    try {
      const src = this.srcPath(key);
      const entry = this.entry(key, e);
      let st = e.st;
      if (e.type === 'file' && (await this.linkCopy(e, tmp))) {
        this.s.hardLinked++;
      } else if (e.type === 'file') {
        const r = await this.copyContent(key, src, tmp, entry);
        if (!r) return;
        st = r;
      } else if (e.type === 'symlink') {
        symlinkSync(readlinkSync(src, { encoding: 'buffer' }), tmp);
        await this.meta.apply(tmp, entry, this.shown(key));
      } else {
        const kind = e.type === 'fifo' ? C.S_IFIFO : e.type === 'chardev' ? C.S_IFCHR : C.S_IFBLK;
        if (!this.plat.mknod(tmp, kind | (entry.mode & 0o777), e.st.rdev)) {
          this.warn(this.shown(key), `${this.shown(key)} is a ${e.type === 'fifo' ? 'FIFO' : 'device node'}, which this installation cannot create (${this.plat.missing ?? 'not supported'}).`);
          return;
        }
        await this.meta.apply(tmp, entry, this.shown(key));
      }
      const d = lstatSync(tmp, { bigint: true });
      this.record.set(key, { ...this.madeFrom(st, e.type, d), ...(old ? { as: old.ds, am: old.dm } : {}) });
      if (old) await this.keepVersion(key, true);
      await fsp.rename(tmp, this.dstPath(key));
      placed = true;
      this.linkable(key, e);
      this.markDirty(parentKey(key));
      this.s.copied++;
    } finally {
      if (!placed) await fsp.rm(tmp, { force: true }).catch(() => undefined);
    }
  }

  /** Notes a hard-linked file whose copy is up to date, for its other names (linkCopy). */
  private linkable(key: string, e: Seen): void {
    if (e.type !== 'file' || e.st.nlink < 2n) return;
    const id = `${e.st.dev}:${e.st.ino}`;
    if (!this.linked.has(id)) this.linked.set(id, key);
  }

  /**
   * Another name of a hard-linked file whose copy this run has made or found up to date: `tmp`
   * becomes a hard link of that copy (as restore does). False when there is none, or DST cannot
   * link; then the file is copied.
   */
  private async linkCopy(e: Seen, tmp: Buffer): Promise<boolean> {
    if (e.st.nlink < 2n) return false;
    const other = this.linked.get(`${e.st.dev}:${e.st.ino}`);
    if (other === undefined) return false;
    const m = this.record.made.get(other);
    if (!m || !this.sameSource(m, e.st) || this.made(m, lstatOrUndefined(this.dstPath(other))) !== 'current') return false;
    try {
      await fsp.link(this.dstPath(other), tmp);
      return true;
    } catch (err) {
      if (NO_LINK.has(errnoCode(err) ?? '')) return false;
      throw err;
    }
  }

  /**
   * The file's bytes into `tmp`, with its metadata; returns the source's stat as read (undefined:
   * it vanished). Files are copied one at a time, so the calls are made directly (a thread-pool
   * round trip per call costs more than the call); a large file is read and written through the
   * pool, so that the process stays responsive (a signal, the watcher) meanwhile.
   */
  private async copyContent(key: string, src: Buffer, tmp: Buffer, entry: TreeEntry): Promise<BigIntStats | undefined> {
    let input: number;
    try {
      try {
        input = openSync(src, C.O_RDONLY | C.O_NOFOLLOW | (C.O_NOATIME ?? 0));
      } catch (err) {
        if (errnoCode(err) !== 'EPERM') throw err;
        input = openSync(src, C.O_RDONLY | C.O_NOFOLLOW); // O_NOATIME needs ownership
      }
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ELOOP') return undefined; // gone or replaced: seen next run
      throw err;
    }
    try {
      const st = fstatSync(input, { bigint: true });
      if (!st.isFile()) return undefined;
      // The times as they were when the copy was made: a file changed meanwhile is copied again next run.
      const e = { ...entry, mtime: st.mtimeNs, atime: st.atimeNs };
      const size = Number(st.size);
      const small = size <= READ_SIZE;
      // A sparse file (fewer blocks than bytes) is copied where it holds data; its holes stay holes.
      const holes = st.blocks * 512n < st.size ? (this.plat.holes(input, size) ?? []) : [];
      const out = openSync(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
      const buf = this.buffer;
      try {
        for (let h = 0, start = 0; start < size; h += 2) {
          const end = h < holes.length ? holes[h]! : size;
          for (let pos = start; pos < end; ) {
            if (!small) this.o.signal?.throwIfAborted();
            const want = Math.min(READ_SIZE, end - pos);
            const n = small ? readSync(input, buf, 0, want, pos) : (await readAt(input, buf, 0, want, pos)).bytesRead;
            if (n === 0) break; // shorter than it was: copied as read, and again next run (its mtime moved)
            for (let w = 0; w < n; ) w += small ? writeSync(out, buf, w, n - w, pos + w) : (await writeAt(out, buf, w, n - w, pos + w)).bytesWritten;
            pos += n;
            this.s.bytesCopied += n;
            if (!small) this.progress();
          }
          start = h < holes.length ? holes[h]! + holes[h + 1]! : size;
        }
        if (holes.length > 0) ftruncateSync(out, size);
        this.meta.ownerAndModeSync(out, e, this.shown(key));
      } finally {
        closeSync(out);
      }
      await this.meta.xattrsAndTimes(tmp, e, this.shown(key));
      return st;
    } finally {
      closeSync(input);
    }
  }

  /** Recorded folders gone from SRC: removed when empty (what else is in them stays), deepest first. */
  async removeGoneDirs(): Promise<void> {
    const gone = [...this.gone].filter((key) => this.record.made.get(key)?.t === 'dir');
    gone.sort((a, b) => depth(b) - depth(a));
    for (const key of gone) {
      try {
        if (!this.dstDir(parentKey(key))) continue;
        const d = lstatOrUndefined(this.dstPath(key));
        if (d?.isDirectory()) {
          try {
            await fsp.rmdir(this.dstPath(key));
          } catch (e) {
            if (errnoCode(e) === 'ENOTEMPTY' || errnoCode(e) === 'EEXIST') continue;
            throw e;
          }
          this.s.dirsRemoved++;
          this.markDirty(parentKey(key));
        }
        this.record.delete(key);
      } catch (e) {
        this.fail(key, e, 'removed from the mirror');
      }
    }
  }

  /** Folder metadata, deepest first, so that the times are the last change to each. */
  async folderMetadata(): Promise<void> {
    const dirs = [...this.dirty].filter((k) => this.seen.get(k)?.type === 'dir' && this.dstDirs.has(k));
    dirs.sort((a, b) => depth(b) - depth(a));
    for (const key of dirs) {
      const e = this.seen.get(key)!;
      try {
        await this.meta.apply(this.dstPath(key), this.entry(key, e), this.shown(key));
        this.record.set(key, this.madeFrom(e.st, 'dir', undefined));
      } catch (err) {
        this.fail(key, err, 'given its metadata');
      }
    }
  }

  /** Removes version folders older than keepDays (named by their time; anything else there is left). */
  async expireVersions(): Promise<void> {
    const keepDays = this.o.keepDays ?? DEFAULT_KEEP_DAYS;
    const base = Buffer.concat([this.dst, SLASH, VERSIONS_NAME]);
    let names: string[];
    try {
      names = await fsp.readdir(base);
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return;
      throw e;
    }
    const limit = this.clock.now() - keepDays * 86_400_000;
    for (const name of names) {
      const m = VERSION_DIR.exec(name);
      if (!m) continue;
      const t = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
      if (keepDays > 0 ? t >= limit : t > limit) continue;
      const dir = Buffer.concat([base, SLASH, Buffer.from(name)]);
      await fsp.rm(dir, { recursive: true, force: true }).catch((e: unknown) => (errnoCode(e) === 'ENAMETOOLONG' ? removeDeep(this.plat, dir) : Promise.reject(e)));
      this.s.versionsExpired++;
    }
  }

  async run(): Promise<void> {
    this.walk();
    const held = this.record.children.get('')?.size ?? 0;
    if (this.listed.has('') && this.seen.size === 1 && held > 0 && !this.o.allowEmptySource) {
      throw new LifeboatError('conflict', `${this.src.toString('utf8')} is empty, but the mirror holds ${held} entries from it; nothing was changed. If its drive is not connected, connect it; if you emptied it on purpose, mirror it with --allow-empty-source (what the mirror holds then goes into ${MIRROR_VERSIONS}).`);
    }
    this.goneEntries();
    const renames = this.findRenames();
    await this.retireGone(new Set(renames.values()));
    await this.place(renames);
    await this.removeGoneDirs();
    this.markDirty('');
    await this.folderMetadata();
    await this.expireVersions();
    this.progress(true);
  }
}

/** Removes the folder `path` and everything in it, however deep (each folder reached through its parent's descriptor). */
function removeDeep(plat: Platform, path: Buffer): void {
  const h = plat.dirAccessSync(path);
  try {
    for (const name of readdirSync(h.base, { encoding: 'buffer' })) {
      const p = Buffer.concat([h.base, SLASH, name]);
      if (lstatSync(p).isDirectory()) removeDeep(plat, p);
      else unlinkSync(p);
    }
  } finally {
    h.close();
  }
  rmdirSync(path);
}

/** Checks SRC and DST and makes DST when needed; returns both as absolute, resolved paths. */
async function openPaths(src: string, dst: string): Promise<{ src: string; dst: string }> {
  let srcReal: string;
  try {
    srcReal = await fsp.realpath(src);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') throw new LifeboatError('not-found', `${src} does not exist; check the folder to mirror.`);
    throw new LifeboatError('io', `${src} could not be opened (${errnoCode(e) ?? String(e)}).`);
  }
  if (!(await fsp.stat(srcReal)).isDirectory()) throw new LifeboatError('usage', `${src} is not a folder; the mirror copies a folder into another one.`);
  try {
    await fsp.mkdir(dst, { recursive: true });
  } catch (e) {
    throw new LifeboatError(errnoCode(e) === 'ENOSPC' ? 'no-space' : 'io', `The mirror folder ${dst} could not be created (${errnoCode(e) ?? String(e)}); check the path and that you may write there.`);
  }
  const dstReal = await fsp.realpath(dst);
  if (!(await fsp.stat(dstReal)).isDirectory()) throw new LifeboatError('usage', `${dst} is not a folder.`);
  const inside = (a: string, b: string) => a === b || a.startsWith(b.endsWith('/') ? b : b + '/');
  if (inside(dstReal, srcReal) || inside(srcReal, dstReal)) throw new LifeboatError('usage', `The mirror ${dst} and the folder ${src} must not be inside one another; choose a mirror folder elsewhere (on another drive ideally).`);
  return { src: srcReal, dst: dstReal };
}

export interface MirrorResult {
  readonly src: string;
  readonly dst: string;
  readonly summary: MirrorSummary;
}

/**
 * A mirror from SRC into DST held open between runs (the watcher's): DST locked, the record in
 * memory, and the manifest rewritten only when the journal has grown, so a run over a few changed
 * folders costs what they hold.
 */
export class MirrorSession {
  private constructor(
    readonly src: string,
    readonly dst: string,
    private readonly record: MirrorRecord,
    private readonly tmpDir: Buffer,
    private readonly unlock: () => void,
    private readonly o: MirrorOptions,
  ) {}

  static async open(src: string, dst: string, o: MirrorOptions = {}): Promise<MirrorSession> {
    const paths = await openPaths(src, dst);
    const stateDir = Buffer.from(`${paths.dst}/${MIRROR_STATE}`);
    await fsp.mkdir(stateDir, { recursive: true });
    const unlock = takeLock(stateDir, paths.dst);
    try {
      const tmpDir = Buffer.concat([stateDir, Buffer.from('/tmp')]);
      await fsp.rm(tmpDir, { recursive: true, force: true }); // a killed run's temporaries
      await fsp.mkdir(tmpDir);
      const record = new MirrorRecord(stateDir);
      record.load();
      return new MirrorSession(paths.src, paths.dst, record, tmpDir, unlock, o);
    } catch (e) {
      unlock();
      throw e;
    }
  }

  /** One run: everything, or the folders of SRC in `changed` (see MirrorOptions.changed). */
  async run(changed: readonly Buffer[] | undefined = this.o.changed): Promise<MirrorResult> {
    const started = performance.now();
    const { changed: _, ...rest } = this.o;
    const m = new Mirror(Buffer.from(this.src), Buffer.from(this.dst), this.record, this.tmpDir, { ...rest, ...(changed ? { changed } : {}) });
    try {
      await m.run();
    } finally {
      m.closeHandles();
      if (this.record.journalLines > Math.max(10_000, this.record.made.size / 2)) this.record.save();
    }
    m.s.durationSeconds = Math.round((performance.now() - started) / 10) / 100;
    return { src: this.src, dst: this.dst, summary: m.s };
  }

  /** Writes the manifest and releases DST. */
  close(): void {
    try {
      this.record.save();
    } finally {
      this.record.close();
      this.unlock();
    }
  }
}

/** Brings DST up to date with SRC once (see the module comment). */
export async function mirror(src: string, dst: string, o: MirrorOptions = {}): Promise<MirrorResult> {
  const session = await MirrorSession.open(src, dst, o);
  try {
    return await session.run();
  } finally {
    session.close();
  }
}
