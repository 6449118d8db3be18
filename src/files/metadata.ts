/**
 * An entry's metadata, read from lstat and written back onto a path: shared by the backup (which
 * reads it), the restorer and the mirror (which both write it). Writing order is the restorer's:
 * owner, mode, extended attributes, then the times, which must be the last change to an entry.
 */
import { chmodSync, fchmodSync, fchownSync, lchownSync, type BigIntStats } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { errnoCode } from '../util/errors.js';
import type { Platform } from './platform/platform.js';
import type { EntryType, FileAttributes, TreeEntry } from './tree.js';

/** The lstat fields an entry's metadata comes from. */
export type StatMeta = Pick<BigIntStats, 'mode' | 'dev' | 'ino' | 'nlink' | 'uid' | 'gid' | 'size' | 'atimeNs' | 'mtimeNs' | 'ctimeNs'>;

/** The metadata every entry has (no user or group names, extended attributes or content). */
/** What kind of entry a stat describes ('socket' is never backed up; undefined: a kind Lifeboat does not know). */
export function entryType(st: Pick<BigIntStats, 'isFile' | 'isDirectory' | 'isSymbolicLink' | 'isFIFO' | 'isCharacterDevice' | 'isBlockDevice' | 'isSocket'>): EntryType | 'socket' | undefined {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isCharacterDevice()) return 'chardev';
  if (st.isBlockDevice()) return 'blockdev';
  if (st.isSocket()) return 'socket';
  return undefined;
}

export function entryFromStat(name: Buffer, type: EntryType, st: StatMeta): TreeEntry {
  return {
    name,
    type,
    mode: Number(st.mode) & 0o7777,
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtime: st.mtimeNs,
    atime: st.atimeNs,
    ctime: st.ctimeNs,
    size: type === 'file' || type === 'symlink' ? Number(st.size) : 0,
    inode: st.ino,
    device: st.dev,
    nlink: Number(st.nlink),
  };
}

export interface MetadataWriterOptions {
  /**
   * As root, use the stored uid and gid as they are instead of looking up the stored user and
   * group names on this machine (see RestoreOptions.numericOwner).
   */
  readonly numericOwner?: boolean;
  /** A problem a person should know about that does not stop the work (one per kind for owners). */
  readonly warn: (path: string, message: string) => void;
}

/** Applies entries' metadata to paths; owner problems without root give one warning in all. */
export class MetadataWriter {
  private readonly isRoot = process.getuid?.() === 0;
  private chownWarned = false;

  constructor(readonly plat: Platform, private readonly o: MetadataWriterOptions) {}

  /**
   * The owner to give an entry: as root (unless numericOwner), the ids its stored user and group
   * names have on this machine, else the stored numbers.
   */
  owner(e: FileAttributes): { uid: number; gid: number } {
    if (!this.isRoot || this.o.numericOwner) return { uid: e.uid, gid: e.gid };
    const uid = e.user !== undefined ? this.plat.userId(e.user) : undefined;
    const gid = e.group !== undefined ? this.plat.groupId(e.group) : undefined;
    return { uid: uid ?? e.uid, gid: gid ?? e.gid };
  }

  /**
   * Ownership, mode, xattrs, then times; through `fh` when given (a file just written). `shown`
   * names it in messages. By path with synchronous calls, as ownerAndModeSync: a restore applies
   * this to every folder once it is complete.
   */
  async apply(path: Buffer, e: TreeEntry, shown: string, fh?: fsp.FileHandle): Promise<void> {
    try {
      const { uid, gid } = this.owner(e);
      if (fh) await fh.chown(uid, gid);
      else lchownSync(path, uid, gid);
    } catch (err) {
      this.chownRefused(err, shown);
    }
    if (e.type !== 'symlink') {
      if (fh) await fh.chmod(e.mode);
      else chmodSync(path, e.mode);
    }
    await this.xattrsAndTimes(path, e, shown);
  }

  /**
   * Owner and mode of a file just written, through its descriptor, with synchronous calls: for
   * thousands of small files a thread-pool round trip per call costs more than the calls
   * (bench/README.md). Then xattrsAndTimes, once the file is closed.
   */
  ownerAndModeSync(fd: number, e: TreeEntry, shown: string): void {
    try {
      const { uid, gid } = this.owner(e);
      fchownSync(fd, uid, gid);
    } catch (err) {
      this.chownRefused(err, shown);
    }
    fchmodSync(fd, e.mode);
  }

  /** Extended attributes (a failure is a warning), then the times: the last change to an entry. */
  async xattrsAndTimes(path: Buffer, e: TreeEntry, shown: string): Promise<void> {
    for (const [name, value] of e.xattrs ?? []) {
      try {
        this.plat.setXattr(path, name, value);
      } catch (err) {
        this.xattrRefused(shown, name, errnoCode(err) ?? String(err));
      }
    }
    await this.plat.setTimes(path, e.atime, e.mtime);
  }

  /** Not being root is fine (one warning); any other failure to set the owner is an error. */
  chownRefused(err: unknown, shown: string): void {
    if (this.isRoot || !['EPERM', 'EINVAL'].includes(errnoCode(err) ?? '')) throw err;
    if (!this.chownWarned) {
      this.chownWarned = true;
      this.o.warn(shown, 'Owners and groups are restored only when running as root; files belong to you instead.');
    }
  }

  xattrRefused(shown: string, name: string, why: string): void {
    this.o.warn(shown, `${shown}: the extended attribute ${name} could not be restored (${why}).`);
  }
}
