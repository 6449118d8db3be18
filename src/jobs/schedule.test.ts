import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeSchedule, expectedIntervalMs, nextSlot, parseSchedule, scheduleSpec } from './schedule.js';
import { LifeboatError } from '../util/errors.js';

/** Local time, as the schedules mean it (2026-01-05 is a Monday). */
const at = (d: number, h: number, m = 0) => new Date(2026, 0, d, h, m).getTime();
const H = 3600_000;

test('daily: the next slot is today at the time, or tomorrow once it has passed', () => {
  const s = parseSchedule('daily 19:00');
  assert.deepEqual(s, { kind: 'daily', hour: 19, minute: 0 });
  assert.equal(nextSlot(s, at(5, 10)), at(5, 19));
  assert.equal(nextSlot(s, at(5, 19)), at(6, 19), 'strictly after');
  assert.equal(nextSlot(parseSchedule('daily 7:30pm'), at(5, 10)), at(5, 19, 30));
  assert.equal(describeSchedule(s), 'every day at 19:00');
  assert.equal(expectedIntervalMs(s, at(5, 10)), 24 * H);
});

test('weekly: the next chosen weekday at the time', () => {
  const s = parseSchedule('weekly sun 19:00');
  assert.deepEqual(s, { kind: 'weekly', days: [0], hour: 19, minute: 0 });
  assert.equal(nextSlot(s, at(5, 10)), at(11, 19)); // Monday -> Sunday
  const two = parseSchedule('weekly monday,thu 08:15');
  assert.equal(scheduleSpec(two), 'weekly mon,thu 08:15');
  assert.equal(nextSlot(two, at(5, 10)), at(8, 8, 15)); // Monday 10:00 -> Thursday
  assert.equal(nextSlot(two, at(8, 9)), at(12, 8, 15)); // -> next Monday
  assert.equal(expectedIntervalMs(two, at(5, 10)), 4 * 24 * H); // Thursday -> Monday
  assert.equal(describeSchedule(two), 'every Monday, Thursday at 08:15');
});

test('every N hours counts from the last run; cron expressions go to croner', () => {
  const e = parseSchedule('every 6h');
  assert.equal(nextSlot(e, at(5, 10, 7)), at(5, 16, 7));
  assert.equal(parseSchedule('every 2 hours').kind, 'every');
  const c = parseSchedule('*/15 * * * *');
  assert.equal(c.kind, 'cron');
  assert.equal(nextSlot(c, at(5, 10, 7)), at(5, 10, 15));
  assert.equal(expectedIntervalMs(c, at(5, 10)), 15 * 60_000);
  assert.equal(nextSlot(parseSchedule('0 3 * * 1-5'), at(9, 4)), at(12, 3)); // Friday after 3:00 -> Monday
});

test('a schedule that is not understood is a usage error with examples', () => {
  for (const bad of ['daily', 'daily 25:00', 'weekly funday 19:00', 'every 0h', 'every day', 'sometimes', '61 * * * *', 'daily 13pm']) {
    assert.throws(() => parseSchedule(bad), (e: unknown) => e instanceof LifeboatError && e.code === 'usage' && /daily 19:00/.test(e.message), bad);
  }
});
