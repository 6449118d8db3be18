/**
 * The restorer's worker threads (restore-worker.ts): the main thread walks the snapshot, makes
 * folders, decides names and renames; the workers open the sealed chunks (with repo's
 * WorkerCodec) and write file contents. A single-chunk file is a 'file' job (create, write, owner,
 * mode, xattrs, times); each chunk of a larger file is a 'chunk' job that writes into a descriptor
 * the main thread opened. The main thread reads every envelope through the repository's restore
 * planner (Repository.packReader: the blobs asked for meanwhile, pack by pack, within a budget)
 * and hands it over (moved, not copied), so a restore runs the same way on any store and under its
 * wrappers, and from a network store with about one request per pack.
 */
import { writeSync } from 'node:fs';
import type { Lease, PackReader, Repository } from '../repo/repository.js';
import { BlobType } from '../repo/repository.js';
import { fromHex, type Hex } from '../repo/ids.js';
import type { SealedBlob } from '../repo/worker-codec.js';
import { WorkerPool } from '../util/worker-pool.js';
import type { TreeEntry } from './tree.js';

/** A sealed chunk as a worker gets it. */
export type ChunkSource = SealedBlob;

/**
 * The largest envelope of a file that restoreDirect may queue with its data (bigger ones take the
 * general path, one at a time per file slot): DIRECT_IN_FLIGHT such files hold at most 64 MiB.
 */
export const DIRECT_MAX_BLOB = 256 * 1024;

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

export interface RestoreChunkJob {
  readonly seq: number;
  readonly kind: 'chunk';
  /** The file being restored, opened by the main thread (descriptors belong to the whole process). */
  readonly fd: number;
  /** Where the chunk starts in the file. */
  readonly pos: number;
  /** The file's holes as flat (offset, length) pairs: left unwritten. */
  readonly holes: readonly number[];
  readonly blob: ChunkSource;
}

export type RestoreFileReply =
  | { readonly seq: number; readonly status: 'ok'; readonly bytes: number; readonly chownError?: string; readonly xattrErrors: readonly [string, string][] }
  /** The repository is damaged (or, with notFound, missing a file): the restore stops. */
  | { readonly seq: number; readonly status: 'corrupt'; readonly message: string; readonly notFound?: true }
  | { readonly seq: number; readonly status: 'failed'; readonly code: string };

/**
 * A restore sends thousands of small files: 64 per message and 32 replies per message back, with
 * DIRECT_IN_FLIGHT files queued, cut the restore's CPU time for 100k files by 3-4% (fewer
 * messages to post, wake up for and decode) against 32 and 8 (bench/README.md, session 8).
 */
const WRITER_BATCHING = { requests: 64, replies: 32 } as const;
/**
 * Files the restorer may have queued through writeFrom (restoreDirect): small ones (DIRECT_MAX_BLOB),
 * so many can wait. 256 was measured on 2 cores: each of the two workers has a full batch in hand
 * and another queued.
 */
export const DIRECT_IN_FLIGHT = 4 * WRITER_BATCHING.requests;

const NO_XATTRS: readonly (readonly [string, string])[] = [];

/** A job as the caller makes it: the blob comes from its lease. */
type Job = Omit<RestoreFileJob, 'seq' | 'blob'> | Omit<RestoreChunkJob, 'seq' | 'blob'>;
type Wire = Omit<RestoreFileJob, 'seq'> | Omit<RestoreChunkJob, 'seq'>;

/**
 * Envelopes read and not yet written, at most (the restore planner's budget, pack-reader.ts). From
 * a network store 64 MiB keeps both workers fed while a few whole packs (8 MiB) are on the way; a
 * local drive answers at once, and 16 MiB keeps the peak where it was before the planner (a 137
 * MB tree: 64 MiB cost +35 MiB of peak memory).
 */
const READ_BUDGET = 16 * 1024 * 1024;
const READ_BUDGET_REMOTE = 64 * 1024 * 1024;

/** Pack reads in flight at once. */
const READS_AHEAD = 4;

export class FileWriters {
  private readonly pool: WorkerPool<Wire, RestoreFileReply>;
  /** Reads the blobs, pack by pack, within a budget (repo's restore planner). */
  readonly reader: PackReader;

  constructor(private readonly repo: Repository) {
    this.pool = new WorkerPool(new URL('./restore-worker.js', import.meta.url), { codec: repo.workerCodec() }, undefined, WRITER_BATCHING);
    this.reader = repo.packReader({ budget: repo.remote ? READ_BUDGET_REMOTE : READ_BUDGET, ahead: READS_AHEAD });
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

  /** Writes single-chunk file `e` at `path`; undefined when its blob needs the general path (not indexed, or a delta). */
  async write(path: Buffer, e: TreeEntry, owner: { uid: number; gid: number } | undefined): Promise<RestoreFileReply | undefined> {
    const id: Hex | undefined = e.content?.[0];
    const lease = id === undefined ? undefined : await this.reader.get(fromHex(id));
    if (id !== undefined && !lease) return undefined;
    return this.writeFrom(path, e, owner, lease);
  }

  /**
   * Whether single-chunk file `e` may be queued through writeFrom with its data (restoreDirect):
   * empty, or its blob a small full blob in the index. Not indexed, a delta, a listing named as
   * data (refused) or a large blob: the general path.
   */
  direct(e: TreeEntry): boolean {
    const id: Hex | undefined = e.content?.[0];
    if (id === undefined) return true;
    const loc = this.repo.index.get(fromHex(id));
    return loc !== undefined && loc.type !== BlobType.delta && loc.type !== BlobType.tree && loc.length <= DIRECT_MAX_BLOB;
  }

  /** Writes single-chunk file `e` at `path` from the blob `lease` holds (none: an empty file), and releases it. */
  writeFrom(path: Buffer, e: TreeEntry, owner: { uid: number; gid: number } | undefined, lease: Lease | undefined): Promise<RestoreFileReply> {
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

  /**
   * Writes chunk `id` at `pos` of the open file `fd`, skipping `holes`; undefined when the chunk
   * needs the general path, or (without writing) when `wanted` says no once it was read (the file
   * failed meanwhile). The caller keeps `fd` open until this settles.
   */
  async writeChunk(fd: number, pos: number, holes: readonly number[], id: Hex, wanted: () => boolean = () => true): Promise<RestoreFileReply | undefined> {
    const lease = await this.reader.get(fromHex(id));
    if (!lease) return undefined;
    if (!wanted()) {
      lease.release();
      return { seq: 0, status: 'ok', bytes: 0, xattrErrors: [] };
    }
    return this.send({ kind: 'chunk', fd, pos, holes }, lease);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
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
