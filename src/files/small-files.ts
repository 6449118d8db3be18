/**
 * Backs up small files (one chunk each) on worker threads: each worker opens, reads, hashes,
 * compresses and seals whole files, so the main thread only deduplicates and packs. This is where
 * a first backup of many small files spends its time; see bench/README.md.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Repository } from '../repo/repository.js';
import { createZstdCodec } from '../repo/compress.js';
import { sealBlobSync, worthAWorker, type BlobSealer } from '../repo/encoder.js';

export interface SmallFileRequest {
  readonly seq: number;
  readonly path: Uint8Array;
  readonly ino: string;
  readonly size: string;
  readonly mtimeNs: string;
  readonly type: number;
  /** Files at or above this size are sent back ('fallback'). */
  readonly limit: number;
}

export interface SealRequest {
  readonly seq: number;
  readonly kind: 'seal';
  readonly type: number;
  readonly id: Uint8Array;
  readonly data: Uint8Array;
}

export type SmallFileReply =
  | { readonly seq: number; readonly status: 'ok'; readonly bytesRead: number; readonly changed: boolean; readonly id?: Uint8Array; readonly env?: Uint8Array; readonly rawLength?: number }
  | { readonly seq: number; readonly status: 'open-failed' | 'read-failed'; readonly code: string }
  | { readonly seq: number; readonly status: 'replaced' | 'fallback' }
  | { readonly seq: number; readonly status: 'sealed'; readonly env: Uint8Array };

/**
 * One pool of worker threads for a backup: whole small files, and sealing the chunks of large
 * files (as the repository's BlobSealer), so a backup runs two workers, not four.
 */
export class SmallFileSaver implements BlobSealer {
  private readonly workers: Worker[] = [];
  private readonly waiting = new Map<number, { resolve(r: SmallFileReply): void; reject(e: unknown): void }>();
  private readonly keys: { encKey: Buffer };
  private readonly codec = createZstdCodec();
  private seq = 0;
  private next = 0;

  private readonly workerData: { encKey: Buffer; idKey: Buffer };

  constructor(repo: Repository, private readonly threads = Math.max(1, Math.min(4, availableParallelism()))) {
    this.keys = { encKey: repo.keys.encKey };
    this.workerData = { encKey: repo.keys.encKey, idKey: repo.keys.idKey };
  }

  /** Workers start on first use: a backup where nothing changed never pays for them. */
  private start(): void {
    for (let i = 0; i < this.threads; i++) {
      const w = new Worker(new URL('./small-file-worker.js', import.meta.url), { workerData: this.workerData });
      w.on('message', (r: SmallFileReply) => {
        const p = this.waiting.get(r.seq);
        this.waiting.delete(r.seq);
        if (this.waiting.size === 0) for (const x of this.workers) x.unref();
        p?.resolve(r);
      });
      w.on('error', (e) => {
        for (const p of this.waiting.values()) p.reject(e);
        this.waiting.clear();
      });
      w.unref(); // after the listeners: attaching one refs the worker again
      this.workers.push(w);
    }
  }

  save(req: Omit<SmallFileRequest, 'seq'>): Promise<SmallFileReply> {
    return this.post(req);
  }

  async encode(type: number, id: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
    if (!worthAWorker(data.length)) return sealBlobSync(this.codec, this.keys.encKey, type, id, data);
    const r = await this.post({ kind: 'seal', type, id, data });
    if (r.status !== 'sealed') throw new Error('worker answered a seal request with ' + r.status);
    return r.env;
  }

  private post(req: Omit<SmallFileRequest, 'seq'> | Omit<SealRequest, 'seq'>): Promise<SmallFileReply> {
    if (this.workers.length === 0) this.start();
    const seq = this.seq++;
    const w = this.workers[this.next++ % this.workers.length]!;
    return new Promise((resolve, reject) => {
      // Referenced only while an answer is owed (see BlobEncoder).
      if (this.waiting.size === 0) for (const x of this.workers) x.ref();
      this.waiting.set(seq, { resolve, reject });
      w.postMessage({ ...req, seq });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
