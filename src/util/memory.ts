/**
 * Prompt release of buffer memory. Node frees an ArrayBuffer's bytes only when V8 collects its
 * object, and V8 counts outside-the-heap bytes loosely: a pipeline that passes hundreds of MiB
 * through short-lived buffers (chunks, envelopes) held 50–100 MiB of dropped buffers per thread.
 * `YoungCollector` runs a young-generation collection (a scavenge: about a millisecond, and it
 * frees dropped buffers still in the young generation) once per so many bytes of buffers dropped.
 *
 * Where the native addon is built, the largest of those buffers are not left to the collector at
 * all: `release` frees a buffer the moment its owner is done with it (chunks once sealed,
 * envelopes once copied into a pack, packs once checked).
 *
 * Full collections are never forced: each forced one made V8 throw away optimised code whose
 * embedded objects had died ("weak objects"), and recompiling it cost ~3 s of CPU per 100k-file
 * backup (bench/README.md, session 4). `startFullCollection` starts one of V8's own full
 * collections instead, which keeps that code: a backup or a restore does so every few thousand
 * files (`FileCollector`), check --read-data every few packs.
 *
 * `dropCachedPages` does the same for the kernel's page cache: files written once (packs) leave it
 * as soon as they are safely on disk.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { nativeAddon } from './native.js';

/** Without options, a full collection (Node 20's V8 takes `{ type: 'major' }` for something less: a heap of 75 MiB of garbage kept 73). */
type Gc = (options?: { type: 'minor' }) => void;
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

/** Runs a young-generation collection once every `bytes` bytes passed to `dropped`. */
export class YoungCollector {
  private since = 0;
  constructor(private readonly bytes: number) {}

  dropped(n: number): void {
    this.since += n;
    if (this.since < this.bytes) return;
    this.since = 0;
    try {
      collector()?.({ type: 'minor' });
    } catch {
      gc = null;
    }
  }
}

/** Outside-the-heap bytes that make V8 start a full collection: its limit is 64 MiB above their level at the last one. */
const EXTERNAL_NUDGE = 128 * 1024 * 1024;

/**
 * Starts a full collection of V8's own kind: incremental marking, mostly on V8's helper threads,
 * finished by the thread's next event-loop turns. For a thread whose old generation fills with
 * garbage that V8 would let grow to several times the live heap (a restore's main thread: ~90 MiB
 * with ~11 MiB live). Unlike a forced collection (`gc()`, which discards maps and the
 * optimised code that embeds them: 148 deoptimisations and ~550 recompilations in a 95,000-file
 * restore, ~2 CPU-s) it costs little beyond the marking (bench/README.md, session 15).
 *
 * V8 offers no call for it, but starts one when its outside-the-heap memory grows past a limit:
 * this allocates a buffer that large and frees it at once. Its pages are never touched (a fresh
 * zeroed mapping), so it costs a map and an unmap, not memory.
 */
export function startFullCollection(): void {
  release(new Uint8Array(new ArrayBuffer(EXTERNAL_NUDGE)));
}

/**
 * Files between two full collections started by a FileCollector. A backup's or a restore's main
 * thread promotes its per-file objects (entries, paths, promises, worker replies: they outlive a few
 * young collections while dozens of files are in flight), and V8 let the old generation grow to
 * two to four times the live heap before collecting it: a restore of 95,000 files held ~90 MiB for
 * ~11 MiB live, a backup ~120 MiB for ~45 (bench/README.md, sessions 14 and 15). Changed by tests only.
 */
export const COLLECTION = { everyFiles: 4096 };

/** Starts a full collection (startFullCollection) once every COLLECTION.everyFiles files it is told of. */
export class FileCollector {
  private since = 0;

  done(files = 1): void {
    this.since += files;
    if (this.since < COLLECTION.everyFiles) return;
    this.since = 0;
    startFullCollection();
  }
}

/** Whether `data` can be moved to another thread whole: its view is its entire, unshared buffer. */
export function ownsItsBuffer(data: Uint8Array): boolean {
  return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer;
}

/**
 * Buffers of one capacity, kept for reuse. On this VM a fresh mapping costs ~1.7 ms of CPU per MiB
 * to fault in (bench/README.md, session 9), so a stream of chunks each in a buffer of its own paid
 * that for every byte; a pooled buffer is faulted in once. Only the pages a use touches become
 * resident, so a buffer sized for the largest use costs what the uses it served needed. A buffer
 * may travel to a worker thread and back (transferred) between take and give: the pool knows its
 * own by their capacity.
 */
export class BufferPool {
  private readonly free: (ArrayBuffer | SharedArrayBuffer)[] = [];

  constructor(
    readonly capacity: number,
    /** At most this many free buffers are kept; more given back are freed. */
    private readonly keep: number,
    /**
     * SharedArrayBuffers, for buffers lent to worker threads rather than moved there and back: a
     * buffer moved back is a new ArrayBuffer object, whose bytes V8 counts as outside memory
     * (scavenges and full collections for "external memory pressure"); a shared one is counted
     * nowhere and stays the same object. Those given back beyond `keep` are left to the collector.
     */
    readonly shared = false,
    /**
     * Bytes at the start of a free buffer kept resident; the pages after them are given back
     * when it returns to the pool (forgetPages). Without, a buffer keeps resident the most it ever
     * held: 20 chunk and envelope buffers of a backup, each up to its largest chunk yet.
     */
    private readonly resident = capacity,
  ) {}

