/** Bounded concurrency helpers shared by every layer (util may import nothing else). */

/** A counting semaphore: at most `free` holders at once; waiters are served in order. */
export class Semaphore {
  private waiters: (() => void)[] = [];
  constructor(private free: number) {}
  tryAcquire(): boolean {
    if (this.free > 0) {
      this.free--;
      return true;
    }
    return false;
  }
  /** Waits for a place; with a signal, an abort while waiting rejects with its reason and takes no place. */
  async acquire(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    if (this.tryAcquire()) return;
    if (!signal) {
      await new Promise<void>((r) => this.waiters.push(r));
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const served = (): void => {
        signal.removeEventListener('abort', aborted);
        resolve();
      };
      const aborted = (): void => {
        this.waiters.splice(this.waiters.indexOf(served), 1);
        reject(signal.reason);
      };
      this.waiters.push(served);
      signal.addEventListener('abort', aborted, { once: true });
    });
  }
  release(): void {
    const w = this.waiters.shift();
    if (w) w();
    else this.free++;
  }
}

/** Runs fn(0…n-1) with at most `width` calls in flight. */
export async function pool(n: number, width: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(width, n) }, worker));
}

/** Resolves after `ms` milliseconds; an abort rejects at once with the signal's reason. */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const aborted = (): void => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', aborted);
      resolve();
    }, ms);
    signal?.addEventListener('abort', aborted, { once: true });
  });
}

/** Resolves once every one of `promises` has settled, or sooner, when `signal` aborts; never rejects. */
export function settledUnless(promises: Iterable<Promise<unknown>>, signal?: AbortSignal): Promise<void> {
  const all = Promise.allSettled([...promises]).then(() => undefined);
  if (!signal) return all;
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const aborted = (): void => resolve();
    signal.addEventListener('abort', aborted, { once: true });
    void all.then(() => {
      signal.removeEventListener('abort', aborted);
      resolve();
    });
  });
}
