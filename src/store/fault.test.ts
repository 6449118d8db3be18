import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isLifeboatError } from '../util/errors.js';
import { listAll, rejectsWithCode, storeConformanceSuite } from './conformance.js';
import { FaultStore, InjectedCrash } from './fault.js';
import { MemoryStore } from './memory.js';

// With no faults planned, the wrapper is a store like any other.
storeConformanceSuite('fault wrapper without faults', async () => ({ store: new FaultStore(new MemoryStore()), cleanup: async () => {} }));

const data = (n: number, fill = 1): Uint8Array => new Uint8Array(n).fill(fill);

test('FaultStore: the Nth put and every later one crash; the crashing put does not land by default', async () => {
  const inner = new MemoryStore();
  const s = new FaultStore(inner, { crashAtPut: 3 });
  await s.put('a', data(1));
  await s.put('b', data(1));
  assert.equal(s.crashed, false);
  await assert.rejects(s.put('c', data(1)), (e: unknown) => e instanceof InjectedCrash && e.putNumber === 3 && e.objectName === 'c');
  await assert.rejects(s.put('d', data(1)), InjectedCrash);
  assert.equal(s.crashed, true);
  assert.deepEqual((await listAll(inner, '')).map((o) => o.name), ['a', 'b']);
  assert.equal(s.counts.put, 4);
  assert.equal(s.injected, 2);
  // Reads still work: a test inspects the state the "dead process" left behind.
  assert.deepEqual(new Uint8Array(await s.get('a')), data(1));
});

test('FaultStore: crashedPutLands stores the crashing put (died before the acknowledgement) but no later one', async () => {
  const inner = new MemoryStore();
  const s = new FaultStore(inner, { crashAtPut: 2, crashedPutLands: true });
  await s.put('a', data(1));
  await assert.rejects(s.put('b', data(2)), InjectedCrash);
  await assert.rejects(s.put('c', data(3)), InjectedCrash);
  assert.deepEqual((await listAll(inner, '')).map((o) => o.name), ['a', 'b']);
});

test("FaultStore: puts beyond noSpaceAfterBytes fail with 'no-space' and store nothing; smaller ones still fit", async () => {
  const inner = new MemoryStore();
  const s = new FaultStore(inner, { noSpaceAfterBytes: 100 });
  await s.put('a', data(60));
  await rejectsWithCode(s.put('b', data(50)), 'no-space');
  assert.equal(await inner.stat('b'), undefined);
  await s.put('c', data(40));
  assert.equal(s.bytesStored, 100);
  await rejectsWithCode(s.put('d', data(1)), 'no-space');
  await s.put('empty', data(0));
  assert.equal(s.injected, 2);
  // Lifting the limit lets writes through again.
  s.noSpaceAfterBytes = undefined;
  await s.put('b', data(50));
});

test("FaultStore: gets of chosen names fail with 'io'; others and other operations are untouched", async () => {
  const inner = new MemoryStore();
  await inner.put('bad', data(10));
  await inner.put('good', data(10));
  const s = new FaultStore(inner, { failGets: ['bad'] });
  await rejectsWithCode(s.get('bad'), 'io');
  await rejectsWithCode(s.get('bad', 0, 1), 'io');
  assert.deepEqual(new Uint8Array(await s.get('good')), data(10));
  assert.equal((await s.stat('bad'))?.size, 10);
  s.failGets.delete('bad');
  assert.deepEqual(new Uint8Array(await s.get('bad')), data(10));
  assert.equal(s.counts.get, 4);
  assert.equal(s.counts.stat, 1);
});

test('FaultStore: corrupted names come back damaged on every non-empty read, whole or ranged, while the stored bytes stay intact', async () => {
  const inner = new MemoryStore();
  const original = data(2000, 0x40);
  await inner.put('pack', original);
  const s = new FaultStore(inner, { corruptGets: ['pack'] });
  const whole = await s.get('pack');
  assert.equal(whole.length, 2000);
  const flipped = [...whole.keys()].filter((i) => whole[i] !== original[i]);
  assert.deepEqual(flipped, [0, 512, 1024, 1536]);
  for (const [offset, length] of [[0, 1], [1, 10], [600, 100], [1000, 1000], [1999, 1]] as const) {
    const part = await s.get('pack', offset, length);
    assert.notDeepEqual(new Uint8Array(part), original.subarray(offset, offset + length), `range ${offset}+${length}`);
    // Bytes at 512-byte boundaries of the object agree with the whole read.
    for (let i = 1; i < length; i++) if ((offset + i) % 512 === 0) assert.equal(part[i], whole[offset + i]);
  }
  assert.equal((await s.get('pack', 5, 0)).length, 0);
  assert.deepEqual(new Uint8Array(await inner.get('pack')), original);
});

test('FaultStore: counts every operation, and passes ifAbsent through', async () => {
  const s = new FaultStore(new MemoryStore());
  await s.put('x', data(1), { ifAbsent: true });
  await assert.rejects(s.put('x', data(1), { ifAbsent: true }), (e: unknown) => isLifeboatError(e) && e.code === 'conflict');
  await s.get('x');
  await s.stat('x');
  await listAll(s, '');
  await s.delete('x');
  await s.close();
  assert.deepEqual(s.counts, { put: 2, get: 1, stat: 1, list: 1, delete: 1, close: 1 });
  assert.equal(s.injected, 0);
  assert.equal(s.location, 'memory');
});

test('FaultStore: crashAtChange counts puts and deletes together; the crashing delete lands only with crashedPutLands', async () => {
  for (const lands of [false, true]) {
    const inner = new MemoryStore();
    await inner.put('a', Buffer.from('1'));
    await inner.put('b', Buffer.from('2'));
    const f = new FaultStore(inner, { crashAtChange: 2, crashedPutLands: lands });
    await f.put('c', Buffer.from('3')); // change 1
    await assert.rejects(f.delete('a'), InjectedCrash); // change 2: the crash
    assert.equal(await inner.stat('a') === undefined, lands);
    await assert.rejects(f.delete('b'), InjectedCrash);
    await assert.rejects(f.put('d', Buffer.from('4')), InjectedCrash);
    assert.ok(await inner.stat('b'));
    assert.equal(await inner.stat('d'), undefined);
    assert.equal(f.crashed, true);
  }
});
