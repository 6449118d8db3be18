/**
 * The restorer's worker threads (restore-worker.ts): the main thread walks the snapshot, makes
 * folders, decides names and renames; each single-chunk file's sealed blob is read here and handed
 * over (transferred, not copied) to a worker that opens it and writes the file.
 */
import type { Repository } from '../repo/repository.js';
import { fromHex, type Hex } from '../repo/ids.js';
import { WorkerPool } from '../util/worker-pool.js';
import type { TreeEntry } from './tree.js';

export interface RestoreFileJob {
  readonly seq: number;
  /**
   * Where to create the file (a fresh name in a folder the main thread checked), its bytes as a
   * latin1 string: strings cross threads cheaply, a Buffer from Node's pool clones its whole slab.
   */
  readonly path: string;
  /** The sealed content (id in hex); none for an empty file. */
  readonly blob?: { readonly type: number; readonly id: Hex; readonly env: Uint8Array; readonly rawLength: number; readonly packName: string };
  readonly mode: number;
  /** Owner to set; undefined leaves the file to the restoring user. */
  readonly owner?: { readonly uid: number; readonly gid: number };
  readonly atime: bigint;
  readonly mtime: bigint;
  /** Extended attributes, values as latin1 strings. */
  readonly xattrs: readonly (readonly [string, string])[];
}

export type RestoreFileReply =
  | { readonly seq: number; readonly status: 'ok'; readonly bytes: number; readonly chownError?: string; readonly xattrErrors: readonly [string, string][] }
  | { readonly seq: number; readonly status: 'corrupt'; readonly message: string }
  | { readonly seq: number; readonly status: 'failed'; readonly code: string };

export class FileWriters {
  private readonly pool: WorkerPool<Omit<RestoreFileJob, 'seq'>, RestoreFileReply>;

  constructor(private readonly repo: Repository) {
    this.pool = new WorkerPool(new URL('./restore-worker.js', import.meta.url), { encKey: repo.keys.encKey, idKey: repo.keys.idKey });
  }

  /** Writes file `e` at `path`; undefined when its blob needs the general path (not indexed, or a delta). */
  async write(path: Buffer, e: TreeEntry, owner: { uid: number; gid: number } | undefined): Promise<RestoreFileReply | undefined> {
    const id: Hex | undefined = e.content?.[0];
    let blob: RestoreFileJob['blob'];
    if (id !== undefined) {
      const sealed = await this.repo.loadSealedBlob(fromHex(id));
      if (!sealed) return undefined;
      blob = { ...sealed, id };
    }
    const job: Omit<RestoreFileJob, 'seq'> = {
      path: path.toString('latin1'),
      ...(blob ? { blob } : {}),
      mode: e.mode,
      ...(owner ? { owner } : {}),
      atime: e.atime,
      mtime: e.mtime,
      xattrs: (e.xattrs ?? []).map(([k, v]) => [k, v.toString('latin1')] as const),
    };
    return this.pool.call(job, blob ? [blob.env.buffer as ArrayBuffer] : []);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
