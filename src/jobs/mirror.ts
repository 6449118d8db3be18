/**
 * The plain mirror as a job: DST kept an ordinary copy of SRC that any computer can read, with
 * deleted and overwritten files kept under DST/.lifeboat-versions for a number of days
 * (files/mirror.ts does the work and says what it promises).
 */
import { mirror, type MirrorEvent, type MirrorOptions, type MirrorResult } from '../files/mirror.js';
import type { Clock } from '../util/clock.js';
import { LifeboatError } from '../util/errors.js';
import type { JobEvent, JobOptions } from './events.js';

export { DEFAULT_KEEP_DAYS, MIRROR_STATE, MIRROR_VERSIONS, type MirrorResult, type MirrorSummary } from '../files/mirror.js';

export interface MirrorJobOptions extends JobOptions {
  readonly keepDays?: number;
  readonly clock?: Clock;
}

/** The mirror's events as the job's: progress in bytes copied, warnings with their path. */
export function mirrorEvents(onEvent: ((e: JobEvent) => void) | undefined): ((e: MirrorEvent) => void) | undefined {
  if (!onEvent) return undefined;
  return (e) => onEvent(e.type === 'warning' ? e : { type: 'progress', phase: 'mirroring', done: e.bytesCopied, files: e.files });
}

function mirrorOptions(o: MirrorJobOptions): MirrorOptions {
  if (o.keepDays !== undefined && (!Number.isInteger(o.keepDays) || o.keepDays < 0)) throw new LifeboatError('usage', `Versions are kept for a whole number of days (0 or more), not ${o.keepDays}.`);
  const onEvent = mirrorEvents(o.onEvent);
  return {
    ...(o.keepDays !== undefined ? { keepDays: o.keepDays } : {}),
    ...(o.clock ? { clock: o.clock } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
    ...(onEvent ? { onEvent } : {}),
  };
}

/** Brings DST up to date with SRC once and returns what was done. */
export async function mirrorOnce(src: string, dst: string, o: MirrorJobOptions = {}): Promise<MirrorResult> {
  return mirror(src, dst, mirrorOptions(o));
}
