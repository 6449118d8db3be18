import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmp } from '../files/testing.js';
import { FakeClock } from '../util/clock.js';
import { LifeboatError } from '../util/errors.js';
import { createRepositoryAt, openRepositoryAt, passwordFileFor, readPasswordFile, writePasswordFile } from './open.js';
import { Scheduler, type SchedulerEvent } from './scheduler.js';
import { JobState, type JobDefinition } from './state.js';

const at = (d: number, h: number, m = 0) => new Date(2026, 0, d, h, m).getTime();
const DAY = 24 * 3600_000;

interface Setup {
  dir: string;
  state: JobState;
  clock: FakeClock;
  def: (name: string, schedule: string, more?: Partial<JobDefinition>) => JobDefinition;
}

async function setup(t: Parameters<typeof tmp>[0], repoPath?: string): Promise<Setup> {
  const dir = tmp(t);
  process.env['XDG_CACHE_HOME'] = join(dir, 'cache');
  process.env['XDG_DATA_HOME'] = join(dir, 'data');
  const repo = repoPath ?? join(dir, 'repo');
  mkdirSync(join(dir, 'src', 'docs'), { recursive: true });
  writeFileSync(join(dir, 'src', 'docs', 'a.txt'), 'hello\n');
  writeFileSync(join(dir, 'src', 'b.bin'), Buffer.alloc(100_000, 3));
  mkdirSync(join(repo, '..'), { recursive: true });
  const { repo: r } = await createRepositoryAt(repo, 'pw');
  await r.close();
  const passwordFile = passwordFileFor(join(dir, 'data'), repo);
  writePasswordFile(passwordFile, 'pw');
  const state = JobState.open(join(dir, 'data', 'jobs.db'));
  t.after(() => state.close());
  const clock = new FakeClock(at(5, 10));
  const def = (name: string, schedule: string, more: Partial<JobDefinition> = {}): JobDefinition => ({
    name,
    what: { kind: 'files', paths: [join(dir, 'src')], excludes: [] },
    repository: repo,
    passwordFile,
    schedule,
    ...more,
  });
  return { dir, state, clock, def };
}

async function snapshotsOf(repoPath: string): Promise<{ tags: string[] }[]> {
  const repo = await openRepositoryAt(repoPath, 'pw');
  try {
    return (await repo.listSnapshots()).map((s) => ({ tags: [...s.snapshot.tags] }));
  } finally {
    await repo.close();
  }
}

test('a daily job runs at its time, once, and is next due the day after', async (t) => {
  const { state, clock, def } = await setup(t);
  const job = state.addJob(def('Documents', 'daily 19:00'), clock.now());
  const s = new Scheduler(state, { clock });
  assert.equal(s.nextRun(job), at(5, 19));
  s.tick();
  await s.idle();
  assert.equal(state.runs().length, 0, 'not due before 19:00');
  clock.set(at(5, 19));
  s.tick();
  s.tick(); // a second tick while it runs starts nothing more
  await s.idle();
  const runs = state.runs();
  assert.equal(runs.length, 1);
  assert.equal(runs[0]!.status, 'ok', runs[0]!.message);
  assert.equal(runs[0]!.trigger, 'schedule');
  assert.ok(runs[0]!.snapshot);
  assert.equal(runs[0]!.figures.files, 2);
  assert.equal(s.nextRun(job), at(6, 19));
  assert.deepEqual(await snapshotsOf(job.repository), [{ tags: ['job:Documents'] }]);
  assert.equal(s.health(job).ok, true);
});

test('weekly and cron jobs are due at their slots', async (t) => {
  const { state, clock, def } = await setup(t);
  const weekly = state.addJob(def('weekly', 'weekly sun 19:00'), clock.now());
  const cron = state.addJob(def('cron', '*/15 * * * *'), clock.now());
  const s = new Scheduler(state, { clock });
  assert.equal(s.nextRun(weekly), at(11, 19));
  assert.equal(s.nextRun(cron), at(5, 10, 15));
  clock.set(at(5, 10, 15));
  s.tick();
  await s.idle();
  assert.deepEqual(state.runs().map((r) => [r.job, r.status]), [['cron', 'ok']]);
  assert.equal(s.nextRun(cron), at(5, 10, 30));
  assert.equal(s.nextRun(weekly), at(11, 19));
});

