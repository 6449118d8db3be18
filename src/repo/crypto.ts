/**
 * Cryptography of format 1: AES-256-GCM envelopes, keyed chunk ids, MACs over plaintext files,
 * and scrypt for passwords. Everything from node:crypto. See docs/FORMAT.md §Keys and §Envelopes.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, pbkdf2Sync, randomBytes, randomFillSync, scrypt, timingSafeEqual } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { LifeboatError } from '../util/errors.js';
import { release } from '../util/memory.js';
import { nativeAddon } from '../util/native.js';

export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
export const ENVELOPE_OVERHEAD = NONCE_BYTES + TAG_BYTES;

/** The three independent secrets of a repository; random, never derived from a password. */
export interface MasterKeys {
  /** AES-256-GCM key for every encrypted object. */
  readonly encKey: Buffer;
  /** HMAC-SHA256 key that turns chunk plaintext into chunk ids. */
  readonly idKey: Buffer;
  /** HMAC-SHA256 key that authenticates plaintext files (config, key slots). */
  readonly macKey: Buffer;
}

export function newMasterKeys(): MasterKeys {
  return { encKey: randomBytes(32), idKey: randomBytes(32), macKey: randomBytes(32) };
}

export function masterKeysToBytes(k: MasterKeys): Buffer {
  return Buffer.concat([k.encKey, k.idKey, k.macKey]);
}

export function masterKeysFromBytes(b: Uint8Array): MasterKeys {
  if (b.length !== 96) throw new LifeboatError('corrupt', 'A key slot holds a master key of the wrong length; the key file is damaged.');
  const buf = Buffer.from(b);
  return { encKey: buf.subarray(0, 32), idKey: buf.subarray(32, 64), macKey: buf.subarray(64, 96) };
}

/** Chunk id: HMAC-SHA256(idKey, plaintext). Reveals nothing about content without the key. */
export function chunkId(keys: MasterKeys, data: Uint8Array): Buffer {
  return createHmac('sha256', keys.idKey).update(data).digest();
}

export function mac(key: Buffer, data: Uint8Array): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

