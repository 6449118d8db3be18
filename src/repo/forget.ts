/**
 * Retention policy: which snapshots `lifeboat forget` keeps and which it removes, and why. A pure
 * function of the snapshot list and the policy, with restic's semantics exactly (restic 0.14
 * `ApplyPolicy`, compared against restic itself in forget.test.ts):
 *
 * - snapshots are grouped (kind, host, sorted paths; an image's `paths` holds its source) and each
 *   group is judged on its own, newest first;
 * - `last N` keeps the N newest; `hourly/daily/weekly/monthly/yearly N` keep the newest snapshot of
 *   each of the N most recent hours/days/ISO weeks/months/years that have a snapshot, bucketed in
 *   local time; a negative count means unlimited;
 * - `within D` keeps every snapshot strictly newer than (newest snapshot of the group − D), where D
 *   is years/months/days subtracted on the calendar, then hours; `within-daily D` and friends keep
 *   the newest snapshot per bucket among those;
 * - `tags` keeps every snapshot that carries all tags of at least one of the tag lists;
 * - a snapshot may be kept by several rules, and counts against every bucket rule it matches, even
 *   when a tag or a pin already keeps it (as restic does for tags).
 *
 * Lifeboat adds pins: a pinned snapshot is always kept, with the reason "pinned", and otherwise
 * takes part in the rules like any other snapshot.
 */
import { LifeboatError } from '../util/errors.js';

export interface RetentionDuration {
  readonly years: number;
  readonly months: number;
  readonly days: number;
  readonly hours: number;
}

export interface ForgetPolicy {
  readonly last?: number;
  readonly hourly?: number;
  readonly daily?: number;
  readonly weekly?: number;
  readonly monthly?: number;
  readonly yearly?: number;
  readonly within?: RetentionDuration;
  readonly withinHourly?: RetentionDuration;
  readonly withinDaily?: RetentionDuration;
  readonly withinWeekly?: RetentionDuration;
  readonly withinMonthly?: RetentionDuration;
  readonly withinYearly?: RetentionDuration;
  /** Each entry is a tag list; a snapshot with every tag of any one list is kept. */
  readonly tags?: readonly (readonly string[])[];
}

/** What the policy needs to know of a snapshot. */
export interface ForgetCandidate {
  readonly id: string;
  readonly kind: string;
  /** ISO-8601 with up to nanosecond precision ("Z" or an offset). */
  readonly time: string;
  readonly host: string;
  readonly paths: readonly string[];
  readonly tags: readonly string[];
  readonly pinned?: boolean;
}

export interface ForgetGroup<T extends ForgetCandidate = ForgetCandidate> {
  readonly kind: string;
  readonly host: string;
  readonly paths: readonly string[];
  /** Newest first, each with the rules that kept it (in restic's order; "pinned" last). */
  readonly keep: { readonly snapshot: T; readonly reasons: readonly string[] }[];
  /** Newest first. */
  readonly remove: T[];
}

export function isZeroDuration(d: RetentionDuration | undefined): boolean {
  return !d || (d.years === 0 && d.months === 0 && d.days === 0 && d.hours === 0);
}

/** Parses restic's duration syntax: numbers each followed by y, m, d or h ("1y2m3d4h", "36h"). */
export function parseDuration(s: string): RetentionDuration {
  const d = { years: 0, months: 0, days: 0, hours: 0 };
  if (s === '') throw new LifeboatError('invalid-argument', 'A duration is empty; write it like "1y2m3d4h" (years, months, days, hours).');
  const re = /^(-?\d+)([ymdh])/;
  let rest = s;
  while (rest !== '') {
    const m = re.exec(rest);
    if (!m) throw new LifeboatError('invalid-argument', `"${s}" is not a duration; write it like "1y2m3d4h" (years, months, days, hours).`);
    const n = Number.parseInt(m[1]!, 10);
    if (m[2] === 'y') d.years = n;
    else if (m[2] === 'm') d.months = n;
    else if (m[2] === 'd') d.days = n;
    else d.hours = n;
    rest = rest.slice(m[0].length);
  }
  return d;
}

