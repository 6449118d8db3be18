import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmp } from '../files/testing.js';
import { FakeClock } from '../util/clock.js';
import { createRepositoryAt, openRepositoryAt, passwordFileFor, writePasswordFile } from './open.js';
import { CONTINUOUS_RETRY_MS, Scheduler, type SchedulerEvent } from './scheduler.js';
import { setUpMirrorJob } from './setup.js';
import { JobState } from './state.js';

/** Waits (test-side) until `cond` holds. */
async function until(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('continuous jobs: a continuous backup and a mirror that follows changes run while the scheduler runs, record each snapshot, do not hold up the scheduled jobs of their repository, and stop when cancelled', async (t) => {
  const dir = tmp(t);
  process.env['XDG_CACHE_HOME'] = join(dir, 'cache');
  process.env['XDG_DATA_HOME'] = join(dir, 'data');
  const src = join(dir, 'src');
  mkdirSync(join(src, 'docs'), { recursive: true });
  writeFileSync(join(src, 'docs', 'a.txt'), 'one');
  const repo = join(dir, 'repo');
  const { repo: r } = await createRepositoryAt(repo, 'pw');
  await r.close();
  const passwordFile = passwordFileFor(join(dir, 'data'), repo);
  writePasswordFile(passwordFile, 'pw');
  const state = JobState.open(join(dir, 'data', 'jobs.db'));
  const clock = new FakeClock(new Date(2026, 0, 5, 10, 0).getTime());
  const files = { kind: 'files' as const, paths: [src], excludes: [] };
  const cont = state.addJob({ name: 'Home', what: files, repository: repo, passwordFile, schedule: 'continuous' }, clock.now());
  const nightly = state.addJob({ name: 'Nightly', what: files, repository: repo, passwordFile, schedule: 'daily 19:00' }, clock.now());
  mkdirSync(join(dir, 'usb'));
  const mirror = setUpMirrorJob(state, { name: 'Copy', source: src, destination: join(dir, 'usb', 'copy'), schedule: 'continuous', keepDays: 3 }, clock.now());
  assert.deepEqual(mirror.what, { kind: 'mirror', source: src, keepDays: 3 });

  const events: SchedulerEvent[] = [];
  const s = new Scheduler(state, { clock, settleMs: 200, onEvent: (e) => events.push(e) });
  t.after(async () => {
    await s.stop();
    state.close();
  });
  assert.equal(s.health(cont).ok, false, 'not protected before it runs');
  assert.match(s.health(cont).warning ?? '', /is not running; it runs while "lifeboat serve" runs/);
  s.start();
  assert.ok(s.activeRun(cont.id) && s.activeRun(mirror.id), 'both started at once');
  assert.equal(s.activeRun(nightly.id), undefined);

  const snapshotOf = () => state.lastRun(cont.id)?.snapshot;
  await until('the first snapshot, recorded in the running run', () => snapshotOf() !== undefined);
  await until('the first mirror', () => (state.lastRun(mirror.id)?.figures.files ?? 0) > 0);
  assert.equal(readFileSync(join(dir, 'usb', 'copy', 'docs', 'a.txt'), 'utf8'), 'one');
  const first = snapshotOf();
  assert.equal(state.lastRun(cont.id)!.status, 'running');
  assert.equal(s.health(cont).ok, true);
  assert.equal(s.activeRun(cont.id)!.run.snapshot, first, "the active run's record is refreshed");

  writeFileSync(join(src, 'docs', 'a.txt'), 'two');
  await until('a snapshot of the change', () => snapshotOf() !== first);
  await until('the change mirrored', () => readFileSync(join(dir, 'usb', 'copy', 'docs', 'a.txt'), 'utf8') === 'two');
  assert.ok(events.some((e) => e.type === 'run-event' && e.event.type === 'phase' && /^Saved snapshot [0-9a-f]{8}/.test(e.event.phase)), 'the overview hears of each snapshot');
  assert.equal(state.events(state.lastRun(cont.id)!.id).length, 0, 'snapshots are not kept as events of the run');

  // The daily job of the same repository runs at its time although the continuous run never ends.
  clock.set(new Date(2026, 0, 5, 19, 0).getTime());
  s.tick();
  const nightlyRun = s.activeRun(nightly.id);
  assert.ok(nightlyRun);
  assert.equal((await nightlyRun.done).status, 'ok');

  const repoNow = await openRepositoryAt(repo, 'pw');
  const tags = (await repoNow.listSnapshots()).map((x) => x.snapshot.tags.join());
  await repoNow.close();
  assert.ok(tags.filter((x) => x === 'job:Home').length >= 2 && tags.includes('job:Nightly'));

  // Cancelled by hand: it stays stopped until the next start.
  assert.ok(s.cancel('Home'));
  await until('the cancelled run', () => state.lastRun(cont.id)!.status === 'cancelled');
  assert.equal(s.nextRun(cont), Infinity);
  assert.match(s.health(cont).warning ?? '', /was stopped by hand/);
  assert.equal(state.lastRun(cont.id)!.snapshot !== undefined, true, 'the run keeps its last snapshot');
  await s.stop();
  assert.equal(state.lastRun(mirror.id)!.status, 'cancelled');
  const again = new Scheduler(state, { clock });
  assert.equal(again.nextRun(cont), clock.now(), 'started again with the scheduler');
});

test('continuous jobs: a continuous job that fails (its folder gone) is started again a minute later; a system image cannot be continuous', async (t) => {
  const dir = tmp(t);
  process.env['XDG_DATA_HOME'] = join(dir, 'data');
  const src = join(dir, 'src');
  mkdirSync(src);
  const state = JobState.open(':memory:');
  t.after(() => state.close());
  const clock = new FakeClock(new Date(2026, 0, 5, 10, 0).getTime());
  const job = setUpMirrorJob(state, { name: 'Copy', source: src, destination: join(dir, 'copy'), schedule: 'continuous' }, clock.now());
  rmSync(src, { recursive: true });
  const s = new Scheduler(state, { clock });
  const run = await s.runNow('Copy');
  assert.equal(run.status, 'failed');
  assert.match(run.message ?? '', /src/);
  assert.equal(s.nextRun(job), run.finished! + CONTINUOUS_RETRY_MS);
  assert.match(s.health(job).warning ?? '', /stopped: .* It is started again in a minute\./);

  assert.throws(() => setUpMirrorJob(state, { name: 'Inside', source: dir, destination: join(dir, 'x'), schedule: 'daily 19:00' }, clock.now()), /inside one another/);
  const { setUpJob } = await import('./setup.js');
  await assert.rejects(setUpJob(state, { name: 'Sys', destination: dir, password: 'password1', what: { kind: 'image', device: '/dev/null' }, schedule: 'continuous' }, clock.now()), /cannot be taken continuously/);
});
