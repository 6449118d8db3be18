/**
 * When a job runs: `daily 19:00`, `weekly sun 19:00` (or `weekly mon,thu 7:30pm`), `every 6h`, or a
 * five-field cron expression (croner); or `continuous`: running all the time, following changes as
 * they happen (the scheduler keeps such a job running). Times are the computer's local time. `nextSlot` is pure
 * (the caller passes the time), so the scheduler's tests run on a fake clock.
 */
import { Cron } from 'croner';
import { LifeboatError } from '../util/errors.js';

export type Schedule =
  | { readonly kind: 'daily'; readonly hour: number; readonly minute: number }
  | { readonly kind: 'weekly'; readonly days: readonly number[]; readonly hour: number; readonly minute: number }
  | { readonly kind: 'every'; readonly hours: number }
  | { readonly kind: 'cron'; readonly expression: string }
  | { readonly kind: 'continuous' };

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const DAY_NAMES = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const HOUR = 3600_000;

const EXAMPLES = 'Use "daily 19:00", "weekly sun 19:00", "every 6h", "continuous" or a cron expression such as "0 19 * * 0".';

function parseTime(text: string | undefined, spec: string): { hour: number; minute: number } {
  const m = /^(\d{1,2})(?::(\d{2}))?\s*(am|pm)?$/i.exec(text ?? '');
  if (!m || (m[2] === undefined && m[3] === undefined)) throw new LifeboatError('usage', `"${spec}": the time is missing or not understood (write 19:00 or 7pm). ${EXAMPLES}`);
  let hour = Number(m[1]);
  const minute = m[2] === undefined ? 0 : Number(m[2]);
  const ampm = m[3]?.toLowerCase();
  if (ampm !== undefined) {
    if (hour < 1 || hour > 12) throw new LifeboatError('usage', `"${spec}": ${text} is not a time of day. ${EXAMPLES}`);
    hour = (hour % 12) + (ampm === 'pm' ? 12 : 0);
  }
  if (hour > 23 || minute > 59) throw new LifeboatError('usage', `"${spec}": ${text} is not a time of day. ${EXAMPLES}`);
  return { hour, minute };
}

function parseDays(text: string, spec: string): number[] {
  const days = new Set<number>();
  for (const part of text.toLowerCase().split(',')) {
    const d = DAYS.indexOf(part.slice(0, 3));
    if (d < 0 || !DAY_NAMES[d]!.toLowerCase().startsWith(part)) throw new LifeboatError('usage', `"${spec}": "${part}" is not a day of the week (sun, mon, … sat). ${EXAMPLES}`);
    days.add(d);
  }
  return [...days].sort((a, b) => a - b);
}

/** Parses a schedule as people type it; a mistake is a usage error with examples. */
export function parseSchedule(spec: string): Schedule {
  const words = spec.trim().split(/\s+/);
  const first = words[0]?.toLowerCase();
  if (first === 'continuous' && words.length === 1) return { kind: 'continuous' };
  if (first === 'daily' && words.length === 2) return { kind: 'daily', ...parseTime(words[1], spec) };
  if (first === 'weekly' && words.length === 3) return { kind: 'weekly', days: parseDays(words[1]!, spec), ...parseTime(words[2], spec) };
  if (first === 'every' && words.length <= 3) {
    const m = /^(\d+)\s*(h|hours?)$/i.exec(words.slice(1).join(''));
    if (!m || Number(m[1]) < 1 || Number(m[1]) > 24 * 31) throw new LifeboatError('usage', `"${spec}": say how many hours, from 1 (for example "every 6h"). ${EXAMPLES}`);
    return { kind: 'every', hours: Number(m[1]) };
  }
  if (words.length === 5 && /^[0-9*,/\-a-z?LW#]+$/i.test(words.join(''))) {
    try {
      new Cron(words.join(' '), { paused: true });
    } catch (e) {
      throw new LifeboatError('usage', `"${spec}" is not a valid cron expression (${e instanceof Error ? e.message : String(e)}). ${EXAMPLES}`);
    }
    return { kind: 'cron', expression: words.join(' ') };
  }
  throw new LifeboatError('usage', `"${spec}" is not a schedule Lifeboat understands. ${EXAMPLES}`);
}

const pad = (n: number) => String(n).padStart(2, '0');

/** The schedule written back in the form `parseSchedule` reads. */
export function scheduleSpec(s: Schedule): string {
  switch (s.kind) {
    case 'daily':
      return `daily ${pad(s.hour)}:${pad(s.minute)}`;
    case 'weekly':
      return `weekly ${s.days.map((d) => DAYS[d]).join(',')} ${pad(s.hour)}:${pad(s.minute)}`;
    case 'every':
      return `every ${s.hours}h`;
    case 'cron':
      return s.expression;
    case 'continuous':
      return 'continuous';
  }
}

/** The schedule in words: "every day at 19:00", "every Sunday at 19:00", "every 6 hours". */
export function describeSchedule(s: Schedule): string {
  switch (s.kind) {
    case 'daily':
      return `every day at ${pad(s.hour)}:${pad(s.minute)}`;
    case 'weekly':
      return `every ${s.days.map((d) => DAY_NAMES[d]).join(', ')} at ${pad(s.hour)}:${pad(s.minute)}`;
    case 'every':
      return s.hours === 1 ? 'every hour' : `every ${s.hours} hours`;
    case 'cron':
      return `on the cron schedule "${s.expression}"`;
    case 'continuous':
      return 'continuously, a few seconds after changes';
  }
}

function cronOf(s: Exclude<Schedule, { kind: 'every' } | { kind: 'continuous' }>): Cron {
  switch (s.kind) {
    case 'daily':
      return new Cron(`${s.minute} ${s.hour} * * *`, { paused: true });
    case 'weekly':
      return new Cron(`${s.minute} ${s.hour} * * ${s.days.join(',')}`, { paused: true });
    case 'cron':
      return new Cron(s.expression, { paused: true });
  }
}

/** The first slot strictly after `afterMs` (milliseconds since 1970), in local time; Infinity when there is none. */
export function nextSlot(s: Schedule, afterMs: number): number {
  if (s.kind === 'every') return afterMs + s.hours * HOUR;
  if (s.kind === 'continuous') return afterMs; // always due: the scheduler keeps it running
  const next = cronOf(s).nextRun(new Date(afterMs));
  return next ? next.getTime() : Infinity;
}

/** The longest time between two slots (over the next few weeks): how old the last success may be before it is late. */
export function expectedIntervalMs(s: Schedule, fromMs: number): number {
  if (s.kind === 'every') return s.hours * HOUR;
  if (s.kind === 'daily' || s.kind === 'continuous') return 24 * HOUR;
  let longest = 0;
  let t = nextSlot(s, fromMs);
  for (let i = 0; i < 60 && Number.isFinite(t); i++) {
    const n = nextSlot(s, t);
    if (!Number.isFinite(n)) break;
    longest = Math.max(longest, n - t);
    t = n;
  }
  return longest || 7 * 24 * HOUR;
}
