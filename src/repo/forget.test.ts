/**
 * Retention semantics compared against restic itself. The snapshot times and policies below were
 * given to restic 0.14 (`restic backup --time … --host …`, then `restic forget --dry-run --json`),
 * with TZ=UTC; its answers are recorded in testdata/restic-forget.json and every run compares our
 * policy function with them. With LIFEBOAT_RESTIC_LIVE=1 and restic on the PATH, the test asks
 * restic again (about a minute) and checks both the recording and our answers against it;
 * LIFEBOAT_RESTIC_RECORD=1 rewrites the recording from that live run.
 */
process.env['TZ'] = 'UTC';

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { applyPolicy, formatDuration, parseDuration, parseTime, type ForgetCandidate, type ForgetPolicy } from './forget.js';

const GOLDEN = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'repo', 'testdata', 'restic-forget.json');

interface Fixture {
  readonly time: string; // "YYYY-MM-DD HH:MM:SS", as given to restic --time (local time = UTC)
  readonly host: string;
  readonly tags?: string[];
}

/** Two years of snapshots, dense at the end, with ISO-week, month and year edges. */
const SNAPSHOTS: Fixture[] = [
  { time: '2020-11-20 09:00:00', host: 'h' },
  { time: '2020-12-15 12:00:00', host: 'h', tags: ['important'] },
  { time: '2020-12-28 08:00:00', host: 'h' }, // Monday of 2020-W53
  { time: '2020-12-31 23:30:00', host: 'h' },
  { time: '2021-01-01 00:30:00', host: 'h' }, // new year, still 2020-W53
  { time: '2021-01-03 22:00:00', host: 'h' },
  { time: '2021-01-04 01:00:00', host: 'h' }, // 2021-W01
  { time: '2021-02-28 10:00:00', host: 'h' },
  { time: '2021-03-01 10:00:00', host: 'h' },
  { time: '2021-03-31 10:00:00', host: 'h', tags: ['important'] },
  { time: '2021-05-15 18:00:00', host: 'h' },
  { time: '2021-07-04 07:00:00', host: 'h', tags: ['a'] },
  { time: '2021-09-09 09:09:00', host: 'h' },
  { time: '2021-11-30 20:00:00', host: 'h' },
  { time: '2021-12-31 12:00:00', host: 'h' },
  { time: '2022-01-01 12:00:00', host: 'h' }, // Saturday, 2021-W52
  { time: '2022-02-10 10:00:00', host: 'h', tags: ['a', 'b'] },
  { time: '2022-03-20 10:00:00', host: 'h' },
  { time: '2022-04-05 10:00:00', host: 'h' },
  { time: '2022-06-01 10:00:00', host: 'h' },
  { time: '2022-08-31 23:00:00', host: 'h' },
  { time: '2022-09-30 10:00:00', host: 'h' },
  { time: '2022-10-01 10:00:00', host: 'h' },
  { time: '2022-11-01 10:00:00', host: 'h' },
  { time: '2022-11-08 10:00:00', host: 'h' },
  { time: '2022-11-14 10:00:00', host: 'h' },
  { time: '2022-11-15 07:00:00', host: 'h' }, // exactly 15 days before the newest: not "within 15d"
  { time: '2022-11-16 10:00:00', host: 'h', tags: ['b'] },
  { time: '2022-11-20 08:00:00', host: 'h' },
  { time: '2022-11-20 08:45:00', host: 'h' },
  { time: '2022-11-20 13:00:00', host: 'h' },
  { time: '2022-11-25 10:00:00', host: 'h' },
  { time: '2022-11-26 10:00:00', host: 'h' },
  { time: '2022-11-27 10:00:00', host: 'h' },
  { time: '2022-11-28 10:00:00', host: 'h' },
  { time: '2022-11-28 10:10:00', host: 'h' },
  { time: '2022-11-29 00:00:00', host: 'h' },
  { time: '2022-11-29 23:59:00', host: 'h' },
  { time: '2022-11-30 06:00:00', host: 'h' },
  { time: '2022-11-30 06:30:00', host: 'h' },
  { time: '2022-11-30 07:00:00', host: 'h' },
  { time: '2021-06-01 10:00:00', host: 'g' },
  { time: '2022-06-01 10:00:00', host: 'g', tags: ['important'] },
  { time: '2022-11-29 10:00:00', host: 'g' },
];

