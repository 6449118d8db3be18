/**
 * The restore planner: reads the blobs a restore needs pack by pack, few requests per pack, with
 * the bytes read but not yet written bounded by a budget.
 *
 * Callers ask for blobs one at a time (`get`), as many at once as they like; the reader gathers
 * what is asked while its reads are busy and plans each gathering as a whole: one entry per
 * distinct blob (a blob many files share is read once and handed to each of them, a copy each),
 * grouped by pack in the order the packs were first asked for, sorted by offset within a pack.
 * A pack whose asked blobs fill at least half of the span from the first to the last is read with
 * one request over that span; a sparser one with one request per run of blobs that lie at most
 * READ_GAP apart. A caller that asks for a whole file's chunks at once therefore costs about one
 * request per pack, however the file is spread over packs, and a folder of small files one per
 * pack range. A caller that knows its whole list (a restore) gives it to `readSpans` instead, and
 * gets each read whole: the span's bytes and the blobs in it, to move to one worker thread.
 *
 * Memory: a read waits until its blobs fit in the budget (bytes handed out and not yet released,
 * plus reads in flight); `ahead` reads run at once. From `get`, each blob comes in a buffer of its
 * own, so it moves to a worker thread without the others, with a `release` to call once it is
 * written (or dropped); from `readSpans`, the read's buffer has one `release`. A caller that holds
 * them without releasing stops the reader when the budget is full: release in a `finally`.
 *
 * Workers open what they are handed (worker-codec.ts): nothing here decrypts. A blob the index does
 * not hold, or holds as a delta, resolves to undefined (Repository.loadBlob handles both); a read
 * that fails rejects every `get` that waited on it, and only those.
 */
import type { Store } from '../store/store.js';
import { ownsItsBuffer, release } from '../util/memory.js';
import { Names, toHex, type Hex } from './ids.js';
import type { MasterIndex } from './master-index.js';
import { BlobType } from './pack.js';
import type { SealedBlob } from './worker-codec.js';

/**
 * Blobs of one pack are read with one request when the gap between them is at most this many
 * bytes (read and thrown away): a request costs more than reading a few small blobs' worth more.
 */
export const READ_GAP = 256 * 1024;
/** At most this many bytes in one request, and at most half the budget (a quarter in readSpans); a whole pack is at most MAX_PACK_BYTES, 64 MiB, most are 8 MiB. */
const READ_RUN = 16 * 1024 * 1024;
/** Asked-for bytes that start a new plan even while reads are running: a whole pack's worth. */
const BATCH_BYTES = 8 * 1024 * 1024;
/** Default budget for blobs read and not yet released. */
const DEFAULT_BUDGET = 64 * 1024 * 1024;

/** A blob handed out by the reader; call `release` once it is written (or given up). */
export interface Lease {
  readonly blob: SealedBlob;
  readonly release: () => void;
}

export interface PackReaderOptions {
  /** Bytes of blobs read and not yet released, at most (a single larger read still goes alone). */
  readonly budget?: number;
  /** Requests in flight at once. */
  readonly ahead?: number;
  /** Blobs this close together in a pack are read with one request (READ_GAP by default). */
  readonly gap?: number;
}

/** Where a blob lies in its pack: what plan() groups and orders reads by. */
interface Placed {
  readonly packId: Hex;
  readonly offset: number;
  readonly length: number;
}

/** A blob get() was asked for, and who waits for it. */
interface Want extends Placed {
  readonly id: Uint8Array;
  readonly type: BlobType;
  readonly rawLength: number;
  readonly waiters: { resolve(l: Lease): void; reject(e: unknown): void }[];
}

/**
 * A blob of readSpans: its place in the list it was given (its id is there). A remote restore
 * plans ~100,000 at once: no waiter list each.
 */
interface SpanWant extends Placed {
  readonly k: number;
  readonly type: BlobType;
  readonly rawLength: number;
}

/** A blob in a read span: `offset` within the span's bytes. */
export interface SpanBlob {
  /** Its place in the list given to readSpans. */
  readonly k: number;
  readonly offset: number;
  readonly length: number;
  readonly type: BlobType;
  readonly id: Uint8Array;
  readonly rawLength: number;
}

