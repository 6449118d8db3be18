import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { rejectsWithCode, storeConformanceSuite } from './conformance.js';
import { CacheStore } from './cache.js';
import { FaultStore } from './fault.js';
import { LocalStore } from './local.js';
import { MemoryStore } from './memory.js';
import type { OperationOptions } from './store.js';

// Every name counts as immutable here, so the suite's replacing puts and deletes exercise forgetting.
storeConformanceSuite('cache around memory', async () => ({ store: new CacheStore(new MemoryStore(), { immutable: () => true }), cleanup: async () => {} }));
storeConformanceSuite('cache around a local folder', async () => {
  const dir = await fs.mkdtemp(join(tmpdir(), 'lifeboat-cache-'));
  return { store: new CacheStore(new LocalStore(join(dir, 'repo')), { immutable: () => true }), cleanup: () => fs.rm(dir, { recursive: true, force: true }) };
});

const data = (n: number, fill = 1): Uint8Array => new Uint8Array(n).fill(fill);
const packsOnly = { immutable: (name: string) => name.startsWith('data/') };

test('CacheStore: a second read of the same range is served without the inner store, as a fresh copy', async () => {
  const fault = new FaultStore(new MemoryStore());
  const s = new CacheStore(fault, packsOnly);
  await s.put('data/p', data(1000, 5));
  const first = await s.get('data/p', 100, 50);
  first.fill(0); // the caller owns what it got
  assert.deepEqual(new Uint8Array(await s.get('data/p', 100, 50)), data(50, 5));
  assert.equal(fault.counts.get, 1);
  assert.deepEqual(new Uint8Array(await s.get('data/p', 100, 60)), data(60, 5), 'another range is another read');
  await s.get('data/p');
  await s.get('data/p');
  assert.equal(fault.counts.get, 3);
  assert.equal(s.cachedBytes, 50 + 60 + 1000);
});

test('CacheStore: a failed read is never kept', async () => {
  const inner = new MemoryStore();
  await inner.put('data/p', data(100, 3));
  const fault = new FaultStore(inner, { failGets: ['data/p'] });
  const s = new CacheStore(fault, packsOnly);
  await rejectsWithCode(s.get('data/p'), 'io');
  await rejectsWithCode(s.get('data/missing'), 'not-found');
  fault.failGets.delete('data/p');
  assert.deepEqual(new Uint8Array(await s.get('data/p')), data(100, 3));
  assert.equal(fault.counts.get, 3, 'the failed read was asked again');
  fault.transientFailures = 1;
  await rejectsWithCode(s.get('data/p', 0, 10), 'io');
  assert.deepEqual(new Uint8Array(await s.get('data/p', 0, 10)), data(10, 3));
  assert.equal(s.cachedBytes, 100 + 10);
});

test('CacheStore: names the caller does not call immutable are always read from the inner store', async () => {
  const fault = new FaultStore(new MemoryStore());
  const s = new CacheStore(fault, packsOnly);
  await s.put('locks/1', data(10));
  await s.get('locks/1');
  await s.get('locks/1');
  assert.equal(fault.counts.get, 2);
  assert.equal(s.cachedBytes, 0);
});

test('CacheStore: bounded by maxBytes, least recently used out first; a read larger than the bound is not kept', async () => {
  const fault = new FaultStore(new MemoryStore());
  const s = new CacheStore(fault, { ...packsOnly, maxBytes: 1000 });
  for (const n of ['a', 'b', 'c']) await s.put(`data/${n}`, data(400));
  await s.get('data/a');
  await s.get('data/b');
  await s.get('data/a'); // a is now the most recently used
  await s.get('data/c'); // evicts b
  assert.equal(s.cachedBytes, 800);
  const before = fault.counts.get;
  await s.get('data/a');
  await s.get('data/c');
  assert.equal(fault.counts.get, before, 'a and c were kept');
  await s.get('data/b');
  assert.equal(fault.counts.get, before + 1, 'b was evicted');
  assert.ok(s.cachedBytes <= 1000);
  await s.put('data/big', data(1001));
  await s.get('data/big');
  await s.get('data/big');
  assert.equal(fault.counts.get, before + 3);
  assert.ok(s.cachedBytes <= 1000);
});

test('CacheStore: a delete or a put through it forgets the name, also when a read of it is in flight', async () => {
  const inner = new MemoryStore();
  const s = new CacheStore(inner, { immutable: () => true });
  await s.put('data/p', data(10, 1));
  await s.get('data/p');
  await s.delete('data/p');
  await rejectsWithCode(s.get('data/p'), 'not-found');
  await s.put('data/p', data(10, 2));
  assert.deepEqual(new Uint8Array(await s.get('data/p')), data(10, 2));
});

/** A memory store whose reads take the bytes at once but answer 20 ms later, like a slow link. */
class SlowReadStore extends MemoryStore {
  override async get(name: string, offset?: number, length?: number, options?: OperationOptions): Promise<Uint8Array> {
    const bytes = await super.get(name, offset, length, options);
    await new Promise((r) => setTimeout(r, 20));
    return bytes;
  }
}

test('CacheStore: a read that a put of the same name overtook is not kept', async () => {
  const s = new CacheStore(new SlowReadStore(), { immutable: () => true });
  await s.put('data/p', data(10, 2));
  const reading = s.get('data/p', 0, 5);
  await s.put('data/p', data(10, 3)); // lands while the old bytes are on their way
  assert.deepEqual(new Uint8Array(await reading), data(5, 2));
  assert.deepEqual(new Uint8Array(await s.get('data/p', 0, 5)), data(5, 3));
});
