/**
 * Image manifests (docs/FORMAT.md §11): what an image snapshot's root tree blob holds — the drive's
 * size and layout, and the chunk map: for each fixed-size, offset-aligned chunk of the drive, the
 * id of its data blob, or nothing when the chunk is free or all zeros (restored as zeros).
 */
import { LifeboatError, formatBytes } from '../util/errors.js';
import { isId, type Hex } from '../repo/ids.js';

/**
 * Chunk size of a new drive's first image (the images after it keep their parent's, so their
 * chunks compare). 1 MiB since 2026-12-06 (64 KiB before): zstd compresses a 1 MiB chunk 4-5%
 * smaller than sixteen 64 KiB ones, which put images 7% above restic's, and a 1 TB drive needs a
 * million index entries, not sixteen million. A changed block still costs little: a changed
 * chunk is stored as a delta of its changed 4 KiB blocks (imager.ts).
 */
export const IMAGE_CHUNK_SIZE = 1024 * 1024;
/** Chunks described by one map page blob (32768 × 1 MiB = 32 GiB of drive per page). */
export const CHUNKS_PER_PAGE = 32768;

export interface ImagePartition {
  readonly index: number;
  readonly start: number;
  readonly size: number;
  readonly type: string;
  readonly typeName: string;
  readonly name?: string;
  readonly filesystem?: string;
  readonly label?: string;
  readonly usedBytes: number;
  /**
   * 'allocation' when only the filesystem's allocated blocks were read; 'all' when every byte was;
   * 'excluded' when the partition was left out of the image (`image create --partitions`): none of
   * its bytes are in the image (usedBytes 0), its filesystem and label only describe what it held.
   */
  readonly method: 'allocation' | 'all' | 'excluded';
  readonly warning?: string;
}

/** A filesystem's name as people write it: "NTFS", "FAT32", "ext4". */
export function filesystemName(fs: string): string {
  return /^(ntfs|fat)/.test(fs) ? fs.toUpperCase() : fs;
}

/** "Partition 3 (NTFS 'Data', 600 GB)": a partition as a person recognises it. */
export function partitionText(p: ImagePartition): string {
  const fs = p.filesystem === undefined ? p.typeName : filesystemName(p.filesystem);
  return `Partition ${p.index} (${fs}${p.label ? ` '${p.label}'` : ''}, ${formatBytes(p.size)})`;
}

/** The partitions left out of an image (method 'excluded'), in table order. */
export function excludedPartitions(m: Pick<ImageManifest, 'partitions'>): ImagePartition[] {
  return m.partitions.filter((p) => p.method === 'excluded');
}

export interface ImageManifest {
  readonly version: 1;
  readonly kind: 'disk-image';
  readonly size: number;
  readonly chunkSize: number;
  readonly chunksPerPage: number;
  /** Ids (hex) of the map page blobs, in order; page i covers chunks [i*chunksPerPage, …). */
  readonly pages: readonly Hex[];
  readonly table: { readonly kind: 'mbr' | 'gpt' | 'none'; readonly id?: string; readonly [k: string]: unknown };
  readonly partitions: readonly ImagePartition[];
  /** Byte ranges that could not be read from the source (bad sectors); restored as zeros. */
  readonly unreadable: readonly { readonly start: number; readonly length: number }[];
  readonly source: { readonly path: string; readonly [k: string]: unknown };
  readonly bytesUsed: number;
}

const PAGE_MAGIC = Buffer.from('LBIM');

/** Page: "LBIM" ‖ u8 version ‖ u32 first chunk ‖ u32 count ‖ presence bitmap ‖ 32-byte ids of present chunks. */
export function encodePage(first: number, ids: readonly (Uint8Array | undefined)[]): Buffer {
  const count = ids.length;
  const present = ids.filter((x) => x !== undefined).length;
  const bitmapBytes = Math.ceil(count / 8);
  const b = Buffer.alloc(13 + bitmapBytes + present * 32);
  PAGE_MAGIC.copy(b, 0);
  b[4] = 1;
  b.writeUInt32LE(first, 5);
  b.writeUInt32LE(count, 9);
  let o = 13 + bitmapBytes;
  ids.forEach((id, i) => {
    if (!id) return;
    b[13 + (i >> 3)]! |= 1 << (i & 7);
    b.set(id, o);
    o += 32;
  });
  return b;
}

export function decodePage(b: Uint8Array, expectFirst: number, maxCount: number): { first: number; ids: (Buffer | undefined)[] } {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const bad = () => new LifeboatError('corrupt', 'A chunk map page of this image is damaged.');
  if (buf.length < 13 || !buf.subarray(0, 4).equals(PAGE_MAGIC) || buf[4] !== 1) throw bad();
  const first = buf.readUInt32LE(5);
  const count = buf.readUInt32LE(9);
  if (first !== expectFirst || count > maxCount) throw bad();
  const bitmapBytes = Math.ceil(count / 8);
  const ids: (Buffer | undefined)[] = new Array<Buffer | undefined>(count);
  let o = 13 + bitmapBytes;
  for (let i = 0; i < count; i++) {
    if ((buf[13 + (i >> 3)]! >> (i & 7)) & 1) {
      if (o + 32 > buf.length) throw bad();
      ids[i] = buf.subarray(o, o + 32);
      o += 32;
    }
  }
  if (o !== buf.length) throw bad();
  return { first, ids };
}

export function validateManifest(v: unknown): ImageManifest {
  const m = v as Partial<ImageManifest> | null;
  const ok =
    m !== null && typeof m === 'object' && m.version === 1 && m.kind === 'disk-image' &&
    Number.isSafeInteger(m.size) && m.size! >= 0 && Number.isSafeInteger(m.chunkSize) && m.chunkSize! >= 4096 && m.chunkSize! <= 64 * 1024 * 1024 &&
    Number.isSafeInteger(m.chunksPerPage) && m.chunksPerPage! > 0 && Array.isArray(m.pages) && m.pages.every((p) => typeof p === 'string' && isId(p)) &&
    m.pages.length === Math.ceil(Math.ceil(m.size! / m.chunkSize!) / m.chunksPerPage!) && Array.isArray(m.partitions);
  if (!ok) throw new LifeboatError('corrupt', 'The image manifest is damaged or of an unknown version.');
  return m as ImageManifest;
}
