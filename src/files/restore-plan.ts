/**
 * The restore plan: the contents a restore writes, gathered from its walk before anything is read,
 * then read pack by pack, as restic's restorer does. The restorer walks the snapshot (folders made,
 * names and overwrites decided) and adds each file it will write: a single-chunk file as one job
 * (a worker creates it with its data, owner, mode and times), a larger one as the list of its chunks
 * and their places. Nothing is read while the walk adds; a segment is read when it is full or the
 * walk is over: its distinct blobs go to the restore planner (Repository.packReader readSpans) in
 * the order the walk first needed them, so each pack is read with one request per dense span (a
 * few per pack), a few reads in flight within the planner's budget, and each read goes whole, as it
 * arrives, to one worker with every file and place its blobs go to (restore-workers.ts: a blob many
 * files share is opened once and written to all of them).
 *
 * A larger file is created when its first chunk arrives and handed back open once its last chunk is
 * written; the caller sets its length and metadata and closes it. A file whose data is damaged or
 * missing (a failed read, a worker's failed check) is rejected with that error and its other
 * chunks are skipped; the others go on. A failure of the store or of the drive (anything but
 * damage) stops the reads: every file not yet written is rejected with it.
 *
 * Memory: a segment holds at most SEGMENT.files files, SEGMENT.open larger files (each open from
 * its first chunk to its last: the descriptors in use) and about SEGMENT.places chunk places; a file
 * is added whole, so one file larger than that makes a segment of its own. A single-chunk file is a
 * small record with its tree entry (no promise: a folder's files share one SmallFiles), and a
 * blob's places are kept in flat arrays. The walk goes on into the next segment while one is read,
 * and waits when that one is full too: two segments at most.
 * Every few thousand files read, V8 is asked for a full collection (util/memory.ts, COLLECTION).
 */
import { constants as C } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { fromHex, type Hex } from '../repo/ids.js';
import type { PackReader, Repository, SpanRead } from '../repo/repository.js';
import { LifeboatError, errnoCode } from '../util/errors.js';
import { FileCollector } from '../util/memory.js';
import { FileWriters, holesWithin, replyError, writeSkippingHoles, type ChunkTarget, type RestoreOutcome, type SpanItem } from './restore-workers.js';
import type { FileAttributes } from './tree.js';

/**
 * Envelopes read and not yet written, at most (the restore planner's budget, pack-reader.ts). From
 * a network store 32 MiB keeps both workers fed while a few pack spans are on the way (radosgw on
 * loopback: 64 MiB took the same time with a peak ~30-40 MiB higher, on a developer's home folder
 * and on /usr/share; 16 MiB was no faster either); a local drive answers at once, and 16 MiB
 * keeps the peak low (a 137 MB tree: 64 MiB cost +35 MiB of peak memory).
 */
const READ_BUDGET = 16 * 1024 * 1024;
const READ_BUDGET_REMOTE = 32 * 1024 * 1024;
/** Pack reads in flight at once. */
const READS_AHEAD = 4;
const READS_AHEAD_REMOTE = 6;
/**
 * Blobs of one pack this close together are read with one request. A network request costs more
 * than reading a MiB more over it (restic reads across gaps of up to 4 MiB).
 */
const READ_GAP_REMOTE = 1024 * 1024;

/**
 * A segment's bounds: files, larger files (open from their first chunk to their last) and chunk
 * places. Changed by tests only, to make many segments of a small restore.
 *
 * From a remote store, a segment is as large as memory allows, because each segment reads again
 * the packs it shares with the others (with the gaps between its blobs): 16,384-file segments made
 * the S3 restore of the bench's 100,000 files read 1,478 MiB in 703 requests for 999 MiB of
 * blobs, and 1.35× restic's time. A planned file costs about 1 KB (its tree entry and a record),
 * so 131,072 files hold about 130 MB; the bench tree is then one segment.
 */
