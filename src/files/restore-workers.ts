/**
 * The restorer's worker threads (restore-worker.ts): the main thread walks the snapshot, makes
 * folders, decides names and renames; the workers open the sealed chunks (with repo's
 * WorkerCodec) and write file contents. The restore plan (restore-plan.ts) reads the packs
 * through the repository's store, a span of one pack per request, and hands each read over here
 * whole (moved, not copied) as a 'span' job: each blob in it is opened once, in place, and written
 * to every single-chunk file made of it (create, write, owner, mode, xattrs, times) and every place
 * in a larger file (a descriptor the main thread opened). An empty file is a 'file' job. So a
 * restore runs the same way on any store and under its wrappers.
 */
import { writeSync } from 'node:fs';
import type { BlobType, Repository, SpanRead } from '../repo/repository.js';
import { LifeboatError } from '../util/errors.js';
import { WorkerPool } from '../util/worker-pool.js';
import type { FileAttributes } from './tree.js';

/** A single-chunk file to create: alone (an empty file), or in a span job with the blob it holds. */
export interface SpanFile {
  /**
   * Where to create the file (a fresh name in a folder the main thread checked), its bytes as a
   * latin1 string: strings cross threads cheaply, a Buffer from Node's pool clones its whole slab.
   */
  readonly path: string;
  readonly mode: number;
  /** Owner to set; undefined leaves the file to the restoring user. */
  readonly owner?: { readonly uid: number; readonly gid: number };
  readonly atime: bigint;
  readonly mtime: bigint;
  /** Extended attributes, values as latin1 strings. */
  readonly xattrs: readonly (readonly [string, string])[];
}

/** An empty file. */
export interface RestoreFileJob extends SpanFile {
  readonly seq: number;
  readonly kind: 'file';
}

/** One place a chunk goes. */
export interface ChunkTarget {
  /** The file being restored, opened by the main thread (descriptors belong to the whole process). */
  readonly fd: number;
  /** Where the chunk starts in the file. */
  readonly pos: number;
  /** The file's holes that overlap the chunk, as flat (offset, length) pairs: left unwritten. */
  readonly holes: readonly number[];
}

/** A blob of a span job: where it lies in the span, and the files and places it goes to. */
export interface SpanItem {
  readonly offset: number;
  readonly length: number;
  readonly type: BlobType;
  readonly rawLength: number;
  /** Single-chunk files made of it. */
  readonly files: readonly SpanFile[];
  /** Places in larger files (opened by the main thread); none if only single-chunk files need it. */
  readonly to: readonly ChunkTarget[];
}

/**
 * One read of the restore plan (a pack span) and everything made of it: the worker opens each
 * blob in place in the span's bytes and writes it to every file and place that needs it. One
 * message per span instead of one per blob: the main thread neither copies each blob out of the
 * read nor posts and settles a job per blob.
 */
export interface RestoreSpanJob {
  readonly seq: number;
  readonly kind: 'span';
  readonly packName: string;
  /** The span's bytes, moved to the worker. */
  readonly bytes: Uint8Array;
  /** The items' ids, 32 bytes each, in order. */
  readonly ids: Uint8Array;
  readonly items: readonly SpanItem[];
}

/** How one file, or one chunk's places, went. */
export type RestoreOutcome =
  | { readonly status: 'ok'; readonly bytes: number; readonly chownError?: string; readonly xattrErrors: readonly [string, string][] }
  /** The repository is damaged (or, with notFound, missing a file): the restore stops. */
  | { readonly status: 'corrupt'; readonly message: string; readonly notFound?: true }
  | { readonly status: 'failed'; readonly code: string };

export type RestoreFileReply = RestoreOutcome & { readonly seq: number };

/** A span job's outcomes: per item, one per file in `files`, then one for `to` if it has places. */
export interface RestoreSpanReply {
  readonly seq: number;
  readonly status: 'span';
  readonly outcomes: readonly RestoreOutcome[];
}

/**
 * Each span job is answered as soon as it is written, so its read goes back to the plan's budget
 * while the worker writes the next one. Empty files (the only other jobs) go 64 per message.
 */
