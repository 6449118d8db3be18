/**
 * RetryStore wraps a store and makes each call again when it fails with a transient StoreError (a
 * timeout, a dropped connection), waiting longer each time: exponential backoff with jitter, so
 * many clients that failed together do not come back together. A permanent failure is passed on at
 * once; so is an abort, which also cuts a wait short. After `maxAttempts` the last failure is passed
 * on, saying how many times Lifeboat tried, and is no longer transient (an outer retry would only
 * multiply the waits).
 *
 * Every store call is safe to make again (store.ts) with two subtleties handled here: a create-only
 * put whose earlier attempt may have landed finds its own bytes there rather than a conflict, and a
 * listing that fails midway starts over without reporting any name twice. A writer through this
 * wrapper collects its pieces and puts them whole at commit, since a retry must resend them; a
 * backend with resumable uploads retries the parts itself instead.
 */
import { delay } from '../util/concurrency.js';
import { isLifeboatError } from '../util/errors.js';
import { collectingWriter, isTransient, StoreError, type ObjectWriter, type OperationOptions, type PutOptions, type Store, type StoreStat } from './store.js';

export interface RetryOptions {
  /** Calls made at most, the first included (default 5). */
  readonly maxAttempts?: number;
  /** The wait after the first failure, before jitter; each further failure doubles it (default 500 ms). */
  readonly baseDelayMs?: number;
  /** The longest wait between two attempts (default 30 s). */
  readonly maxDelayMs?: number;
  /** A number in [0, 1) for the jitter; Math.random unless a test fixes it. */
  readonly random?: () => number;
  /** Told of each retry before its wait: for a progress line such as "connection lost, retrying in 2 s". */
  readonly onRetry?: (retry: { readonly doing: string; readonly name: string; readonly attempt: number; readonly delayMs: number; readonly error: unknown }) => void;
}

export class RetryStore implements Store {
  readonly location: string;
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly random: () => number;

  constructor(
    readonly inner: Store,
    private readonly options: RetryOptions = {},
  ) {
    this.location = inner.location;
    this.maxAttempts = Math.max(1, options.maxAttempts ?? 5);
    this.baseDelayMs = options.baseDelayMs ?? 500;
    this.maxDelayMs = options.maxDelayMs ?? 30_000;
    this.random = options.random ?? Math.random;
  }

  get properties(): Store['properties'] {
    return this.inner.properties;
  }

  /** The wait before attempt `attempt + 1`: half the backoff fixed, half random ("equal jitter"). */
  private delayAfter(attempt: number): number {
    const backoff = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (attempt - 1));
    return Math.round(backoff / 2 + (this.random() * backoff) / 2);
  }

  /** Runs `call` until it succeeds, fails permanently, is aborted or has had maxAttempts tries. */
  private async retrying<T>(doing: string, name: string, signal: AbortSignal | undefined, call: (attempt: number) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted();
      try {
        return await call(attempt);
      } catch (e) {
        await this.afterFailure(e, attempt, doing, name, signal);
      }
    }
  }

  /** After failed attempt number `attempt`: throws what is not to be retried, else waits for the next try. */
  private async afterFailure(e: unknown, attempt: number, doing: string, name: string, signal: AbortSignal | undefined): Promise<void> {
    if (!isTransient(e) || signal?.aborted) throw e;
    const last = e as StoreError;
    if (attempt >= this.maxAttempts) throw new StoreError(last.code, `${last.message} (Lifeboat tried ${attempt} times.)`, false, { cause: e });
    const delayMs = this.delayAfter(attempt);
    this.options.onRetry?.({ doing, name, attempt, delayMs, error: e });
    await delay(delayMs, signal);
  }

  async put(name: string, data: Uint8Array, options: PutOptions = {}): Promise<void> {
    let failedBefore = false;
    await this.retrying('save', name, options.signal, async () => {
      try {
        await this.inner.put(name, data, options);
      } catch (e) {
        // A create-only put whose earlier attempt landed (the answer was lost, not the write) finds
        // its own bytes under the name: that is success, not someone else's object.
        if (failedBefore && options.ifAbsent && isLifeboatError(e) && e.code === 'conflict' && (await this.holds(name, data, options.signal))) return;
        if (isTransient(e)) failedBefore = true;
        throw e;
      }
    });
  }

  /** Whether `name` holds exactly `data`. */
  private async holds(name: string, data: Uint8Array, signal: AbortSignal | undefined): Promise<boolean> {
    const stored = await this.get(name, undefined, undefined, signal === undefined ? {} : { signal });
    return Buffer.from(stored).equals(data);
  }

  createWriter(options: OperationOptions = {}): ObjectWriter {
    return collectingWriter((name, data, o) => this.put(name, data, o), options.signal);
  }

  get(name: string, offset?: number, length?: number, options: OperationOptions = {}): Promise<Uint8Array> {
    return this.retrying('read', name, options.signal, () => this.inner.get(name, offset, length, options));
  }

  stat(name: string, options: OperationOptions = {}): Promise<StoreStat | undefined> {
    return this.retrying('look at', name, options.signal, () => this.inner.stat(name, options));
  }

  /** A listing that fails midway starts over; names already reported are skipped. */
  async *list(prefix: string, options: OperationOptions = {}): AsyncIterable<StoreStat> {
    const seen = new Set<string>();
    const signal = options.signal;
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted();
      try {
        for await (const o of this.inner.list(prefix, options)) {
          if (seen.has(o.name)) continue;
          seen.add(o.name);
          yield o;
        }
        return;
      } catch (e) {
        await this.afterFailure(e, attempt, 'list', prefix, signal);
      }
    }
  }

  delete(name: string, options: OperationOptions = {}): Promise<void> {
    return this.retrying('delete', name, options.signal, () => this.inner.delete(name, options));
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