/** restic's spelling of a duration, as it appears in reasons ("within 1y2m"). */
export function formatDuration(d: RetentionDuration): string {
  return (d.years ? `${d.years}y` : '') + (d.months ? `${d.months}m` : '') + (d.days ? `${d.days}d` : '') + (d.hours ? `${d.hours}h` : '');
}

export function isEmptyPolicy(p: ForgetPolicy): boolean {
  const counts = [p.last, p.hourly, p.daily, p.weekly, p.monthly, p.yearly];
  const durations = [p.within, p.withinHourly, p.withinDaily, p.withinWeekly, p.withinMonthly, p.withinYearly];
  return counts.every((c) => !c) && durations.every(isZeroDuration) && (p.tags ?? []).length === 0;
}

/** A point in time with nanosecond precision: whole milliseconds since the epoch plus 0–999999 ns. */
interface Instant {
  readonly ms: number;
  readonly ns: number;
}

const FRACTION = /\.(\d+)/;

export function parseTime(s: string): Instant {
  const m = FRACTION.exec(s);
  const digits = m ? m[1]! : '';
  const ms = Date.parse(m ? s.replace(FRACTION, digits.length > 3 ? `.${digits.slice(0, 3)}` : m[0]) : s);
  if (!Number.isFinite(ms)) throw new LifeboatError('corrupt', `The snapshot time "${s}" cannot be read.`);
  const ns = digits.length > 3 ? Number.parseInt(digits.slice(3, 9).padEnd(6, '0'), 10) : 0;
  return { ms, ns };
}

function after(a: Instant, b: Instant): boolean {
  return a.ms > b.ms || (a.ms === b.ms && a.ns > b.ns);
}

/** Go's `t.AddDate(-y, -m, -d).Add(-h hours)` in local time. */
function subtract(t: Instant, d: RetentionDuration): Instant {
  const x = new Date(t.ms);
  const shifted = new Date(x.getFullYear() - d.years, x.getMonth() - d.months, x.getDate() - d.days, x.getHours(), x.getMinutes(), x.getSeconds(), x.getMilliseconds());
  return { ms: shifted.getTime() - d.hours * 3_600_000, ns: t.ns };
}

/** ISO 8601 week-numbering year and week of a local calendar date, as Go's ISOWeek. */
function isoWeek(d: Date): number {
  const day = new Date(Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()));
  const weekday = (day.getUTCDay() + 6) % 7; // Monday = 0
  day.setUTCDate(day.getUTCDate() - weekday + 3); // the Thursday of this week decides the year
  const year = day.getUTCFullYear();
  const week = 1 + Math.floor((day.getTime() - Date.UTC(year, 0, 1)) / 86_400_000 / 7);
  return year * 100 + week;
}

type Bucker = (t: Instant, nr: number) => number;
const always: Bucker = (_t, nr) => nr;
const hourKey: Bucker = (t) => {
  const d = new Date(t.ms);
  return d.getFullYear() * 1_000_000 + (d.getMonth() + 1) * 10_000 + d.getDate() * 100 + d.getHours();
};
const dayKey: Bucker = (t) => {
  const d = new Date(t.ms);
  return d.getFullYear() * 10_000 + (d.getMonth() + 1) * 100 + d.getDate();
};
const weekKey: Bucker = (t) => isoWeek(new Date(t.ms));
const monthKey: Bucker = (t) => {
  const d = new Date(t.ms);
  return d.getFullYear() * 100 + d.getMonth() + 1;
};
const yearKey: Bucker = (t) => new Date(t.ms).getFullYear();

function hasAll(tags: readonly string[], list: readonly string[]): boolean {
  return list.every((t) => tags.includes(t));
}

function groupKey(c: { readonly kind: string; readonly host: string; readonly paths: readonly string[] }): string {
  return JSON.stringify([c.kind, c.host, [...c.paths].sort()]);
}

