/** The dashboard's job list shows a job that holds a system image of some partitions and folders (issue 21, P10 item 3) as both. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { http, startHome } from './testing.js';
import { JobState } from '../jobs/state.js';
import type { Overview } from '../web/api.js';

test('the dashboard lists an image-and-folders job with its partitions and folders', async (t) => {
  const { dashboard: d, auth, dir, source, drive } = await startHome(t);
  const state = JobState.open(join(dir, 'data', 'lifeboat', 'jobs.db'));
  try {
    state.addJob({ name: 'Nightly', what: { kind: 'image', device: '/dev/sda', partitions: { exclude: [3] }, paths: [source], excludes: [] }, repository: join(drive, 'Lifeboat'), passwordFile: join(dir, 'pw'), schedule: 'daily 02:00' }, Date.now());
  } finally {
    state.close();
  }
  const r = await http(d.origin, 'GET', '/api/overview', auth);
  assert.equal(r.status, 200);
  const job = r.json<Overview>().jobs.find((j) => j.name === 'Nightly');
  assert.equal(job?.what, `The drive /dev/sda without partition 3 (system image) and ${source}`);
  assert.equal(job?.kind, 'image');
});
