/**
 * A ring of shared memory that worker threads write results into and one thread reads them from,
 * instead of sending each result in an ArrayBuffer of its own. A backup's workers seal tens of
 * thousands of small files; each envelope was a fresh allocation on the worker, a transferred
 * ArrayBuffer on the main thread (a new backing store V8 counts as outside memory, which started
 * scavenges and full collections for "external memory pressure") and a free back into the
 * worker's arena, per file (bench/README.md, session 15).
 *
 * Positions are virtual: they count bytes from the ring's creation modulo 2^32 (the capacity is a
 * power of two, so a position's place in the ring is its low bits). Writers reserve space by
 * moving the shared head (compare-and-swap: any number of writers); a reservation that would run
 * past the ring's end starts again at its beginning, and the skipped bytes belong to it. The reader
 * frees each reservation, in any order, once it is done with it; the tail moves over every range
 * freed without a gap, and a writer never reserves past it. A writer that finds the ring full gets
 * nothing and uses memory of its own: nobody waits. (A reservation of more than half the ring
 * may find no room even in an empty ring, for the bytes it would skip.)
 */

const HEAD = 0;
const TAIL = 1;

/** What a writer needs, plain shared memory that crosses threads as it is (workerData). */
export interface RingHandle {
  readonly data: SharedArrayBuffer;
  readonly ctrl: SharedArrayBuffer;
}

/** A writer's space: the reservation's range [from, end) to free, and its bytes at `at`. */
export interface Reservation {
  readonly from: number;
  readonly end: number;
  readonly at: number;
  /** The reserved bytes (a view of the shared memory). */
  readonly view: Uint8Array;
}

function ringParts(h: RingHandle): { bytes: Uint8Array; ctrl: Int32Array; mask: number } {
  const cap = h.data.byteLength;
  if (cap === 0 || (cap & (cap - 1)) !== 0 || cap > 2 ** 30) throw new Error('a shared ring holds a power of two of bytes, at most 1 GiB');
  return { bytes: new Uint8Array(h.data), ctrl: new Int32Array(h.ctrl), mask: cap - 1 };
}

/** The writing side (a worker thread): reserves space, then gives back what it did not use. */
export class RingWriter {
  private readonly bytes: Uint8Array;
  private readonly ctrl: Int32Array;
  private readonly mask: number;

  constructor(h: RingHandle) {
    ({ bytes: this.bytes, ctrl: this.ctrl, mask: this.mask } = ringParts(h));
  }

  /** `n` bytes of the ring, or undefined while the reader still holds too much of it. */
  reserve(n: number): Reservation | undefined {
    const cap = this.mask + 1;
    if (n <= 0 || n > cap) return undefined;
    for (;;) {
      const from = Atomics.load(this.ctrl, HEAD) >>> 0;
      const place = from & this.mask;
      const at = place + n > cap ? (from + (cap - place)) >>> 0 : from;
      const end = (at + n) >>> 0;
      if ((end - (Atomics.load(this.ctrl, TAIL) >>> 0)) >>> 0 > cap) return undefined;
      if (Atomics.compareExchange(this.ctrl, HEAD, from | 0, end | 0) >>> 0 === from) {
        return { from, end, at, view: this.bytes.subarray(at & this.mask, (at & this.mask) + n) };
      }
    }
  }

  /**
   * Keeps only the first `used` bytes of `r` when no reservation followed it (the rest is the
   * next one's); returns the range's end to free, r.end otherwise.
   */
  shrink(r: Reservation, used: number): number {
    const end = (r.at + used) >>> 0;
    return Atomics.compareExchange(this.ctrl, HEAD, r.end | 0, end | 0) >>> 0 === r.end ? end : r.end;
  }
}

/** The reading side (the thread that made the ring): views of what writers wrote, and freeing. */
export class RingReader {
  readonly handle: RingHandle;
  private readonly bytes: Uint8Array;
  private readonly ctrl: Int32Array;
  private readonly mask: number;
  /** Ranges freed ahead of the tail: start -> end. */
  private readonly ahead = new Map<number, number>();

  /** A ring of `capacity` bytes (a power of two). */
  constructor(capacity: number) {
    this.handle = { data: new SharedArrayBuffer(capacity), ctrl: new SharedArrayBuffer(8) };
    ({ bytes: this.bytes, ctrl: this.ctrl, mask: this.mask } = ringParts(this.handle));
  }

  /** The `n` bytes written at virtual position `at` (valid until their reservation is freed). */
  view(at: number, n: number): Uint8Array {
    const p = at & this.mask;
    return this.bytes.subarray(p, p + n);
  }

  /** Frees the reservation [from, end): its space is the writers' again once every earlier one is freed too. */
  free(from: number, end: number): void {
    let tail = Atomics.load(this.ctrl, TAIL) >>> 0;
    if (from !== tail) {
      this.ahead.set(from, end);
      return;
    }
    tail = end;
    for (let next = this.ahead.get(tail); next !== undefined; next = this.ahead.get(tail)) {
      this.ahead.delete(tail);
      tail = next;
    }
    Atomics.store(this.ctrl, TAIL, tail | 0);
  }

  /** Bytes reserved and not yet freed (tests). */
  get used(): number {
    return ((Atomics.load(this.ctrl, HEAD) >>> 0) - (Atomics.load(this.ctrl, TAIL) >>> 0)) >>> 0;
  }
}
