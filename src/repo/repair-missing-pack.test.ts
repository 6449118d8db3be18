/**
 * `repair snapshots` on a repository whose index still lists a pack that is gone (the user ran
 * it before, or instead of, `repair index`): the snapshot that needs the pack is found and
 * repaired, instead of "No snapshot needs repair".
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkRepository } from './check.js';
import { backupFiles, chunk, fixtureRepairer, fixtureWalkers, loadEverything, newRepository, packOf, reopen } from './maintenance-testing.js';
import { repairSnapshots } from './repair.js';
import { Names, toHex } from './ids.js';

test('repair snapshots without repair index: blobs of a deleted pack count as missing', async () => {
  const { store, repo } = await newRepository();
  const keep = chunk();
  await backupFiles(repo, { '/data/a': [keep] }, '2024-01-01T00:00:00Z');
  const lost = chunk();
  const b = await backupFiles(repo, { '/data/b': [lost], '/data/a': [keep] }, '2024-01-02T00:00:00Z');
  const pack = packOf(repo, toHex(repo.blobId(lost)));
  assert.notEqual(pack, packOf(repo, toHex(repo.blobId(keep))));
  await store.delete(pack);

  const results = await repairSnapshots(await reopen(store), { walkers: fixtureWalkers, repairers: { files: fixtureRepairer } });
  assert.equal(results.length, 1, 'the snapshot needing the deleted pack is found');
  assert.equal(results[0]!.id, b);
  assert.equal(results[0]!.status, 'repaired');
  assert.deepEqual(results[0]!.damaged.map((d) => d.where), ['/data/b']);
  // The repaired copy needs nothing from the deleted pack.
  const after = await reopen(store);
  const report = await checkRepository(after, { walkers: fixtureWalkers });
  const affected = report.affected.flatMap((p) => p.snapshots.map((s) => s.id));
  assert.deepEqual(affected, [b], 'only the original snapshot is affected');
  await store.delete(Names.snapshot(b));
  assert.equal(await loadEverything(after), 4, "A's root and block, the repaired root and /data/a's block");
});
