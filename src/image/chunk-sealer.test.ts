/**
 * The imager's chunk workers on two kinds of store (in memory and a local folder): the main thread
 * reads a changed chunk's base through the store and the worker seals the delta either way. Every
 * kind of chunk is in the second image: unchanged, changed in one block (a delta), changed in most
 * blocks (whole), now zero, new where the parent had nothing, and equal to another stored chunk.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../store/memory.js';
import { LocalStore } from '../store/local.js';
import { Repository } from '../repo/repository.js';
import type { Store } from '../store/store.js';
import { createImage } from './imager.js';
import { IMAGE_CHUNK_SIZE } from './manifest.js';
import { memorySource } from './source.js';
import { snapshotSource } from './snapshot-source.js';
import { seededBytes, tempDir } from './testing.js';

process.env['LIFEBOAT_INSECURE_FAST_KDF'] = '1';

const CHUNK = 64 * 1024;
const BLOCK = 4096;
const describe = { table: { kind: 'none' as const }, partitions: [], source: { path: 'mem' }, unreadable: [] };

async function readAll(repo: Repository, manifest: Parameters<typeof snapshotSource>[1]): Promise<Buffer> {
  return Buffer.from(await snapshotSource(repo, manifest).read(0, manifest.size));
}

for (const [kind, makeStore] of [
  ['in memory', () => ({ store: new MemoryStore() as Store, cleanup: () => undefined })],
  ['in a local folder', () => {
    const d = tempDir('lifeboat-sealer-');
    return { store: new LocalStore(d.path) as Store, cleanup: d.cleanup };
  }],
] as const) {
  test(`image chunks ${kind}: unchanged, delta, whole, zero, new and duplicate chunks are told apart and read back`, async (t) => {
    const { store, cleanup } = makeStore();
    t.after(cleanup);
    const { repo } = await Repository.init(store, 'pw');
    await repo.loadIndex();
    const disk1 = Buffer.alloc(64 * CHUNK);
    for (let c = 0; c < 40; c++) seededBytes(c + 1, CHUNK).copy(disk1, c * CHUNK);
    disk1.copy(disk1, 40 * CHUNK, 0, CHUNK); // a duplicate of chunk 0
    const first = await createImage(repo, memorySource(disk1), [{ start: 0, end: disk1.length }], describe, { chunkSize: CHUNK });
    assert.deepEqual([first.chunksStored, first.chunksNew, first.chunksDelta], [41, 40, 0]);

    const disk2 = Buffer.from(disk1);
    seededBytes(100, BLOCK).copy(disk2, 3 * CHUNK + 5 * BLOCK); // one block: a delta
    seededBytes(101, 12 * BLOCK).copy(disk2, 5 * CHUNK); // 12 of 16 blocks: whole
    disk2.fill(0, 7 * CHUNK, 8 * CHUNK); // now zero
    seededBytes(102, CHUNK).copy(disk2, 50 * CHUNK); // new where the parent had zeros
    disk1.copy(disk2, 9 * CHUNK, 1 * CHUNK, 2 * CHUNK); // equal to a stored chunk
    const second = await createImage(repo, memorySource(disk2), [{ start: 0, end: disk2.length }], describe, { parent: first.manifestId });
    assert.deepEqual([second.chunksStored, second.chunksNew, second.chunksDelta], [41, 3, 1], 'stored / new / delta chunks');
    assert.ok(second.bytesAdded < CHUNK * 2 + 8 * BLOCK + 16 * 1024, `added ${second.bytesAdded} bytes`);

    const again = await createImage(repo, memorySource(disk2), [{ start: 0, end: disk2.length }], describe, { parent: second.manifestId });
    assert.equal(again.chunksNew, 0, 'an unchanged drive stores no chunk');

    assert.ok((await readAll(repo, first.manifest)).equals(disk1), 'the first image reads back');
    assert.ok((await readAll(repo, second.manifest)).equals(disk2), 'the second image reads back');
    await repo.close();
  });
}

test("a new drive is imaged in 1 MiB chunks; a later image keeps its parent's chunk size, so a drive first imaged in 64 KiB chunks still gets deltas", async () => {
  const { repo } = await Repository.init(new MemoryStore(), 'pw');
  await repo.loadIndex();
  const disk1 = seededBytes(7, 4 * IMAGE_CHUNK_SIZE);
  const fresh = await createImage(repo, memorySource(disk1), [{ start: 0, end: disk1.length }], describe);
  assert.equal(fresh.manifest.chunkSize, IMAGE_CHUNK_SIZE);
  assert.equal(IMAGE_CHUNK_SIZE, 1024 * 1024);
  assert.equal(fresh.chunksNew, 4);

  const old = await createImage(repo, memorySource(disk1), [{ start: 0, end: disk1.length }], describe, { chunkSize: CHUNK });
  const disk2 = Buffer.from(disk1);
  seededBytes(8, BLOCK).copy(disk2, 20 * CHUNK + 3 * BLOCK); // one block of one 64 KiB chunk
  const next = await createImage(repo, memorySource(disk2), [{ start: 0, end: disk2.length }], describe, { parent: old.manifestId });
  assert.equal(next.manifest.chunkSize, CHUNK, "the parent's chunk size");
  assert.deepEqual([next.chunksNew, next.chunksDelta], [1, 1], 'one changed chunk, stored as a delta');
  assert.ok(next.bytesAdded < CHUNK, `added ${next.bytesAdded} bytes`);
  assert.ok((await readAll(repo, next.manifest)).equals(disk2), 'the later image reads back');
  await repo.close();
});
