/**
 * store — where bytes live. Owns the Store interface and its backends (local folder, memory,
 * fault injection, S3 in s3.ts, a Lifeboat server in remote.ts; open.ts opens one from a location) and the parity wrapper (parity.ts, Reed–Solomon
 * sidecars against bit rot). Knows nothing of encryption, packs or files.
 * May import only util/. Invariant: an object is either absent or complete under its final name;
 * no reader can ever observe a half-written object.
 *
 * Names are '/'-separated relative keys such as "data/ab/ab12…" made of [A-Za-z0-9._/-]; a backend
 * maps them onto its own namespace (a path, an S3 key) and rejects anything else before any I/O
 * (assertValidName; names.ts for list prefixes and byte ranges). An invalid name or range is a bug in
 * the caller, so it is a plain Error, not a LifeboatError. Every backend passes conformance.ts.
 *
 * Ready for a network: every operation takes an abort signal; a failure that may go away if the same
 * call is made again (a timeout, a dropped connection) is a StoreError with `transient` set, so the
 * wrappers beside this file can retry it (retry.ts), bound the calls in flight (limit.ts) and keep
 * immutable objects near (cache.ts). Stack them in that order from the outside: cache, retry, limit.
 */
import { LifeboatError, type ErrorCode } from '../util/errors.js';

/**
 * A store's failure that says whether trying again may help. `transient`: the same call may succeed
 * later (a timeout, a reset connection, a server asking to slow down); otherwise retrying is useless
 * (a missing object, a full drive, a refused permission). Any other error is permanent.
 */
export class StoreError extends LifeboatError {
  constructor(code: ErrorCode, message: string, readonly transient: boolean, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'StoreError';
  }
}

/** Whether `e` is a failure that the same store call may not repeat (see StoreError). */
export function isTransient(e: unknown): boolean {
  return e instanceof StoreError && e.transient;
}

/** What a backend tells its users about how to drive it. */
export interface StoreProperties {
  /**
   * How many objects (packs) the repository should be finishing at once. 1 for a local folder: its
   * commits are fsyncs on one drive, and more in parallel only compete. A network store wants
   * several, to keep the link busy while each upload waits for its answer.
   */
  readonly uploadsInFlight: number;
}

/** Options of every operation. */
export interface OperationOptions {
  /**
   * Stops the operation: it rejects with `signal.reason` (as signal.throwIfAborted() throws) as
   * soon as the backend can stop, and leaves the store as the operation's failure would: an aborted
   * put or commit stores nothing or the whole object, never part of it. A call that completed
   * before the abort is not undone.
   */
  readonly signal?: AbortSignal;
}

export interface StoreStat {
  readonly name: string;
  readonly size: number;
}

export interface PutOptions extends OperationOptions {
  /**
   * Create-only: fail with a LifeboatError('conflict') if the name exists, leaving the existing
   * object untouched (S3 If-None-Match: *; a hard link or O_EXCL on a folder).
   */
  readonly ifAbsent?: boolean;
  /**
   * A hint that the object holds metadata (a pack of trees): a store that adds parity
   * (parity.ts) protects it more strongly. Backends ignore it.
   */
  readonly metadata?: boolean;
  /**
   * The SHA-256 of `data` (lower-case hex) when the caller knows it already (a pack or an index
   * file is named by it): a store that must hash what it sends (an S3 request's signature, the
   * Lifeboat server's check) uses it instead of hashing every byte again. A wrong value makes the
   * server refuse the write; a wrapper that changes the bytes must not pass it on.
   */
  readonly sha256?: string;
}

export interface WriterOptions extends OperationOptions {
  /**
   * The object will hold metadata (a pack of trees, which the next commands read): a store that
   * caches what it reads (disk-cache.ts) keeps a copy of what is written, so they need not fetch it.
   */
  readonly metadata?: boolean;
}

