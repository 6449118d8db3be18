import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { MemoryStore } from './memory.js';
import { PARITY_PREFIX, ParityStore, paritySettings, parseParity, type ParityReport } from './parity.js';

const settings = paritySettings(10);

async function setup(size: number, name = 'data/ab/ab01'): Promise<{ inner: MemoryStore; store: ParityStore; data: Buffer; reports: ParityReport[] }> {
  const inner = new MemoryStore();
  const reports: ParityReport[] = [];
  const store = new ParityStore(inner, settings, (r) => reports.push(r));
  const data = randomBytes(size);
  const w = store.createWriter();
  for (let o = 0; o < size; o += 100_000) await w.write(data.subarray(o, o + 100_000));
  await w.commit(name);
  return { inner, store, data, reports };
}

/** A fresh wrapper (no cached sidecar heads), as a later process would have. */
function reopen(inner: MemoryStore, reports: ParityReport[]): ParityStore {
  return new ParityStore(inner, settings, (r) => reports.push(r));
}

test('parity settings: 10% gives 40 + 4 shards for data and 8 + 4 for metadata; bad amounts are usage errors', () => {
  assert.deepEqual(parseParity('10%'), { shard: 4096, data: { k: 40, m: 4 }, meta: { k: 8, m: 4 } });
  assert.throws(() => parseParity('lots'), /percentage/);
  assert.throws(() => parseParity('0%'), /between/);
});

test('every zeroed 4 KiB run, at any offset, is corrected on read (whole object and ranges), and reported', async () => {
  const size = 1_000_003;
  const { inner, data } = await setup(size);
  const stored = Buffer.from(await inner.get('data/ab/ab01'));
  for (let round = 0; round < 40; round++) {
    const at = Math.floor(Math.random() * (size - 1));
    const bad = Buffer.from(stored);
    bad.fill(0, at, Math.min(size, at + 4096));
    const flip = Math.floor(Math.random() * size);
    bad[flip] = bad[flip]! ^ 0x40; // and one flipped byte elsewhere (another stripe, or the same: 3 shards ≤ 4)
    await inner.put('data/ab/ab01', bad);
    const reports: ParityReport[] = [];
    const store = reopen(inner, reports);
    assert.ok(Buffer.from(await store.get('data/ab/ab01')).equals(data), `round ${round} at ${at}`);
    assert.ok(Buffer.from(await store.get('data/ab/ab01', at, 5000 > size - at ? size - at : 5000)).equals(data.subarray(at, at + 5000)));
    assert.ok(reports.length >= 1 && reports[0]!.damagedShards >= 1);
  }
});

test('a cut object, a damaged sidecar head, and a small deleted object are all rebuilt', async () => {
  const { inner, data, reports } = await setup(300_000);
  const name = 'data/ab/ab01';
  // Cut the last 100 bytes (the pack trailer).
  await inner.put(name, data.subarray(0, data.length - 100));
  assert.ok(Buffer.from(await reopen(inner, reports).get(name)).equals(data));
  // Damage the sidecar's head: its copy at the end is used; the object (intact again) reads as it is.
  await inner.put(name, data);
  const side = Buffer.from(await inner.get(PARITY_PREFIX + name));
  side.fill(0xff, 0, 64);
  await inner.put(PARITY_PREFIX + name, side);
  const bad = Buffer.from(data);
  bad.fill(0, 5000, 9096);
  await inner.put(name, bad);
  assert.ok(Buffer.from(await reopen(inner, reports).get(name)).equals(data));

  // A metadata object of one shard: deleting it outright is survivable (4 parity shards).
  const small = randomBytes(900);
  const store = reopen(inner, reports);
  await store.put('snapshots/0123', small);
  await inner.delete('snapshots/0123');
  assert.ok(Buffer.from(await reopen(inner, reports).get('snapshots/0123')).equals(small));
});

test('damage beyond the parity is reported as corrupt, not returned as data', async () => {
  const { inner, data } = await setup(200_000);
  const bad = Buffer.from(data);
  for (let s = 0; s < 5; s++) bad[s * 4096 + 7] = bad[s * 4096 + 7]! ^ 1; // five shards of the first stripe: one more than m = 4
  await inner.put('data/ab/ab01', bad);
  await assert.rejects(reopen(inner, []).get('data/ab/ab01'), (e: Error & { code?: string }) => e.code === 'corrupt' && /more than its parity can repair/.test(e.message));
  // The range outside the damaged stripe still reads.
  assert.ok(Buffer.from(await reopen(inner, []).get('data/ab/ab01', 170_000, 1000)).equals(data.subarray(170_000, 171_000)));
});

test('locks get no parity; deleting an object deletes its sidecar; no settings means read-only correction', async () => {
  const inner = new MemoryStore();
  const store = new ParityStore(inner, settings);
  await store.put('locks/aa', Buffer.from('x'));
  await store.put('index/bb', Buffer.from('y'));
  assert.equal(await inner.stat(PARITY_PREFIX + 'locks/aa'), undefined);
  assert.ok(await inner.stat(PARITY_PREFIX + 'index/bb'));
  await store.delete('index/bb');
  assert.equal(await inner.stat(PARITY_PREFIX + 'index/bb'), undefined);
  const plain = new ParityStore(inner, undefined);
  await plain.put('index/cc', Buffer.from('z'));
  assert.equal(await inner.stat(PARITY_PREFIX + 'index/cc'), undefined);
  assert.equal(Buffer.from(await plain.get('index/cc')).toString(), 'z');
});

test('a pack committed as metadata (trees) gets the stronger 8 + 4 shape, a data pack 40 + 4', async () => {
  const inner = new MemoryStore();
  const store = new ParityStore(inner, settings);
  for (const [name, metadata] of [['data/aa/aa01', true], ['data/bb/bb01', false]] as const) {
    const w = store.createWriter();
    await w.write(randomBytes(50_000));
    await (metadata ? w.commit(name, { metadata }) : w.commit(name));
    const head = Buffer.from(await inner.get(PARITY_PREFIX + name, 16, 4));
    assert.deepEqual([head.readUInt16LE(0), head.readUInt16LE(2)], metadata ? [8, 4] : [40, 4]);
    assert.equal(await store.verifyParity(name), 'ok');
  }
});
