import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { BlobType, type PackEntry } from './pack.js';
import { PackedEntries } from './packed-entries.js';

const plain: PackEntry[] = [
  { type: BlobType.data, id: randomBytes(32), offset: 0, length: 100, rawLength: 0xffffffff },
  { type: BlobType.tree, id: randomBytes(32), offset: 100, length: 7, rawLength: 12 },
];
const withDelta: PackEntry[] = [...plain, { type: BlobType.delta, id: randomBytes(32), offset: 107, length: 50, rawLength: 4096, base: randomBytes(32) }];

test('a packed list gives back every entry, bases included, also from its bytes alone', () => {
  for (const entries of [plain, withDelta, []]) {
    const p = PackedEntries.pack(entries);
    assert.equal(p.length, entries.length);
    assert.deepEqual([...PackedEntries.of(new Uint8Array(p.bytes))].map((e) => ({ ...e })), entries.map((e) => ({ ...e, id: Buffer.from(e.id), ...(e.base ? { base: Buffer.from(e.base) } : {}) })));
    assert.equal(p.end(), entries.length === 0 ? 0 : entries.at(-1)!.offset + entries.at(-1)!.length);
    assert.equal(p.equals(PackedEntries.pack(entries)), true);
  }
});

test('lists that differ in any field or in length are not equal', () => {
  const p = PackedEntries.pack(withDelta);
  const changed: PackEntry[][] = [
    withDelta.slice(0, 2),
    withDelta.map((e, i) => (i === 1 ? { ...e, offset: e.offset + 1 } : e)),
    withDelta.map((e, i) => (i === 0 ? { ...e, rawLength: 1 } : e)),
    withDelta.map((e, i) => (i === 2 ? { ...e, base: randomBytes(32) } : e)),
    withDelta.map((e, i) => (i === 0 ? { ...e, id: randomBytes(32) } : e)),
  ];
  for (const c of changed) assert.equal(p.equals(PackedEntries.pack(c)), false);
  assert.equal(PackedEntries.pack(plain).equals(PackedEntries.pack(withDelta.slice(0, 2))), true);
});