/** One request's bytes (in a buffer of their own) and the blobs asked for in them, sorted by offset. */
export interface SpanRead {
  readonly packName: string;
  readonly bytes: Uint8Array;
  readonly blobs: readonly SpanBlob[];
  /** Gives the span's bytes back to the budget; call once they are written or dropped. */
  readonly release: () => void;
}

/** What readSpans hands over: a read, the blobs of a failed read, or a blob it does not read. */
export type SpanOutcome = { readonly read: SpanRead } | { readonly failed: readonly number[]; readonly error: unknown } | { readonly alone: number };

/** A copy of `view` in an ArrayBuffer of its own (not from Node's pool, not zeroed first). */
export function ownCopy(view: Uint8Array): Uint8Array {
  const out = Buffer.allocUnsafeSlow(view.length);
  out.set(view);
  return out;
}

export class PackReader {
  /** Asked for and not yet planned, by id (hex). */
  private pending = new Map<string, Want>();
  private pendingBytes = 0;
  private running = false;
  private used = 0;
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly budget: number;
  private readonly ahead: number;
  private readonly gap: number;
  /** Requests made (for tests and figures). */
  requests = 0;

  constructor(
    private readonly store: Store,
    private readonly index: MasterIndex,
    options: PackReaderOptions = {},
  ) {
    this.budget = options.budget ?? DEFAULT_BUDGET;
    this.ahead = options.ahead ?? 4;
    this.gap = options.gap ?? READ_GAP;
  }

  /**
   * The sealed blob `id`, read with the other blobs asked for meanwhile; undefined for a delta or
   * a blob the index does not hold. Release the lease once done with it.
   */
  get(id: Uint8Array): Promise<Lease | undefined> {
    const loc = this.index.get(id);
    if (!loc || loc.type === BlobType.delta) return Promise.resolve(undefined);
    return new Promise<Lease>((resolve, reject) => {
      const hex = toHex(id);
      let w = this.pending.get(hex);
      if (!w) {
        w = { id: new Uint8Array(id), packId: loc.packId, offset: loc.offset, length: loc.length, type: loc.type, rawLength: loc.rawLength, waiters: [] };
        this.pending.set(hex, w);
      }
      w.waiters.push({ resolve, reject });
      if (w.waiters.length === 1) {
        this.pendingBytes += w.length;
        if (this.pendingBytes >= BATCH_BYTES) this.wake();
      }
      if (!this.running) {
        this.running = true;
        // The asks made in this turn of the event loop are planned together.
        setImmediate(() => void this.run());
      }
    });
  }

  /**
   * Reads every blob of `ids` (distinct ids: the caller maps each to the places that need it), pack
   * by pack in the order the packs first appear in `ids`, each pack with as few requests as plan()
   * allows, `ahead` at once within the budget, and hands each read over whole as it arrives:
   * `each({ read })` with the span's bytes and the blobs in it (the caller moves the bytes to one
   * worker and calls `read.release()` once they are written or dropped), or `each({ failed, error })`
   * with the ids[k] of a failed read. A blob the index does not hold, or holds as a delta, gets
   * `each({ alone: k })` at once (the caller loads it another way). Once `stop` is aborted, no
   * further read starts and the blobs not read yet are never handed over. Resolves when every
   * read started has been handed over (reads may still be held).
   */
  async readSpans(ids: readonly Uint8Array[], each: (r: SpanOutcome) => void, stop?: AbortSignal): Promise<void> {
    const wants: SpanWant[] = [];
    for (const [k, id] of ids.entries()) {
      const loc = this.index.get(id);
      if (!loc || loc.type === BlobType.delta) {
        each({ alone: k });
        continue;
      }
      wants.push({ k, packId: loc.packId, offset: loc.offset, length: loc.length, type: loc.type, rawLength: loc.rawLength });
    }
    const reads: Promise<void>[] = [];
    // A quarter of the budget per request at most, so that a few reads (one per worker) fill it.
    for (const r of plan(wants, this.gap, Math.min(READ_RUN, Math.max(1, this.budget >> 2)))) {
      const span = r.end - r.start;
      await this.room(span);
      if (stop?.aborted) {
        this.free(span);
        break;
      }
      this.inFlight++;
      reads.push(this.readSpan(r, ids, each));
    }
    await Promise.all(reads);
  }