/** Applies the policy to one group of snapshots (any order in; newest first out). */
export function applyPolicyToGroup<T extends ForgetCandidate>(snapshots: readonly T[], p: ForgetPolicy): Pick<ForgetGroup<T>, 'keep' | 'remove'> {
  const list = snapshots.map((s) => ({ s, t: parseTime(s.time) }));
  list.sort((a, b) => (after(a.t, b.t) ? -1 : after(b.t, a.t) ? 1 : a.s.id < b.s.id ? -1 : a.s.id > b.s.id ? 1 : 0));
  const keep: { snapshot: T; reasons: string[] }[] = [];
  const remove: T[] = [];
  if (list.length === 0) return { keep, remove };
  const latest = list[0]!.t;

  const buckets = [
    { count: p.last ?? 0, bucker: always, last: -1, reason: 'last snapshot' },
    { count: p.hourly ?? 0, bucker: hourKey, last: -1, reason: 'hourly snapshot' },
    { count: p.daily ?? 0, bucker: dayKey, last: -1, reason: 'daily snapshot' },
    { count: p.weekly ?? 0, bucker: weekKey, last: -1, reason: 'weekly snapshot' },
    { count: p.monthly ?? 0, bucker: monthKey, last: -1, reason: 'monthly snapshot' },
    { count: p.yearly ?? 0, bucker: yearKey, last: -1, reason: 'yearly snapshot' },
  ];
  const within = (d: RetentionDuration | undefined) => (isZeroDuration(d) ? undefined : { d: d!, since: subtract(latest, d!) });
  const withinBuckets = [
    { w: within(p.withinHourly), bucker: hourKey, last: -1, reason: 'hourly within' },
    { w: within(p.withinDaily), bucker: dayKey, last: -1, reason: 'daily within' },
    { w: within(p.withinWeekly), bucker: weekKey, last: -1, reason: 'weekly within' },
    { w: within(p.withinMonthly), bucker: monthKey, last: -1, reason: 'monthly within' },
    { w: within(p.withinYearly), bucker: yearKey, last: -1, reason: 'yearly within' },
  ];
  const keepWithin = within(p.within);

  list.forEach(({ s, t }, nr) => {
    const reasons: string[] = [];
    for (const tl of p.tags ?? []) if (hasAll(s.tags, tl)) reasons.push(`has tags [${tl.join(', ')}]`);
    if (keepWithin && after(t, keepWithin.since)) reasons.push(`within ${formatDuration(keepWithin.d)}`);
    for (const b of buckets) {
      if (b.count === 0) continue;
      const v = b.bucker(t, nr);
      if (v !== b.last) {
        b.last = v;
        b.count--; // a negative count (unlimited) never reaches zero
        reasons.push(b.reason);
      }
    }
    for (const b of withinBuckets) {
      if (!b.w || !after(t, b.w.since)) continue;
      const v = b.bucker(t, nr);
      if (v !== b.last) {
        b.last = v;
        reasons.push(`${b.reason} ${formatDuration(b.w.d)}`);
      }
    }
    if (s.pinned) reasons.push('pinned');
    if (reasons.length > 0) keep.push({ snapshot: s, reasons });
    else remove.push(s);
  });
  return { keep, remove };
}

/**
 * Groups snapshots by kind, host and paths and applies the policy to each group. An empty policy
 * is refused (as restic refuses to forget without one): it would say nothing about what to keep.
 */
export function applyPolicy<T extends ForgetCandidate>(snapshots: readonly T[], p: ForgetPolicy): ForgetGroup<T>[] {
  if (isEmptyPolicy(p)) {
    throw new LifeboatError('usage', 'No retention rule was given, so nothing would be removed. Add rules such as --keep-daily 7 --keep-weekly 4.');
  }
  const groups = new Map<string, T[]>();
  for (const s of snapshots) {
    const k = groupKey(s);
    let g = groups.get(k);
    if (!g) groups.set(k, (g = []));
    g.push(s);
  }
  const out: ForgetGroup<T>[] = [];
  for (const g of groups.values()) {
    const first = g[0]!;
    out.push({ kind: first.kind, host: first.host, paths: [...first.paths].sort(), ...applyPolicyToGroup(g, p) });
  }
  return out.sort((a, b) => (groupKey(a) < groupKey(b) ? -1 : 1));
}
