/**
 * The zstd binding behind a small interface, so the library can be swapped (zstd-napi, a WASM
 * build, node:zlib's zstd on Node 22+) without touching the format. Frames are standard zstd.
 */
import { Decoder, Encoder } from '@toondepauw/node-zstd';

export interface Codec {
  /** Compresses on the libuv thread pool, so several calls in flight use several cores. */
  compress(data: Uint8Array): Promise<Uint8Array>;
  compressSync(data: Uint8Array): Uint8Array;
  /** Rejects on a truncated or damaged frame; the caller also checks the expected length. */
  decompress(data: Uint8Array): Promise<Uint8Array>;
  decompressSync(data: Uint8Array): Uint8Array;
}

export const ZSTD_LEVEL = 3;

function toBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

export function createZstdCodec(level = ZSTD_LEVEL): Codec {
  const enc = new Encoder(level);
  const dec = new Decoder();
  return {
    compress: (d) => enc.encode(toBuffer(d)),
    compressSync: (d) => enc.encodeSync(toBuffer(d)),
    decompress: (d) => dec.decode(toBuffer(d)),
    decompressSync: (d) => dec.decodeSync(toBuffer(d)),
  };
}
