/** job add --image with --partitions/--exclude-partition and folders (issue 21, P10 item 3), from the command line: add, list, run. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lifeboat, tempDir } from './testing.js';
import { makeExt4Disk } from '../image/testing.js';

test('job add --image DRIVE --partitions 1 FOLDER: listed as both, run takes both; wrong partition options are usage errors', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const disk = makeExt4Disk(d.path);
  const docs = join(d.path, 'docs');
  mkdirSync(docs);
  writeFileSync(join(docs, 'a.txt'), 'hello');
  const env = { LIFEBOAT_PASSWORD: 'pw', XDG_DATA_HOME: join(d.path, 'data'), XDG_CACHE_HOME: join(d.path, 'cache'), LIFEBOAT_REPO: join(d.path, 'repo') };
  assert.equal((await lifeboat(['init'], env)).code, 0);

  for (const [args, said] of [
    [['--partitions', '1'], /choose partitions of the drive given with --image/],
    [['--image', disk, '--partitions', '1', '--exclude-partition', '2'], /not both/],
  ] as const) {
    const r = await lifeboat(['job', 'add', 'Bad', docs, ...args, '--schedule', 'daily 02:00'], env);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, said);
  }

  const add = await lifeboat(['job', 'add', 'Nightly', '--image', disk, '--partitions', '1', docs, '--schedule', 'daily 02:00'], env);
  assert.equal(add.code, 0, add.stderr);
  assert.match(add.stdout, new RegExp(`Added the job "Nightly": backs up partition 1 of the drive ${disk} \\(system image\\) and ${docs} to .*repo every day at 02:00\\.`));
  const list = await lifeboat(['job', 'list'], env);
  assert.match(list.stdout, new RegExp(`Nightly: partition 1 of the drive ${disk} \\(system image\\) and ${docs} ->`));
  const json = JSON.parse((await lifeboat(['job', 'list', '--json'], env)).stdout) as { what: unknown }[];
  assert.deepEqual(json[0]!.what, { kind: 'image', device: disk, partitions: { only: [1] }, paths: [docs], excludes: [] });

  const run = await lifeboat(['job', 'run', 'Nightly'], { ...env, LIFEBOAT_PASSWORD: undefined });
  assert.equal(run.code, 0, run.stderr + run.stdout);
  assert.match(run.stdout, /^Nightly: ok, .*\(Saved the system image \([0-9a-f]{8}\) and the folders \([0-9a-f]{8}\)\.\)/);
  const snaps = JSON.parse((await lifeboat(['snapshots', '--json'], env)).stdout) as { kind: string; tags: string[] }[];
  assert.deepEqual(snaps.map((s) => [s.kind, s.tags]).sort(), [['files', ['job:Nightly']], ['image', ['job:Nightly']]]);
});
