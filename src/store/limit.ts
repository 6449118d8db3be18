/**
 * LimitStore wraps a store so that at most `maxInFlight` calls reach it at once; the others wait
 * their turn in order. A network backend needs this: a server answers a few dozen requests at a
 * time well and thousands badly, and a repository (a restore, a check) can ask for many at once.
 *
 * Each call holds a place only while the inner store works on it: a listing takes one per step
 * (so reading objects while listing cannot deadlock), a writer one per write and commit. An abort
 * while waiting for a place rejects at once. The repository's uploads in flight are capped by the
 * limit too.
 */
import { Semaphore } from '../util/concurrency.js';
import type { ObjectWriter, OperationOptions, PutOptions, Store, StoreProperties, StoreStat, WriterOptions } from './store.js';

export class LimitStore implements Store {
  readonly location: string;
  readonly properties: StoreProperties;
  private readonly places: Semaphore;

  constructor(
    readonly inner: Store,
    readonly maxInFlight: number,
  ) {
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1) throw new RangeError(`maxInFlight must be a positive integer, not ${maxInFlight}`);
    this.location = inner.location;
    this.properties = { ...inner.properties, uploadsInFlight: Math.min(inner.properties.uploadsInFlight, maxInFlight) };
    this.places = new Semaphore(maxInFlight);
  }

  /** Runs `call` once a place is free, and frees it when the call settles. */
  private async limited<T>(signal: AbortSignal | undefined, call: () => Promise<T>): Promise<T> {
    await this.places.acquire(signal);
    try {
      return await call();
    } finally {
      this.places.release();
    }
  }

  put(name: string, data: Uint8Array, options: PutOptions = {}): Promise<void> {
    return this.limited(options.signal, () => this.inner.put(name, data, options));
  }

  createWriter(options: WriterOptions = {}): ObjectWriter {
    const w = this.inner.createWriter(options);
    return {
      write: (data) => this.limited(options.signal, () => w.write(data)),
      commit: (name, o) => this.limited(o?.signal ?? options.signal, () => w.commit(name, o)),
      abort: () => w.abort(),
    };
  }

  get(name: string, offset?: number, length?: number, options: OperationOptions = {}): Promise<Uint8Array> {
    return this.limited(options.signal, () => this.inner.get(name, offset, length, options));
  }

  stat(name: string, options: OperationOptions = {}): Promise<StoreStat | undefined> {
    return this.limited(options.signal, () => this.inner.stat(name, options));
  }

  async *list(prefix: string, options: OperationOptions = {}): AsyncIterable<StoreStat> {
    const it = this.inner.list(prefix, options)[Symbol.asyncIterator]();
    try {
      for (;;) {
        const step = await this.limited(options.signal, () => it.next());
        if (step.done) return;
        yield step.value;
      }
    } finally {
      await it.return?.();
    }
  }

  delete(name: string, options: OperationOptions = {}): Promise<void> {
    return this.limited(options.signal, () => this.inner.delete(name, options));
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