  /** `n` uninitialised bytes at the start of a pooled buffer; a buffer of its own when `n` is above the capacity. */
  take(n: number): Uint8Array {
    if (n > this.capacity) return new Uint8Array(Buffer.allocUnsafeSlow(n).buffer, 0, n);
    return new Uint8Array(this.free.pop() ?? (this.shared ? new SharedArrayBuffer(this.capacity) : Buffer.allocUnsafeSlow(this.capacity).buffer), 0, n);
  }

  /** Whether `view` lies in a buffer of this pool's kind (one take() handed out, or one like it). */
  owns(view: Uint8Array): boolean {
    return view.byteOffset === 0 && view.buffer instanceof (this.shared ? SharedArrayBuffer : ArrayBuffer) && view.buffer.byteLength === this.capacity;
  }

  /** Takes back a buffer from take(): nothing may use `view` (or another view of its buffer) afterwards. Others are ignored. */
  give(view: Uint8Array): void {
    if (!this.owns(view)) return;
    const b = view.buffer;
    if (this.free.length < this.keep) {
      if (this.resident < this.capacity) forgetPages(new Uint8Array(b), this.resident);
      this.free.push(b);
    } else if (b instanceof ArrayBuffer) release(new Uint8Array(b));
  }
}

/** The native addon's memory functions (native/lifeboat_fs.c); none without the addon. */
interface MemoryAddon {
  release(b: ArrayBuffer): boolean;
  forgetPages(view: Uint8Array, from: number): boolean;
  keepAllocatorLean(...thresholds: number[]): boolean;
  adviseCache(fd: number, offset: number, length: number, willNeed: boolean): boolean;
}

/** The addon's function `name`, or undefined without the addon (or with an older build that lacks it). */
function addonFunction<K extends keyof MemoryAddon>(name: K): MemoryAddon[K] | undefined {
  const f = nativeAddon<Partial<MemoryAddon>>()?.[name];
  return typeof f === 'function' ? f : undefined;
}

/** Gives the system back the whole pages of `view` from byte `from` on (they read as zeros next time); false without the native addon. */
export function forgetPages(view: Uint8Array, from: number): boolean {
  const forget = addonFunction('forgetPages');
  return forget !== undefined && forget(view, from);
}

/**
 * Frees a buffer's bytes now rather than when the garbage collector next finds it dead, through the
 * native addon (it detaches the ArrayBuffer); false, doing nothing, without the addon or when
 * `view` is not the whole of its own ArrayBuffer (a slice of Node's shared pool, a part of a larger
 * buffer). Only for buffers that nothing else will read: every view of a released buffer is empty.
 */
export function release(view: Uint8Array): boolean {
  const free = addonFunction('release');
  const b = view.buffer;
  if (free === undefined || view.byteOffset !== 0 || view.byteLength !== b.byteLength || view.byteLength === 0 || !(b instanceof ArrayBuffer)) return false;
  return free(b);
}

/**
 * Asks the C allocator to give large blocks back to the system as soon as they are freed (the
 * native addon, glibc only; see native/lifeboat_fs.c): blocks from 256 KiB up in mappings of
 * their own, and glibc's own trim threshold (128 KiB), which reusingLargeBlocks changes meanwhile.
 * At start, before the bulk work.
 */
export function keepAllocatorLean(): boolean {
  return allocatorPolicy(256 * 1024, 128 * 1024);
}

/**
 * For a restore or a drive image, which free each large block before they need the next: the
 * allocator keeps blocks up to 16 MiB in its heaps (and up to 64 MiB of free space in them) for
 * reuse, instead of mapping each one afresh. That cut a 1.5 GB restore's page faults from 540k to
 * 45k, about a second of CPU time (bench/README.md, session 8), and a 1.7 GB image's CPU time from
 * 28 to 14 s (1 MiB chunks, session 14). Call before starting worker threads.
 */
export function reuseLargeBlocks(): boolean {
  return allocatorPolicy(16 * 1024 * 1024, 64 * 1024 * 1024);
}

let reusing = 0;

/**
 * Runs `work` with large blocks reused (reuseLargeBlocks); once no such work runs any more, the
 * allocator is lean again, so a long-running process (the dashboard's service) that restored or
 * imaged does not keep up to 64 MiB of free blocks per heap for the backups that follow.
 */
export async function reusingLargeBlocks<T>(work: () => Promise<T>): Promise<T> {
  if (reusing++ === 0) reuseLargeBlocks();
  try {
    return await work();
  } finally {
    if (--reusing === 0) keepAllocatorLean();
  }
}

function allocatorPolicy(...thresholds: number[]): boolean {
  const policy = addonFunction('keepAllocatorLean');
  return policy !== undefined && policy(...thresholds);
}

function advise(fd: number, offset: number, length: number, willNeed: boolean): boolean {
  const adviseCache = addonFunction('adviseCache');
  return adviseCache !== undefined && adviseCache(fd, offset, length, willNeed);
}

/**
 * Tells the system that the cached pages of the file open as `fd` will not be read again soon
 * (native addon, Linux; a no-op elsewhere). For repository files after fsync, when the pages are
 * clean: see adviseCache in native/lifeboat_fs.c for why.
 */
export function dropCachedPages(fd: number): boolean {
  return advise(fd, 0, 0, false);
}

/** Asks the system to start reading the file open as `fd` from `offset` on into the cache (as dropCachedPages). */
export function readAhead(fd: number, offset: number): boolean {
  return advise(fd, offset, 0, true);
}
