import assert from 'node:assert/strict';
import { test } from 'node:test';
import { storeConformanceSuite } from './conformance.js';
import { MemoryStore } from './memory.js';

storeConformanceSuite('memory', async () => ({ store: new MemoryStore(), cleanup: async () => {} }));

test('MemoryStore keeps its own copy even of a view into a larger buffer', async () => {
  const s = new MemoryStore();
  const backing = new Uint8Array([1, 2, 3, 4, 5, 6]);
  await s.put('obj', backing.subarray(2, 4));
  backing.fill(0);
  assert.deepEqual(new Uint8Array(await s.get('obj')), new Uint8Array([3, 4]));
});
