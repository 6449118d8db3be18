/**
 * Repository locks (docs/FORMAT.md §Locks). Backups take shared locks, prune takes an exclusive
 * one. A lock is an encrypted object under locks/, refreshed by writing a new one and deleting the
 * old (never rewritten in place). A lock is stale when its process is gone (same host) or it has
 * not been refreshed for LOCK_STALE_MS (any host).
 */
import { hostname, userInfo } from 'node:os';
import { systemClock, type Clock } from '../util/clock.js';
import { LifeboatError, errnoCode } from '../util/errors.js';

export const LOCK_REFRESH_MS = 5 * 60 * 1000;
export const LOCK_STALE_MS = 30 * 60 * 1000;

export interface LockInfo {
  readonly version: 1;
  readonly time: string;
  readonly host: string;
  readonly pid: number;
  readonly user: string;
  readonly exclusive: boolean;
  readonly purpose: string;
}

export function newLockInfo(exclusive: boolean, purpose: string, clock: Clock = systemClock): LockInfo {
  let user = '';
  try {
    user = userInfo().username;
  } catch {
    /* no user database */
  }
  return { version: 1, time: new Date(clock.now()).toISOString(), host: hostname(), pid: process.pid, user, exclusive, purpose };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoCode(e) === 'EPERM';
  }
}

export function isStale(l: LockInfo, clock: Clock = systemClock): boolean {
  const t = Date.parse(l.time);
  if (!Number.isFinite(t) || clock.now() - t > LOCK_STALE_MS) return true;
  return l.host === hostname() && l.pid !== process.pid && !processAlive(l.pid);
}

export function conflicts(mine: LockInfo, other: LockInfo): boolean {
  return mine.exclusive || other.exclusive;
}

export function lockedError(other: LockInfo): LifeboatError {
  const since = new Date(other.time).toLocaleString();
  return new LifeboatError(
    'locked',
    `The repository is in use by "${other.purpose}" on ${other.host} (process ${other.pid}, since ${since}). ` +
      `Wait for it to finish; if that process no longer runs, "lifeboat unlock" removes its lock.`,
  );
}