export const SEGMENT = { files: 131072, open: 256, places: 1 << 20 };
/**
 * From a local drive, segments of at most this many files: there a read costs no request, and a
 * 16,384-file segment took the restore of 56,000 real files (a copy of /usr/share) from a 217 MB
 * peak to 386–447 MB; 256 files gave 221 MB (1,024: 283 MB).
 */
const LOCAL_SEGMENT_FILES = 256;

/** Where a planned file sits in its segment: emptied once it is settled, so what it held can go. */
interface Slot {
  readonly list: (Planned | undefined)[];
  readonly idx: number;
}

/**
 * Where single-chunk files go and who hears how each went: one object for many files (a folder's),
 * so a planned file costs a small record, not a promise and its closures.
 */
export interface SmallFiles {
  path(e: FileAttributes): Buffer;
  owner(e: FileAttributes): { uid: number; gid: number } | undefined;
  /** Called once per file added: `error` undefined and the worker's `outcome`, or why it was not written. */
  settled(e: FileAttributes, error: unknown, outcome?: RestoreOutcome): void;
}

interface Small extends Slot {
  readonly kind: 'small';
  readonly to: SmallFiles;
  readonly e: FileAttributes;
  settled: boolean;
}

interface Chunked extends Slot {
  readonly kind: 'chunked';
  readonly path: Buffer;
  readonly holes: readonly number[];
  /** Chunk places not yet written (or given up). */
  left: number;
  /** Opened when the first chunk arrives. */
  fh?: Promise<fsp.FileHandle>;
  failure?: unknown;
  settled: boolean;
  readonly resolve: (fh: fsp.FileHandle | undefined) => void;
  readonly reject: (e: unknown) => void;
}

type Planned = Small | Chunked;

class Segment {
  /** The files added, each until it is settled. */
  readonly files: (Planned | undefined)[] = [];
  /** Distinct blobs, in the order first needed. */
  readonly ids: Uint8Array[] = [];
  private readonly byId = new Map<Hex, number>();
  /**
   * Where each blob goes, as one list per blob in flat arrays (an array per blob cost more than
   * the file it is for): last[k] is blob k's place added last, and each place p holds the file
   * (index in files), the position in it and the place added before it for the same blob (-1 ends).
   */
  private last = new Int32Array(256);
  private file = new Int32Array(256);
  private pos = new Float64Array(256);
  private before = new Int32Array(256);
  places = 0;
  open = 0;

  use(id: Hex, file: number, pos: number): void {
    let k = this.byId.get(id);
    if (k === undefined) {
      k = this.ids.length;
      this.byId.set(id, k);
      this.ids.push(fromHex(id));
      if (k === this.last.length) this.last = grown(this.last);
      this.last[k] = -1;
    }
    const p = this.places++;
    if (p === this.file.length) {
      this.file = grown(this.file);
      this.pos = grown(this.pos);
      this.before = grown(this.before);
    }
    this.file[p] = file;
    this.pos[p] = pos;
    this.before[p] = this.last[k]!;
    this.last[k] = p;
  }

  /** Calls `each` with the (file, position) pairs that need blob k, once: the list is emptied. */
  take(k: number, each: (file: number, pos: number) => void): void {
    let p = this.last[k]!;
    this.last[k] = -1;
    for (; p >= 0; p = this.before[p]!) each(this.file[p]!, this.pos[p]!);
  }

  constructor(private readonly maxFiles: number) {}

  full(): boolean {
    return this.files.length >= this.maxFiles || this.open >= SEGMENT.open || this.places >= SEGMENT.places;
  }
}

function grown<T extends Int32Array | Float64Array>(a: T): T {
  const b = new (a.constructor as new (n: number) => T)(a.length * 2);
  b.set(a);
  return b;
}

/** Damage to the repository loses the files it touches; anything else (the store, the drive, an abort) stops the restore. */
function stops(e: unknown): boolean {
  if (e instanceof LifeboatError) return e.code !== 'corrupt' && e.code !== 'not-found';
  if (e instanceof Error && e.name === 'AbortError') return true;
  return ['ENOSPC', 'EDQUOT', 'EROFS'].includes(errnoCode(e) ?? '');
}