/** Each policy as restic options; the same options are parsed into our policy. */
const POLICIES: string[][] = [
  ['--keep-last', '3'],
  ['--keep-daily', '7', '--keep-weekly', '5', '--keep-monthly', '12', '--keep-yearly', '3'],
  ['--keep-hourly', '5', '--keep-daily', '3'],
  ['--keep-within', '1y2m3d4h'],
  ['--keep-within', '15d', '--keep-monthly', '4'],
  ['--keep-tag', 'important', '--keep-tag', 'a,b', '--keep-last', '2'],
  ['--keep-within-daily', '10d', '--keep-within-weekly', '2m', '--keep-within-monthly', '1y', '--keep-within-yearly', '5y'],
  ['--keep-within-hourly', '2d', '--keep-weekly', '3', '--keep-yearly', '10'],
  ['--keep-weekly', '60'],
  ['--keep-last', '1', '--keep-within', '36h', '--keep-tag', 'b'],
];

function toPolicy(args: string[]): ForgetPolicy {
  const p: Record<string, unknown> = {};
  const tags: string[][] = [];
  for (let i = 0; i < args.length; i += 2) {
    const name = args[i]!.replace(/^--keep-/, '');
    const v = args[i + 1]!;
    if (name === 'tag') tags.push(v.split(','));
    else if (name.startsWith('within')) p[name.replace(/-(\w)/g, (_m, c: string) => c.toUpperCase())] = parseDuration(v);
    else p[name] = Number(v);
  }
  if (tags.length > 0) p['tags'] = tags;
  return p;
}

function iso(t: string): string {
  return new Date(Date.parse(t)).toISOString().replace('.000Z', 'Z');
}

function candidates(): ForgetCandidate[] {
  return SNAPSHOTS.map((s, i) => ({ id: String(i).padStart(4, '0'), kind: 'files', time: iso(s.time.replace(' ', 'T') + 'Z'), host: s.host, paths: ['/src'], tags: s.tags ?? [] }));
}

interface Outcome {
  host: string;
  keep: { time: string; matches: string[] }[];
  remove: string[];
}

function ours(args: string[]): Outcome[] {
  return applyPolicy(candidates(), toPolicy(args))
    .map((g) => ({ host: g.host, keep: g.keep.map((k) => ({ time: k.snapshot.time, matches: [...k.reasons] })), remove: g.remove.map((r) => r.time) }))
    .sort((a, b) => (a.host < b.host ? -1 : 1));
}

interface ResticGroup {
  host: string;
  keep: { time: string }[] | null;
  remove: { time: string }[] | null;
  reasons: { snapshot: { time: string }; matches: string[] }[] | null;
}

