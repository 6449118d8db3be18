import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lifeboat, tempDir } from './testing.js';

test('job add --continuous and --mirror-to from the command line; job list shows them; mistakes are usage errors', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const repo = join(d.path, 'repo');
  const docs = join(d.path, 'docs');
  mkdirSync(docs);
  mkdirSync(join(d.path, 'usb'));
  writeFileSync(join(docs, 'a.txt'), 'hello');
  const env = { LIFEBOAT_PASSWORD: 'pw', XDG_DATA_HOME: join(d.path, 'data'), XDG_CACHE_HOME: join(d.path, 'cache'), LIFEBOAT_REPO: repo };
  assert.equal((await lifeboat(['init'], env)).code, 0);

  const neither = await lifeboat(['job', 'add', 'Docs', docs], env);
  assert.equal(neither.code, 2);
  assert.match(neither.stderr, /Say when the job runs: --schedule "daily 19:00" \(or another schedule\), or --continuous/);
  assert.equal((await lifeboat(['job', 'add', 'Docs', docs, '--continuous', '--schedule', 'daily 19:00'], env)).code, 2);
  const image = await lifeboat(['job', 'add', 'Sys', '--image', '/dev/null', '--continuous'], env);
  assert.equal(image.code, 2);
  assert.match(image.stderr, /A system image cannot be taken continuously/);
  const two = await lifeboat(['job', 'add', 'M', docs, d.path, '--mirror-to', join(d.path, 'usb', 'm'), '--continuous'], env);
  assert.equal(two.code, 2);
  assert.match(two.stderr, /A mirror copies one folder/);
  const inside = await lifeboat(['job', 'add', 'M', docs, '--mirror-to', join(docs, 'm'), '--continuous'], env);
  assert.equal(inside.code, 2);
  assert.match(inside.stderr, /must not be inside one another/);
  assert.equal((await lifeboat(['job', 'add', 'M', docs, '--mirror-to', join(d.path, 'usb', 'm'), '--continuous', '--keep-days', 'x'], env)).code, 2);
  assert.equal((await lifeboat(['job', 'add', 'Docs', docs, '--continuous', '--keep-days', '3'], env)).code, 2, '--keep-days is for mirrors');

  const add = await lifeboat(['job', 'add', 'Docs', docs, '--continuous'], env);
  assert.equal(add.code, 0, add.stderr);
  assert.match(add.stdout, /Added the job "Docs": backs up .*docs to .*repo continuously, a few seconds after changes\.\nIt runs while "lifeboat serve" runs/);
  const noPw = { ...env, LIFEBOAT_PASSWORD: undefined, LIFEBOAT_REPO: undefined };
  const mirror = await lifeboat(['job', 'add', 'Copy', docs, '--mirror-to', join(d.path, 'usb', 'docs'), '--schedule', 'every 6h', '--keep-days', '7'], noPw);
  assert.equal(mirror.code, 0, mirror.stderr);
  assert.match(mirror.stdout, /Added the job "Copy": mirrors .*docs into .*usb\/docs every 6 hours\./);

  const list = await lifeboat(['job', 'list'], noPw);
  assert.match(list.stdout, /Docs: .*docs -> .*repo, continuously, a few seconds after changes\n  last run: none yet\n/);
  assert.match(list.stdout, /Copy: a mirror of .*docs -> .*usb\/docs, every 6 hours/);
  const json = JSON.parse((await lifeboat(['--json', 'job', 'list'], noPw)).stdout) as { name: string; what: unknown; schedule: string; ok: boolean; warning: string | null }[];
  assert.deepEqual(json.find((j) => j.name === 'Copy')!.what, { kind: 'mirror', source: docs, keepDays: 7 });
  const docsJob = json.find((j) => j.name === 'Docs')!;
  assert.equal(docsJob.schedule, 'continuous');
  assert.equal(docsJob.ok, false);
  assert.match(docsJob.warning ?? '', /not running; it runs while "lifeboat serve" runs/);

  // A scheduled mirror runs by hand like any job, without a password.
  const run = await lifeboat(['job', 'run', 'Copy'], noPw);
  assert.equal(run.code, 0, run.stderr + run.stdout);
  assert.match(run.stdout, /^Copy: ok, /);
});
