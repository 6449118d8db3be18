import assert from 'node:assert/strict';
import { promises as fs, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { rejectsWithCode, storeConformanceSuite } from './conformance.js';
import { DiskCacheStore } from './disk-cache.js';
import { FaultStore } from './fault.js';
import { MemoryStore } from './memory.js';
import { FakeClock } from '../util/clock.js';

async function tempDir(): Promise<string> {
  return fs.mkdtemp(join(tmpdir(), 'lifeboat-disk-cache-'));
}

// Every name is cacheable here, so the suite's replacing puts and deletes exercise forgetting.
storeConformanceSuite('disk cache around memory', async () => {
  const dir = await tempDir();
  return { store: new DiskCacheStore(new MemoryStore(), { dir, cacheable: () => true }), cleanup: () => fs.rm(dir, { recursive: true, force: true }) };
});

const data = (n: number, fill = 1): Uint8Array => new Uint8Array(n).fill(fill);
const immutable = (name: string): boolean => /^(index|snapshots|data)\//.test(name);

test('DiskCacheStore: the next process reads kept objects and ranges from the folder, as fresh copies; other reads go to the store', async (t) => {
  const dir = await tempDir();
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const fault = new FaultStore(new MemoryStore());
  await fault.put('index/aa', data(300, 1));
  await fault.put('data/p', data(1000, 2));
  await fault.put('locks/l', data(10, 3));
  const first = new DiskCacheStore(fault, { dir, cacheable: immutable });
  await first.get('index/aa');
  await first.get('data/p', 100, 50);
  await first.get('data/p', 900); // open-ended: not kept
  await first.get('locks/l'); // not cacheable
  assert.equal(fault.counts.get, 4);

  const next = new DiskCacheStore(fault, { dir, cacheable: immutable });
  const got = await next.get('index/aa');
  assert.deepEqual(new Uint8Array(got), data(300, 1));
  got.fill(0); // the caller owns it
  assert.deepEqual(new Uint8Array(await next.get('index/aa')), data(300, 1));
  assert.deepEqual(new Uint8Array(await next.get('data/p', 100, 50)), data(50, 2));
  assert.equal(fault.counts.get, 4, 'served from the folder');
  await next.get('data/p', 100, 51);
  await next.get('data/p', 900);
  await next.get('locks/l');
  assert.equal(fault.counts.get, 7, 'another range, an open-ended range and a mutable name ask the store');
  assert.deepEqual([next.hits, next.misses], [3, 1]);
});

test('DiskCacheStore: a damaged entry is read again from the store and replaced; a folder that cannot be written only means no cache', async (t) => {
  const dir = await tempDir();
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const fault = new FaultStore(new MemoryStore());
  await fault.put('snapshots/s1', data(200, 7));
  await new DiskCacheStore(fault, { dir, cacheable: immutable }).get('snapshots/s1');
  const file = join(dir, 'objects', 'snapshots', 's1');
  const raw = await fs.readFile(file);
  raw[raw.length - 1]! ^= 0x40;
  await fs.writeFile(file, raw);
  const s = new DiskCacheStore(fault, { dir, cacheable: immutable });
  assert.deepEqual(new Uint8Array(await s.get('snapshots/s1')), data(200, 7), 'the store is asked, not the flipped copy');
  assert.equal(fault.counts.get, 2);
  assert.deepEqual(new Uint8Array(await s.get('snapshots/s1')), data(200, 7));
  assert.equal(fault.counts.get, 2, 'the entry was replaced');

  const notAFolder = join(dir, 'file');
  writeFileSync(notAFolder, 'x');
  const broken = new DiskCacheStore(fault, { dir: notAFolder, cacheable: immutable });
  assert.deepEqual(new Uint8Array(await broken.get('snapshots/s1')), data(200, 7));
  await broken.put('index/new', data(5, 1));
  assert.deepEqual(new Uint8Array(await broken.get('index/new')), data(5, 1));
});

test('DiskCacheStore: what a process writes is kept for the next; a delete or a new put forgets the name', async (t) => {
  const dir = await tempDir();
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const fault = new FaultStore(new MemoryStore());
  const s = new DiskCacheStore(fault, { dir, cacheable: immutable });
  await s.put('index/i1', data(64, 4));
  const next = new DiskCacheStore(fault, { dir, cacheable: immutable });
  assert.deepEqual(new Uint8Array(await next.get('index/i1')), data(64, 4));
  assert.equal(fault.counts.get, 0, 'a written index file is not fetched back');
  await next.get('index/i1', 0, 10);
  await next.delete('index/i1');
  await rejectsWithCode(next.get('index/i1'), 'not-found');
  await rejectsWithCode(next.get('index/i1', 0, 10), 'not-found');
  await next.put('index/i1', data(64, 9)); // repair writes a name again
  assert.deepEqual(new Uint8Array(await new DiskCacheStore(fault, { dir, cacheable: immutable }).get('index/i1')), data(64, 9));
});

test('DiskCacheStore: a writer of metadata (a pack of trees) is kept when it commits, so the next process does not fetch it; other writers and an aborted one are not', async (t) => {
  const dir = await tempDir();
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const fault = new FaultStore(new MemoryStore());
  // As for a repository: a pack is cacheable only once the index names it as a pack of trees, which it does not yet at commit.
  const known = new Set<string>();
  const options = { dir, cacheable: (n: string) => known.has(n), whole: (n: string) => n.startsWith('data/') };
  const s = new DiskCacheStore(fault, options);
  const trees = s.createWriter({ metadata: true });
  await trees.write(data(100, 5));
  await trees.write(data(50, 6));
  await trees.commit('data/trees');
  const plain = s.createWriter();
  await plain.write(data(100, 7));
  await plain.commit('data/blobs');
  const aborted = s.createWriter({ metadata: true });
  await aborted.write(data(10, 8));
  await aborted.abort();
  for (const n of ['data/trees', 'data/blobs']) known.add(n);
  const next = new DiskCacheStore(fault, options);
  assert.deepEqual(new Uint8Array(await next.get('data/trees', 90, 20)), new Uint8Array([...data(10, 5), ...data(10, 6)]));
  assert.equal(fault.counts.get, 0, 'the pack of trees was not fetched back');
  await next.get('data/blobs', 0, 10);
  assert.equal(fault.counts.get, 1, 'a pack of data was not kept');
});

test('DiskCacheStore: close trims the folder to maxBytes, least recently used first', async (t) => {
  const dir = await tempDir();
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const inner = new MemoryStore();
  for (const n of ['a', 'b', 'c']) await inner.put(`index/${n}`, data(1000));
  const clock = new FakeClock(Date.parse('2026-01-01T00:00:00Z'));
  const s = new DiskCacheStore(inner, { dir, cacheable: immutable, maxBytes: 2200, clock });
  for (const n of ['a', 'b', 'c']) await s.get(`index/${n}`);
  // Entries are dated when written and when read again: 'a' is used last, 'b' before it, 'c' never again.
  clock.advance(60_000);
  await s.get('index/b');
  clock.advance(60_000);
  await s.get('index/a');
  writeFileSync(join(dir, 'listings-x.json'), Buffer.alloc(5000)); // another cache's file beside it
  await s.close();
  assert.deepEqual((await fs.readdir(join(dir, 'objects', 'index'))).sort(), ['a', 'b']);
  assert.equal((await fs.stat(join(dir, 'listings-x.json'))).size, 5000, 'only entries are trimmed');
});
