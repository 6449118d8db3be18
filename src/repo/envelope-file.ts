/**
 * Encrypted files (index, snapshot, lock): plaintext = codec byte ‖ body, where codec 0 = raw and
 * 1 = zstd frame; then sealed with AES-256-GCM and a role-specific AAD (docs/FORMAT.md §Envelopes).
 */
import { LifeboatError } from '../util/errors.js';
import type { Codec } from './compress.js';
import { open, seal } from './crypto.js';

export const CODEC_RAW = 0;
export const CODEC_ZSTD = 1;

export const AAD = {
  index: Buffer.from('lifeboat index v1'),
  snapshot: Buffer.from('lifeboat snapshot v1'),
  lock: Buffer.from('lifeboat lock v1'),
  packHeader: Buffer.from('lifeboat pack header v1'),
  blobPrefix: Buffer.from('lifeboat blob v1'),
} as const;

/** Compresses only when it saves space: already-compressed data is stored raw. */
export async function encodePayload(codec: Codec, body: Uint8Array): Promise<Uint8Array[]> {
  if (body.length >= 64) {
    const z = await codec.compress(body);
    if (z.length < body.length - 16) return [Uint8Array.of(CODEC_ZSTD), z];
  }
  return [Uint8Array.of(CODEC_RAW), body];
}

/**
 * Decodes codec byte ‖ body, checking the decoded length when it is known. `onThisThread`: decode
 * synchronously whatever the size, for worker threads (whose job is to block; the thread pool
 * would only add a hop and a fresh zstd context per call).
 */
export async function decodePayload(codec: Codec, plain: Uint8Array, what: string, expectedLength?: number, onThisThread = false): Promise<Uint8Array> {
  const tag = plain[0];
  let out: Uint8Array;
  if (tag === CODEC_RAW) out = plain.subarray(1);
  else if (tag === CODEC_ZSTD) {
    try {
      // Small frames inline: a thread-pool round trip costs more than decoding them.
      out = expectedLength !== undefined && (onThisThread || expectedLength <= 256 * 1024) ? codec.decompressSync(plain.subarray(1), expectedLength) : await codec.decompress(plain.subarray(1));
    } catch {
      throw new LifeboatError('corrupt', `${what} could not be decompressed; it is damaged.`);
    }
  } else throw new LifeboatError('corrupt', `${what} uses an unknown compression method (${tag}); it is damaged or from a newer Lifeboat.`);
  if (expectedLength !== undefined && out.length !== expectedLength) {
    throw new LifeboatError('corrupt', `${what} decoded to ${out.length} bytes instead of ${expectedLength}; it is damaged.`);
  }
  return out;
}

export async function sealFile(codec: Codec, encKey: Buffer, aad: Uint8Array, body: Uint8Array): Promise<Buffer> {
  return seal(encKey, await encodePayload(codec, body), aad);
}

export async function openFile(codec: Codec, encKey: Buffer, aad: Uint8Array, bytes: Uint8Array, what: string): Promise<Uint8Array> {
  return decodePayload(codec, open(encKey, bytes, aad, what), what);
}
