/**
 * A small pool of worker threads answering one reply per request, matched by a sequence number.
 * Requests go round-robin and travel in batches: a message between threads costs tens of µs
 * whatever it holds, so the requests made in one turn of the event loop (by default at most 32
 * per worker) share one message; replies go back 8 at a time (see Batching). Workers start on
 * first use and are referenced only while they owe an answer, so an idle pool never keeps the
 * process alive. A worker that dies fails every request it still owes, and every later one.
 *
 * Worker scripts answer with serveBatches().
 */
import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { parentPort, Worker, type TransferListItem } from 'node:worker_threads';
import { YoungCollector } from './memory.js';

/** Batching's defaults: requests per message to one worker, and replies per message back. */
const MAX_BATCH = 32;
const REPLY_BATCH = 8;

/**
 * How many requests share a message to a worker (at most), and how many replies share one back.
 * Bigger batches cost fewer messages; smaller replies hand work back sooner, so the caller must
 * keep more requests in flight than a worker's reply batch, or the pipeline stalls.
 */
export interface Batching {
  readonly requests?: number;
  readonly replies?: number;
}

export interface Served<Reply> {
  readonly reply: Reply;
  readonly transfer?: TransferListItem[];
  /** Bytes of buffers this request allocated and dropped (see util/memory.ts). */
  readonly dropped?: number;
}
/**
 * A worker's young generation, in MiB (V8's default grows to 48): workers keep few objects, and a
 * small one is collected often, which frees dropped buffers sooner. V8 lets a process-wide
 * --max-semi-space-size (bin/lifeboat.js sizes the main thread's with it) override this limit, so
 * start() clears that flag first: it is read only when an isolate is created.
 */
const YOUNG_GENERATION_MB = 6;
/** A worker collects its young generation once per this many bytes of dropped buffers. */
const COLLECT_EVERY = 4 * 1024 * 1024;

interface Outgoing {
  items: object[];
  transfer: TransferListItem[];
}

export class WorkerPool<Req extends object, Reply extends { readonly seq: number }> {
  private workers: Worker[] = [];
  private outgoing: Outgoing[] = [];
  private readonly waiting = new Map<number, { resolve(r: Reply): void; reject(e: unknown): void }>();
  private seq = 0;
  private next = 0;
  private failed: unknown;
  private flushing: NodeJS.Immediate | undefined;

  constructor(
    private readonly script: URL,
    private readonly workerData: unknown,
    readonly threads = Math.max(1, Math.min(4, availableParallelism())),
    private readonly batching: Batching = {},
  ) {}

  private start(): void {
    setFlagsFromString('--max-semi-space-size=0'); // 0: V8's default, which resourceLimits may set
    for (let i = 0; i < this.threads; i++) {
      const w = new Worker(this.script, { workerData: this.workerData, resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB } });
      w.on('message', (m: { batch: Reply[] }) => {
        for (const r of m.batch) {
          const p = this.waiting.get(r.seq);
          this.waiting.delete(r.seq);
          p?.resolve(r);
        }
        if (this.waiting.size === 0) for (const x of this.workers) x.unref();
      });
      w.on('error', (e) => {
        this.failed ??= e;
        for (const p of this.waiting.values()) p.reject(e);
        this.waiting.clear();
      });
      w.unref(); // after the listeners: attaching one refs the worker again
      this.workers.push(w);
      this.outgoing.push({ items: [], transfer: [] });
    }
  }

  /** Queues `req` (with a fresh seq) for the next worker; `transfer` moves buffers instead of copying them. */
  call(req: Req, transfer: readonly TransferListItem[] = []): Promise<Reply> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    if (this.workers.length === 0) this.start();
    const seq = this.seq++;
    const i = this.next++ % this.workers.length;
    return new Promise<Reply>((resolve, reject) => {
      if (this.waiting.size === 0) for (const x of this.workers) x.ref();
      this.waiting.set(seq, { resolve, reject });
      const out = this.outgoing[i]!;
      out.items.push({ ...req, seq });
      out.transfer.push(...transfer);
      if (out.items.length >= (this.batching.requests ?? MAX_BATCH)) this.send(i);
      else this.flushing ??= setImmediate(() => this.flush());
    });
  }

  private send(i: number): void {
    const out = this.outgoing[i]!;
    if (out.items.length === 0) return;
    this.outgoing[i] = { items: [], transfer: [] };
    this.workers[i]!.postMessage({ batch: out.items, replyEvery: this.batching.replies ?? REPLY_BATCH }, out.transfer);
  }

  private flush(): void {
    this.flushing = undefined;
    for (let i = 0; i < this.workers.length; i++) this.send(i);
  }

  async close(): Promise<void> {
    if (this.flushing) clearImmediate(this.flushing);
    this.flushing = undefined;
    const ws = this.workers;
    this.workers = [];
    this.outgoing = [];
    await Promise.all(ws.map((w) => w.terminate()));
  }
}

/**
 * The worker side: answers each batch of requests in order with one message. `handle` returns the
 * reply, the buffers to transfer with it and how many bytes of buffers it dropped; a request that
 * throws is answered by `onError`.
 */
export function serveBatches<Req extends { readonly seq: number }, Reply extends { readonly seq: number }>(
  handle: (req: Req) => Promise<Served<Reply>> | Served<Reply>,
  onError: (req: Req, e: unknown) => Reply,
): void {
  const young = new YoungCollector(COLLECT_EVERY);
  parentPort!.on('message', (m: { batch: Req[]; replyEvery: number }) => {
    void (async () => {
      let replies: Reply[] = [];
      let transfer: TransferListItem[] = [];
      for (const req of m.batch) {
        try {
          const r = await handle(req);
          replies.push(r.reply);
          if (r.transfer) transfer.push(...r.transfer);
          if (r.dropped) young.dropped(r.dropped);
        } catch (e) {
          replies.push(onError(req, e));
        }
        // Answer in parts, so the main thread gets work back while this batch goes on.
        if (replies.length >= m.replyEvery) {
          parentPort!.postMessage({ batch: replies }, transfer);
          replies = [];
          transfer = [];
        }
      }
      if (replies.length > 0) parentPort!.postMessage({ batch: replies }, transfer);
    })();
  });
}
