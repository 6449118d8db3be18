import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { test } from 'node:test';
import { FakeClock } from '../util/clock.js';
import { isStale, LOCK_STALE_MS, newLockInfo } from './lock.js';

test('a lock is dated by the clock, and is stale once not refreshed for LOCK_STALE_MS on that clock', () => {
  const clock = new FakeClock(Date.UTC(2026, 5, 1, 12));
  const mine = newLockInfo(false, 'backup', clock);
  assert.equal(mine.time, '2026-06-01T12:00:00.000Z');
  const elsewhere = { ...mine, host: `not-${hostname()}` };
  clock.advance(LOCK_STALE_MS - 1000);
  assert.equal(isStale(elsewhere, clock), false);
  assert.equal(isStale(mine, clock), false, 'our own process is alive');
  clock.advance(2000);
  assert.equal(isStale(elsewhere, clock), true);
  assert.equal(isStale({ ...elsewhere, time: 'not a time' }, clock), true);
});
