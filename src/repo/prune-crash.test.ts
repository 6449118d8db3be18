/**
 * Crash safety of prune by fault injection (issue 6, P5): the process "dies" at the Nth change it
 * makes to the store (a put or a delete), for every N a prune makes, the crashing change lost or
 * done. After each crash the repository checks clean with --read-data, every remaining snapshot
 * loads all its blobs, and a second prune finishes and leaves it clean too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkRepository } from './check.js';
import { Names } from './ids.js';
import { backupFiles, chunk, fixtureWalkers, loadEverything, newRepository, reopen } from './maintenance-testing.js';
import { prune } from './prune.js';
import { MemoryStore } from '../store/memory.js';
import type { Store } from '../store/store.js';
import { FaultStore, InjectedCrash } from '../store/fault.js';

async function cloneStore(src: Store): Promise<MemoryStore> {
  const out = new MemoryStore();
  for (const prefix of ['config', 'keys/', 'data/', 'index/', 'snapshots/', 'locks/', 'pins/']) {
    for await (const o of src.list(prefix)) await out.put(o.name, await src.get(o.name));
  }
  return out;
}

test('a prune that dies at any put or delete leaves every remaining snapshot intact; a second prune finishes', async () => {
  const { store: base, repo } = await newRepository();
  const [c1, c2, c3, c4, c5, c6] = [chunk(), chunk(), chunk(), chunk(), chunk(), chunk()];
  await backupFiles(repo, { '/data/a': [c1, c2] }, '2024-01-01T00:00:00Z');
  const b = await backupFiles(repo, { '/data/b': [c3, c4, c5] }, '2024-01-02T00:00:00Z');
  await backupFiles(repo, { '/data/c': [c3, c6], '/data/a': [c1] }, '2024-01-03T00:00:00Z');
  // Forget B: its pack is partly used (c3 by C), so prune with 0% tolerance repacks it.
  await base.delete(Names.snapshot(b));
  const expected = await loadEverything(await reopen(base));

  const probe = new FaultStore(await cloneStore(base));
  const report = await prune(await reopen(probe), { walkers: fixtureWalkers, maxUnusedPercent: 0 });
  assert.ok(report.packs.repacked >= 1 && report.packs.deleted + report.packs.repacked >= 2, JSON.stringify(report.packs));
  const changes = probe.counts.put + probe.counts.delete;
  assert.ok(changes >= 4, `prune makes ${changes} changes`);

  for (let n = 1; n <= changes; n++) {
    for (const lands of [false, true]) {
      const what = `died at change ${n}/${changes} (${lands ? 'done' : 'lost'})`;
      const inner = await cloneStore(base);
      await assert.rejects(prune(await reopen(new FaultStore(inner, { crashAtChange: n, crashedPutLands: lands })), { walkers: fixtureWalkers, maxUnusedPercent: 0 }), InjectedCrash, what);
      const after = await reopen(inner);
      assert.deepEqual((await checkRepository(after, { readData: true, walkers: fixtureWalkers })).errors, [], `${what}: check --read-data`);
      assert.equal(await loadEverything(after), expected, `${what}: every remaining snapshot loads all its blobs`);
      await prune(await reopen(inner), { walkers: fixtureWalkers, maxUnusedPercent: 0 });
      const done = await reopen(inner);
      assert.deepEqual((await checkRepository(done, { readData: true, walkers: fixtureWalkers })).errors, [], `${what}: check after the second prune`);
      assert.equal(await loadEverything(done), expected, `${what}: after the second prune`);
    }
  }
});
