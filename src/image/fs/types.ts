/**
 * What every filesystem module of the image layer offers, and the error it throws when the
 * filesystem's own metadata cannot be trusted. The caller turns that error into "read every block
 * of this partition" with a warning: a damaged bitmap must never make Lifeboat skip a used block.
 */
import { LifeboatError } from '../../util/errors.js';
import type { ByteRange } from '../ranges.js';
import type { BlockSource } from '../source.js';

export type FilesystemType = 'ext2' | 'ext3' | 'ext4' | 'fat12' | 'fat16' | 'fat32' | 'ntfs';

export interface FilesystemInfo {
  readonly type: FilesystemType;
  readonly label?: string;
  readonly uuid?: string;
  /** Allocation unit: ext block, FAT/NTFS cluster. */
  readonly blockSize: number;
  /** Bytes the filesystem spans (may be less than its partition). */
  readonly totalBytes: number;
  /** Bytes in allocation units the filesystem marks as in use (what dumpe2fs, fsck.vfat and partclone count). */
  readonly usedBytes: number;
  readonly warnings: readonly string[];
}

export interface FilesystemAnalysis {
  readonly info: FilesystemInfo;
  /**
   * Byte ranges, relative to the partition start, sorted and merged, that must be read: every
   * allocated unit, the filesystem's fixed metadata, and anything of the partition beyond what the
   * filesystem declares (which the filesystem does not say is free).
   */
  readonly used: readonly ByteRange[];
}

/** Why a filesystem's allocation data cannot be used: damaged, inconsistent or an unsupported variant. */
export class FilesystemError extends LifeboatError {
  readonly filesystem: string;
  readonly reason: string;
  readonly unsupported: boolean;
  constructor(filesystem: string, reason: string, opts: { unsupported?: boolean; reading?: boolean } = {}) {
    super(
      'corrupt',
      opts.reading
        ? opts.unsupported
          ? `This ${filesystem} item uses a feature Lifeboat cannot read yet (${reason}).`
          : `The ${filesystem} filesystem in the image is damaged here (${reason}).`
        : opts.unsupported
        ? `The ${filesystem} filesystem uses a feature Lifeboat cannot read the allocation of (${reason}); every block of it will be read.`
        : `The ${filesystem} filesystem looks damaged (${reason}); every block of it will be read. Consider checking it with its repair tool.`,
    );
    this.name = 'FilesystemError';
    this.filesystem = filesystem;
    this.reason = reason;
    this.unsupported = opts.unsupported === true;
  }
}

export function isFilesystemError(e: unknown): e is FilesystemError {
  return e instanceof FilesystemError;
}

export interface FilesystemModule {
  readonly name: string;
  /** True when the partition holds this filesystem (signature check only; cheap). */
  detect(source: BlockSource, partitionOffset: number, partitionSize: number): Promise<boolean>;
  /** Reads the allocation data. Throws FilesystemError when it cannot be trusted. */
  analyze(source: BlockSource, partitionOffset: number, partitionSize: number): Promise<FilesystemAnalysis>;
}

