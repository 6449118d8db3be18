/**
 * The plain mirror as a job: DST kept an ordinary copy of SRC that any computer can read, with
 * deleted and overwritten files kept under DST/.lifeboat-versions for a number of days
 * (files/mirror.ts does the work and says what it promises).
 */
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { mirror, MirrorSession, type MirrorEvent, type MirrorOptions, type MirrorResult } from '../files/mirror.js';
import type { Clock } from '../util/clock.js';
import { LifeboatError } from '../util/errors.js';
import type { JobEvent, JobOptions } from './events.js';
import { watchLoop, type ChangeBatch, type WatchLoopOptions } from './watch.js';
import { platformWarning } from './files.js';

export { DEFAULT_KEEP_DAYS, MIRROR_STATE, MIRROR_VERSIONS, type MirrorResult, type MirrorSummary } from '../files/mirror.js';

export interface MirrorJobOptions extends JobOptions {
  readonly keepDays?: number;
  readonly allowEmptySource?: boolean;
  readonly clock?: Clock;
}

/** The mirror's events as the job's: progress in bytes copied, warnings with their path. */
export function mirrorEvents(onEvent: ((e: JobEvent) => void) | undefined): ((e: MirrorEvent) => void) | undefined {
  if (!onEvent) return undefined;
  return (e) => onEvent(e.type === 'warning' ? e : { type: 'progress', phase: 'mirroring', done: e.bytesCopied, files: e.files });
}

function mirrorOptions(o: MirrorJobOptions): MirrorOptions {
  platformWarning(o);
  if (o.keepDays !== undefined && (!Number.isInteger(o.keepDays) || o.keepDays < 0)) throw new LifeboatError('usage', `Versions are kept for a whole number of days (0 or more), not ${o.keepDays}.`);
  const onEvent = mirrorEvents(o.onEvent);
  return {
    ...(o.keepDays !== undefined ? { keepDays: o.keepDays } : {}),
    ...(o.allowEmptySource ? { allowEmptySource: true } : {}),
    ...(o.clock ? { clock: o.clock } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
    ...(onEvent ? { onEvent } : {}),
  };
}

/** Brings DST up to date with SRC once and returns what was done. */
export async function mirrorOnce(src: string, dst: string, o: MirrorJobOptions = {}): Promise<MirrorResult> {
  return mirror(src, dst, mirrorOptions(o));
}

export interface MirrorWatchOptions extends MirrorJobOptions, Omit<WatchLoopOptions, 'signal' | 'onEvent' | 'ignore'> {
  /** After each run, with the changes it handled. */
  readonly onRun?: (r: MirrorResult, batch: ChangeBatch) => void;
}

/**
 * Mirrors SRC into DST, then follows SRC's changes (jobs/watch.ts) and brings DST up to date a
 * settle time after each burst, looking only at the folders that changed (everything on start,
 * after a watcher problem, and every few hours). Runs until the signal is aborted.
 */
export async function mirrorWatch(src: string, dst: string, o: MirrorWatchOptions = {}): Promise<never> {
  const mo = mirrorOptions(o);
  let root: string;
  try {
    root = realpathSync(src); // the mirror reads the resolved path; the watcher reports under the same
  } catch {
    root = resolve(src);
  }
  const rel = (folder: string): Buffer | undefined => (folder === root ? Buffer.alloc(0) : folder.startsWith(root + '/') ? Buffer.from(folder.slice(root.length + 1), 'utf8') : undefined);
  // Held open between runs (DST locked, its record in memory); opened again after a failure.
  // Opened here first, so that a wrong SRC or DST is said at once rather than retried.
  let session: MirrorSession | undefined = await MirrorSession.open(root, dst, mo);
  const closeSession = () => {
    try {
      session?.close();
    } catch {
      // DST's drive gone: the journal already holds what the record needs
    }
    session = undefined;
  };
  try {
    return await watchLoop(
      [root],
      async (batch) => {
        const changed = batch.full ? undefined : batch.folders.map(rel).filter((f): f is Buffer => f !== undefined);
        try {
          session ??= await MirrorSession.open(root, dst, mo);
          o.onRun?.(await session.run(changed), batch);
        } catch (e) {
          closeSession();
          throw e;
        }
      },
      o,
    );
  } finally {
    closeSession();
  }
}
