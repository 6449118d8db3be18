/**
 * Blob encoding (compress, then seal) spread over worker threads so zstd uses every core: the
 * zstd binding's async calls run one at a time, so the thread pool alone does not parallelise.
 * Small blobs are encoded inline (a message round trip costs more than compressing them).
 */
import { availableParallelism } from 'node:os';
import { ownsItsBuffer } from '../util/memory.js';
import { WorkerPool } from '../util/worker-pool.js';
import { ZSTD_LEVEL, type Codec } from './compress.js';
import { seal } from './crypto.js';
import { CODEC_RAW, CODEC_ZSTD } from './envelope-file.js';
import { blobAad } from './pack.js';

/** Below this, encode on the calling thread. */
const INLINE_BELOW = 64 * 1024;

/**
 * codec byte ‖ body, compressed only when that saves at least 16 bytes (docs/FORMAT.md §2). The
 * parts may be the codec's transient buffer: seal them before the codec's next call.
 */
function encodeSync(codec: Codec, body: Uint8Array): Uint8Array[] {
  if (body.length >= 64 && !looksIncompressible(codec, body)) {
    const z = codec.compressTransient(body);
    if (z.length < body.length - 16) return [Uint8Array.of(CODEC_ZSTD), z];
  }
  return [Uint8Array.of(CODEC_RAW), body];
}

/** Blobs from this size on are probed before zstd gets them whole (chunks of large files). */
const PROBE_FROM = 256 * 1024;
const PROBE_BYTES = 4096;

/**
 * Whether five 4 KiB samples spread over the blob each fail to compress by 1%: then the blob is
 * taken as already compressed (JPEG, video, archives, encrypted data) and stored as it is (codec 0,
 * which every reader knows) without a zstd pass over the whole of it. Measured on 750 MB of large
 * files (libraries, archives, jars, photos and videos, bench/README.md session 9): 164 MB skipped,
 * 99 KB of compression lost; three samples with a summed threshold lost 1.8 MB. The samples cost
 * ~0.1 ms a blob against ~0.7 ms of zstd per incompressible MiB.
 */
function looksIncompressible(codec: Codec, body: Uint8Array): boolean {
  if (body.length < PROBE_FROM) return false;
  for (let i = 0; i < 5; i++) {
    const at = Math.floor(((body.length - PROBE_BYTES) * i) / 4);
    if (codec.compressTransient(body.subarray(at, at + PROBE_BYTES)).length <= PROBE_BYTES * 0.99) return false;
  }
  return true;
}

/** The sealed envelope; at the start of `into` when it is large enough (see seal). */
export function sealBlobSync(codec: Codec, encKey: Buffer, type: number, id: Uint8Array, data: Uint8Array, into?: Uint8Array): Buffer {
  return seal(encKey, encodeSync(codec, data), blobAad(type, id), into);
}

/** Whether a blob is worth a round trip to a worker thread. */
export function worthAWorker(length: number): boolean {
  return length >= INLINE_BELOW;
}

interface SealJob {
  readonly seq: number;
  readonly type: number;
  readonly id: Uint8Array;
  readonly data: Uint8Array;
}
export type SealReply = { readonly seq: number; readonly env: Uint8Array } | { readonly seq: number; readonly error: string };

export class BlobEncoder {
  private readonly pool: WorkerPool<Omit<SealJob, 'seq'>, SealReply>;

  /**
   * `take`: move a blob that owns its buffer to the worker instead of copying it (the caller
   * gives up `data`: its buffer is left empty); false copies, and `data` stays usable.
   */
  constructor(
    private readonly codec: Codec,
    private readonly encKey: Buffer,
    private readonly threads = Math.max(1, Math.min(4, availableParallelism())),
    private readonly take = false,
    /** The zstd level of the workers (`codec` seals small blobs inline: give it the same level). */
    level = ZSTD_LEVEL,
  ) {
    this.pool = new WorkerPool(new URL('./encode-worker.js', import.meta.url), { encKey, level }, threads);
  }

  /** The sealed envelope of a blob (docs/FORMAT.md §6). */
  async encode(type: number, id: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
    if (data.length < INLINE_BELOW || this.threads <= 1) return sealBlobSync(this.codec, this.encKey, type, id, data);
    const r = await this.pool.call({ type, id, data }, this.take && ownsItsBuffer(data) ? [data.buffer as ArrayBuffer] : []);
    if ('error' in r) throw new Error(r.error);
    return r.env;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
