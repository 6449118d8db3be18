/**
 * A job that holds a system image and folders (issue 21, P10 item 3: Windows 7's "include a system
 * image" box), run through the scheduler: the image (partition 3 left out) and then the folders,
 * both tagged with the job; one part failing does not skip the other, and the run says which failed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmp } from '../files/testing.js';
import { loadManifest } from '../image/imager.js';
import { makeSystemDisk } from '../image/testing.js';
import { createRepositoryAt, openRepositoryAt, passwordFileFor, writePasswordFile } from './open.js';
import { Scheduler } from './scheduler.js';
import { JobState, describeWhat, type JobDefinition } from './state.js';
import { estimateJob } from './setup.js';
import { planImageCreate } from './image.js';

test('a job with a system image and folders: one run takes both, tagged with the job; a failing image does not skip the folders', async (t) => {
  const dir = tmp(t);
  process.env['XDG_CACHE_HOME'] = join(dir, 'cache');
  process.env['XDG_DATA_HOME'] = join(dir, 'data');
  const disk = makeSystemDisk(dir, 'fat');
  const docs = join(dir, 'Documents');
  mkdirSync(docs);
  writeFileSync(join(docs, 'letter.txt'), 'Dear Ann,\n');
  writeFileSync(join(docs, 'scratch.tmp'), 'left out by the job\'s rule');
  const repoPath = join(dir, 'repo');
  await (await createRepositoryAt(repoPath, 'pw')).repo.close();
  const passwordFile = passwordFileFor(join(dir, 'data'), repoPath);
  writePasswordFile(passwordFile, 'pw');
  const state = JobState.open(join(dir, 'data', 'jobs.db'));
  t.after(() => state.close());
  const def = (name: string, device: string): JobDefinition => ({
    name,
    what: { kind: 'image', device, partitions: { exclude: [3] }, paths: [docs], excludes: ['*.tmp'] },
    repository: repoPath,
    passwordFile,
    schedule: 'daily 02:00',
  });
  const job = state.addJob(def('Nightly', disk), Date.now());
  assert.equal(describeWhat(job.what), `the drive ${disk} without partition 3 (system image) and ${docs}`);
  assert.equal(describeWhat({ kind: 'image', device: '/dev/sda', partitions: { only: [1, 2] } }), 'partitions 1, 2 of the drive /dev/sda (system image)');

  // The dashboard's estimate: the image's bytes (partition 3 not read) and the folders'.
  const plan = await planImageCreate(disk, { partitions: { exclude: [3] } });
  const est = await estimateJob(job);
  assert.equal(est.bytes, plan.bytesToRead + 'Dear Ann,\n'.length);
  assert.ok(est.seconds >= plan.estimatedSeconds);

  const s = new Scheduler(state);
  const run = await s.runNow('Nightly');
  assert.equal(run.status, 'ok', run.message);
  const m = /^Saved the system image \(([0-9a-f]{8})\) and the folders \(([0-9a-f]{8})\)\.$/.exec(run.message ?? '');
  assert.ok(m, run.message);
  assert.equal(run.snapshot?.slice(0, 8), m[2], 'the run records the folders\' snapshot');
  assert.equal(run.figures.files, 1);
  assert.ok((run.figures.bytesAdded ?? 0) > 2_000_000, 'the image and the folders are counted');

  const repo = await openRepositoryAt(repoPath, 'pw');
  try {
    await repo.loadIndex();
    const all = await repo.listSnapshots();
    assert.deepEqual(all.map((x) => [x.snapshot.kind, x.snapshot.tags]).sort(), [['files', ['job:Nightly']], ['image', ['job:Nightly']]]);
    const image = all.find((x) => x.snapshot.kind === 'image')!;
    assert.equal(image.id.slice(0, 8), m[1]);
    assert.deepEqual((await loadManifest(repo, image.snapshot.root)).partitions.map((p) => p.method), ['allocation', 'allocation', 'excluded']);
    assert.deepEqual(all.find((x) => x.snapshot.kind === 'files')!.snapshot.paths, [docs]);
  } finally {
    await repo.close();
  }

  // The drive is gone: the image fails, the folders are still saved, and the run says so.
  state.addJob(def('Broken', join(dir, 'unplugged.img')), Date.now());
  const broken = await s.runNow('Broken');
  assert.equal(broken.status, 'failed');
  assert.match(broken.message ?? '', /^The system image failed: .*unplugged\.img does not exist.* Saved the folders \([0-9a-f]{8}\)\.$/);
  const after = await openRepositoryAt(repoPath, 'pw');
  try {
    const mine = (await after.listSnapshots()).filter((x) => x.snapshot.tags.includes('job:Broken'));
    assert.deepEqual(mine.map((x) => x.snapshot.kind), ['files']);
    assert.equal(mine[0]!.id, broken.snapshot);
  } finally {
    await after.close();
  }
});
