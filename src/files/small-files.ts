/**
 * Backs up small files (one chunk each) on worker threads: each worker opens, reads, hashes,
 * compresses and seals whole files (with repo's WorkerCodec), so the main thread only
 * deduplicates and packs. This is where a first backup of many small files spends its time; see
 * bench/README.md. The same workers seal the chunks of large files: the backup hands the
 * repository sealed blobs (Repository.saveSealedBlob), so a backup runs one pool of workers, not two.
 */
import { availableParallelism } from 'node:os';
import { ownsItsBuffer } from '../util/memory.js';
import { RingReader, type RingHandle } from '../util/shared-ring.js';
import { WorkerPool } from '../util/worker-pool.js';
import type { BlobType, Repository } from '../repo/repository.js';
import type { CodecHandle } from '../repo/worker-codec.js';

export interface SmallFileRequest {
  readonly seq: number;
  /** The path's bytes as a latin1 string: strings cross threads cheaply, while a Buffer from Node's pool would clone its whole 8 KiB slab. */
  readonly path: string;
  readonly ino: string;
  readonly size: string;
  readonly mtimeNs: string;
  readonly type: BlobType;
  /** Files at or above this size are sent back ('fallback'). */
  readonly limit: number;
}

export interface SealRequest {
  readonly seq: number;
  readonly kind: 'seal';
  readonly type: BlobType;
  readonly id: Uint8Array;
  readonly data: Uint8Array;
  /** Send `data`'s buffer back with the reply (a pooled chunk buffer, BufferPool) instead of freeing it. */
  readonly giveBack?: boolean;
  /** A reused buffer to seal into, when large enough (moved here and back with the envelope). */
  readonly into?: Uint8Array;
}

/** Where a worker left a file's id and envelope in the shared ring: the id's 32 bytes at `at`, the envelope after them. */
export interface RingSlot {
  readonly from: number;
  readonly end: number;
  readonly at: number;
  readonly envLength: number;
}

/** A blob id's bytes (HMAC-SHA256). */
export const ID_BYTES = 32;

export type SmallFileReply =
  | {
      readonly seq: number;
      readonly status: 'ok';
      readonly bytesRead: number;
      readonly changed: boolean;
      readonly id?: Uint8Array;
      /** In its own buffer, or (with `slot`) a view of the shared ring, valid until SmallFileSaver.done. */
      readonly env?: Uint8Array;
      readonly rawLength?: number;
      readonly slot?: RingSlot;
    }
  | { readonly seq: number; readonly status: 'open-failed' | 'read-failed'; readonly code: string }
  | { readonly seq: number; readonly status: 'replaced' | 'fallback' }
  /** `envLength` alone: the envelope is at the start of the request's shared `into`. */
  | { readonly seq: number; readonly status: 'sealed'; readonly env?: Uint8Array; readonly envLength?: number; readonly data?: Uint8Array };

/** What a SmallFileSaver's workers are started with. */
export interface SmallFileWorkerData {
  readonly codec: CodecHandle;
  readonly ring: RingHandle;
}

/**
 * The shared ring the workers seal small files into: enough for the files in flight (64 of a few
 * KiB each on real trees); a file that finds it full gets a buffer of its own, as before.
 */
const RING_BYTES = 4 * 1024 * 1024;

/** One pool of worker threads for a backup: whole small files, and sealing the chunks of large files. */
export class SmallFileSaver {
  private readonly pool: WorkerPool<Omit<SmallFileRequest, 'seq'> | Omit<SealRequest, 'seq'>, SmallFileReply>;
  private readonly ring: RingReader;

  /**
   * Workers start on first use: a backup where nothing changed never pays for them. One core is
   * left to the main thread, which walks, chunks large files, hashes and packs: on 2 cores one
   * worker beside it backed up 100k files faster than two (13.4-13.9 s against 13.7-14.2 s, less
   * CPU) and in 165 MiB instead of 180-190 (bench/README.md, session 6).
   */
  constructor(repo: Repository, threads = Math.max(1, Math.min(4, availableParallelism() - 1)), ringBytes = RING_BYTES) {
    this.ring = new RingReader(ringBytes);
    const data: SmallFileWorkerData = { codec: repo.workerCodec(), ring: this.ring.handle };
    this.pool = new WorkerPool(new URL('./small-file-worker.js', import.meta.url), data, threads);
  }

  /**
   * Reads, hashes and seals a small file on a worker. An envelope left in the shared ring comes
   * as a view of it (`slot` set): the caller copies it where it keeps it, then calls done().
   */
  async save(req: Omit<SmallFileRequest, 'seq'>): Promise<SmallFileReply> {
    const r = await this.pool.call(req);
    if (r.status !== 'ok' || r.slot === undefined) return r;
    const s = r.slot;
    // The id is kept (index, pack entries): copied out, into Node's pool of small buffers.
    return { ...r, id: Buffer.from(this.ring.view(s.at, ID_BYTES)), env: this.ring.view((s.at + ID_BYTES) >>> 0, s.envLength) };
  }

  /** Gives the ring space of a reply from save() back to the workers (nothing for one without a slot). */
  done(r: SmallFileReply): void {
    if (r.status === 'ok' && r.slot !== undefined) this.ring.free(r.slot.from, r.slot.end);
  }

  /**
   * The sealed envelope of blob `id` (the caller computed it with Repository.blobId). Takes `data`:
   * a chunk from the chunker owns its buffer, which moves to the worker rather than being copied,
   * so the caller must not use it afterwards. With `giveBack` (a pooled buffer) the buffer comes
   * back as `data`, for the pool. With `into` (also taken), the envelope is sealed at its start
   * when it fits. Buffers in shared memory (BufferPool's `shared`) are lent, not moved: `data`
   * comes back as it was given, and the envelope is a view of `into`'s memory.
   */
  async seal(type: BlobType, id: Uint8Array, data: Uint8Array, giveBack = false, into?: Uint8Array): Promise<{ env: Uint8Array; data?: Uint8Array }> {
    const lent = data.buffer instanceof SharedArrayBuffer;
    const transfer = !lent && (giveBack || ownsItsBuffer(data)) ? [data.buffer] : [];
    if (into && into.buffer instanceof ArrayBuffer) transfer.push(into.buffer);
    const r = await this.pool.call({ kind: 'seal', type, id, data, ...(giveBack ? { giveBack } : {}), ...(into ? { into } : {}) }, transfer);
    if (r.status !== 'sealed') throw new Error('worker answered a seal request with ' + r.status);
    const env = r.env ?? into!.subarray(0, r.envLength);
    if (lent) return giveBack ? { env, data } : { env };
    return r.data ? { env, data: r.data } : { env };
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