export interface Store {
  /** Short description for messages ("folder /mnt/usb/lifeboat"). */
  readonly location: string;

  readonly properties: StoreProperties;

  /**
   * Stores `data` under `name`, atomically: after put resolves the whole object is durable and
   * visible; if it rejects or the process dies, either the old state or the whole new object is
   * visible, never a partial one. Idempotent: putting the same bytes again is harmless. Lifeboat
   * never overwrites an object with different bytes except the few documented mutable names
   * (`config` and `config.copy`, by `parity add` and `repair config`, and a damaged object put back
   * with its exact original bytes by repair, always under an exclusive lock), so backends need not
   * order concurrent writes of one name.
   * A full destination rejects with LifeboatError('no-space'). A store keeps no reference to
   * `data` once put settles: the caller may reuse the buffer.
   */
  put(name: string, data: Uint8Array, options?: PutOptions): Promise<void>;

  /**
   * Reads the whole object, or `length` bytes from `offset` when given (from `offset` to the end
   * when only `offset` is). Rejects with LifeboatError('not-found') if absent, and with 'corrupt' if
   * the object is shorter than the range asked for (never returns fewer bytes silently). The
   * returned bytes belong to the caller. Safe to retry.
   */
  get(name: string, offset?: number, length?: number, options?: OperationOptions): Promise<Uint8Array>;

  /**
   * Optional: get() into memory from `take(size)`, which returns `size` bytes of the caller's to
   * fill (check --read-data reads every pack into a few reused buffers, a Lifeboat server the spans
   * it answers with: a fresh 8 MiB buffer per pack is faulted in page by page, bench/README.md
   * sessions 13 and 14). The whole object, or `range` as get() reads it; a small range may come in
   * memory of the store's own instead. Returns the filled view. Offered by stores that read into
   * memory they allocate and keep nothing of it (a folder); a wrapper offers it only if it neither
   * keeps nor changes what it reads.
   */
  getInto?(name: string, take: (size: number) => Uint8Array, options?: OperationOptions, range?: { readonly offset: number; readonly length?: number }): Promise<Uint8Array>;

  /** Size of an object, or undefined if it does not exist. */
  stat(name: string, options?: OperationOptions): Promise<StoreStat | undefined>;

  /**
   * Every object whose name starts with `prefix` (a folder such as "snapshots/", a partial name
   * such as "snapshots/ab", or "" for all), each exactly
   * once, in no particular order. Objects put before the call started are included unless deleted
   * meanwhile (S3 listing may lag; callers that need read-after-write use stat or get).
   * Temporary files of in-flight puts are never listed.
   */
  list(prefix: string, options?: OperationOptions): AsyncIterable<StoreStat>;

  /**
   * An object written in pieces and named once complete: a pack is made as its blobs arrive and is
   * named by the hash of its bytes, so the whole of it need never be in memory (a backend that can
   * only store whole objects collects the pieces). Nothing is visible until commit resolves.
   * `options.signal` stops the writer's writes and its commit.
   */
  createWriter(options?: WriterOptions): ObjectWriter;

  /** Removes an object. Deleting a missing object is not an error (idempotent). */
  delete(name: string, options?: OperationOptions): Promise<void>;

  /** Releases connections and handles. */
  close(): Promise<void>;
}

/** See Store.createWriter. Calls are made one at a time: each waits for the previous to settle. */
export interface ObjectWriter {
  /** Appends `data`. The writer keeps no reference to it once the promise settles. */
  write(data: Uint8Array): Promise<void>;
  /** Stores everything written under `name`, with put's guarantees (atomic, durable, 'no-space', 'conflict'). */
  commit(name: string, options?: PutOptions): Promise<void>;
  /** Discards what was written; for a writer that will not be committed (after a failure). Never rejects. */
  abort(): Promise<void>;
}

