/**
 * The restorer's worker threads (restore-worker.ts): the main thread walks the snapshot, makes
 * folders, decides names and renames; the workers open the sealed chunks (with repo's
 * WorkerCodec) and write file contents. A single-chunk file is a 'file' job (create, write, owner,
 * mode, xattrs, times); a chunk of a larger file is a 'chunk' job that writes it into every
 * descriptor (opened by the main thread) and place that needs it, opened once. The restore plan
 * (restore-plan.ts) reads the envelopes through the repository's store, pack by pack, and hands
 * them over here (moved, not copied), so a restore runs the same way on any store and under its
 * wrappers.
 */
import { writeSync } from 'node:fs';
import type { Lease, Repository } from '../repo/repository.js';
import type { SealedBlob } from '../repo/worker-codec.js';
import { LifeboatError } from '../util/errors.js';
import { WorkerPool } from '../util/worker-pool.js';
import type { TreeEntry } from './tree.js';

/** A sealed chunk as a worker gets it. */
export type ChunkSource = SealedBlob;

export interface RestoreFileJob {
  readonly seq: number;
  readonly kind: 'file';
  /**
   * Where to create the file (a fresh name in a folder the main thread checked), its bytes as a
   * latin1 string: strings cross threads cheaply, a Buffer from Node's pool clones its whole slab.
   */
  readonly path: string;
  /** The content; none for an empty file. */
  readonly blob?: ChunkSource;
  readonly mode: number;
  /** Owner to set; undefined leaves the file to the restoring user. */
  readonly owner?: { readonly uid: number; readonly gid: number };
  readonly atime: bigint;
  readonly mtime: bigint;
  /** Extended attributes, values as latin1 strings. */
  readonly xattrs: readonly (readonly [string, string])[];
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

export interface RestoreChunkJob {
  readonly seq: number;
  readonly kind: 'chunk';
  /** Every place the chunk goes (files sharing it, or one file holding it twice): opened once, written to each. */
  readonly to: readonly ChunkTarget[];
  readonly blob: ChunkSource;
}

export type RestoreFileReply =
  | { readonly seq: number; readonly status: 'ok'; readonly bytes: number; readonly chownError?: string; readonly xattrErrors: readonly [string, string][] }
  /** The repository is damaged (or, with notFound, missing a file): the restore stops. */
  | { readonly seq: number; readonly status: 'corrupt'; readonly message: string; readonly notFound?: true }
  | { readonly seq: number; readonly status: 'failed'; readonly code: string };

/**
 * A restore sends thousands of small files: 64 per message and 32 replies per message back, with
 * JOBS_IN_FLIGHT jobs queued, cut the restore's CPU time for 100k files by 3-4% (fewer messages to
 * post, wake up for and decode) against 32 and 8 (bench/README.md, session 8).
 */
const WRITER_BATCHING = { requests: 64, replies: 32 } as const;
/**
 * Jobs the restore plan may have queued on the workers. 256 was measured on 2 cores: each of the
 * two workers has a full batch in hand and another queued.
 */
export const JOBS_IN_FLIGHT = 4 * WRITER_BATCHING.requests;

const NO_XATTRS: readonly (readonly [string, string])[] = [];

/** A job as the caller makes it: the blob comes from its lease. */
type Job = Omit<RestoreFileJob, 'seq' | 'blob'> | Omit<RestoreChunkJob, 'seq' | 'blob'>;
type Wire = Omit<RestoreFileJob, 'seq'> | Omit<RestoreChunkJob, 'seq'>;

export class FileWriters {
  private readonly pool: WorkerPool<Wire, RestoreFileReply>;

  constructor(repo: Repository) {
    this.pool = new WorkerPool(new URL('./restore-worker.js', import.meta.url), { codec: repo.workerCodec() }, undefined, WRITER_BATCHING);
  }

  /** Sends `job` with its blob (moved, not copied); the blob's lease is released once the worker answered. */
  private async send(job: Job, lease?: Lease): Promise<RestoreFileReply> {
    const blob = lease?.blob;
    try {
      return await this.pool.call((blob ? { ...job, blob } : job) as Wire, blob ? [blob.env.buffer as ArrayBuffer, blob.id.buffer as ArrayBuffer] : []);
    } finally {
      lease?.release();
    }
  }

  /** Creates single-chunk file `e` at `path` from the blob `lease` holds (none: an empty file), and releases it. */
  writeFile(path: Buffer, e: TreeEntry, owner: { uid: number; gid: number } | undefined, lease: Lease | undefined): Promise<RestoreFileReply> {
    return this.send(
      {
        kind: 'file',
        path: path.toString('latin1'),
        mode: e.mode,
        ...(owner ? { owner } : {}),
        atime: e.atime,
        mtime: e.mtime,
        xattrs: e.xattrs?.length ? e.xattrs.map(([k, v]) => [k, v.toString('latin1')] as const) : NO_XATTRS,
      },
      lease,
    );
  }

  /** Writes the chunk `lease` holds to every place in `to` (the caller keeps the descriptors open until this settles), and releases it. */
  writeChunk(to: readonly ChunkTarget[], lease: Lease): Promise<RestoreFileReply> {
    return this.send({ kind: 'chunk', to }, lease);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** What a worker's reply reports as an error: repository damage (a LifeboatError) or a failed call (with its errno code); undefined when it went well. */
export function replyError(r: RestoreFileReply): Error | undefined {
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
