import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { toHex } from './ids.js';
import { MasterIndex } from './master-index.js';
import { BlobType, type PackEntry } from './pack.js';

test('packsHolding names the packs that hold a blob of the given types, each once, and agrees with entries()', () => {
  const index = new MasterIndex();
  const pack = () => toHex(randomBytes(32));
  const entry = (type: BlobType, offset: number): PackEntry => ({ type, id: randomBytes(32), offset, length: 100, rawLength: 90 });
  const dataOnly = pack();
  const trees = pack();
  const mixed = pack();
  const snapshots = pack();
  index.addPackEntries(dataOnly, [entry(BlobType.data, 0), entry(BlobType.data, 100)]);
  index.addPackEntries(trees, [entry(BlobType.tree, 0), entry(BlobType.tree, 100)]);
  index.addPackEntries(mixed, [entry(BlobType.data, 0), entry(BlobType.tree, 100)]);
  index.addPackEntries(snapshots, [entry(BlobType.snapshot, 0)]);

  assert.deepEqual(index.packsHolding([BlobType.tree, BlobType.snapshot]), new Set([trees, mixed, snapshots]));
  assert.deepEqual(index.packsHolding([BlobType.data]), new Set([dataOnly, mixed]));
  assert.deepEqual(index.packsHolding([BlobType.delta]), new Set());
  const fromEntries = new Set([...index.entries()].filter(([, l]) => l.type === BlobType.tree).map(([, l]) => l.packId));
  assert.deepEqual(index.packsHolding([BlobType.tree]), fromEntries);
});
