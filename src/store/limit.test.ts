import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { listAll, storeConformanceSuite } from './conformance.js';
import { LimitStore } from './limit.js';
import { LocalStore } from './local.js';
import { MemoryStore } from './memory.js';
import type { OperationOptions, PutOptions, StoreStat } from './store.js';

storeConformanceSuite('limit 2 around memory', async () => ({ store: new LimitStore(new MemoryStore(), 2), cleanup: async () => {} }));
storeConformanceSuite('limit 3 around a local folder', async () => {
  const dir = await fs.mkdtemp(join(tmpdir(), 'lifeboat-limit-'));
  return { store: new LimitStore(new LocalStore(join(dir, 'repo')), 3), cleanup: () => fs.rm(dir, { recursive: true, force: true }) };
});

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A memory store whose calls take a few milliseconds, counting how many are in flight. */
class SlowStore extends MemoryStore {
  inFlight = 0;
  most = 0;
  constructor(private readonly ms = 3) {
    super();
  }
  private async slowly<T>(call: () => Promise<T>): Promise<T> {
    this.most = Math.max(this.most, ++this.inFlight);
    try {
      await tick(this.ms);
      return await call();
    } finally {
      this.inFlight--;
    }
  }
  override put(name: string, d: Uint8Array, options?: PutOptions): Promise<void> {
    return this.slowly(() => super.put(name, d, options));
  }
  override get(name: string, offset?: number, length?: number, options?: OperationOptions): Promise<Uint8Array> {
    return this.slowly(() => super.get(name, offset, length, options));
  }
  override stat(name: string, options?: OperationOptions): Promise<StoreStat | undefined> {
    return this.slowly(() => super.stat(name, options));
  }
  override delete(name: string, options?: OperationOptions): Promise<void> {
    return this.slowly(() => super.delete(name, options));
  }
}

test('LimitStore: never more than N calls in flight on the inner store, and all of them are made', async () => {
  const inner = new SlowStore();
  const s = new LimitStore(inner, 3);
  const names = Array.from({ length: 30 }, (_, i) => `data/${i}`);
  await Promise.all(names.map((n, i) => s.put(n, new Uint8Array(i))));
  assert.equal(inner.most, 3);
  const sizes = await Promise.all([...names.map(async (n) => (await s.get(n)).length), ...names.map(async (n) => (await s.stat(n))!.size)]);
  assert.deepEqual(sizes, [...names.map((_, i) => i), ...names.map((_, i) => i)]);
  assert.equal(inner.most, 3);
  const w = s.createWriter();
  await Promise.all([w.write(new Uint8Array(1)), s.delete('data/0'), s.delete('data/1'), s.delete('data/2'), s.delete('data/3')]);
  await w.commit('data/written');
  assert.equal(inner.most, 3);
  assert.equal(inner.inFlight, 0);
});

test('LimitStore: reading each object while listing, with a limit of 1, does not deadlock', async () => {
  const s = new LimitStore(new SlowStore(1), 1);
  for (let i = 0; i < 5; i++) await s.put(`index/${i}`, new Uint8Array(i));
  let total = 0;
  for await (const o of s.list('index/')) total += (await s.get(o.name)).length;
  assert.equal(total, 0 + 1 + 2 + 3 + 4);
});

test('LimitStore: an abort while waiting for a place rejects at once and takes no place', async () => {
  const inner = new SlowStore(200);
  const s = new LimitStore(inner, 1);
  await inner.put('data/a', new Uint8Array(3));
  const holder = s.get('data/a');
  const stop = new AbortController();
  const reason = new Error('stopped by the test');
  const waiting = s.stat('data/a', { signal: stop.signal });
  await tick(10);
  const started = performance.now();
  stop.abort(reason);
  await assert.rejects(waiting, (e) => e === reason);
  assert.ok(performance.now() - started < 100, 'rejected before the place came free');
  assert.equal((await holder).length, 3);
  assert.equal((await s.stat('data/a'))?.size, 3, 'the place the aborted call waited for was not lost');
  assert.deepEqual(await listAll(s, ''), [{ name: 'data/a', size: 3 }]);
});

test("LimitStore: the repository's uploads in flight are capped by the limit", () => {
  const many = Object.assign(new MemoryStore(), { properties: { uploadsInFlight: 8 } });
  assert.equal(new LimitStore(many, 4).properties.uploadsInFlight, 4);
  assert.equal(new LimitStore(many, 16).properties.uploadsInFlight, 8);
  assert.throws(() => new LimitStore(many, 0), RangeError);
});
