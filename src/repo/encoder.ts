/**
 * Blob encoding (compress, then seal) spread over worker threads so zstd uses every core: the
 * zstd binding's async calls run one at a time, so the thread pool alone does not parallelise.
 * Small blobs are encoded inline (a message round trip costs more than compressing them).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Codec } from './compress.js';
import { seal } from './crypto.js';
import { CODEC_RAW, CODEC_ZSTD } from './envelope-file.js';
import { blobAad } from './pack.js';

/** Below this, encode on the calling thread. */
const INLINE_BELOW = 64 * 1024;

/** codec byte ‖ body, compressed only when that saves at least 16 bytes (docs/FORMAT.md §2). */
export function encodeSync(codec: Codec, body: Uint8Array): Uint8Array[] {
  if (body.length >= 64) {
    const z = codec.compressSync(body);
    if (z.length < body.length - 16) return [Uint8Array.of(CODEC_ZSTD), z];
  }
  return [Uint8Array.of(CODEC_RAW), body];
}

export function sealBlobSync(codec: Codec, encKey: Buffer, type: number, id: Uint8Array, data: Uint8Array): Buffer {
  return seal(encKey, encodeSync(codec, data), blobAad(type, id));
}

/** Anything that turns a blob into its sealed envelope (BlobEncoder, or a caller's worker pool). */
export interface BlobSealer {
  encode(type: number, id: Uint8Array, data: Uint8Array): Promise<Uint8Array>;
}

/** Whether a blob is worth a round trip to a worker thread. */
export function worthAWorker(length: number): boolean {
  return length >= INLINE_BELOW;
}

interface Job {
  resolve(env: Uint8Array): void;
  reject(e: unknown): void;
}

export class BlobEncoder implements BlobSealer {
  private workers: Worker[] = [];
  private readonly jobs = new Map<number, Job>();
  private seq = 0;
  private next = 0;
  private failed: unknown;

  constructor(
    private readonly codec: Codec,
    private readonly encKey: Buffer,
    private readonly threads = Math.max(1, Math.min(4, availableParallelism())),
  ) {}

  private start(): void {
    for (let i = 0; i < this.threads; i++) {
      const w = new Worker(new URL('./encode-worker.js', import.meta.url), { workerData: { encKey: this.encKey } });
      w.on('message', (m: { seq: number; env?: Uint8Array; error?: string }) => {
        const job = this.jobs.get(m.seq);
        if (!job) return;
        this.jobs.delete(m.seq);
        if (this.jobs.size === 0) for (const x of this.workers) x.unref();
        if (m.env) job.resolve(m.env);
        else job.reject(new Error(m.error ?? 'encoder worker failed'));
      });
      w.on('error', (e) => this.fail(e));
      w.unref(); // after the listeners: attaching one refs the worker again
      this.workers.push(w);
    }
  }

  private fail(e: unknown): void {
    this.failed ??= e;
    for (const j of this.jobs.values()) j.reject(e);
    this.jobs.clear();
  }

  /** The sealed envelope of a blob (docs/FORMAT.md §6). `data` is copied, never detached. */
  async encode(type: number, id: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
    if (data.length < INLINE_BELOW || this.threads <= 1) return sealBlobSync(this.codec, this.encKey, type, id, data);
    if (this.failed !== undefined) throw this.failed;
    if (this.workers.length === 0) this.start();
    const seq = this.seq++;
    const w = this.workers[this.next++ % this.workers.length]!;
    return new Promise<Uint8Array>((resolve, reject) => {
      // Workers are referenced only while they owe an answer, so an idle pool never keeps the
      // process alive and a busy one always does.
      if (this.jobs.size === 0) for (const x of this.workers) x.ref();
      this.jobs.set(seq, { resolve, reject });
      w.postMessage({ seq, type, id, data });
    });
  }

  async close(): Promise<void> {
    const ws = this.workers;
    this.workers = [];
    await Promise.all(ws.map((w) => w.terminate()));
  }
}
