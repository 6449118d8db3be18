/**
 * The imager's worker threads (chunk-worker.ts). The main thread reads the drive and packs what
 * comes back; each chunk it reads is moved to a worker, which finds out whether it is all zeros,
 * computes its id, compares that with the parent image's chunk at the same offset, and seals what
 * must be stored: the blocks that differ from the parent's full blob (a delta) or the whole chunk.
 * So hashing every chunk of a drive, which bounded an incremental image on the main thread, runs
 * on every core. A changed chunk that has a base comes back once ('changed'): the main thread
 * reads the base's envelope through the repository's Store and sends the chunk again with it.
 *
 * May import repo's public face (the worker codec) and util.
 */
import type { TransferListItem } from 'node:worker_threads';
import type { BlobType } from '../repo/repository.js';
import type { CodecHandle, SealedBlob } from '../repo/worker-codec.js';
import { ownsItsBuffer } from '../util/memory.js';
import { WorkerPool } from '../util/worker-pool.js';

export interface ChunkJob {
  readonly seq: number;
  /** The chunk's bytes; moved to the worker when the view owns its buffer. */
  readonly data: Uint8Array;
  /** The chunk's id when the worker already computed it (a 'changed' chunk sent again). */
  readonly id?: Uint8Array;
  /** The parent image's chunk id at this offset, when that chunk is stored: equal means unchanged. */
  readonly parentId?: Uint8Array;
  /**
   * The full blob to store a changed chunk against: its id, and its sealed envelope once the main
   * thread has read it (without it, a changed chunk comes back as 'changed').
   */
  readonly base?: { readonly id: Uint8Array; readonly blob?: SealedBlob | undefined };
}

export type ChunkReply =
  | { readonly seq: number; readonly kind: 'zero' }
  | { readonly seq: number; readonly kind: 'same'; readonly id: Uint8Array }
  /** Sealed: a delta against `base`, or the whole chunk. rawLength is the chunk's length. */
  | { readonly seq: number; readonly kind: 'sealed'; readonly id: Uint8Array; readonly type: BlobType; readonly env: Uint8Array; readonly rawLength: number; readonly base?: Uint8Array }
  /** Changed, and its base must be read by the main thread: the chunk comes back. */
  | { readonly seq: number; readonly kind: 'changed'; readonly id: Uint8Array; readonly data: Uint8Array }
  | { readonly seq: number; readonly kind: 'error'; readonly message: string };

/**
 * A copy of `id` in an ArrayBuffer of its own. A view crosses to another thread with its whole
 * ArrayBuffer: an id sliced from a manifest page, an index or Node's buffer pool would copy
 * kilobytes with every message.
 */
export function own(id: Uint8Array): Uint8Array {
  return ownsItsBuffer(id) ? id : new Uint8Array(id);
}

/** Whether `b` is all zeros, compared `zero.length` bytes at a time (`zero`: a buffer of zeros). */
export function isZero(b: Uint8Array, zero: Uint8Array): boolean {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  for (let at = 0; at < buf.length; at += zero.length) {
    const n = Math.min(zero.length, buf.length - at);
    if (!buf.subarray(at, at + n).equals(zero.subarray(0, n))) return false;
  }
  return true;
}

export class ChunkSealer {
  private readonly pool: WorkerPool<Omit<ChunkJob, 'seq'>, ChunkReply>;

  /** `codec`: Repository.workerCodec(level), passed to the workers as it is. */
  constructor(codec: CodecHandle, threads?: number) {
    this.pool = new WorkerPool(new URL('./chunk-worker.js', import.meta.url), { codec }, threads);
  }

  /** Hands `data` over (the caller gives it up: its buffer moves to the worker when it owns it), and the base's envelope. */
  async seal(job: Omit<ChunkJob, 'seq'>): Promise<Exclude<ChunkReply, { kind: 'error' }>> {
    const d = job.data;
    const transfer: TransferListItem[] = ownsItsBuffer(d) ? [d.buffer as ArrayBuffer] : [];
    const blob = job.base?.blob;
    if (blob) transfer.push(blob.env.buffer as ArrayBuffer);
    const msg = {
      data: d,
      ...(job.id ? { id: own(job.id) } : {}),
      ...(job.parentId ? { parentId: own(job.parentId) } : {}),
      ...(job.base ? { base: { id: own(job.base.id), ...(blob ? { blob } : {}) } } : {}),
    };
    const r = await this.pool.call(msg, transfer);
    if (r.kind === 'error') throw new Error(r.message);
    return r;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
