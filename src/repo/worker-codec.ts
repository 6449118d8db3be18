/**
 * Sealing and opening blobs on any thread: repo's public face for the worker threads of the layers
 * above (files/ and image/), so they hash, seal and open blobs without seeing a key, a codec or
 * the envelope format.
 *
 * The main thread asks the repository for a handle (`Repository.workerCodec()`), passes it through
 * `workerData` as it is, and the worker opens it with `new WorkerCodec(handle)`. The handle's type
 * is opaque (branded, no fields): it carries the id and encryption keys across the thread boundary,
 * but no code above repo/ can read them, and the MAC key never leaves the main thread. Workers get
 * the sealed bytes they open from the main thread, which reads them through the Store (wrappers
 * included): nothing here reads a store.
 */
import { createZstdCodec, ZSTD_LEVEL, type Codec } from './compress.js';
import { chunkId, type MasterKeys } from './crypto.js';
import { encodeDelta } from './delta.js';
import { sealBlobSync } from './encoder.js';
import { release } from '../util/memory.js';
import { openSealedBlob, verifyPack, VerifyBuffers, type PackVerdict } from './pack-check.js';
import { BlobType } from './pack.js';

export { BlobType };
/** Whether a blob is worth a round trip to a worker thread to be sealed (smaller ones are sealed inline). */
export { worthAWorker } from './encoder.js';

declare const brand: unique symbol;
/** What a worker needs to seal and open blobs, opaque above repo/ (see the module comment). */
export type CodecHandle = { readonly [brand]: 'CodecHandle' };

/** The handle's real shape: plain arrays (they cross threads by copy), and the zstd level to seal with. */
interface HandleFields {
  readonly encKey: Uint8Array;
  readonly idKey: Uint8Array;
  readonly level: number;
}

/**
 * A handle for `keys` (used by Repository.workerCodec; nothing above repo/ has the keys to call it).
 * Each key is copied into its own small buffer: a view into Node's pool would clone the whole slab.
 */
export function codecHandle(keys: Pick<MasterKeys, 'encKey' | 'idKey'>, level = ZSTD_LEVEL): CodecHandle {
  const fields: HandleFields = { encKey: new Uint8Array(keys.encKey), idKey: new Uint8Array(keys.idKey), level };
  return fields as unknown as CodecHandle;
}

/** A sealed blob as read from its pack, for a worker to open: its envelope and what checks it. */
export interface SealedBlob {
  readonly type: BlobType;
  /** The blob's id (the keyed hash of its plaintext). */
  readonly id: Uint8Array;
  /** The envelope, in a buffer of its own, so it can be moved to a worker rather than copied. */
  readonly env: Uint8Array;
  readonly rawLength: number;
  /** The pack it was read from, for error messages. */
  readonly packName: string;
}


/** Seals, hashes and opens blobs with synchronous calls (a worker thread's job is to block). */
export class WorkerCodec {
  private readonly keys: MasterKeys;
  private readonly codec: Codec;
  /** The buffers verifyPack decodes into, made on first use. */
  private kept: VerifyBuffers | undefined;

  constructor(handle: CodecHandle) {
    const h = handle as unknown as HandleFields;
    this.keys = { encKey: Buffer.from(h.encKey), idKey: Buffer.from(h.idKey), macKey: Buffer.alloc(0) };
    this.codec = createZstdCodec(h.level);
  }

  /** The id of a blob of plaintext `data`. */
  chunkId(data: Uint8Array): Buffer {
    return chunkId(this.keys, data);
  }

  /**
   * The sealed envelope of a blob (compressed when that saves space, then encrypted; docs/FORMAT.md
   * §6): at the start of `into` when it is large enough (a reused buffer), else in its own.
   */
  seal(type: BlobType, id: Uint8Array, data: Uint8Array, into?: Uint8Array): Buffer {
    return sealBlobSync(this.codec, this.keys.encKey, type, id, data, into);
  }

  /**
   * The sealed delta blob of chunk `data` (id `id`) against the full blob `base` (its id and
   * plaintext, FORMAT.md §6), or undefined when too much differs and the chunk is better stored whole.
   */
  sealDelta(id: Uint8Array, base: { readonly id: Uint8Array; readonly plain: Uint8Array }, data: Uint8Array): Buffer | undefined {
    const changes = encodeDelta(base.id, base.plain, data);
    if (!changes) return undefined;
    const env = this.seal(BlobType.delta, id, changes);
    release(changes);
    return env;
  }

  /**
   * A data or tree blob's plaintext, checked against its id (LifeboatError 'corrupt' when it is
   * damaged), and `owner`, the buffer holding it, which the caller may free with util/memory.ts
   * release() once done with the plaintext.
   */
  open(blob: SealedBlob): Promise<{ plain: Uint8Array; owner: Uint8Array }> {
    return openSealedBlob(this.codec, this.keys, blob.type, blob.id, blob.env, blob.rawLength, blob.packName, true);
  }

  /** Checks a whole pack, overwriting its bytes (check --read-data's worker threads; see pack-check.ts verifyPack). */
  verifyPack(bytes: Uint8Array, packId: string, name: string): Promise<PackVerdict> {
    return verifyPack(this.codec, this.keys, bytes, packId, name, { onThisThread: true, kept: (this.kept ??= new VerifyBuffers()), overwrite: true });
  }
}