export class ContentPlan {
  private seg: Segment;
  private flushing: Promise<void> | undefined;
  /** The walk is over: whatever is added from now on (a hard link restored as a copy) is read at once. */
  private finished = false;
  /** Aborted on the caller's abort or on a failure that stops the restore. */
  private readonly stop = new AbortController();
  private readonly onAbort = () => this.halt(this.signal!.reason);
  /** Collects the main thread's old garbage every so many files (util/memory.ts COLLECTION). */
  private readonly collector = new FileCollector();
  /** Reads the blobs, pack by pack, within a budget (repo's restore planner). */
  readonly reader: PackReader;

  constructor(
    private readonly repo: Repository,
    private readonly writers: FileWriters | undefined,
    /** Called with the bytes of file content written, as they are. */
    private readonly onBytes: (n: number) => void,
    private readonly signal?: AbortSignal,
  ) {
    this.reader = repo.remote ? repo.packReader({ budget: READ_BUDGET_REMOTE, ahead: READS_AHEAD_REMOTE, gap: READ_GAP_REMOTE }) : repo.packReader({ budget: READ_BUDGET, ahead: READS_AHEAD });
    this.seg = this.newSegment();
    signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  private newSegment(): Segment {
    return new Segment(this.repo.remote ? SEGMENT.files : Math.min(SEGMENT.files, LOCAL_SEGMENT_FILES));
  }

  /** Waits until the walk may add more: the current segment is not full (or is being read, and the one before is done). */
  async room(): Promise<void> {
    while (this.seg.full()) {
      if (this.flushing) await this.flushing;
      else this.flush();
    }
  }

  /**
   * Creates single-chunk file `e` (on a worker, at `to.path(e)`) with the blob `id` (indexed, in
   * full); `to.settled` hears once it is written, or why not.
   */
  addSmall(to: SmallFiles, e: FileAttributes, id: Hex): void {
    const seg = this.seg;
    const idx = seg.files.length;
    seg.use(id, idx, 0);
    seg.files.push({ kind: 'small', list: seg.files, idx, to, e, settled: false });
    this.kick();
  }

  /** addSmall of one file at `path`: resolves with the worker's reply once it is written. */
  addOne(path: Buffer, e: FileAttributes, owner: { uid: number; gid: number } | undefined, id: Hex): Promise<RestoreOutcome> {
    return new Promise((resolve, reject) => {
      this.addSmall({ path: () => path, owner: () => owner, settled: (_, error, outcome) => (error === undefined ? resolve(outcome!) : reject(error)) }, e, id);
    });
  }

  /**
   * Writes the chunks (id, place) of a file at `path`, skipping `holes`: the file is created with
   * the first chunk that arrives. Resolves with it still open once every chunk is written
   * (undefined when `chunks` is empty: nothing was created), for the caller to finish and close.
   */
  addChunked(path: Buffer, holes: readonly number[], chunks: readonly (readonly [Hex, number])[]): Promise<fsp.FileHandle | undefined> {
    if (chunks.length === 0) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      const seg = this.seg;
      const idx = seg.files.length;
      seg.files.push({ kind: 'chunked', list: seg.files, idx, path, holes, left: chunks.length, settled: false, resolve, reject });
      seg.open++;
      for (const [id, pos] of chunks) seg.use(id, idx, pos);
      this.kick();
    });
  }

  /** Reads and writes everything added; resolves once every file added is settled. */
  async finish(): Promise<void> {
    this.finished = true;
    while (this.flushing || this.seg.files.length > 0) {
      if (this.flushing) await this.flushing;
      else this.flush();
    }
  }

  /** Rejects every file not yet written with `why` and stops reading. */
  abandon(why: unknown): void {
    this.halt(why);
    for (const f of this.seg.files) if (f) this.settle(f, why);
    this.seg = this.newSegment();
  }

  close(): void {
    this.signal?.removeEventListener('abort', this.onAbort);
  }

  private halt(why: unknown): void {
    if (!this.stop.signal.aborted) this.stop.abort(why);
  }

  private flush(): void {
    const seg = this.seg;
    this.seg = this.newSegment();
    this.flushing = this.run(seg).finally(() => {
      this.flushing = undefined;
      this.collector.done(seg.files.length);
      this.kick();
    });
  }

  /** Once the walk is over, reads what was added (after the segment being read, if any). */
  private kick(): void {
    if (!this.finished || this.flushing) return;
    setImmediate(() => {
      if (!this.flushing && this.seg.files.length > 0) this.flush();
    });
  }

  private async run(seg: Segment): Promise<void> {
    const work = new Set<Promise<void>>();
    try {
      if (!this.stop.signal.aborted) {
        await this.reader.readSpans(
          seg.ids,
          (r) => {
            const p = 'read' in r ? this.deliver(seg, r.read) : 'failed' in r ? this.fail(seg, r.failed, r.error) : this.deliverLoaded(seg, r.alone);
            work.add(p);
            void p.finally(() => work.delete(p));
          },
          this.stop.signal,
        );
      }
      while (work.size > 0) await Promise.all([...work]);
    } catch (e) {
      this.halt(e);
    }
    // A stop, or a bug: nothing is left waiting.
    const why: unknown = this.stop.signal.aborted ? this.stop.signal.reason : new Error('the restore plan ended before this file was written');
    for (const f of seg.files) if (f && !f.settled) await this.giveUp(f, why);
  }

  /** The files and places that still need blob k (taken: each blob is handed over once). */
  private takeUses(seg: Segment, k: number): { small: Small[]; chunked: [Chunked, number][] } {
    const small: Small[] = [];
    const chunked: [Chunked, number][] = [];
    seg.take(k, (i, pos) => {
      const f = seg.files[i];
      if (!f) return; // given up already
      if (f.kind === 'small') small.push(f);
      else chunked.push([f, pos]);
    });
    return { small, chunked };
  }

  /** The blobs `ks` could not be read: every file that needs one of them gets `why`. */
  private async fail(seg: Segment, ks: readonly number[], why: unknown): Promise<void> {
    for (const k of ks) {
      const { small, chunked } = this.takeUses(seg, k);
      for (const f of small) this.settle(f, why);
      for (const [f] of chunked) await this.placed(f, why);
    }
  }

  /**
   * Hands a read span to one worker with every file and place its blobs go to (each blob opened
   * once, however many need it); never rejects (each file gets its own outcome).
   */
  private async deliver(seg: Segment, read: SpanRead): Promise<void> {
    if (this.stop.signal.aborted) {
      read.release();
      return this.fail(seg, read.blobs.map((b) => b.k), this.stop.signal.reason);
    }
    const items: SpanItem[] = [];
    const ids = Buffer.allocUnsafeSlow(32 * read.blobs.length);
    const who: { small: Small[]; chunked: Chunked[] }[] = [];
    for (const b of read.blobs) {
      const { small, chunked } = this.takeUses(seg, b.k);
      const to: ChunkTarget[] = [];
      const open: Chunked[] = [];
      for (const [f, pos] of chunked) {
        try {
          if (f.failure !== undefined) throw f.failure;
          to.push({ fd: (await this.open(f)).fd, pos, holes: holesWithin(f.holes, pos, b.rawLength) });
          open.push(f);
        } catch (e) {
          await this.placed(f, e);
        }
      }
      if (small.length === 0 && open.length === 0) continue;
      ids.set(b.id, 32 * items.length);
      items.push({ offset: b.offset, length: b.length, type: b.type, rawLength: b.rawLength, files: small.map((f) => FileWriters.fileJob(f.to.path(f.e), f.e, f.to.owner(f.e))), to });
      who.push({ small, chunked: open });
    }
    if (items.length === 0) return read.release();
    if (!this.writers) return this.writeHere(read, items, ids, who);
    let outcomes: readonly RestoreOutcome[];
    try {
      outcomes = await this.writers.writeSpan(read, items, ids.subarray(0, 32 * items.length));
    } catch (e) {
      outcomes = [];
      this.halt(e);
    }
    let n = 0;
    for (const [i, { small, chunked }] of who.entries()) {
      for (const f of small) {
        const o = outcomes[n++];
        if (o?.status === 'ok') this.settle(f, undefined, o);
        else this.settle(f, o ? replyError(o) : this.stop.signal.reason);
      }
      if (items[i]!.to.length === 0) continue;
      const o = outcomes[n++];
      const failure = o ? replyError(o) : this.stop.signal.reason;
      if (o?.status === 'ok') this.onBytes(o.bytes * chunked.length);
      for (const f of chunked) await this.placed(f, failure);
    }
  }

  /** Without worker threads (a platform given for tests): each blob opened and written here. */
  private async writeHere(read: SpanRead, items: readonly SpanItem[], ids: Uint8Array, who: readonly { chunked: Chunked[] }[]): Promise<void> {
    try {
      for (const [i, it] of items.entries()) {
        let failure: unknown;
        try {
          const plain = await this.repo.decodeBlob(it.type, ids.subarray(32 * i, 32 * i + 32), read.bytes.subarray(it.offset, it.offset + it.length), it.rawLength, read.packName);
          for (const t of it.to) writeSkippingHoles(t.fd, plain, t.pos, t.holes);
          this.onBytes(plain.length * it.to.length);
        } catch (e) {
          failure = e;
        }
        for (const f of who[i]!.chunked) await this.placed(f, failure);
      }
    } finally {
      read.release();
    }
  }

  /** A blob the planner does not read (a delta, rebuilt by the repository, or one missing from the index). */
  private async deliverLoaded(seg: Segment, k: number): Promise<void> {
    const id = seg.ids[k]!;
    const { small, chunked } = this.takeUses(seg, k);
    let data: Uint8Array | undefined;
    let failure: unknown;
    try {
      data = await this.repo.loadBlob(id);
    } catch (e) {
      failure = e;
    }
    // A small file is planned only for a blob the index holds in full: gone, it is damage.
    for (const f of small) this.settle(f, failure ?? this.repo.notIndexed(id));
    for (const [f, pos] of chunked) {
      let err = failure ?? f.failure;
      if (err === undefined && data) {
        try {
          writeSkippingHoles((await this.open(f)).fd, data, pos, f.holes);
          this.onBytes(data.length);
        } catch (e) {
          err = e;
        }
      }
      await this.placed(f, err);
    }
  }

  private open(f: Chunked): Promise<fsp.FileHandle> {
    if (!f.fh) {
      f.fh = fsp.open(f.path, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
      f.fh.catch(() => undefined); // awaited by each chunk; one rejection is not unhandled
    }
    return f.fh;
  }

  /** One place of `f` written (or given up with `failure`): the file is settled after its last. */
  private async placed(f: Chunked, failure: unknown): Promise<void> {
    if (failure !== undefined) {
      f.failure ??= failure;
      if (stops(failure)) this.halt(failure);
    }
    if (--f.left > 0) return;
    if (f.failure === undefined) this.settle(f, undefined, await f.fh);
    else await this.giveUp(f, f.failure);
  }

  /** Rejects `f` with `why`, closing it first if it was opened. */
  private async giveUp(f: Planned, why: unknown): Promise<void> {
    if (f.settled) return;
    if (f.kind === 'chunked' && f.fh) {
      f.settled = true; // while it closes
      f.list[f.idx] = undefined;
      await f.fh.then((h) => h.close()).catch(() => undefined);
      f.reject(why);
      return;
    }
    this.settle(f, why);
  }

  private settle(f: Planned, error: unknown, value?: RestoreOutcome | fsp.FileHandle): void {
    if (f.settled) return;
    f.settled = true;
    f.list[f.idx] = undefined;
    if (error !== undefined && stops(error)) this.halt(error);
    if (f.kind === 'small') f.to.settled(f.e, error, value as RestoreOutcome | undefined);
    else if (error !== undefined) f.reject(error);
    else f.resolve(value as fsp.FileHandle | undefined);
  }
}