/**
 * Buffers of finished collecting writers, kept for the next ones: a backup commits a pack every
 * few MiB, and fresh memory is faulted in page by page, which costs more than the copy into it
 * (measured through a Lifeboat server: 2.4 s of 5 s client CPU for 200 MB went to new buffers).
 */
const spareBuffers: Buffer[] = [];
const SPARE_BUFFERS = 4;
const SPARE_LARGEST = 32 * 1024 * 1024;
/**
 * A writer's first buffer holds a whole pack (8 MiB target, a little more with its header), so a
 * pack is not copied into ever larger buffers as it fills (a profile of an S3 backup: 0.18 s of
 * 5 CPU-s); the pages of a fresh buffer that are never written cost no memory.
 */
const FIRST_BUFFER = 16 * 1024 * 1024;

function takeBuffer(min: number): Buffer {
  const i = spareBuffers.findIndex((b) => b.length >= min);
  return i >= 0 ? spareBuffers.splice(i, 1)[0]! : Buffer.allocUnsafeSlow(Math.max(min, FIRST_BUFFER));
}

function giveBuffer(b: Buffer): void {
  if (b.length <= SPARE_LARGEST && spareBuffers.length < SPARE_BUFFERS) spareBuffers.push(b);
}

/**
 * An ObjectWriter for a backend (or wrapper) that stores whole objects: it copies the pieces into
 * one buffer and puts it at commit, with `signal` (createWriter's) unless commit is given its own.
 * The buffer is reused by a later writer once put settles (a store keeps no reference to it then).
 */
export function collectingWriter(put: (name: string, data: Uint8Array, options?: PutOptions) => Promise<void>, signal?: AbortSignal): ObjectWriter {
  let buffer: Buffer | undefined;
  let size = 0;
  const release = (): void => {
    if (buffer) giveBuffer(buffer);
    buffer = undefined;
    size = 0;
  };
  return {
    write: async (data) => {
      signal?.throwIfAborted();
      if (!buffer || size + data.length > buffer.length) {
        const bigger = takeBuffer(Math.max(size + data.length, (buffer?.length ?? 0) * 2));
        if (buffer) {
          buffer.copy(bigger, 0, 0, size);
          giveBuffer(buffer);
        }
        buffer = bigger;
      }
      buffer.set(data, size);
      size += data.length;
    },
    commit: async (name, options) => {
      const whole = buffer ? buffer.subarray(0, size) : Buffer.alloc(0);
      const withSignal = signal === undefined || options?.signal !== undefined ? options : { ...options, signal };
      try {
        await (withSignal === undefined ? put(name, whole) : put(name, whole, withSignal));
      } finally {
        release();
      }
    },
    abort: async () => {
      release();
    },
  };
}

/**
 * A store that can remove what killed writers left outside its objects: a folder's temporary files,
 * S3's unfinished multipart uploads (whose parts are stored, and billed, until aborted). Prune calls
 * it under the exclusive lock, when no pack writer runs (store.ts wrappers need not forward it:
 * `removeLeftovers` finds it under them).
 */
export interface LeftoverRemover {
  /** Removes the leftovers; resolves with how many there were. */
  removeLeftovers(options?: OperationOptions): Promise<number>;
}

/** Runs the removeLeftovers of `store` or of the store it wraps (its `inner`, at any depth); 0 when none has one. */
export async function removeLeftovers(store: Store, options: OperationOptions = {}): Promise<number> {
  for (let s: unknown = store; s !== undefined && s !== null; s = (s as { inner?: unknown }).inner) {
    if (typeof (s as Partial<LeftoverRemover>).removeLeftovers === 'function') return (s as LeftoverRemover).removeLeftovers(options);
  }
  return 0;
}

const NAME_RE = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;

/** Every backend validates names with this, so a hostile name can never escape the store. */
export function assertValidName(name: string): void {
  if (!NAME_RE.test(name) || name.split('/').some((p) => p === '.' || p === '..')) {
    throw new Error(`invalid store object name: ${JSON.stringify(name)}`);
  }
}