test('slots missed while the computer was off run once, soon after start, not once per slot', async (t) => {
  const { state, clock, def } = await setup(t);
  const job = state.addJob(def('Documents', 'daily 19:00'), at(1, 10));
  clock.set(at(4, 12)); // off from the 1st to the 4th: three slots missed
  const s = new Scheduler(state, { clock, catchUpDelayMs: 60_000 });
  assert.equal(s.nextRun(job), at(4, 12, 1), 'a minute after start');
  s.tick();
  await s.idle();
  assert.equal(state.runs().length, 0);
  clock.advance(60_000);
  s.tick();
  await s.idle();
  s.tick();
  await s.idle();
  const runs = state.runs();
  assert.deepEqual(runs.map((r) => [r.trigger, r.status]), [['catch-up', 'ok']]);
  assert.equal(s.nextRun(job), at(4, 19), 'then back on its schedule');
});

test('progress reaches listeners at most ten times a second, and the last figures always', async (t) => {
  const { state, clock, def, dir } = await setup(t);
  for (let i = 0; i < 3000; i++) writeFileSync(join(dir, 'src', `s${i}.txt`), `small file ${i}`);
  state.addJob(def('Documents', 'daily 19:00'), clock.now());
  const times: number[] = [];
  let last: { done: number; total?: number } | undefined;
  const s = new Scheduler(state, {
    clock,
    onEvent: (e) => {
      if (e.type === 'run-event' && e.event.type === 'progress') {
        times.push(performance.now());
        last = e.event;
      }
    },
  });
  assert.equal((await s.runNow('Documents')).status, 'ok');
  assert.ok(times.length >= 1);
  const gaps = times.slice(1, -1).map((x, i) => x - times[i]!);
  assert.ok(gaps.every((g) => g >= 99), `gaps between progress events: ${gaps.map((g) => g.toFixed(0)).join(', ')}`);
  assert.equal(last?.done, last?.total, 'the final figures are passed on');
});

test('a job never runs twice at once, in this process or another', async (t) => {
  const { state, clock, def, dir } = await setup(t);
  state.addJob(def('Documents', 'daily 19:00'), clock.now());
  const s = new Scheduler(state, { clock });
  const first = s.runNow('Documents');
  const second = s.runNow('Documents'); // joins the run in progress
  const other = new Scheduler(JobState.open(join(dir, 'data', 'jobs.db')), { clock }); // a second process's view
  await assert.rejects(other.runNow('Documents'), (e: unknown) => e instanceof LifeboatError && e.code === 'locked' && /running already/.test(e.message));
  const [a, b] = await Promise.all([first, second]);
  assert.equal(a.id, b.id);
  assert.equal(state.runs().length, 1);
  other.state.close();
});

test('an unplugged destination fails with a plain message; the next slot retries and succeeds', async (t) => {
  const dir0 = tmp(t);
  const { state, clock, def, dir } = await setup(t, join(dir0, 'Passport', 'Lifeboat'));
  const job = state.addJob(def('Documents', 'daily 19:00'), clock.now());
  const events: SchedulerEvent[] = [];
  const s = new Scheduler(state, { clock, onEvent: (e) => events.push(e) });
  renameSync(join(dir0, 'Passport'), join(dir, 'unplugged'));
  clock.set(at(5, 19));
  s.tick();
  await s.idle();
  assert.equal(state.runs()[0]!.status, 'failed');
  assert.equal(state.runs()[0]!.message, "The backup drive 'Passport' is not connected. Plug it in; the next scheduled run will try again.");
  assert.equal(s.health(job).ok, false);
  assert.match(s.health(job).warning ?? '', /failed: The backup drive 'Passport' is not connected/);
  assert.equal(s.nextRun(job), at(6, 19));
  renameSync(join(dir, 'unplugged'), join(dir0, 'Passport'));
  clock.set(at(6, 19));
  s.tick();
  await s.idle();
  assert.deepEqual(state.runs().map((r) => r.status), ['ok', 'failed']);
  assert.equal(s.health(job).ok, true);
  assert.deepEqual(events.filter((e) => e.type !== 'run-event').map((e) => `${e.type} ${e.run.status}`), ['run-started running', 'run-finished failed', 'run-started running', 'run-finished ok']);
});

