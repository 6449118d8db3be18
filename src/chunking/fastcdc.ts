/**
 * chunking — cutting byte streams into chunks: FastCDC (content-defined) for files, fixed-size
 * offset-aligned chunks for drive images (fixed.ts). May import only src/util. Invariant: the
 * defaults of this file are the frozen format `fastcdc-lb1` (docs/FORMAT.md §5); the same bytes
 * always give the same cut points however the stream is split into buffers, or deduplication
 * across snapshots silently stops working.
 */

/** Seed of the splitmix32 generator that fills GEAR ("LIFE" in ASCII). Frozen format constant. */
export const GEAR_SEED = 0x4c494645;
/** Frozen `fastcdc-lb1` sizes. */
export const MIN_SIZE = 512 * 1024;
export const AVG_SIZE = 1024 * 1024;
export const MAX_SIZE = 8 * 1024 * 1024;
/** Normalized chunking level 2: 2 bits more than log2(avg) before the normal point, 2 fewer after. */
export const NORMALIZATION = 2;
/** Top 22 bits: the mask used before the normal point (`~0 << (32 - 22)` as an unsigned value). */
export const MASK_S = 0xfffffc00;
/** Top 18 bits: the mask used from the normal point on (`~0 << (32 - 18)`). */
export const MASK_L = 0xffffc000;

export interface ChunkParams {
  /** No chunk is shorter, except the last one of a stream. */
  readonly min: number;
  /** The normal point; a power of two that also sets the masks. */
  readonly avg: number;
  /** A chunk is cut here when no hash matched before. */
  readonly max: number;
}

export const DEFAULT_PARAMS: ChunkParams = Object.freeze({ min: MIN_SIZE, avg: AVG_SIZE, max: MAX_SIZE });

/**
 * splitmix32 (Weyl step 0x9e3779b9, then the murmur3 32-bit finaliser), written out here because
 * the gear table is part of the format and a reader in another language must reproduce it:
 *   s = s + 0x9e3779b9 (mod 2^32); z = s;
 *   z = (z ^ z >>> 16) * 0x85ebca6b; z = (z ^ z >>> 13) * 0xc2b2ae35; out = z ^ z >>> 16  (all mod 2^32)
 */
function splitmix32Table(seed: number, n: number): Uint32Array {
  const out = new Uint32Array(n);
  let s = seed | 0;
  for (let i = 0; i < n; i++) {
    s = (s + 0x9e3779b9) | 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    out[i] = (z ^ (z >>> 16)) >>> 0;
  }
  return out;
}

const GEAR_U32 = splitmix32Table(GEAR_SEED, 256);
// The hot loop works in int32 (`| 0`) arithmetic, which V8 keeps in registers without boxing.
const GEAR = new Int32Array(GEAR_U32.buffer);

