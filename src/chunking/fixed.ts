/**
 * Fixed-size, offset-aligned chunking for drive images: chunk i always covers
 * [i × chunkSize, (i + 1) × chunkSize) of the drive, so a changed block changes exactly one chunk
 * and chunks of two images of the same drive line up for deduplication. (Module rules: see
 * fastcdc.ts.)
 */
import { LifeboatError } from '../util/errors.js';

export const DEFAULT_FIXED_CHUNK_SIZE = 1024 * 1024;

/** A span of a drive inside one aligned chunk. */
export interface FixedSpan {
  /** floor(offset / chunkSize): which aligned chunk this span belongs to. */
  readonly index: number;
  /** Absolute byte offset of the span's first byte. */
  readonly offset: number;
  readonly length: number;
}

export interface FixedChunk {
  readonly index: number;
  readonly offset: number;
  /** A fresh buffer that owns its memory exactly (byteOffset 0). */
  readonly bytes: Uint8Array;
}

export function checkChunkSize(chunkSize: number): void {
  if (!(Number.isSafeInteger(chunkSize) && chunkSize >= 512 && chunkSize <= 1 << 30 && (chunkSize & (chunkSize - 1)) === 0)) {
    throw new RangeError(`Fixed chunk size ${chunkSize} must be a power of two between 512 bytes and 1 GiB.`);
  }
}

function checkOffset(name: string, v: number): void {
  if (!(Number.isSafeInteger(v) && v >= 0)) throw new RangeError(`${name} ${v} must be a non-negative integer.`);
}

/**
 * Splits [start, end) at every multiple of chunkSize. The first and last spans are shorter when
 * start or end is not aligned; the others are whole chunks.
 */
export function* alignedSpans(start: number, end: number, chunkSize: number = DEFAULT_FIXED_CHUNK_SIZE): Generator<FixedSpan, void, undefined> {
  checkChunkSize(chunkSize);
  checkOffset('start', start);
  checkOffset('end', end);
  if (end < start) throw new RangeError(`Range end ${end} is before its start ${start}.`);
  let offset = start;
  while (offset < end) {
    const index = Math.floor(offset / chunkSize);
    const next = Math.min(end, (index + 1) * chunkSize);
    yield { index, offset, length: next - offset };
    offset = next;
  }
}

/**
 * Cuts a stream whose first byte sits at absolute offset `start` (default 0) into aligned chunks.
 * Every chunk but the first (when start is unaligned) and the last (at end of stream) is exactly
 * chunkSize bytes. Each chunk is copied into its own buffer as the bytes arrive, so the source may
 * reuse its buffers, and memory stays at one chunk plus one source buffer.
 */
export async function* fixedChunks(
  source: AsyncIterable<Uint8Array>,
  opts: { readonly chunkSize?: number; readonly start?: number } = {},
): AsyncGenerator<FixedChunk, void, undefined> {
  const chunkSize = opts.chunkSize ?? DEFAULT_FIXED_CHUNK_SIZE;
  checkChunkSize(chunkSize);
  let offset = opts.start ?? 0; // absolute offset of the current chunk's first byte
  checkOffset('start', offset);
  let cur = new Uint8Array(chunkSize - (offset % chunkSize));
  let fill = 0;
  for await (const piece of source) {
    let p = 0;
    while (p < piece.length) {
      const n = Math.min(cur.length - fill, piece.length - p);
      cur.set(piece.subarray(p, p + n), fill);
      fill += n;
      p += n;
      if (fill === cur.length) {
        yield { index: Math.floor(offset / chunkSize), offset, bytes: cur };
        offset += fill;
        cur = new Uint8Array(chunkSize);
        fill = 0;
      }
    }
  }
  if (fill > 0) yield { index: Math.floor(offset / chunkSize), offset, bytes: cur.slice(0, fill) };
}

/** Random-access reading, as a block device or image file offers it. */
export interface RangeReader {
  read(offset: number, length: number): Promise<Uint8Array>;
}

/**
 * Reads [start, end) of a random-access source one aligned span at a time and yields each as a
 * chunk. The reader must return exactly `length` bytes in a buffer it will not reuse.
 */
export async function* fixedChunksOfRange(
  reader: RangeReader,
  start: number,
  end: number,
  opts: { readonly chunkSize?: number; readonly signal?: AbortSignal } = {},
): AsyncGenerator<FixedChunk, void, undefined> {
  for (const span of alignedSpans(start, end, opts.chunkSize ?? DEFAULT_FIXED_CHUNK_SIZE)) {
    opts.signal?.throwIfAborted();
    const bytes = await reader.read(span.offset, span.length);
    if (bytes.length !== span.length) {
      throw new LifeboatError('io', `Reading ${span.length} bytes at offset ${span.offset} returned ${bytes.length}; the drive or image may have been cut short.`);
    }
    yield { index: span.index, offset: span.offset, bytes };
  }
}
