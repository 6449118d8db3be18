/**
 * Continuous protection: folders watched (jobs/watch.ts) and a snapshot taken a few seconds after
 * changes settle, thinned like Time Machine so that leaving it on costs little: every snapshot of
 * the last 24 hours, one an hour for a week, one a day for a month, one a week before that
 * (CONTINUOUS_RETENTION, expressed with the forget rules; pinned snapshots are always kept).
 */
import type { ForgetPolicy, RetentionDuration } from '../repo/forget.js';

const days = (n: number): RetentionDuration => ({ years: 0, months: 0, days: n, hours: 0 });

/** The default retention of a continuous job. "Within" counts back from the newest snapshot. */
export const CONTINUOUS_RETENTION: ForgetPolicy = {
  within: days(1),
  withinHourly: days(7),
  withinDaily: { years: 0, months: 1, days: 0, hours: 0 },
  weekly: -1,
};
