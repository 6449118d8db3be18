import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyPolicyToGroup, type ForgetCandidate } from '../repo/forget.js';
import { CONTINUOUS_RETENTION } from './continuous.js';

test('continuous retention thins like Time Machine: all for a day, hourly for a week, daily for a month, weekly before', () => {
  const now = Date.UTC(2026, 11, 5, 12, 0, 0);
  const hour = 3_600_000;
  const snaps: ForgetCandidate[] = [];
  // A snapshot every 10 minutes for 90 days.
  for (let t = now, i = 0; t > now - 90 * 24 * hour; t -= 10 * 60_000, i++) {
    snaps.push({ id: String(i).padStart(8, '0'), kind: 'files', time: new Date(t).toISOString(), host: 'h', paths: ['/home/ann'], tags: [] });
  }
  snaps.push({ id: 'pinned00', kind: 'files', time: new Date(now - 80 * 24 * hour + 60_000).toISOString(), host: 'h', paths: ['/home/ann'], tags: [], pinned: true });
  const { keep } = applyPolicyToGroup(snaps, CONTINUOUS_RETENTION);
  const kept = keep.map((k) => Date.parse(k.snapshot.time));
  const age = (t: number) => now - t;
  const inRange = (lo: number, hi: number) => kept.filter((t) => age(t) >= lo && age(t) < hi);
  assert.equal(inRange(0, 24 * hour).length, 144, 'every snapshot of the last 24 hours');
  const hourly = inRange(24 * hour + 1, 7 * 24 * hour);
  assert.ok(hourly.length >= 143 && hourly.length <= 145, `one an hour for the week (${hourly.length})`);
  assert.equal(new Set(hourly.map((t) => Math.floor(t / hour))).size, hourly.length, 'at most one per hour');
  const daily = inRange(7 * 24 * hour + hour, 29 * 24 * hour);
  assert.equal(new Set(daily.map((t) => Math.floor(t / (24 * hour)))).size, daily.length, 'at most one per day');
  assert.ok(daily.length >= 21 && daily.length <= 23, `one a day for the month (${daily.length})`);
  const weekly = inRange(32 * 24 * hour, 90 * 24 * hour);
  assert.ok(weekly.length >= 8 && weekly.length <= 10, `one a week before (${weekly.length}, the pinned one among them)`);
  assert.ok(keep.some((k) => k.snapshot.id === 'pinned00'), 'pins are kept');
  assert.ok(keep.length < 340, `${keep.length} of ${snaps.length} kept`);
});
