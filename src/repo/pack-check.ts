/**
 * Verifying a pack's contents, shared by check (on the main thread or its worker threads,
 * check-worker.ts) and by the readers that decode one blob: a blob decrypts, decompresses to its
 * raw length and hashes to its id; a pack's bytes hash to its name and its header parses.
 */
import { LifeboatError } from '../util/errors.js';
import { release } from '../util/memory.js';
import type { Codec } from './compress.js';
import { chunkId, sha256, type MasterKeys } from './crypto.js';
import { decodePayload } from './envelope-file.js';
import { toHex } from './ids.js';
import { BlobType, openBlob, parsePack, type PackEntry } from './pack.js';

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

export interface PackVerdict {
  /** Bytes read. */
  readonly size: number;
  /** Whether the pack's bytes hash to its name. */
  readonly hashOk: boolean;
  /** The blobs its header lists. */
  readonly entries: PackEntry[];
  /** Data and tree blobs that failed (their index in entries). Delta blobs are left to the caller: they need their base. */
  readonly bad: { readonly i: number; readonly message: string }[];
}

/**
 * Checks a whole pack. Throws (LifeboatError 'corrupt') only when its header cannot be read; a
 * pack whose bytes do not match its name is still checked blob by blob, so that only what is
 * really lost is reported. `dropped` hears of each blob's decoded bytes once they are garbage.
 */
export async function verifyPack(codec: Codec, keys: MasterKeys, bytes: Uint8Array, packId: string, name: string, onThisThread = false, dropped?: (bytes: number) => void): Promise<PackVerdict> {
  const hashOk = toHex(sha256(bytes)) === packId;
  const entries = parsePack(keys.encKey, bytes, name);
  const bad: { i: number; message: string }[] = [];
  for (const [i, e] of entries.entries()) {
    if (e.type === BlobType.delta) continue;
    try {
      release((await openSealedBlob(codec, keys, e.type, e.id, bytes.subarray(e.offset, e.offset + e.length), e.rawLength, name, onThisThread)).owner);
      dropped?.(e.length + e.rawLength);
    } catch (err) {
      bad.push({ i, message: err instanceof Error ? err.message : String(err) });
    }
  }
  return { size: bytes.length, hashOk, entries, bad };
}
