/**
 * The size walk beside a backup (as restic's scanner): counts the files and bytes a backup will
 * handle, so that progress can show a real percentage and time left once it has finished. It uses
 * asynchronous calls (the thread pool) with little concurrency, so the backup's own walk and reads
 * keep the main thread and most of the pool; problems (unreadable folders, vanished files) are
 * left to the backup to report, and the walk stops when its signal is aborted.
 */
import * as fsp from 'node:fs/promises';
import { pool, Semaphore } from '../util/concurrency.js';
import type { PathMatcher } from './pattern.js';

export interface ScanOptions {
  readonly excludes: PathMatcher;
  readonly excludeLargerThan?: number | undefined;
  readonly oneFileSystem?: boolean | undefined;
  readonly signal: AbortSignal;
  /** Called for each file counted, with its absolute path, size and mtime (a dry run compares them with the last snapshot). */
  readonly onFile?: ((path: Buffer, size: number, mtimeNs: bigint) => void) | undefined;
}

export interface ScanTotal {
  files: number;
  bytes: number;
}

/** lstat/readdir calls in flight: a little beside the backup's own I/O. */
const SCAN_WINDOW = 2;
const SLASH = Buffer.from('/');

/** Walks `paths` (absolute) and returns their file count and bytes; rejects if aborted. */
export async function scanTotal(paths: readonly string[], opts: ScanOptions): Promise<ScanTotal> {
  const t: ScanTotal = { files: 0, bytes: 0 };
  const io = new Semaphore(SCAN_WINDOW);
  const call = async <T>(fn: () => Promise<T>): Promise<T> => {
    await io.acquire();
    try {
      return await fn();
    } finally {
      io.release();
    }
  };
  const count = async (path: Buffer, rootDev: bigint | undefined, isRoot: boolean): Promise<void> => {
    opts.signal.throwIfAborted();
    if (!isRoot && !opts.excludes.empty && opts.excludes.matches(path.toString('utf8'))) return;
    let st;
    try {
      st = await call(() => fsp.lstat(path, { bigint: true }));
    } catch {
      return;
    }
    if (st.isFile()) {
      const size = Number(st.size);
      if (opts.excludeLargerThan !== undefined && size > opts.excludeLargerThan) return;
      t.files++;
      t.bytes += size;
      opts.onFile?.(path, size, st.mtimeNs);
      return;
    }
    if (!st.isDirectory()) return;
    const dev = rootDev ?? st.dev;
    if (opts.oneFileSystem && st.dev !== dev) return;
    let names: string[];
    try {
      // latin1: a string per name, not a Buffer (backup.ts FileAccess.readdir)
      names = await call(() => fsp.readdir(path, { encoding: 'latin1' }));
    } catch {
      return;
    }
    const base = path[path.length - 1] === 0x2f ? path : Buffer.concat([path, SLASH]);
    await pool(names.length, 8, (i) => count(Buffer.concat([base, Buffer.from(names[i]!, 'latin1')]), dev, false));
  };
  for (const p of paths) await count(Buffer.from(p), undefined, true);
  return t;
}