test('two jobs on one repository take turns and both succeed, also while another process holds it', async (t) => {
  const { state, clock, def, dir } = await setup(t);
  mkdirSync(join(dir, 'src2'));
  writeFileSync(join(dir, 'src2', 'c.txt'), 'other');
  const a = state.addJob(def('A', 'daily 19:00', { retention: { last: 1 } }), clock.now());
  state.addJob(def('B', 'daily 19:00', { what: { kind: 'files', paths: [join(dir, 'src2')], excludes: [] } }), clock.now());
  // Another process prunes the repository: an exclusive lock, released a little later.
  const holder = await openRepositoryAt(a.repository, 'pw');
  await holder.lock(true, 'prune');
  const s = new Scheduler(state, { clock, lockRetryMs: 50 });
  clock.set(at(5, 19));
  s.tick();
  setTimeout(() => void holder.close(), 400);
  await s.idle();
  assert.deepEqual(state.runs().map((r) => [r.job, r.status, r.message]).sort(), [['A', 'ok', undefined], ['B', 'ok', undefined]]);
  assert.ok(state.events(state.runs().find((r) => r.job === 'A')!.id).some((e) => e.type === 'phase' && /in use by another Lifeboat task/.test(e.message)));
  // A's retention (keep the last one) applies to A's snapshots only.
  clock.set(at(6, 19));
  s.tick();
  await s.idle();
  const tags = (await snapshotsOf(a.repository)).map((x) => x.tags.join()).sort();
  assert.deepEqual(tags, ['job:A', 'job:B', 'job:B']);
  assert.equal(state.lastRun(a.id)!.figures.snapshotsRemoved, 1);
});

test('a cancelled run stops, is recorded as cancelled, and the next run succeeds', async (t) => {
  const { state, clock, def, dir } = await setup(t);
  for (let i = 0; i < 50; i++) writeFileSync(join(dir, 'src', `f${i}.bin`), Buffer.alloc(1_000_000, i));
  state.addJob(def('Documents', 'daily 19:00'), clock.now());
  let cancelled = false;
  const s: Scheduler = new Scheduler(state, { clock, progressIntervalMs: 0, onEvent: (e) => {
    if (e.type === 'run-event' && e.event.type === 'progress' && !cancelled) cancelled = s.cancel('Documents');
  } });
  const r = await s.runNow('Documents');
  assert.equal(cancelled, true, 'cancelled while it ran');
  assert.equal(r.status, 'cancelled');
  assert.match(r.message ?? '', /Nothing is lost/);
  assert.equal((await s.runNow('Documents')).status, 'ok');
});

test('no successful backup for days is a warning; health is not ok', async (t) => {
  const { state, clock, def } = await setup(t);
  const job = state.addJob(def('Documents', 'daily 19:00'), clock.now());
  const s = new Scheduler(state, { clock });
  assert.equal(s.health(job).ok, true, 'new: waiting for its first slot');
  assert.equal((await s.runNow('Documents')).status, 'ok');
  clock.advance(DAY + 3 * 3600_000);
  assert.equal(s.health(job).ok, false, 'a daily job with no success for 27 hours is late');
  assert.equal(s.health(job).warning, undefined);
  clock.advance(3 * DAY - 3 * 3600_000);
  assert.equal(s.health(job).warning, 'No successful backup of "Documents" for 4 days.');
});

test('the password file must be private (mode 0600)', async (t) => {
  const { dir } = await setup(t);
  const f = join(dir, 'pw.txt');
  writeFileSync(f, 'secret\n', { mode: 0o644 });
  assert.throws(() => readPasswordFile(f), /can be read by other users.*chmod 600/);
  chmodSync(f, 0o600);
  assert.equal(readPasswordFile(f), 'secret');
  writePasswordFile(f, 'again');
  assert.equal(readPasswordFile(f), 'again');
});