  /** The bytes of run `r` (counted in flight and in the budget by the caller); a failed read gives its share of the budget back. */
  private async fetch(r: Run<Placed>): Promise<Uint8Array> {
    try {
      this.requests++;
      return await this.store.get(Names.pack(r.packId), r.start, r.end - r.start);
    } catch (e) {
      this.free(r.end - r.start);
      throw e;
    } finally {
      this.inFlight--;
    }
  }

  private async readSpan(r: Run<SpanWant>, ids: readonly Uint8Array[], each: (r: SpanOutcome) => void): Promise<void> {
    const span = r.end - r.start;
    let bytes: Uint8Array;
    try {
      bytes = await this.fetch(r);
    } catch (error) {
      each({ failed: r.wants.map((w) => w.k), error });
      return;
    }
    let freed = false;
    const release = () => {
      if (!freed) this.free(span);
      freed = true;
    };
    const blobs = r.wants.map((w) => ({ k: w.k, offset: w.offset - r.start, length: w.length, type: w.type, id: ids[w.k]!, rawLength: w.rawLength }));
    each({ read: { packName: Names.pack(r.packId), bytes: ownsItsBuffer(bytes) ? bytes : ownCopy(bytes), blobs, release } });
  }

  /** Plans and reads what is pending, and what is asked meanwhile, until nothing is. */
  private async run(): Promise<void> {
    try {
      while (this.pending.size > 0) {
        const batch = [...this.pending.values()];
        this.pending = new Map();
        this.pendingBytes = 0;
        const runs = plan(batch, this.gap, Math.min(READ_RUN, Math.max(1, this.budget >> 1)));
        for (const r of runs) {
          await this.room(r.end - r.start);
          this.inFlight++;
          void this.read(r);
        }
        // What is asked while these reads run is planned together: the next plan starts when they
        // are done, or as soon as a whole pack's worth is waiting.
        while (this.inFlight > 0 && this.pendingBytes < BATCH_BYTES) await new Promise<void>((r) => this.waiting.push(r));
      }
    } finally {
      this.running = false;
    }
  }

  /** Waits until a read of `bytes` fits: fewer than `ahead` reads running and the budget not full. */
  private async room(bytes: number): Promise<void> {
    while (this.inFlight >= this.ahead || (this.used > 0 && this.used + bytes > this.budget)) {
      await new Promise<void>((r) => this.waiting.push(r));
    }
    this.used += bytes;
  }

  private free(bytes: number): void {
    this.used -= bytes;
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiting.splice(0)) w();
  }

  private async read(r: Run): Promise<void> {
    const span = r.end - r.start;
    let bytes: Uint8Array;
    try {
      bytes = await this.fetch(r);
    } catch (e) {
      for (const w of r.wants) for (const x of w.waiters) x.reject(e);
      return;
    }
    // The bytes between blobs were read and are dropped; each blob's share is released by its lease.
    let kept = 0;
    const whole = r.wants.length === 1 && r.wants[0]!.waiters.length === 1 && ownsItsBuffer(bytes);
    for (const w of r.wants) {
      const view = bytes.subarray(w.offset - r.start, w.offset - r.start + w.length);
      for (const [k, x] of w.waiters.entries()) {
        kept += w.length;
        let freed = false;
        const release = () => {
          if (!freed) this.free(w.length);
          freed = true;
        };
        const blob: SealedBlob = { type: w.type, id: k === 0 ? w.id : new Uint8Array(w.id), rawLength: w.rawLength, packName: Names.pack(r.packId), env: whole ? bytes : ownCopy(view) };
        x.resolve({ blob, release });
      }
    }
    if (!whole) release(bytes); // every blob has its copy: the read's buffer is freed now, not at the next collection
    // Copies for a blob's second and later users went over the budget by their size: no wait,
    // they are handed out now; their releases bring the count back.
    const over = kept - span;
    if (over < 0) this.free(-over);
    else {
      this.used += over;
      this.wake();
    }
  }
}