/** Runs restic on the fixture; returns its outcome per policy. */
function askRestic(): Outcome[][] {
  const dir = mkdtempSync(join(tmpdir(), 'lifeboat-restic-'));
  try {
    const env = { ...process.env, TZ: 'UTC', RESTIC_PASSWORD: 'x', RESTIC_REPOSITORY: join(dir, 'repo'), RESTIC_CACHE_DIR: join(dir, 'cache') };
    const src = join(dir, 'src');
    mkdirSync(src);
    writeFileSync(join(src, 'f'), 'tiny');
    execFileSync('restic', ['init', '-q'], { env });
    for (const s of SNAPSHOTS) {
      const tagArgs = s.tags ? ['--tag', s.tags.join(',')] : [];
      execFileSync('restic', ['backup', '-q', '--host', s.host, '--time', s.time, ...tagArgs, '.'], { env, cwd: src });
    }
    return POLICIES.map((args) => {
      const out = execFileSync('restic', ['forget', '--dry-run', '--json', ...args], { env, encoding: 'utf8' });
      const groups = JSON.parse(out.slice(out.indexOf('['))) as ResticGroup[];
      return groups
        .map((g) => ({
          host: g.host,
          keep: (g.reasons ?? []).map((r) => ({ time: iso(r.snapshot.time), matches: r.matches })),
          remove: (g.remove ?? []).map((r) => iso(r.time)),
        }))
        .sort((a, b) => (a.host < b.host ? -1 : 1));
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function resticAvailable(): boolean {
  try {
    execFileSync('restic', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('forget keeps exactly what restic 0.14 keeps, with the same reasons (recorded answers)', () => {
  const golden = JSON.parse(readFileSync(GOLDEN, 'utf8')) as { policies: string[][]; outcomes: Outcome[][] };
  assert.deepEqual(golden.policies, POLICIES, 'the recording was made for these policies');
  POLICIES.forEach((args, i) => assert.deepEqual(ours(args), golden.outcomes[i], `policy ${args.join(' ')}`));
});

test('forget against a live restic', { skip: process.env['LIFEBOAT_RESTIC_LIVE'] !== '1' || !resticAvailable() ? 'set LIFEBOAT_RESTIC_LIVE=1 with restic installed' : false, timeout: 300_000 }, () => {
  const live = askRestic();
  if (process.env['LIFEBOAT_RESTIC_RECORD'] === '1') {
    writeFileSync(GOLDEN, JSON.stringify({ restic: execFileSync('restic', ['version'], { encoding: 'utf8' }).trim(), tz: 'UTC', policies: POLICIES, outcomes: live }, null, 1) + '\n');
  }
  const golden = JSON.parse(readFileSync(GOLDEN, 'utf8')) as { outcomes: Outcome[][] };
  assert.deepEqual(golden.outcomes, live, 'the recording still matches restic');
  POLICIES.forEach((args, i) => assert.deepEqual(ours(args), live[i], `policy ${args.join(' ')}`));
});

test('durations parse and print as restic spells them', () => {
  assert.deepEqual(parseDuration('1y2m3d4h'), { years: 1, months: 2, days: 3, hours: 4 });
  assert.deepEqual(parseDuration('36h'), { years: 0, months: 0, days: 0, hours: 36 });
  assert.equal(formatDuration(parseDuration('2m1y')), '1y2m');
  for (const bad of ['', '3', 'd', '1w', '1y2']) assert.throws(() => parseDuration(bad), /duration/);
});

test('pinned snapshots are always kept, and still count against the rules', () => {
  const c = candidates().filter((s) => s.host === 'h');
  const oldest = c[0]!;
  const pinned = c.map((s) => (s === oldest ? { ...s, pinned: true } : s));
  const [g] = applyPolicy(pinned, { last: 1 });
  assert.ok(g);
  assert.deepEqual(g.keep.map((k) => [k.snapshot.time, k.reasons]), [
    ['2022-11-30T07:00:00Z', ['last snapshot']],
    [oldest.time, ['pinned']],
  ]);
  assert.equal(g.remove.length, c.length - 2);
  // A pinned snapshot that a rule also keeps carries both reasons and uses up its bucket.
  const newestPinned = c.map((s) => (s.time === '2022-11-30T07:00:00Z' ? { ...s, pinned: true } : s));
  const [g2] = applyPolicy(newestPinned, { last: 2 });
  assert.deepEqual(g2!.keep.map((k) => k.reasons), [['last snapshot', 'pinned'], ['last snapshot']]);
});

test('groups: kind, host and paths (in any order) each make their own group; negative counts are unlimited', () => {
  const base = { tags: [] as string[], time: '2022-01-01T00:00:00Z' };
  const groups = applyPolicy(
    [
      { ...base, id: '1', kind: 'files', host: 'a', paths: ['/x', '/y'] },
      { ...base, id: '2', kind: 'files', host: 'a', paths: ['/y', '/x'], time: '2022-01-02T00:00:00Z' },
      { ...base, id: '3', kind: 'image', host: 'a', paths: ['/dev/sda'] },
      { ...base, id: '4', kind: 'image', host: 'a', paths: ['/dev/sdb'] },
      { ...base, id: '5', kind: 'files', host: 'b', paths: ['/x', '/y'] },
    ],
    { last: 1 },
  );
  assert.equal(groups.length, 4);
  const ab = groups.find((g) => g.kind === 'files' && g.host === 'a')!;
  assert.deepEqual(ab.keep.map((k) => k.snapshot.id), ['2']);
  assert.deepEqual(ab.remove.map((k) => k.id), ['1']);
  const all = applyPolicy(candidates(), { daily: -1 });
  assert.ok(all.every((g) => g.keep.length > 20 || g.host === 'g'));
  assert.throws(() => applyPolicy(candidates(), {}), /No retention rule/);
});

test('times keep nanoseconds: within compares beyond the millisecond', () => {
  assert.deepEqual(parseTime('2022-01-01T00:00:00.123456789Z'), { ms: Date.parse('2022-01-01T00:00:00.123Z'), ns: 456789 });
  assert.deepEqual(parseTime('2022-01-01T00:00:00Z'), { ms: Date.parse('2022-01-01T00:00:00Z'), ns: 0 });
  const mk = (id: string, time: string) => ({ id, kind: 'files', time, host: 'h', paths: ['/'], tags: [] });
  const [g] = applyPolicy([mk('new', '2022-01-02T00:00:00.000000002Z'), mk('edge', '2022-01-01T00:00:00.000000002Z'), mk('in', '2022-01-01T00:00:00.000000003Z')], { within: parseDuration('1d') });
  assert.deepEqual(g!.keep.map((k) => k.snapshot.id), ['new', 'in']);
});