/** A copy of the frozen 256-entry gear table (unsigned values), for docs and tests. */
export function gearTable(): Uint32Array {
  return GEAR_U32.slice();
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Masks for normalized chunking level 2, derived from avg; (1 MiB) gives exactly MASK_S, MASK_L. */
export function masksFor(avg: number): { maskS: number; maskL: number } {
  const bits = Math.log2(avg);
  const s = bits + NORMALIZATION;
  const l = bits - NORMALIZATION;
  return { maskS: (~0 << (32 - s)) >>> 0, maskL: (~0 << (32 - l)) >>> 0 };
}

function checkParams(p: ChunkParams): void {
  const { min, avg, max } = p;
  const ok =
    Number.isSafeInteger(min) && Number.isSafeInteger(avg) && Number.isSafeInteger(max) &&
    min >= 0 && min <= avg && avg <= max && max <= 1 << 30 &&
    avg >= 64 && (avg & (avg - 1)) === 0;
  if (!ok) throw new RangeError(`Invalid chunker parameters min=${min} avg=${avg} max=${max}: need 0 <= min <= avg <= max <= 1 GiB and avg a power of two >= 64.`);
}

// The hash carried in and out of scan(): a module-level variable lets the inner loop keep `h` in
// a register and spill it once, instead of returning a pair or writing a field per byte.
let H = 0;

/**
 * Gear-hashes u8[i..end) continuing from H; returns the index just after the first byte whose
 * hash matches the mask (a cut), or -1. Indices are absolute in the ArrayBuffer that both views
 * cover, so the 4-byte loads are aligned whatever the caller's byteOffset.
 */
function scan(u8: Uint8Array, w32: Uint32Array, gear: Int32Array, i: number, end: number, mask: number): number {
  let h = H;
  while (i < end && (i & 3) !== 0) {
    h = ((h << 1) + gear[u8[i]!]!) | 0;
    i++;
    if ((h & mask) === 0) { H = h; return i; }
  }
  const endW = end - (end & 3);
  let wi = (i - (i & 3)) / 4;
  for (; i < endW; i += 4) {
    const w = w32[wi++]!; // little-endian: byte i is the low byte
    h = ((h << 1) + gear[w & 255]!) | 0;
    if ((h & mask) === 0) { H = h; return i + 1; }
    h = ((h << 1) + gear[(w >>> 8) & 255]!) | 0;
    if ((h & mask) === 0) { H = h; return i + 2; }
    h = ((h << 1) + gear[(w >>> 16) & 255]!) | 0;
    if ((h & mask) === 0) { H = h; return i + 3; }
    h = ((h << 1) + gear[w >>> 24]!) | 0;
    if ((h & mask) === 0) { H = h; return i + 4; }
  }
  while (i < end) {
    h = ((h << 1) + gear[u8[i]!]!) | 0;
    i++;
    if ((h & mask) === 0) { H = h; return i; }
  }
  H = h;
  return -1;
}

/** Byte-at-a-time variant for big-endian hosts, where the word loads would reorder bytes. */
function scanBytes(u8: Uint8Array, gear: Int32Array, i: number, end: number, mask: number): number {
  let h = H;
  while (i < end) {
    h = ((h << 1) + gear[u8[i]!]!) | 0;
    i++;
    if ((h & mask) === 0) { H = h; return i; }
  }
  H = h;
  return -1;
}

const EMPTY_W32 = new Uint32Array(0);

/**
 * A synchronous FastCDC scanner in kopia's style: the caller does the I/O and feeds consecutive
 * buffers of one stream; the chunker keeps the position within the current chunk and the rolling
 * hash between calls, so where the buffers are split never changes the cut points. It keeps no
 * reference to the data after a call returns.
 */
export class Chunker {
  readonly params: ChunkParams;
  private readonly min: number;
  private readonly avg: number;
  private readonly max: number;
  private readonly maskS: number;
  private readonly maskL: number;
  /** Bytes of the current (unfinished) chunk seen so far. */
  private pos = 0;
  private h = 0;
  // Views over the last ArrayBuffer seen, reused while the caller keeps feeding the same buffer.
  private ab: ArrayBufferLike | undefined;
  private u8: Uint8Array = new Uint8Array(0);
  private w32: Uint32Array = EMPTY_W32;

  constructor(params: Partial<ChunkParams> = {}) {
    const p: ChunkParams = { ...DEFAULT_PARAMS, ...params };
    checkParams(p);
    this.params = Object.freeze(p);
    this.min = p.min;
    this.avg = p.avg;
    this.max = p.max;
    const m = masksFor(p.avg);
    // int32 form of the masks, to match the int32 hash in `h & mask`.
    this.maskS = m.maskS | 0;
    this.maskL = m.maskL | 0;
  }

  /** Bytes of the current chunk seen so far (0 right after a cut). */
  get pending(): number {
    return this.pos;
  }

  /** Forgets the current chunk: the next byte fed starts a new chunk. */
  reset(): void {
    this.pos = 0;
    this.h = 0;
  }

  /**
   * Scans buf[from..to) as the continuation of the stream. Returns the index in `buf` just after
   * the end of the current chunk (from < cut <= to) and starts a new chunk there; or -1 when the
   * chunk goes on past `to` (all of buf[from..to) then belongs to it).
   */
  nextCut(buf: Uint8Array, from = 0, to: number = buf.length): number {
    if (!(from >= 0 && from <= to && to <= buf.length)) throw new RangeError(`nextCut range ${from}..${to} is outside a buffer of ${buf.length} bytes.`);
    let i = from;
    let pos = this.pos;
    if (pos < this.min) {
      const skip = this.min - pos; // cut-point skipping: bytes before min are never hashed
      if (to - i < skip) { this.pos = pos + (to - i); return -1; }
      i += skip;
      pos = this.min;
    }
    if (this.ab !== buf.buffer) this.setViews(buf.buffer);
    const base = buf.byteOffset;
    H = this.h;
    if (pos < this.avg) {
      const n = Math.min(to - i, this.avg - pos);
      const c = LITTLE_ENDIAN
        ? scan(this.u8, this.w32, GEAR, base + i, base + i + n, this.maskS)
        : scanBytes(this.u8, GEAR, base + i, base + i + n, this.maskS);
      if (c >= 0) { this.reset(); return c - base; }
      i += n;
      pos += n;
      if (pos < this.avg) { this.pos = pos; this.h = H; return -1; }
    }
    const n = Math.min(to - i, this.max - pos);
    const c = LITTLE_ENDIAN
      ? scan(this.u8, this.w32, GEAR, base + i, base + i + n, this.maskL)
      : scanBytes(this.u8, GEAR, base + i, base + i + n, this.maskL);
    if (c >= 0) { this.reset(); return c - base; }
    i += n;
    pos += n;
    if (pos === this.max) { this.reset(); return i; }
    this.pos = pos;
    this.h = H;
    return -1;
  }

  /** Every cut inside `buf` (indices just after each chunk that ends in it), in order. */
  cuts(buf: Uint8Array): number[] {
    const out: number[] = [];
    let off = 0;
    for (;;) {
      const c = this.nextCut(buf, off);
      if (c < 0) return out;
      out.push(c);
      off = c;
    }
  }

  private setViews(ab: ArrayBufferLike): void {
    this.ab = ab;
    this.u8 = new Uint8Array(ab);
    this.w32 = LITTLE_ENDIAN ? new Uint32Array(ab, 0, Math.floor(ab.byteLength / 4)) : EMPTY_W32;
  }
}

/**
 * The end offsets of all chunks of an in-memory stream (the last one is `data.length`; none for
 * empty input).
 */
export function chunkBoundaries(data: Uint8Array, params: Partial<ChunkParams> = {}): number[] {
  const out = new Chunker(params).cuts(data);
  const last = out.length > 0 ? out[out.length - 1]! : 0;
  if (last < data.length) out.push(data.length);
  return out;
}

/**
 * A plain Uint8Array over its own ArrayBuffer, not zero-filled (the caller writes every byte):
 * allocUnsafeSlow never hands out a slice of Buffer's shared pool.
 */
function ownedUninitialized(n: number): Uint8Array {
  return new Uint8Array(Buffer.allocUnsafeSlow(n).buffer, 0, n);
}

/** A run of zero bytes in a stream, given by length instead of bytes (a hole of a sparse file). */
export interface ZeroRun {
  readonly zeros: number;
}

/** A shared block of zeros, only ever read: zero runs are fed to the chunker from it. */
const ZEROS = new Uint8Array(1024 * 1024);
const zeroChunkLengths = new Map<string, number>();

/**
 * The length of the chunk cut from a long run of zeros that starts at a chunk boundary: the same
 * for every such run, since a chunk's cut depends only on its own bytes.
 */
export function zeroChunkLength(params: Partial<ChunkParams> = {}): number {
  const chunker = new Chunker(params);
  const key = JSON.stringify(chunker.params);
  let n = zeroChunkLengths.get(key);
  if (n === undefined) {
    const max = chunker.params.max;
    let seen = 0;
    for (;;) {
      const step = Math.min(ZEROS.length, max - seen);
      const c = chunker.nextCut(ZEROS, 0, step);
      if (c >= 0) { n = seen + c; break; }
      seen += step;
    }
    zeroChunkLengths.set(key, n);
  }
  return n;
}

/**
 * Where chunkStream takes the buffers of its chunks from, and gives back the one it kept the
 * unfinished chunk in (util/memory.ts BufferPool): chunks then reuse memory already faulted in.
 */
export interface ChunkBuffers {
  /** `n` bytes at the start (byteOffset 0) of a buffer nothing else uses. */
  take(n: number): Uint8Array;
  give(b: Uint8Array): void;
}

const freshBuffers: ChunkBuffers = { take: ownedUninitialized, give: () => undefined };

/**
 * Cuts a byte stream into chunks. Each chunk is a Uint8Array at the start (byteOffset 0) of a
 * buffer of its own: fresh and exactly its size, or from `buffers`. It can be kept, or its buffer
 * transferred to a worker, without copying and without pinning the source's buffers. The source
 * may reuse a buffer once the next one is requested: the unfinished tail of a chunk is copied into
 * an internal buffer (grown as needed up to the max chunk size) before that. Memory therefore
 * stays near max chunk size plus one source buffer. With `buffers`, the internal buffer is one of
 * theirs, which becomes the chunk: every byte is copied once. Without, a byte is copied once if its
 * chunk ends in the same source buffer, twice otherwise.
 *
 * The source may also give runs of zeros by length (ZeroRun, for the holes of a sparse file). The
 * cut points are those of the same stream with the zeros written out, but a chunk that lies wholly
 * inside a run is yielded as a ZeroRun of its length, without touching its bytes: a hole costs
 * time in proportion to its number of chunks, not its size.
 */
export function chunkStream(source: AsyncIterable<Uint8Array>, params?: Partial<ChunkParams>, buffers?: ChunkBuffers): AsyncGenerator<Uint8Array, void, undefined>;
export function chunkStream(source: AsyncIterable<Uint8Array | ZeroRun>, params?: Partial<ChunkParams>, buffers?: ChunkBuffers): AsyncGenerator<Uint8Array | ZeroRun, void, undefined>;
export async function* chunkStream(source: AsyncIterable<Uint8Array | ZeroRun>, params: Partial<ChunkParams> = {}, buffers: ChunkBuffers = freshBuffers): AsyncGenerator<Uint8Array | ZeroRun, void, undefined> {
  const chunker = new Chunker(params);
  const max = chunker.params.max;
  const pooled = buffers !== freshBuffers;
  let acc: Uint8Array = new Uint8Array(0); // the unfinished chunk's bytes from earlier source buffers
  let accLen = 0;
  /** Keeps piece[off..end) as the continuation of the unfinished chunk. */
  function keep(piece: Uint8Array, off: number, end: number): void {
    const n = end - off;
    if (accLen + n > acc.length) {
      const grown = pooled ? buffers.take(max) : new Uint8Array(Math.min(max, Math.max(accLen + n, 2 * acc.length, 65536)));
      grown.set(acc.subarray(0, accLen));
      if (pooled && acc.length > 0) buffers.give(acc);
      acc = grown;
    }
    acc.set(piece.subarray(off, end), accLen);
    accLen += n;
  }
  /** The unfinished chunk completed by piece[off..c). */
  function take(piece: Uint8Array, off: number, c: number): Uint8Array {
    if (pooled) {
      // The pooled buffer that holds the unfinished chunk (one of max bytes) becomes the chunk.
      keep(piece, off, c);
      const chunk = new Uint8Array(acc.buffer, 0, accLen);
      acc = new Uint8Array(0);
      accLen = 0;
      return chunk;
    }
    const chunk = buffers.take(accLen + (c - off));
    chunk.set(acc.subarray(0, accLen));
    chunk.set(piece.subarray(off, c), accLen);
    accLen = 0;
    return chunk;
  }
  try {
    for await (const piece of source) {
      if (piece instanceof Uint8Array) {
        let off = 0;
        while (off < piece.length) {
          const c = chunker.nextCut(piece, off);
          if (c < 0) {
            keep(piece, off, piece.length);
            break;
          }
          yield take(piece, off, c);
          off = c;
        }
        continue;
      }
      const whole = zeroChunkLength(chunker.params);
      for (let left = piece.zeros; left > 0; ) {
        if (accLen === 0 && left >= whole) {
          // At a boundary with a whole zero chunk ahead: its cut is known without scanning it.
          yield { zeros: whole };
          left -= whole;
          continue;
        }
        // Zeros up to the next cut only, so that whole zero chunks after it are skipped.
        const n = Math.min(left, ZEROS.length);
        const c = chunker.nextCut(ZEROS, 0, n);
        if (c < 0) keep(ZEROS, 0, n);
        else yield take(ZEROS, 0, c);
        left -= c < 0 ? n : c;
      }
    }
    if (accLen > 0) {
      // The last chunk: with pooled buffers, the one that holds it (then it is the consumer's).
      const last = pooled ? new Uint8Array(acc.buffer, 0, accLen) : acc.slice(0, accLen);
      if (pooled) acc = new Uint8Array(0);
      yield last;
    }
  } finally {
    if (pooled && acc.length > 0) buffers.give(acc);
  }
}