const WRITER_BATCHING = { requests: 64, replies: 1 } as const;

const NO_XATTRS: readonly (readonly [string, string])[] = [];

type Wire = Omit<RestoreFileJob, 'seq'> | Omit<RestoreSpanJob, 'seq'>;

export class FileWriters {
  private readonly pool: WorkerPool<Wire, RestoreFileReply | RestoreSpanReply>;

  constructor(repo: Repository) {
    this.pool = new WorkerPool(new URL('./restore-worker.js', import.meta.url), { codec: repo.workerCodec() }, undefined, WRITER_BATCHING);
  }

  /** Single-chunk file `e`'s job, as writeFile and writeSpan send it. */
  static fileJob(path: Buffer, e: FileAttributes, owner: { uid: number; gid: number } | undefined): SpanFile {
    return {
      path: path.toString('latin1'),
      mode: e.mode,
      ...(owner ? { owner } : {}),
      atime: e.atime,
      mtime: e.mtime,
      xattrs: e.xattrs?.length ? e.xattrs.map(([k, v]) => [k, v.toString('latin1')] as const) : NO_XATTRS,
    };
  }

  /**
   * Writes every item of the span `read` holds (its bytes are moved to the worker) and releases
   * the read once the worker answered; the outcomes in RestoreSpanReply's order.
   */
  async writeSpan(read: SpanRead, items: readonly SpanItem[], ids: Uint8Array): Promise<readonly RestoreOutcome[]> {
    try {
      const r = await this.pool.call({ kind: 'span', packName: read.packName, bytes: read.bytes, ids, items }, [read.bytes.buffer as ArrayBuffer, ids.buffer as ArrayBuffer]);
      if (r.status === 'span') return r.outcomes;
      // The job as a whole failed on the worker: every file and place of the span gets that failure.
      return items.flatMap((it) => new Array<RestoreOutcome>(it.files.length + (it.to.length > 0 ? 1 : 0)).fill(r));
    } finally {
      read.release();
    }
  }

  /** Creates empty file `e` at `path`. */
  async writeEmpty(path: Buffer, e: FileAttributes, owner: { uid: number; gid: number } | undefined): Promise<RestoreFileReply> {
    return (await this.pool.call({ kind: 'file', ...FileWriters.fileJob(path, e, owner) })) as RestoreFileReply;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** What a worker's reply reports as an error: repository damage (a LifeboatError) or a failed call (with its errno code); undefined when it went well. */
export function replyError(r: RestoreOutcome): Error | undefined {
  if (r.status === 'corrupt') return new LifeboatError(r.notFound ? 'not-found' : 'corrupt', r.message);
  if (r.status === 'failed') return Object.assign(new Error(r.code), { code: r.code });
  return undefined;
}

/** The pairs of `holes` (flat offset, length) that overlap [pos, pos + length). */
export function holesWithin(holes: readonly number[], pos: number, length: number): number[] {
  const out: number[] = [];
  for (let h = 0; h + 1 < holes.length; h += 2) {
    if (holes[h]! >= pos + length) break;
    if (holes[h]! + holes[h + 1]! > pos) out.push(holes[h]!, holes[h + 1]!);
  }
  return out;
}

/** Writes `data`, which starts at `pos` of the file, leaving the parts inside `holes` unwritten. */
export function writeSkippingHoles(fd: number, data: Uint8Array, pos: number, holes: readonly number[]): void {
  let start = 0;
  const end = data.length;
  for (let h = 0; h + 1 < holes.length && start < end; h += 2) {
    const hs = holes[h]! - pos;
    const he = hs + holes[h + 1]!;
    if (he <= start) continue;
    if (hs >= end) break;
    if (hs > start) writeAll(fd, data.subarray(start, hs), pos + start);
    start = Math.max(start, he);
  }
  if (start < end) writeAll(fd, data.subarray(start, end), pos + start);
}

function writeAll(fd: number, data: Uint8Array, pos: number): void {
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off, data.length - off, pos + off);
}
