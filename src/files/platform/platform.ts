/**
 * The operating-system calls Node lacks, behind one small interface: extended attributes,
 * mknod, nanosecond timestamps that do not follow symlinks, sparse-hole discovery, and user and
 * group names. On Linux the optional native addon (native/lifeboat_fs.c, built by `npm ci`)
 * provides them; without it `exact` is false and the portable fallbacks lose what Node cannot do
 * (the caller warns once).
 */
import { createRequire } from 'node:module';
import { constants, readFileSync } from 'node:fs';
import { lutimes, open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

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
  userName(uid: number): string | undefined;
  groupName(gid: number): string | undefined;
  /**
   * A short path that reaches the folder `path` (which must not be a symlink), valid until
   * close(): Linux uses /proc/self/fd/N of an open descriptor, so that paths below it stay under
   * PATH_MAX however deep the folder is.
   */
  dirAccess(path: Buffer): Promise<DirAccess>;
}

export interface DirAccess {
  readonly base: Buffer;
  close(): Promise<void>;
}

interface Addon {
  llistxattr(path: Buffer): Buffer;
  lgetxattr(path: Buffer, name: Buffer): Buffer;
  lsetxattr(path: Buffer, name: Buffer, value: Buffer): void;
  mknod(path: Buffer, mode: number, rdev: bigint): void;
  lutimens(path: Buffer, atimeNs: bigint, mtimeNs: bigint): void;
  holes(fd: number, size: number): Float64Array;
}

function loadAddon(): Addon | undefined {
  if (process.env['LIFEBOAT_NO_NATIVE'] === '1') return undefined;
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  try {
    return createRequire(import.meta.url)(join(root, 'build', 'Release', 'lifeboat_fs.node')) as Addon;
  } catch {
    return undefined;
  }
}

function readNames(file: string): Map<number, string> {
  const m = new Map<number, string>();
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const f = line.split(':');
      const id = Number(f[2]);
      if (f[0] && Number.isInteger(id) && !m.has(id)) m.set(id, f[0]);
    }
  } catch {
    // no such database (not Linux, or a minimal container): names stay unknown
  }
  return m;
}

const NOT_SUPPORTED = new Set(['ENOTSUP', 'EOPNOTSUPP', 'ENODATA', 'EUNKNOWN', 'EPERM']);

class LinuxPlatform implements Platform {
  readonly exact: boolean;
  readonly missing?: string;
  private users: Map<number, string> | undefined;
  private groups: Map<number, string> | undefined;

  constructor(private readonly addon: Addon | undefined) {
    this.exact = addon !== undefined;
    if (!addon) this.missing = 'the native addon (build/Release/lifeboat_fs.node) is not built; extended attributes, FIFOs, device nodes, sparse holes and nanosecond times will not be exact (run "npm ci" with a C compiler installed)';
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

  userName(uid: number): string | undefined {
    this.users ??= readNames('/etc/passwd');
    return this.users.get(uid);
  }

  groupName(gid: number): string | undefined {
    this.groups ??= readNames('/etc/group');
    return this.groups.get(gid);
  }
}

let current: Platform | undefined;

/** The platform of this machine (loaded once). */
export function platform(): Platform {
  current ??= new LinuxPlatform(process.platform === 'linux' ? loadAddon() : undefined);
  return current;
}

/** The portable fallback, for tests of behaviour without the addon. */
export function portablePlatform(): Platform {
  return new LinuxPlatform(undefined);
}
