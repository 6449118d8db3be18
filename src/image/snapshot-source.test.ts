import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../store/memory.js';
import { Repository } from '../repo/repository.js';
import { createImage } from './imager.js';
import { memorySource } from './source.js';
import { snapshotSource } from './snapshot-source.js';
import { plannedLoader } from './browse.js';
import { prng, seededBytes } from './testing.js';

process.env['LIFEBOAT_INSECURE_FAST_KDF'] = '1';

test('snapshot source: random reads equal the drive, absent chunks are zeros, only touched chunks are fetched', async () => {
  const { repo } = await Repository.init(new MemoryStore(), 'pw');
  await repo.loadIndex();
  const chunkSize = 4096;
  const size = 300 * chunkSize + 123; // the last chunk is short
  const disk = Buffer.alloc(size);
  // Data in a few islands; the rest stays zero (absent chunks).
  for (const [at, n, seed] of [[0, 9000, 1], [50 * chunkSize + 7, 30000, 2], [size - 5000, 5000, 3]] as const) seededBytes(seed, n).copy(disk, at);
  const res = await createImage(repo, memorySource(disk), [{ start: 0, end: size }], { table: { kind: 'none' }, partitions: [], source: { path: 'mem' }, unreadable: [] }, { chunkSize });
  assert.ok(res.chunksStored < 20);
  let loads = 0;
  const counting = { loadBlob: (id: Uint8Array) => (loads++, repo.loadBlob(id)) };
  const src = snapshotSource(counting, res.manifest, { cacheChunks: 4 });
  assert.equal(src.size, size);
  const r = prng(9);
  for (let k = 0; k < 300; k++) {
    const off = Math.floor(r() * size);
    const len = Math.min(size - off, Math.floor(r() * 3 * chunkSize));
    assert.deepEqual(Buffer.from(await src.read(off, len)), disk.subarray(off, off + len), `read ${len} at ${off}`);
  }
  assert.deepEqual(Buffer.from(await src.read(size - 10, 10)), disk.subarray(size - 10));
  await assert.rejects(src.read(size - 1, 2), /outside the image/);

  // One small read: one page and one chunk, then a cache hit.
  const fresh = snapshotSource(counting, res.manifest);
  loads = 0;
  await fresh.read(50 * chunkSize + 100, 10);
  assert.equal(loads, 2);
  assert.equal(fresh.stats.chunkLoads, 1);
  await fresh.read(50 * chunkSize + 200, 10);
  assert.equal(loads, 2);
  assert.equal(fresh.stats.cacheHits, 1);
  // A zero chunk costs no chunk load at all.
  await fresh.read(100 * chunkSize, chunkSize);
  assert.equal(fresh.stats.chunkLoads, 1);
});

test('snapshot source: a sequential read through the planned loader asks for the chunks ahead in batches, not one request per chunk', async () => {
  let gets = 0;
  const store = new (class extends MemoryStore {
    override get(name: string, offset?: number, length?: number): Promise<Uint8Array> {
      if (name.startsWith('data/')) gets++;
      return super.get(name, offset, length);
    }
  })();
  const { repo } = await Repository.init(store, 'pw');
  await repo.loadIndex();
  const chunkSize = 4096;
  const size = 200 * chunkSize;
  const disk = seededBytes(4, size);
  const res = await createImage(repo, memorySource(disk), [{ start: 0, end: size }], { table: { kind: 'none' }, partitions: [], source: { path: 'mem' }, unreadable: [] }, { chunkSize });
  await repo.flush();
  const src = snapshotSource(plannedLoader(repo), res.manifest);
  gets = 0;
  // A reader slower than the store (a busy computer copying files out): the planner is idle at
  // each ask, so a prefetch that offered one new chunk per miss cost a request per chunk (200).
  for (let off = 0; off < size; off += chunkSize) {
    assert.deepEqual(Buffer.from(await src.read(off, chunkSize)), disk.subarray(off, off + chunkSize));
    await new Promise((r) => setTimeout(r, 2));
  }
  assert.equal(src.stats.chunkLoads, 200);
  // The first miss asks for 17 chunks, then every top-up for about 8, with a request or two each
  // (chunks sealed side by side need not lie in the pack in image order): 25-43 measured.
  assert.ok(gets <= 60, `${gets} requests for 200 chunks read in order`);
});
