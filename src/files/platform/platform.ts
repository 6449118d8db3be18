/**
 * The operating-system calls Node lacks, behind one small interface: extended attributes,
 * mknod, nanosecond timestamps that do not follow symlinks, sparse-hole discovery, and user and
 * group names. On Linux the optional native addon (native/lifeboat_fs.c, built by `npm ci`)
 * provides them; without it `exact` is false and the portable fallbacks lose what Node cannot do
 * (the caller warns once).
 */
import { closeSync, constants, openSync, readFileSync } from 'node:fs';
import { lutimes, open } from 'node:fs/promises';
import { nativeAddon } from '../../util/native.js';

export interface Platform {
  /** True when every call below is exact (the addon is loaded). */
  readonly exact: boolean;
  /** Why the platform is not exact, for a one-time warning. */
  readonly missing?: string;
  /** Extended attributes of a path (not following symlinks), sorted by name; [] when none or unsupported. */
  listXattrs(path: Buffer): [string, Buffer][];
  setXattr(path: Buffer, name: string, value: Buffer): void;
  /** Creates a FIFO or device node; false when not supported here. */
  mknod(path: Buffer, mode: number, rdev: bigint): boolean;
  /** Sets atime and mtime (ns) of a path without following a symlink. */
  setTimes(path: Buffer, atimeNs: bigint, mtimeNs: bigint): Promise<void>;
  /** Holes of an open file as flat (offset, length) pairs; undefined when unknown. */
  holes(fd: number, size: number): number[] | undefined;
  /**
   * lstat of each of `names` in the folder `dir`, in one call: LSTAT_FIELDS values per name (errno
   * first: 0 when the row holds the name's stat, -1 when Node must be asked), as Node's bigint
   * lstat gives them; undefined when the platform has no such call (then lstat each path). With
   * `probeXattrs`, the last field also tells which names have no extended attributes.
   */
  lstatMany(dir: Buffer, names: readonly Buffer[], probeXattrs?: boolean): BigInt64Array | undefined;
  userName(uid: number): string | undefined;
  groupName(gid: number): string | undefined;
  /**
   * This machine's id of a user or group name (like getpwnam/getgrnam, but only the local
   * databases /etc/passwd and /etc/group, read once); undefined when the name is unknown here or
   * the platform has no such databases (everything but Linux).
   */
  userId(name: string): number | undefined;
  groupId(name: string): number | undefined;
  /**
   * A short path that reaches the folder `path` (which must not be a symlink), valid until
   * close(): Linux uses /proc/self/fd/N of an open descriptor, so that paths below it stay under
   * PATH_MAX however deep the folder is.
   */
  dirAccess(path: Buffer): Promise<DirAccess>;
  /** dirAccess for code that works with synchronous calls (the mirror). */
  dirAccessSync(path: Buffer): DirAccessSync;
}

export interface DirAccess {
  readonly base: Buffer;
  close(): Promise<void>;
}

export interface DirAccessSync {
  readonly base: Buffer;
  close(): void;
}

/**
 * lstatMany's row: errno, mode, dev, ino, nlink, uid, gid, rdev, size, atimeNs, mtimeNs, ctimeNs,
 * and, when asked to probe, 0 when the entry has no extended attributes (1: it may have some, or
 * it was not probed; ask listXattrs).
 */
export const LSTAT_FIELDS = 13;

interface Addon {
  lstatAt?(dir: Buffer, names: readonly Buffer[], probeXattrs: boolean): BigInt64Array;
  llistxattr(path: Buffer): Buffer;
  lgetxattr(path: Buffer, name: Buffer): Buffer;
  lsetxattr(path: Buffer, name: Buffer, value: Buffer): void;
  mknod(path: Buffer, mode: number, rdev: bigint): void;
  lutimens(path: Buffer, atimeNs: bigint, mtimeNs: bigint): void;
  holes(fd: number, size: number): Float64Array;
}

/** Both directions of one name database (/etc/passwd or /etc/group); the first line of a name or id wins, as with getpwnam. */
interface Names {
  readonly byId: Map<number, string>;
  readonly byName: Map<string, number>;
}

const DECIMAL_ID = /^[0-9]{1,10}$/;

