/**
 * Following changes as they happen, for continuous backups and the mirror: folders are watched with
 * @parcel/watcher (inotify, FSEvents, ReadDirectoryChangesW behind one API), and the work runs a
 * `settle` time after activity stops, or at most `maxDelay` after the first change it has not yet
 * handled, so a file rewritten every second is still saved. The watcher's events name the folders
 * that changed; the work is told those (or to look at everything: on start, after the watcher
 * reports an error or overflow, when a watched folder comes back, and every `fullEvery` as a
 * safety net). Idle means idle: nothing runs between events but two timers (the next full rescan,
 * and a slow check for a watched folder that is gone, only while it is gone).
 *
 * The inotify backend watches only the top of a folder created or moved in (parcel-bundler/watcher
 * issue 97): a batch that holds a new folder with folders inside re-subscribes first, and the
 * work's rescan of the new folder covers the moments in between.
 */
import { lstatSync, readdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import parcel from '@parcel/watcher';
import { systemClock, type Clock } from '../util/clock.js';
import { LifeboatError } from '../util/errors.js';
import type { JobOptions } from './events.js';

export const DEFAULT_SETTLE_MS = 10_000;
export const DEFAULT_MAX_DELAY_MS = 5 * 60_000;
export const DEFAULT_FULL_EVERY_MS = 6 * 3_600_000;
export const DEFAULT_RETRY_MS = 60_000;

/**
 * When pending changes are due: `settleMs` after the last one, but no later than `maxDelayMs`
 * after the first one not yet handled. A pure state machine driven by the caller's clock.
 */
export class Settle {
  private first: number | undefined;
  private last: number | undefined;

  constructor(readonly settleMs: number, readonly maxDelayMs: number) {}

  changed(now: number): void {
    this.first ??= now;
    this.last = now;
  }

  /** The time the pending changes are due, or undefined when there are none. */
  due(): number | undefined {
    if (this.first === undefined || this.last === undefined) return undefined;
    return Math.min(this.last + this.settleMs, this.first + this.maxDelayMs);
  }

  /** The pending changes are being handled: what comes next starts a new wait. */
  take(): void {
    this.first = undefined;
    this.last = undefined;
  }
}

/** What changed: everything (`full`), or something in each of these folders (absolute paths). */
export interface ChangeBatch {
  readonly full: boolean;
  readonly folders: readonly string[];
}

export interface WatchLoopOptions extends JobOptions {
  readonly settleMs?: number;
  readonly maxDelayMs?: number;
  readonly fullEveryMs?: number;
  /** After a failed run (a repository drive unplugged), and between checks for a watched folder that is gone. */
  readonly retryMs?: number;
  /** Paths inside the watched folders whose changes are not followed (the repository, the cache). */
  readonly ignore?: readonly string[];
  readonly clock?: Clock;
  /** The watcher (@parcel/watcher's subscribe); tests wrap it to report an overflow. */
  readonly subscribe?: typeof parcel.subscribe;
}

type Subscription = Awaited<ReturnType<typeof parcel.subscribe>>;

function folderWithSubfolders(path: string): boolean {
  try {
    return lstatSync(path).isDirectory() && readdirSync(path, { withFileTypes: true }).some((e) => e.isDirectory());
  } catch {
    return false;
  }
}

function isFolder(path: string): boolean {
  return folderInode(path) !== undefined;
}

/** The inode of a folder (undefined when it is not one), to notice a watched folder replaced by another. */
function folderInode(path: string): number | undefined {
  try {
    const st = lstatSync(path);
    return st.isDirectory() ? st.ino : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Watches `roots` (folders that must exist at the start) and calls `work` with each batch of
 * changes (one at a time), until the signal is aborted; then rejects with the abort reason. A failed `work` is reported as a warning and tried
 * again `retryMs` later with the same changes.
 */
export async function watchLoop(roots: readonly string[], work: (batch: ChangeBatch) => Promise<void>, o: WatchLoopOptions = {}): Promise<never> {
  const clock = o.clock ?? systemClock;
  const settle = new Settle(o.settleMs ?? DEFAULT_SETTLE_MS, o.maxDelayMs ?? DEFAULT_MAX_DELAY_MS);
  const retryMs = o.retryMs ?? DEFAULT_RETRY_MS;
  const subscribe = o.subscribe ?? parcel.subscribe;
  const abs = roots.map((r) => resolve(r));
  const ignore = (o.ignore ?? []).map((p) => resolve(p));
  const warn = (message: string, path?: string) => o.onEvent?.({ type: 'warning', message, ...(path !== undefined ? { path } : {}) });

  let full = true;
  let folders = new Set<string>();
  let resubscribe = false;
  const subs = new Map<string, Subscription>();
  /** The inode of each root as subscribed: the watch of a folder deleted and made again is dead. */
  const inodes = new Map<string, number | undefined>();
  const gone = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let busy = false;
  let current: Promise<void> | undefined;
  let stop: (reason: unknown) => void = () => undefined;
  const stopped = new Promise<never>((_, reject) => (stop = reject));
  stopped.catch(() => undefined); // awaited at the end; it may settle before that

  const arm = (): void => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    const due = settle.due();
    if (busy || o.signal?.aborted || due === undefined || gone.size > 0) return;
    timer = setTimeout(() => {
      current = flush();
    }, Math.max(0, due - clock.now()));
  };

  const listener = (root: string) => (err: Error | null, events: parcel.Event[]) => {
    if (err) {
      warn(`Watching ${root} reported a problem (${err.message}); everything is looked at again.`, root);
      full = true;
      resubscribe = true;
    }
    for (const ev of events) {
      if (ev.path === root && ev.type === 'delete') {
        resubscribe = true;
        full = true;
        continue;
      }
      folders.add(dirname(ev.path));
      if (ev.type === 'create' && isFolder(ev.path)) {
        folders.add(ev.path);
        if (folderWithSubfolders(ev.path)) resubscribe = true;
      }
    }
    settle.changed(clock.now());
    arm();
  };

  /** (Re)subscribes every root; a root that is not there is checked again every retryMs until it is. */
  const subscribeAll = async (): Promise<void> => {
    for (const s of subs.values()) await s.unsubscribe().catch(() => undefined);
    subs.clear();
    for (const root of abs) {
      inodes.set(root, folderInode(root));
      if (inodes.get(root) === undefined) {
        if (!gone.has(root)) warn(`${root} is not there (deleted, or its drive unplugged); it is checked again every ${Math.round(retryMs / 1000)} s and followed again when it is back.`, root);
        gone.add(root);
        continue;
      }
      if (gone.delete(root)) {
        o.onEvent?.({ type: 'phase', phase: `${root} is back` });
        full = true;
      }
      subs.set(root, await subscribe(root, listener(root), { ignore: ignore.filter((p) => p.startsWith(root + '/')) }));
    }
    if (gone.size > 0) {
      retryTimer = setTimeout(() => {
        retryTimer = undefined;
        void subscribeAll().then(() => {
          settle.changed(clock.now());
          arm();
        }, stop);
      }, retryMs);
    }
  };

  const flush = async (): Promise<void> => {
    timer = undefined;
    busy = true;
    for (const root of abs) {
      if (folderInode(root) === inodes.get(root)) continue;
      // Gone, or deleted and made again (the watcher may not have said): watched afresh, looked at in full.
      resubscribe = true;
      full = true;
    }
    const batch: ChangeBatch = { full, folders: full ? [] : [...folders].sort() };
    folders = new Set();
    full = false;
    settle.take();
    try {
      if (resubscribe) {
        resubscribe = false;
        await subscribeAll();
      }
      if (gone.size > 0) {
        // Not looked at while a root is missing: kept for when it is back.
        full ||= batch.full;
        for (const f of batch.folders) folders.add(f);
        return;
      }
      await work(batch);
    } catch (e) {
      if (o.signal?.aborted) return;
      warn(`${e instanceof Error ? e.message : String(e)} Trying again in ${Math.round(retryMs / 1000)} s.`);
      full ||= batch.full;
      for (const f of batch.folders) folders.add(f);
      retryTimer ??= setTimeout(() => {
        retryTimer = undefined;
        settle.changed(clock.now());
        arm();
      }, retryMs);
      return;
    } finally {
      busy = false;
    }
    arm();
  };

  o.signal?.throwIfAborted();
  const missing = abs.filter((r) => !isFolder(r));
  if (missing.length > 0) throw new LifeboatError('not-found', `${missing.join(', ')} ${missing.length === 1 ? 'is not a folder that exists' : 'are not folders that exist'}; check the ${missing.length === 1 ? 'path' : 'paths'}, or connect the drive that holds ${missing.length === 1 ? 'it' : 'them'}.`);
  const fullTimer = setInterval(() => {
    full = true;
    settle.changed(clock.now() - settle.settleMs); // due now
    arm();
  }, o.fullEveryMs ?? DEFAULT_FULL_EVERY_MS);
  const onAbort = () => stop(o.signal?.reason);
  o.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await subscribeAll();
    settle.changed(clock.now() - settle.settleMs); // the first full rescan, at once
    arm();
    return await stopped;
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    clearInterval(fullTimer);
    if (timer) clearTimeout(timer);
    if (retryTimer) clearTimeout(retryTimer);
    for (const s of subs.values()) await s.unsubscribe().catch(() => undefined);
    await current;
  }
}

