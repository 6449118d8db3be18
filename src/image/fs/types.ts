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
  constructor(filesystem: string, reason: string, opts: { unsupported?: boolean } = {}) {
    super(
      'corrupt',
      opts.unsupported
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
export function partitionReader(source: BlockSource, fsName: string, offset: number, size: number) {
  return async (rel: number, length: number): Promise<Uint8Array> => {
    if (!Number.isSafeInteger(rel) || !Number.isSafeInteger(length) || rel < 0 || length < 0 || rel + length > size) {
      throw new FilesystemError(fsName, `metadata points to bytes ${rel}–${rel + length}, outside the partition of ${size} bytes`);
    }
    return source.read(offset + rel, length);
  };
}
