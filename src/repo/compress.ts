/**
 * The zstd codec behind a small interface, so the library can be swapped (zstd-napi, a WASM
 * build, node:zlib's zstd on Node 22+) without touching the format. Frames are standard zstd.
 *
 * Two implementations serve it: the npm binding (@toondepauw/node-zstd: everywhere, and the async
 * calls on the thread pool), and, where the native addon finds the system's libzstd (Linux), the
 * synchronous calls through contexts kept for the codec's lifetime. The npm binding builds a fresh
 * streaming context per call (~50 µs, a 2 MiB window allocated and cleared), which dominated
 * backups and restores of many small files; a kept context costs a few µs per call.
 */
import { Decoder, Encoder } from '@toondepauw/node-zstd';
import { nativeAddon } from '../util/native.js';

export interface Codec {
  /** Compresses on the libuv thread pool. */
  compress(data: Uint8Array): Promise<Uint8Array>;
  compressSync(data: Uint8Array): Uint8Array;
  /**
   * Like compressSync, but the frame may live in a buffer the codec reuses: it is valid only until
   * the codec's next call. For callers that copy it on at once (sealing a blob), so that bulk
   * compression leaves no garbage buffer behind per call.
   */
  compressTransient(data: Uint8Array): Uint8Array;
  /** Rejects on a truncated or damaged frame; the caller also checks the expected length. */
  decompress(data: Uint8Array): Promise<Uint8Array>;
  /** `expectedLength`, when known, must be the exact decoded length (a mismatch throws). */
  decompressSync(data: Uint8Array, expectedLength?: number): Uint8Array;
  /**
   * Decodes into `out`, whose length must be the exact decoded length (a mismatch throws); where
   * the native addon has it, without allocating. Undefined elsewhere.
   */
  readonly decompressInto?: (data: Uint8Array, out: Uint8Array) => void;
}

/**
 * Level 3. Level 1 costs about 25% less compression time but stored 2.5% more on the benchmark's
 * 100k-file mix (level 2: 0.6% more), which put the repository above restic's size (measured
 * 2026-11-25).
 */
export const ZSTD_LEVEL = 3;

interface ZstdAddon {
  zstdCodec(level: number): object | undefined;
  zstdCompress(handle: object, data: Uint8Array): Buffer;
  zstdCompressInto(handle: object, data: Uint8Array, out: Uint8Array): number;
  zstdDecompress(handle: object, data: Uint8Array, expectedLength: number): Buffer;
  zstdDecompressInto?(handle: object, data: Uint8Array, out: Uint8Array): number;
}

function toBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** The npm binding alone (also the reference the native path is tested against). */
export function createPortableZstdCodec(level = ZSTD_LEVEL): Codec {
  const enc = new Encoder(level);
  const dec = new Decoder();
  return {
    compress: (d) => enc.encode(toBuffer(d)),
    compressSync: (d) => enc.encodeSync(toBuffer(d)),
    compressTransient: (d) => enc.encodeSync(toBuffer(d)),
    decompress: (d) => dec.decode(toBuffer(d)),
    decompressSync: (d) => dec.decodeSync(toBuffer(d)),
  };
}

/** ZSTD_compressBound: the largest frame zstd makes of `n` bytes (zstd.h, stable since v1.0). */
function zstdBound(n: number): number {
  return n + (n >>> 8) + (n < 128 * 1024 ? (128 * 1024 - n) >>> 11 : 0);
}

/** compressTransient keeps its output buffer for inputs up to 2 MiB (most chunks); larger calls get a one-off buffer. */
const KEPT_OUTPUT = zstdBound(2 * 1024 * 1024);

export function createZstdCodec(level = ZSTD_LEVEL): Codec {
  const portable = createPortableZstdCodec(level);
  const native = nativeAddon<ZstdAddon>();
  const handle = typeof native?.zstdCodec === 'function' ? native.zstdCodec(level) : undefined;
  if (!native || !handle) return portable;
  let kept = Buffer.alloc(0);
  return {
    compress: (d) => portable.compress(d),
    compressSync: (d) => native.zstdCompress(handle, d),
    compressTransient: (d) => {
      const bound = zstdBound(d.length);
      let out = kept;
      if (bound > out.length) {
        out = Buffer.allocUnsafeSlow(bound <= KEPT_OUTPUT ? Math.max(bound, Math.min(KEPT_OUTPUT, 2 * kept.length)) : bound);
        if (out.length <= KEPT_OUTPUT) kept = out;
      }
      return out.subarray(0, native.zstdCompressInto(handle, d, out));
    },
    decompress: (d) => portable.decompress(d),
    // Without a known length (old frames carry no size) the npm binding decodes it.
    decompressSync: (d, expectedLength) => (expectedLength !== undefined ? native.zstdDecompress(handle, d, expectedLength) : portable.decompressSync(d)),
    ...(typeof native.zstdDecompressInto === 'function' ? { decompressInto: (d: Uint8Array, out: Uint8Array) => void native.zstdDecompressInto!(handle, d, out) } : {}),
  };
}

/** Whether createZstdCodec uses the system's libzstd here. */
export function nativeZstd(): boolean {
  const native = nativeAddon<ZstdAddon>();
  return typeof native?.zstdCodec === 'function' && native.zstdCodec(ZSTD_LEVEL) !== undefined;
}