interface Run<W extends Placed = Want> {
  readonly packId: Hex;
  readonly start: number;
  end: number;
  readonly wants: W[];
}

/** The reads for `wants`: packs in the order first asked for, blobs by offset (see the module comment). */
export function plan<W extends Placed>(wants: readonly W[], gap: number, maxRun: number): Run<W>[] {
  const byPack = new Map<Hex, W[]>();
  for (const w of wants) {
    const list = byPack.get(w.packId);
    if (list) list.push(w);
    else byPack.set(w.packId, [w]);
  }
  const runs: Run<W>[] = [];
  for (const [packId, list] of byPack) {
    list.sort((a, b) => a.offset - b.offset);
    const first = list[0]!.offset;
    const last = list[list.length - 1]!;
    const span = last.offset + last.length - first;
    let needed = 0;
    for (const w of list) needed += w.length;
    const dense = needed * 2 >= span;
    let cur: Run<W> | undefined;
    for (const w of list) {
      if (cur && (dense || w.offset - cur.end <= gap) && w.offset + w.length - cur.start <= maxRun) {
        cur.wants.push(w);
        cur.end = w.offset + w.length;
      } else {
        cur = { packId, start: w.offset, end: w.offset + w.length, wants: [w] };
        runs.push(cur);
      }
    }
  }
  return runs;
}

/**
 * Blobs loaded through a restore planner with a read-ahead: `prefetch(ids)` asks for blobs the
 * caller expects to load soon, in the order it will (read with whatever is asked meanwhile, one
 * request per pack span, and kept sealed: nothing is decrypted until asked for); `load(id)` takes
 * a prefetched blob or reads it. Prefetched blobs not yet loaded hold at most about `keep` bytes:
 * once they do, prefetching stops, or with `drop` (guesses, such as the chunks after one read)
 * the oldest are dropped to make room. Keep `keep` at most half the reader's budget.
 */
export class ReadAhead {
  private readonly held = new Map<string, { readonly lease: Promise<Lease | undefined>; readonly bytes: number }>();
  private heldBytes = 0;

  constructor(
    private readonly reader: PackReader,
    private readonly index: MasterIndex,
    private readonly keep: number,
    /** Opens a sealed blob (decrypt, decompress, check). */
    private readonly open: (blob: SealedBlob) => Promise<Uint8Array>,
    /** Loads a blob the reader does not read (a delta, or one the index lacks: the error says so). */
    private readonly loadAlone: (id: Uint8Array) => Promise<Uint8Array>,
  ) {}

  /** Asks for `ids` ahead; false when prefetching stopped before the end of them (`keep` bytes held). */
  prefetch(ids: readonly Uint8Array[], drop = false): boolean {
    for (const id of ids) {
      if (!drop && this.heldBytes >= this.keep) return false;
      const key = toHex(id);
      const loc = this.index.get(id);
      if (this.held.has(key) || !loc || loc.type === BlobType.delta) continue;
      const lease = this.reader.get(id);
      lease.catch(() => undefined); // a failed prefetch is read again when loaded
      this.held.set(key, { lease, bytes: loc.length });
      this.heldBytes += loc.length;
    }
    for (const [key, h] of this.held) {
      if (this.heldBytes <= this.keep) break;
      this.drop(key, h);
    }
    return true;
  }

  async load(id: Uint8Array): Promise<Uint8Array> {
    const key = toHex(id);
    const h = this.held.get(key);
    const lease = h ? (this.take(key, h), await h.lease.catch(() => undefined)) : await this.reader.get(id);
    if (!lease) return this.loadAlone(id);
    try {
      return await this.open(lease.blob);
    } finally {
      lease.release();
    }
  }

  /** Drops every prefetched blob not loaded. */
  clear(): void {
    for (const [key, h] of this.held) this.drop(key, h);
  }

  private take(key: string, h: { readonly bytes: number }): void {
    this.held.delete(key);
    this.heldBytes -= h.bytes;
  }

  private drop(key: string, h: { readonly lease: Promise<Lease | undefined>; readonly bytes: number }): void {
    this.take(key, h);
    void h.lease.then((l) => l?.release(), () => undefined);
  }
}
