/**
 * A small pool of worker threads answering one reply per request, matched by a sequence number.
 * Requests go round-robin; workers start on first use and are referenced only while they owe an
 * answer, so an idle pool never keeps the process alive. A worker that dies fails every request
 * it still owes, and every later one.
 */
import { availableParallelism } from 'node:os';
import { Worker, type TransferListItem } from 'node:worker_threads';

export class WorkerPool<Req extends object, Reply extends { readonly seq: number }> {
  private workers: Worker[] = [];
  private readonly waiting = new Map<number, { resolve(r: Reply): void; reject(e: unknown): void }>();
  private seq = 0;
  private next = 0;
  private failed: unknown;

  constructor(
    private readonly script: URL,
    private readonly workerData: unknown,
    readonly threads = Math.max(1, Math.min(4, availableParallelism())),
  ) {}

  private start(): void {
    for (let i = 0; i < this.threads; i++) {
      const w = new Worker(this.script, { workerData: this.workerData });
      w.on('message', (r: Reply) => {
        const p = this.waiting.get(r.seq);
        this.waiting.delete(r.seq);
        if (this.waiting.size === 0) for (const x of this.workers) x.unref();
        p?.resolve(r);
      });
      w.on('error', (e) => {
        this.failed ??= e;
        for (const p of this.waiting.values()) p.reject(e);
        this.waiting.clear();
      });
      w.unref(); // after the listeners: attaching one refs the worker again
      this.workers.push(w);
    }
  }

  /** Sends `req` (with a fresh seq) to the next worker; `transfer` moves buffers instead of copying them. */
  call(req: Req, transfer: readonly TransferListItem[] = []): Promise<Reply> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    if (this.workers.length === 0) this.start();
    const seq = this.seq++;
    const w = this.workers[this.next++ % this.workers.length]!;
    return new Promise<Reply>((resolve, reject) => {
      if (this.waiting.size === 0) for (const x of this.workers) x.ref();
      this.waiting.set(seq, { resolve, reject });
      w.postMessage({ ...req, seq }, transfer);
    });
  }

  async close(): Promise<void> {
    const ws = this.workers;
    this.workers = [];
    await Promise.all(ws.map((w) => w.terminate()));
  }
}
