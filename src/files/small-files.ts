/**
 * Backs up small files (one chunk each) on worker threads: each worker opens, reads, hashes,
 * compresses and seals whole files (with repo's WorkerCodec), so the main thread only
 * deduplicates and packs. This is where a first backup of many small files spends its time; see
 * bench/README.md. The same workers seal the chunks of large files: the backup hands the
 * repository sealed blobs (Repository.saveSealedBlob), so a backup runs one pool of workers, not two.
 */
import { availableParallelism } from 'node:os';
import { ownsItsBuffer } from '../util/memory.js';
import { WorkerPool } from '../util/worker-pool.js';
import type { BlobType, Repository } from '../repo/repository.js';

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

export type SmallFileReply =
  | { readonly seq: number; readonly status: 'ok'; readonly bytesRead: number; readonly changed: boolean; readonly id?: Uint8Array; readonly env?: Uint8Array; readonly rawLength?: number }
  | { readonly seq: number; readonly status: 'open-failed' | 'read-failed'; readonly code: string }
  | { readonly seq: number; readonly status: 'replaced' | 'fallback' }
  | { readonly seq: number; readonly status: 'sealed'; readonly env: Uint8Array; readonly data?: Uint8Array };

/** One pool of worker threads for a backup: whole small files, and sealing the chunks of large files. */
export class SmallFileSaver {
  private readonly pool: WorkerPool<Omit<SmallFileRequest, 'seq'> | Omit<SealRequest, 'seq'>, SmallFileReply>;

  /**
   * Workers start on first use: a backup where nothing changed never pays for them. One core is
   * left to the main thread, which walks, chunks large files, hashes and packs: on 2 cores one
   * worker beside it backed up 100k files faster than two (13.4-13.9 s against 13.7-14.2 s, less
   * CPU) and in 165 MiB instead of 180-190 (bench/README.md, session 6).
   */
  constructor(repo: Repository, threads = Math.max(1, Math.min(4, availableParallelism() - 1))) {
    this.pool = new WorkerPool(new URL('./small-file-worker.js', import.meta.url), { codec: repo.workerCodec() }, threads);
  }

  save(req: Omit<SmallFileRequest, 'seq'>): Promise<SmallFileReply> {
    return this.pool.call(req);
  }

  /**
   * The sealed envelope of blob `id` (the caller computed it with Repository.blobId). Takes `data`:
   * a chunk from the chunker owns its buffer, which moves to the worker rather than being copied,
   * so the caller must not use it afterwards. With `giveBack` (a pooled buffer) the buffer comes
   * back as `data`, for the pool. With `into` (also taken), the envelope is sealed at its start
   * when it fits.
   */
  async seal(type: BlobType, id: Uint8Array, data: Uint8Array, giveBack = false, into?: Uint8Array): Promise<{ env: Uint8Array; data?: Uint8Array }> {
    const transfer = giveBack || ownsItsBuffer(data) ? [data.buffer as ArrayBuffer] : [];
    if (into) transfer.push(into.buffer as ArrayBuffer);
    const r = await this.pool.call({ kind: 'seal', type, id, data, ...(giveBack ? { giveBack } : {}), ...(into ? { into } : {}) }, transfer);
    if (r.status !== 'sealed') throw new Error('worker answered a seal request with ' + r.status);
    return r.data ? { env: r.env, data: r.data } : { env: r.env };
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
