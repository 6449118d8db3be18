/**
 * Verifying a pack's contents, shared by check (on the main thread or its worker threads,
 * check-worker.ts) and by the readers that decode one blob: a blob decrypts, decompresses to its
 * raw length and hashes to its id; a pack's bytes hash to its name and its header parses.
 */
import { LifeboatError } from '../util/errors.js';
import { release } from '../util/memory.js';
import type { Codec } from './compress.js';
import { chunkId, openInto, sha256, type MasterKeys } from './crypto.js';
import { CODEC_ZSTD, decodePayload } from './envelope-file.js';
import { toHex } from './ids.js';
import { BlobType, blobAad, openBlob, parsePack } from './pack.js';
import { PackedEntries } from './packed-entries.js';

/**
 * A data or tree blob's plaintext, checked against its id, and `owner`: the buffer that holds it
 * (the plaintext itself, or the decrypted frame it is part of when stored uncompressed), which the
 * caller may free with release() once done with the plaintext. The decrypted frame of a
 * compressed blob is freed here. `onThisThread`: decode synchronously whatever the size (worker
 * threads; see decodePayload).
 */
export async function openSealedBlob(codec: Codec, keys: MasterKeys, type: number, id: Uint8Array, envelope: Uint8Array, rawLength: number, packName: string, onThisThread = false): Promise<{ plain: Uint8Array; owner: Uint8Array }> {
  const what = `A data block in pack ${packName}`;
  const frame = openBlob(keys.encKey, type, id, envelope, what);
  const plain = await decodePayload(codec, frame, what, rawLength, onThisThread);
  const owner = plain.buffer === frame.buffer ? frame : plain;
  if (owner !== frame) release(frame); // decompressed: nothing else refers to the frame
  if (!chunkId(keys, plain).equals(id)) throw new LifeboatError('corrupt', `${what} does not match its id; the pack is damaged.`);
  return { plain, owner };
}

/** openSealedBlob's plaintext alone, for callers that keep it. */
export async function decodeSealedBlob(codec: Codec, keys: MasterKeys, type: number, id: Uint8Array, envelope: Uint8Array, rawLength: number, packName: string, onThisThread = false): Promise<Uint8Array> {
  return (await openSealedBlob(codec, keys, type, id, envelope, rawLength, packName, onThisThread)).plain;
}

/**
 * Buffers a thread keeps for verifying blobs, grown to the largest blob and reused for every one:
 * a buffer per decrypted and per decompressed blob was a fresh mapping (faulted in, freed) for
 * every large one.
 */
export class VerifyBuffers {
  private frame: Buffer = Buffer.alloc(0);
  private plain: Buffer = Buffer.alloc(0);

  frameFor(n: number): Buffer {
    if (this.frame.length < n) this.frame = grown(this.frame, n);
    return this.frame;
  }

  plainFor(n: number): Buffer {
    if (this.plain.length < n) this.plain = grown(this.plain, n);
    return this.plain.subarray(0, n);
  }
}

/** A buffer for `n` bytes in place of `old`, which is freed now rather than at V8's next full collection. */
function grown(old: Buffer, n: number): Buffer {
  release(old);
  return Buffer.allocUnsafeSlow(Math.max(n, 2 * old.length));
}

/**
 * openSealedBlob's checks for a blob only verified, decoded into `kept`: nothing is allocated per
 * blob where the codec decodes into a given buffer. `inPlace`: decrypt over the envelope itself
 * (its bytes are the caller's to overwrite), not into a kept buffer as large as the largest blob.
 */
async function verifySealedBlob(codec: Codec, keys: MasterKeys, type: number, id: Uint8Array, envelope: Uint8Array, rawLength: number, packName: string, kept: VerifyBuffers, inPlace: boolean): Promise<void> {
  const what = `A data block in pack ${packName}`;
  // In place is safe: openInto writes each piece NONCE_BYTES before where it read it.
  const into = inPlace ? Buffer.from(envelope.buffer, envelope.byteOffset, envelope.byteLength) : kept.frameFor(envelope.length);
  const frame = openInto(keys.encKey, envelope, blobAad(type, id), what, into);
  let plain: Uint8Array;
  if (frame[0] === CODEC_ZSTD && codec.decompressInto) {
    plain = kept.plainFor(rawLength);
    try {
      codec.decompressInto(frame.subarray(1), plain);
    } catch {
      throw new LifeboatError('corrupt', `${what} could not be decompressed to its ${rawLength} bytes; it is damaged.`);
    }
  } else plain = await decodePayload(codec, frame, what, rawLength, true);
  if (!chunkId(keys, plain).equals(id)) throw new LifeboatError('corrupt', `${what} does not match its id; the pack is damaged.`);
}

export interface PackVerdict {
  /** Bytes read. */
  readonly size: number;
  /** Whether the pack's bytes hash to its name. */
  readonly hashOk: boolean;
  /** The blobs its header lists, packed (PackedEntries.bytes): as objects, they grew each worker's heap by ~8 MiB over a check of 100k blobs. */
  readonly entries: Uint8Array;
  /** Data and tree blobs that failed (their index in entries). Delta blobs are left to the caller: they need their base. */
  readonly bad: { readonly i: number; readonly message: string }[];
}

export interface VerifyOptions {
  /** Decode synchronously whatever the size (see decodePayload). */
  readonly onThisThread?: boolean;
  /** Hears of each blob's decoded bytes once they are garbage (without `kept`). */
  readonly dropped?: (bytes: number) => void;
  /** Buffers to decode into, kept by the caller for the next pack. */
  readonly kept?: VerifyBuffers;
  /** With `kept`: the pack's bytes may be overwritten (they are decrypted in place). */
  readonly overwrite?: boolean;
  /**
   * Let the event loop run after about this many bytes of blobs: a pack verified on the main
   * thread otherwise holds it for the whole pack, and the worker that finished meanwhile waits for
   * its next pack until then.
   */
  readonly yieldEvery?: number;
}

/**
 * Checks a whole pack. Throws (LifeboatError 'corrupt') only when its header cannot be read; a
 * pack whose bytes do not match its name is still checked blob by blob, so that only what is
 * really lost is reported.
 */
export async function verifyPack(codec: Codec, keys: MasterKeys, bytes: Uint8Array, packId: string, name: string, opts: VerifyOptions = {}): Promise<PackVerdict> {
  const { onThisThread = false, dropped, kept, overwrite = false, yieldEvery } = opts;
  const hashOk = toHex(sha256(bytes)) === packId;
  const entries = parsePack(keys.encKey, bytes, name);
  const bad: { i: number; message: string }[] = [];
  let sinceYield = 0;
  for (const [i, e] of entries.entries()) {
    if (e.type === BlobType.delta) continue;
    if (yieldEvery !== undefined && (sinceYield += e.length) > yieldEvery) {
      sinceYield = 0;
      await new Promise<void>((r) => setImmediate(r));
    }
    try {
      const envelope = bytes.subarray(e.offset, e.offset + e.length);
      if (kept) await verifySealedBlob(codec, keys, e.type, e.id, envelope, e.rawLength, name, kept, overwrite);
      else {
        release((await openSealedBlob(codec, keys, e.type, e.id, envelope, e.rawLength, name, onThisThread)).owner);
        dropped?.(e.length + e.rawLength);
      }
    } catch (err) {
      bad.push({ i, message: err instanceof Error ? err.message : String(err) });
    }
  }
  return { size: bytes.length, hashOk, entries: PackedEntries.pack(entries).bytes, bad };
}
