/**
 * Delta blobs (docs/FORMAT.md §6): a chunk stored as the 4 KiB blocks in which it differs from a
 * base chunk that is stored in full. Pure encoding: no I/O, no crypto. The blob's id is the chunk id
 * of the whole reconstructed chunk, so whoever lists chunk ids (image manifests) does not know or
 * care that a chunk is stored as a delta; the repository rebuilds it on load and checks that id.
 *
 * Plaintext: u8 version (1) ‖ 32-byte base id ‖ u32 block size ‖ u32 chunk length ‖ bitmap of
 * ceil(ceil(length / block size) / 8) bytes (bit j of byte j>>3, least significant bit first, set
 * when block j differs from the base) ‖ the differing blocks in order (the last block of a chunk
 * whose length is not a multiple of the block size is shorter).
 */
import { LifeboatError } from '../util/errors.js';

export const DELTA_VERSION = 1;
/** The block size writers use: the filesystem block of ext4, NTFS and most FAT32 volumes. */
export const DELTA_BLOCK_SIZE = 4096;
const FIXED = 1 + 32 + 4 + 4;

export interface Delta {
  readonly base: Buffer;
  readonly blockSize: number;
  readonly length: number;
  /** Which blocks are in `blocks` (one bit per block). */
  readonly bitmap: Buffer;
  /** The differing blocks, back to back. */
  readonly blocks: Buffer;
}

function blockCount(length: number, blockSize: number): number {
  return Math.ceil(length / blockSize);
}

/**
 * The delta of `chunk` against `base` (same length), or undefined when more than
 * `maxChangedFraction` of its blocks differ (then a full blob is smaller or as good) or the lengths
 * differ.
 */
export function encodeDelta(baseId: Uint8Array, base: Uint8Array, chunk: Uint8Array, opts: { blockSize?: number; maxChangedFraction?: number } = {}): Buffer | undefined {
  const bs = opts.blockSize ?? DELTA_BLOCK_SIZE;
  if (baseId.length !== 32) throw new RangeError('A base id has 32 bytes.');
  if (base.length !== chunk.length || chunk.length === 0) return undefined;
  const n = blockCount(chunk.length, bs);
  const limit = Math.floor(n * (opts.maxChangedFraction ?? 0.5));
  const b = Buffer.from(base.buffer, base.byteOffset, base.byteLength);
  const c = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  const changed: number[] = [];
  for (let j = 0; j < n; j++) {
    const s = j * bs;
    const e = Math.min(c.length, s + bs);
    if (c.compare(b, s, e, s, e) !== 0) {
      changed.push(j);
      if (changed.length > limit) return undefined;
    }
  }
  const bitmapBytes = Math.ceil(n / 8);
  let dataBytes = 0;
  for (const j of changed) dataBytes += Math.min(c.length, (j + 1) * bs) - j * bs;
  const out = Buffer.alloc(FIXED + bitmapBytes + dataBytes);
  out[0] = DELTA_VERSION;
  out.set(baseId, 1);
  out.writeUInt32LE(bs, 33);
  out.writeUInt32LE(c.length, 37);
  let o = FIXED + bitmapBytes;
  for (const j of changed) {
    out[FIXED + (j >> 3)]! |= 1 << (j & 7);
    const s = j * bs;
    const e = Math.min(c.length, s + bs);
    c.copy(out, o, s, e);
    o += e - s;
  }
  return out;
}

/** Parses a delta's plaintext; `what` names it in the error when the structure is inconsistent. */
export function parseDelta(plain: Uint8Array, what: string): Delta {
  const b = Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength);
  const bad = (why: string) => new LifeboatError('corrupt', `${what} is damaged (${why}).`);
  if (b.length < FIXED) throw bad('its change list is truncated');
  if (b[0] !== DELTA_VERSION) throw new LifeboatError('unsupported-version', `${what} is stored as changes of version ${b[0]}, which this Lifeboat cannot read. Update Lifeboat.`);
  const blockSize = b.readUInt32LE(33);
  const length = b.readUInt32LE(37);
  if (blockSize < 512 || blockSize > 1 << 20 || (blockSize & (blockSize - 1)) !== 0 || length === 0) throw bad('its change list has an impossible block size or length');
  const n = blockCount(length, blockSize);
  const bitmapBytes = Math.ceil(n / 8);
  if (b.length < FIXED + bitmapBytes) throw bad('its change list is truncated');
  const bitmap = b.subarray(FIXED, FIXED + bitmapBytes);
  let dataBytes = 0;
  for (let j = 0; j < n; j++) if ((bitmap[j >> 3]! >> (j & 7)) & 1) dataBytes += Math.min(length, (j + 1) * blockSize) - j * blockSize;
  if (n % 8 !== 0 && bitmap[bitmapBytes - 1]! >> (n % 8) !== 0) throw bad('its change list marks blocks past the end of the chunk');
  if (b.length !== FIXED + bitmapBytes + dataBytes) throw bad('its change list and its blocks disagree in length');
  return { base: b.subarray(1, 33), blockSize, length, bitmap, blocks: b.subarray(FIXED + bitmapBytes) };
}

/** The chunk a delta describes: the base with the delta's blocks written over it. */
export function applyDelta(d: Delta, base: Uint8Array, what: string): Buffer {
  if (base.length !== d.length) {
    throw new LifeboatError('corrupt', `${what} is stored as changes to a block of ${base.length} bytes, but describes ${d.length} bytes; the repository is damaged.`);
  }
  const out = Buffer.from(base); // a copy: the base may be cached or shared by the caller
  const n = blockCount(d.length, d.blockSize);
  let o = 0;
  for (let j = 0; j < n; j++) {
    if (!((d.bitmap[j >> 3]! >> (j & 7)) & 1)) continue;
    const s = j * d.blockSize;
    const len = Math.min(d.length, s + d.blockSize) - s;
    d.blocks.copy(out, s, o, o + len);
    o += len;
  }
  return out;
}

/** How many blocks a delta carries (for statistics and tests). */
export function changedBlocks(d: Delta): number {
  let c = 0;
  for (const x of d.bitmap) for (let v = x; v !== 0; v &= v - 1) c++;
  return c;
}