/** Little helpers over DataView for on-disk little-endian fields. */
export function le(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

export function u64le(v: DataView, o: number): number {
  const lo = v.getUint32(o, true);
  const hi = v.getUint32(o + 4, true);
  return hi >= 0x200000 ? Number.MAX_SAFE_INTEGER : hi * 0x100000000 + lo;
}

export function ascii(b: Uint8Array, start: number, length: number): string {
  let s = '';
  for (let i = start; i < start + length && i < b.length; i++) s += String.fromCharCode(b[i]!);
  return s;
}

/** Reads within a partition, refusing (as damage) anything outside it. */
export function partitionReader(source: BlockSource, fsName: string, offset: number, size: number, reading = false) {
  return async (rel: number, length: number): Promise<Uint8Array> => {
    if (!Number.isSafeInteger(rel) || !Number.isSafeInteger(length) || rel < 0 || length < 0 || rel + length > size) {
      throw new FilesystemError(fsName, `metadata points to bytes ${rel}–${rel + length}, outside the partition of ${size} bytes`, { reading });
    }
    return source.read(offset + rel, length);
  };
}

// ------------------------------------------------------------------ read-only browsing

export type EntryType = 'file' | 'dir' | 'symlink' | 'other';

/** One name in a folder of a filesystem inside an image. Times are milliseconds since 1970 (fractional). */
export interface FsEntry {
  /** The name as text (invalid UTF-8 replaced), for display. */
  readonly name: string;
  /** The name's bytes as they will be written on restore (raw bytes on ext, UTF-8 elsewhere). */
  readonly nameBytes: Buffer;
  /** Opaque to callers: inode number (ext), MFT record number (NTFS), first cluster (FAT). */
  readonly ref: number;
  readonly type: EntryType;
  readonly size: number;
  /** Permission bits (and setuid/setgid/sticky); synthesised on FAT and NTFS. */
  readonly mode: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly mtime?: number;
  readonly atime?: number;
  readonly ctime?: number;
  readonly nlink?: number;
  /** NTFS alternate data streams (named $DATA attributes). */
  readonly streams?: readonly { readonly name: string; readonly size: number }[];
  /** Set when this entry's own metadata could not be read: why (the listing itself is fine). */
  readonly damaged?: string;
}

/** Random access to one file's bytes (or one of its streams). */
export interface FsFile {
  readonly size: number;
  /** Bytes [offset, offset + length) clipped to the size; a read past the end returns fewer bytes. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** The first offset ≥ `offset` that may hold non-zero bytes (`size` when none); lets a copy skip holes. */
  nextData?(offset: number): number;
}

/**
 * A filesystem opened read-only. Every method may throw FilesystemError for damage confined to
 * that file or folder; the reader stays usable for the others.
 */
export interface FilesystemReader {
  readonly type: FilesystemType;
  readonly label?: string;
  root(): Promise<FsEntry>;
  /** The entries of a folder, without "." and "..". */
  list(dir: FsEntry): Promise<FsEntry[]>;
  open(file: FsEntry, stream?: string): Promise<FsFile>;
  readlink(link: FsEntry): Promise<Buffer>;
}

export interface ReadableFilesystemModule extends FilesystemModule {
  /** Opens the filesystem for browsing. Throws FilesystemError when its superblock/boot sector is unusable. */
  open(source: BlockSource, partitionOffset: number, partitionSize: number): Promise<FilesystemReader>;
}

/** Limits that keep damaged or hostile metadata from costing unbounded time or memory. */
export const LIMITS = {
  /** Entries in one folder. */
  dirEntries: 1_000_000,
  /** Bytes of one folder's listing data. */
  dirBytes: 256 * 1024 * 1024,
  /** Extents/runs of one file. */
  extents: 1_000_000,
} as const;

/** A stretch of a file: `length` bytes at file offset `logical`, stored at partition byte `physical` (undefined: reads as zeros). */
export interface Extent {
  readonly logical: number;
  readonly length: number;
  readonly physical: number | undefined;
}

/**
 * A file over sorted, non-overlapping extents; gaps and bytes past `validSize` read as zeros.
 * `read` is the partition reader (bounds-checked).
 */
export function extentFile(extents: readonly Extent[], size: number, read: (rel: number, length: number) => Promise<Uint8Array>, validSize = size): FsFile {
  /** Index of the first extent ending after `offset` (binary search). */
  const firstAfter = (offset: number): number => {
    let lo = 0;
    let hi = extents.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const e = extents[mid]!;
      if (e.logical + e.length <= offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  return {
    size,
    nextData(offset) {
      for (let i = firstAfter(offset); i < extents.length; i++) {
        const e = extents[i]!;
        if (e.physical !== undefined) return Math.min(size, validSize, Math.max(offset, e.logical));
      }
      return size;
    },
    async read(offset, length) {
      const end = Math.min(size, offset + Math.max(0, length));
      if (offset >= end) return new Uint8Array(0);
      const out = new Uint8Array(end - offset);
      const lo = firstAfter(offset);
      const limit = Math.min(end, validSize);
      for (let i = lo; i < extents.length; i++) {
        const e = extents[i]!;
        if (e.logical >= limit) break;
        if (e.physical === undefined) continue;
        const s = Math.max(offset, e.logical);
        const t = Math.min(limit, e.logical + e.length);
        if (t <= s) continue;
        out.set(await read(e.physical + (s - e.logical), t - s), s - offset);
      }
      return out;
    },
  };
}

/** A file whose bytes are all in memory (inline or resident data). */
export function bufferFile(data: Uint8Array): FsFile {
  return {
    size: data.length,
    read: async (offset, length) => data.slice(Math.min(offset, data.length), Math.min(data.length, offset + Math.max(0, length))),
  };
}

/** Appends an extent, merging it with the previous one when contiguous on both sides. */
export function pushExtent(out: Extent[], logical: number, length: number, physical: number | undefined): void {
  const last = out[out.length - 1];
  if (last && last.logical + last.length === logical && (last.physical === undefined ? physical === undefined : physical === last.physical + last.length)) {
    out[out.length - 1] = { logical: last.logical, length: last.length + length, physical: last.physical };
    return;
  }
  if (out.length >= LIMITS.extents) throw new FilesystemError('filesystem', `a file with more than ${LIMITS.extents} fragments`, { reading: true });
  out.push({ logical, length, physical });
}
