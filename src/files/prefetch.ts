/**
 * Metadata read ahead while the repository opens. Opening costs a key derivation (~0.4 s of scrypt
 * on a thread-pool thread) plus index loading, and a backup in which nothing changed costs little
 * more than its lstat and readdir calls; doing those calls on the main thread meanwhile keeps both
 * cores busy. The walk later takes each answer once (and forgets it), falling back to asking the
 * file system for anything not read ahead. Stats read ahead are at most a second or two old; a
 * file changed in between is caught as "changed while read" when it is read, as always.
 *
 * Owns nothing else: imports only node:fs and the path matcher.
 */
import { constants as C, lstatSync, readdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { PathMatcher } from './pattern.js';
import type { FileMeta } from './backup.js';

/** Entries kept at most (about 200 bytes each: the stats live in one typed array). */
const BUDGET = 65536;
/** Main-thread time per slice before yielding to the event loop (so the key derivation's answer is seen). */
const SLICE_MS = 4;
/** Deep paths are walked through handles by the backup; not read ahead. */
const MAX_PATH = 1024;

export interface PrefetchOptions {
  readonly excludes: PathMatcher;
  readonly oneFileSystem: boolean;
  readonly budget?: number;
}

export class MetadataPrefetch {
  /** Path (latin1) → slot in `fields`. */
  private readonly stats = new Map<string, number>();
  private fields = new BigInt64Array(1024 * FIELDS);
  private used = 0;
  private readonly listings = new Map<string, Buffer[]>();
  /** Folders still to list, depth first in name order (the walk's own order). */
  private readonly todo: { path: Buffer; dev: bigint }[] = [];
  private readonly budget: number;
  private stopped = false;
  private timer: NodeJS.Immediate | undefined;

  constructor(roots: readonly string[], private readonly opts: PrefetchOptions) {
    this.budget = opts.budget ?? BUDGET;
    for (const r of [...roots].reverse()) {
      const path = Buffer.from(r);
      const st = this.stat(path);
      if (st?.dir) this.todo.push({ path, dev: st.dev });
    }
    this.timer = setImmediate(() => this.slice());
  }

  /** Stops reading ahead (what was read stays available). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearImmediate(this.timer);
    this.timer = undefined;
  }

  /** The stats read ahead for `path`, once. */
  takeStat(path: Buffer): FileMeta | undefined {
    const k = path.toString('latin1');
    const slot = this.stats.get(k);
    if (slot === undefined) return undefined;
    this.stats.delete(k);
    return new Meta(this.fields.subarray(slot * FIELDS, slot * FIELDS + FIELDS));
  }

  /** The names read ahead in folder `path`, once. */
  takeListing(path: Buffer): Buffer[] | undefined {
    const k = path.toString('latin1');
    const names = this.listings.get(k);
    if (names) this.listings.delete(k);
    return names;
  }

  /** Entries read ahead so far. */
  get count(): number {
    return this.used;
  }

  /** lstat, kept; returns [is a folder, device] or undefined when it failed. */
  private stat(path: Buffer): { dir: boolean; dev: bigint } | undefined {
    let st;
    try {
      st = lstatSync(path, { bigint: true });
    } catch {
      return undefined; // the walk asks again and reports it
    }
    if ((this.used + 1) * FIELDS > this.fields.length) {
      const bigger = new BigInt64Array(this.fields.length * 2);
      bigger.set(this.fields);
      this.fields = bigger;
    }
    const slot = this.used++;
    this.fields.set([st.mode, st.dev, st.ino, st.nlink, st.uid, st.gid, st.rdev, st.size, st.atimeNs, st.mtimeNs, st.ctimeNs], slot * FIELDS);
    this.stats.set(path.toString('latin1'), slot);
    return { dir: st.isDirectory(), dev: st.dev };
  }

  private slice(): void {
    this.timer = undefined;
    const end = performance.now() + SLICE_MS;
    while (!this.stopped && this.todo.length > 0 && this.used < this.budget && performance.now() < end) this.list(this.todo.pop()!);
    if (!this.stopped && this.todo.length > 0 && this.used < this.budget) this.timer = setImmediate(() => this.slice());
  }

  private list(dir: { path: Buffer; dev: bigint }): void {
    let names: Buffer[];
    try {
      names = readdirSync(dir.path, { encoding: 'buffer' });
    } catch {
      return;
    }
    names.sort((a, b) => Buffer.compare(a, b));
    this.listings.set(dir.path.toString('latin1'), names);
    const base = dir.path[dir.path.length - 1] === 0x2f ? dir.path : Buffer.concat([dir.path, SLASH]);
    const sub: { path: Buffer; dev: bigint }[] = [];
    for (const name of names) {
      const child = Buffer.concat([base, name]);
      if (!this.opts.excludes.empty && this.opts.excludes.matches(child.toString('utf8'))) continue;
      const st = this.stat(child);
      if (st?.dir && child.length < MAX_PATH && !(this.opts.oneFileSystem && st.dev !== dir.dev)) sub.push({ path: child, dev: dir.dev });
    }
    for (let i = sub.length - 1; i >= 0; i--) this.todo.push(sub[i]!);
  }
}

const SLASH = Buffer.from('/');
const FIELDS = 11;
const IFMT = BigInt(C.S_IFMT);
const type = (mode: bigint, t: number) => (mode & IFMT) === BigInt(t);

/** One read-ahead lstat answer: the fields the backup uses, over a slice of the typed array. */
class Meta implements FileMeta {
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
  constructor(f: BigInt64Array) {
    const v = (i: number): bigint => f[i]!;
    this.mode = v(0);
    this.dev = v(1);
    this.ino = v(2);
    this.nlink = v(3);
    this.uid = v(4);
    this.gid = v(5);
    this.rdev = v(6);
    this.size = v(7);
    this.atimeNs = v(8);
    this.mtimeNs = v(9);
    this.ctimeNs = v(10);
  }
  isFile(): boolean { return type(this.mode, C.S_IFREG); }
  isDirectory(): boolean { return type(this.mode, C.S_IFDIR); }
  isSymbolicLink(): boolean { return type(this.mode, C.S_IFLNK); }
  isFIFO(): boolean { return type(this.mode, C.S_IFIFO); }
  isCharacterDevice(): boolean { return type(this.mode, C.S_IFCHR); }
  isBlockDevice(): boolean { return type(this.mode, C.S_IFBLK); }
  isSocket(): boolean { return type(this.mode, C.S_IFSOCK); }
}
