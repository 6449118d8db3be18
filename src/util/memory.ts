/**
 * Prompt release of buffer memory. Node frees an ArrayBuffer's bytes only when V8 collects its
 * object, and V8 starts a collection for outside-the-heap memory only after tens of MiB have
 * piled up, in every thread. A pipeline that moves hundreds of MiB through short-lived buffers
 * (packs, chunks, envelopes) therefore holds far more than it uses. `releaseBuffers()` starts a
 * full collection in the background (V8's concurrent marking) after each large unit of work.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Gc = (options: { type: 'major'; execution: 'async' }) => Promise<void> | void;
let gc: Gc | undefined | null;

function collector(): Gc | undefined {
  if (gc === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as Gc;
    } catch {
      gc = null;
    }
  }
  return gc ?? undefined;
}

/** Asks V8 to collect garbage soon without blocking (a no-op where that is not possible). */
export function releaseBuffers(): void {
  try {
    void collector()?.({ type: 'major', execution: 'async' });
  } catch {
    gc = null;
  }
}

/** Calls releaseBuffers() once every `bytes` bytes passed to `add`. */
export class ReleaseEvery {
  private since = 0;
  constructor(private readonly bytes: number) {}
  add(n: number): void {
    this.since += n;
    if (this.since >= this.bytes) {
      this.since = 0;
      releaseBuffers();
    }
  }
}