export function macEquals(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

/**
 * Random nonces are taken from a pool refilled NONCE_POOL nonces at a time: one call into the
 * random generator costs about 5 µs whatever its size, which is most of sealing a small blob.
 * Every nonce is still fresh random bytes, used once.
 */
const NONCE_POOL = 512;
/** Bytes encrypted per cipher call in seal: well below the 256 KiB from which the allocator maps blocks (util/memory). */
const SEAL_PIECE = 64 * 1024;

let nonces = Buffer.alloc(0);
let nonceAt = 0;

function takeNonce(out: Buffer): void {
  if (nonceAt === nonces.length) {
    nonces = randomFillSync(Buffer.allocUnsafeSlow(NONCE_POOL * NONCE_BYTES));
    nonceAt = 0;
  }
  nonces.copy(out, 0, nonceAt, nonceAt + NONCE_BYTES);
  nonces.fill(0, nonceAt, nonceAt + NONCE_BYTES); // taken bytes do not linger
  nonceAt += NONCE_BYTES;
}

/**
 * Envelope: nonce(12) ‖ ciphertext ‖ tag(16). `aad` binds the envelope to its role (and, for
 * blobs, to the blob's type and id) so envelopes cannot be swapped between places.
 */
export function seal(key: Buffer, plaintext: Uint8Array | readonly Uint8Array[], aad: Uint8Array, into?: Uint8Array): Buffer {
  const parts = plaintext instanceof Uint8Array ? [plaintext] : plaintext;
  let length = NONCE_BYTES + TAG_BYTES;
  for (const p of parts) length += p.length;
  // Its own exact allocation, never a slice of Node's shared pool: envelopes are kept in packs
  // and transferred between threads, and a pooled slice would pin (or detach) a whole 8 KiB slab.
  // Or the start of `into` (a reused buffer) when it is large enough.
  const out = into && into.length >= length ? Buffer.from(into.buffer, into.byteOffset, length) : Buffer.allocUnsafeSlow(length);
  takeNonce(out);
  const c = createCipheriv('aes-256-gcm', key, out.subarray(0, NONCE_BYTES));
  c.setAAD(aad);
  let o = NONCE_BYTES;
  for (const p of parts) {
    // In pieces: each output then comes from (and goes back to) the allocator's heap, where a
    // whole-chunk output would be a fresh mapping per blob, faulted in page by page and unmapped
    // again (on this VM 1 MiB that way cost ~1.7 ms of CPU; AES-GCM itself ~0.3 ms).
    for (let at = 0; at < p.length; at += SEAL_PIECE) {
      const part = c.update(p.subarray(at, at + SEAL_PIECE));
      o += part.copy(out, o);
      release(part);
    }
  }
  o += c.final().copy(out, o);
  c.getAuthTag().copy(out, o);
  return out;
}

/** Opens an envelope; returns undefined if it is not authentic (wrong key, damaged, swapped). */
export function tryOpen(key: Buffer, envelope: Uint8Array, aad: Uint8Array): Buffer | undefined {
  if (envelope.length < ENVELOPE_OVERHEAD) return undefined;
  const nonce = envelope.subarray(0, NONCE_BYTES);
  const tag = envelope.subarray(envelope.length - TAG_BYTES);
  const d = createDecipheriv('aes-256-gcm', key, nonce);
  d.setAAD(aad);
  d.setAuthTag(tag);
  const body = d.update(envelope.subarray(NONCE_BYTES, envelope.length - TAG_BYTES));
  let rest: Buffer;
  try {
    rest = d.final(); // empty for GCM: then `body` is the whole plaintext, no copy needed
  } catch {
    return undefined;
  }
  return rest.length === 0 ? body : Buffer.concat([body, rest]);
}

function integrityError(what: string): LifeboatError {
  return new LifeboatError('corrupt', `${what} failed its integrity check: it is damaged or was modified. Run "lifeboat check --read-data" to see what is affected.`);
}

export function open(key: Buffer, envelope: Uint8Array, aad: Uint8Array, what: string): Buffer {
  const p = tryOpen(key, envelope, aad);
  if (!p) throw integrityError(what);
  return p;
}

/**
 * open() into the start of `out` (at least the envelope's length), decrypting in pieces as seal
 * encrypts: no buffer as large as the blob is allocated (check opens every blob of a repository).
 */
export function openInto(key: Buffer, envelope: Uint8Array, aad: Uint8Array, what: string, out: Buffer): Buffer {
  if (envelope.length < ENVELOPE_OVERHEAD) throw integrityError(what);
  const end = envelope.length - TAG_BYTES;
  const d = createDecipheriv('aes-256-gcm', key, envelope.subarray(0, NONCE_BYTES));
  d.setAAD(aad);
  d.setAuthTag(envelope.subarray(end));
  let o = 0;
  for (let at = NONCE_BYTES; at < end; at += SEAL_PIECE) {
    const part = d.update(envelope.subarray(at, Math.min(end, at + SEAL_PIECE)));
    o += part.copy(out, o);
    release(part);
  }
  try {
    o += d.final().copy(out, o);
  } catch {
    throw integrityError(what);
  }
  return out.subarray(0, o);
}

export interface ScryptParams {
  readonly N: number;
  readonly r: number;
  readonly p: number;
}

/**
 * 32 MiB of memory, p = 4 sequential passes: ~0.35 s on a 2020s CPU (restic's parameters). The
 * memory cost matters: every command pays it once at open, and it bounds the smallest machine.
 */
export const DEFAULT_SCRYPT: ScryptParams = { N: 2 ** 15, r: 8, p: 4 };
/** Only for test suites (LIFEBOAT_INSECURE_FAST_KDF=1): a key slot made with it is weak. */
export const FAST_TEST_SCRYPT: ScryptParams = { N: 2 ** 10, r: 8, p: 1 };

export function defaultScrypt(): ScryptParams {
  return process.env['LIFEBOAT_INSECURE_FAST_KDF'] === '1' ? FAST_TEST_SCRYPT : DEFAULT_SCRYPT;
}

export function deriveKek(password: string, salt: Uint8Array, params: ScryptParams): Promise<Buffer> {
  const { N, r, p } = params;
  if (!Number.isInteger(N) || N < 2 || N > 2 ** 22 || (N & (N - 1)) !== 0 || r < 1 || r > 32 || p < 1 || p > 16) {
    return Promise.reject(new LifeboatError('corrupt', 'A key slot asks for key-derivation settings outside the safe range; the key file is damaged or hostile.'));
  }
  const lanes = nativeAddon<{ scryptLanes?: ScryptLanes }>()?.scryptLanes;
  if (typeof lanes === 'function') return scryptInLanes(lanes, password.normalize('NFC'), salt, params);
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, 32, { N, r, p, maxmem: 256 * N * r + 16 * 1024 * 1024 }, (err, key) => {
      if (err) reject(err);
      else resolve(key);
    });
  });
}

/**
 * How many shares of the lanes run at once. Each holds 128·r·N bytes (32 MiB) while it runs, and
 * on this VM faulting those in costs about as much as a lane's arithmetic. Measured on
 * `lifeboat snapshots` (N = 2^15, r = 8, p = 4; 9 interleaved runs, load ~11): crypto.scrypt
 * 0.80 CPU-s, 91 MiB; one share 0.63 s, 92 MiB (one mapping, huge pages where given); two shares
 * 0.70 s, 123 MiB, and on an idle machine about 0.17 s less wall time. Memory is the scarcer: one.
 */
const MAX_SHARES = 1;

/** The native addon's ROMix of consecutive 128·r-byte blocks, one after another, on the thread pool. */
type ScryptLanes = (blocks: Uint8Array, N: number, r: number) => Promise<Uint8Array>;

/**
 * scrypt (RFC 7914) through the native addon: PBKDF2-HMAC-SHA256 spreads the password into p
 * blocks, ROMix mixes each (in up to MAX_SHARES shares side by side), and PBKDF2 over the mixed
 * blocks gives the key: the same key crypto.scrypt gives. The addon maps its working memory once
 * per share and asks for huge pages, which OpenSSL does not.
 */
export async function scryptInLanes(mix: ScryptLanes, password: string, salt: Uint8Array, params: ScryptParams, most = MAX_SHARES): Promise<Buffer> {
  const { N, r, p } = params;
  const size = 128 * r;
  const blocks = pbkdf2Sync(password, salt, 1, p * size, 'sha256');
  const shares = Math.max(1, Math.min(p, availableParallelism(), most));
  const bounds = Array.from({ length: shares + 1 }, (_, i) => Math.round((i * p) / shares) * size);
  const mixed = await Promise.all(bounds.slice(1).map((end, i) => mix(blocks.subarray(bounds[i], end), N, r)));
  return pbkdf2Sync(password, Buffer.concat(mixed), 1, 32, 'sha256');
}

export { randomBytes };