function readNames(file: string): Names {
  const byId = new Map<number, string>();
  const byName = new Map<string, number>();
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // no such database (a minimal container): names stay unknown
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    const name = f[0];
    // NIS "+"/"-" lines and comments are not local entries.
    if (!name || name.startsWith('+') || name.startsWith('-') || name.startsWith('#') || f[2] === undefined || !DECIMAL_ID.test(f[2])) continue;
    const id = Number(f[2]);
    if (id > 0xffffffff) continue;
    if (!byId.has(id)) byId.set(id, name);
    if (!byName.has(name)) byName.set(name, id);
  }
  return { byId, byName };
}

const NOT_SUPPORTED = new Set(['ENOTSUP', 'EOPNOTSUPP', 'ENODATA', 'EUNKNOWN', 'EPERM']);

class LinuxPlatform implements Platform {
  readonly exact: boolean;
  readonly missing?: string;
  private users: Names | undefined;
  private groups: Names | undefined;

  /** `localNames`: whether /etc/passwd and /etc/group are this machine's user and group databases (Linux). */
  constructor(private readonly addon: Addon | undefined, private readonly localNames = process.platform === 'linux') {
    this.exact = addon !== undefined;
    if (!addon) this.missing = 'the native addon (build/Release/lifeboat_fs.node) is not built; extended attributes, FIFOs, device nodes, sparse holes and nanosecond times will not be exact (run "npm ci" with a C compiler installed)';
  }

  lstatMany(dir: Buffer, names: readonly Buffer[], probeXattrs = false): BigInt64Array | undefined {
    const rows = this.addon?.lstatAt?.(dir, names, probeXattrs);
    // An addon built before its rows had this many fields: lstat each path instead.
    return rows?.length === names.length * LSTAT_FIELDS ? rows : undefined;
  }

  listXattrs(path: Buffer): [string, Buffer][] {
    if (!this.addon) return [];
    let list: Buffer;
    try {
      list = this.addon.llistxattr(path);
    } catch (e) {
      if (NOT_SUPPORTED.has((e as { code?: string }).code ?? '')) return [];
      throw e;
    }
    const out: [string, Buffer][] = [];
    let start = 0;
    for (let i = 0; i < list.length; i++) {
      if (list[i] !== 0) continue;
      if (i > start) {
        const nameBytes = list.subarray(start, i);
        try {
          out.push([nameBytes.toString('utf8'), this.addon.lgetxattr(path, nameBytes)]);
        } catch (e) {
          if ((e as { code?: string }).code !== 'ENODATA') throw e; // removed meanwhile
        }
      }
      start = i + 1;
    }
    return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  setXattr(path: Buffer, name: string, value: Buffer): void {
    this.addon?.lsetxattr(path, Buffer.from(name, 'utf8'), value);
  }

  mknod(path: Buffer, mode: number, rdev: bigint): boolean {
    if (!this.addon) return false;
    this.addon.mknod(path, mode, rdev);
    return true;
  }

  async setTimes(path: Buffer, atimeNs: bigint, mtimeNs: bigint): Promise<void> {
    if (this.addon) return this.addon.lutimens(path, atimeNs, mtimeNs);
    await lutimes(path, Number(atimeNs) / 1e9, Number(mtimeNs) / 1e9);
  }

  holes(fd: number, size: number): number[] | undefined {
    if (!this.addon) return undefined;
    return Array.from(this.addon.holes(fd, size));
  }

  async dirAccess(path: Buffer): Promise<DirAccess> {
    const fh = await open(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    return { base: Buffer.from(`/proc/self/fd/${fh.fd}`), close: () => fh.close() };
  }

  dirAccessSync(path: Buffer): DirAccessSync {
    const fd = openSync(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    return { base: Buffer.from(`/proc/self/fd/${fd}`), close: () => closeSync(fd) };
  }

  userName(uid: number): string | undefined {
    this.users ??= readNames('/etc/passwd');
    return this.users.byId.get(uid);
  }

  groupName(gid: number): string | undefined {
    this.groups ??= readNames('/etc/group');
    return this.groups.byId.get(gid);
  }

  userId(name: string): number | undefined {
    if (!this.localNames) return undefined;
    this.users ??= readNames('/etc/passwd');
    return this.users.byName.get(name);
  }

  groupId(name: string): number | undefined {
    if (!this.localNames) return undefined;
    this.groups ??= readNames('/etc/group');
    return this.groups.byName.get(name);
  }
}

let current: Platform | undefined;

/** The platform of this machine (loaded once). */
export function platform(): Platform {
  current ??= new LinuxPlatform(nativeAddon<Addon>());
  return current;
}

/** The portable fallback, for tests of behaviour without the addon. */
export function portablePlatform(): Platform {
  return new LinuxPlatform(undefined);
}
