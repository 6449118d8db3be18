import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { ChunkIndex, type ChunkLocation } from './chunk-index.js';

/** Deterministic 32-byte ids: sha256 of (salt, i). */
function idOf(i: number, salt = 'a'): Buffer {
  return createHash('sha256').update(`${salt}:${i}`).digest();
}

function locOf(i: number): ChunkLocation {
  return { pack: i % 1000, offset: (i * 7919) >>> 0, length: (i * 31 + 1) >>> 0, rawLength: 0xffffffff - i, type: i & 1 };
}

test('insert, lookup, miss', () => {
  const ix = new ChunkIndex();
  const a = randomBytes(32);
  const b = randomBytes(32);
  assert.equal(ix.size, 0);
  assert.equal(ix.has(a), false);
  assert.equal(ix.get(a), undefined);
  assert.equal(ix.find(a), -1);
  assert.equal(ix.add(a, { pack: 3, offset: 100, length: 50, rawLength: 80, type: 0 }), true);
  assert.equal(ix.add(b, { pack: 0xffffffff, offset: 0xffffffff, length: 1, rawLength: 2, type: 255 }), true);
  assert.equal(ix.size, 2);
  assert.deepEqual(ix.get(a), { pack: 3, offset: 100, length: 50, rawLength: 80, type: 0 });
  assert.deepEqual(ix.get(b), { pack: 0xffffffff, offset: 0xffffffff, length: 1, rawLength: 2, type: 255 });
  assert.equal(ix.find(b), 1);
  assert.equal(ix.packAt(1), 0xffffffff);
  assert.equal(ix.typeAt(1), 255);
  // An id differing from a stored one only in its last byte is a miss, not a hit.
  const near = Buffer.from(a);
  near[31] = near[31]! ^ 0x80;
  assert.equal(ix.has(near), false);
  // Lookups through unaligned views and plain Uint8Arrays work the same.
  const padded = new Uint8Array(35);
  padded.set(a, 3);
  assert.equal(ix.has(padded.subarray(3)), true);
  assert.deepEqual(ix.idAt(0), new Uint8Array(a));
});

test('a duplicate insert keeps the first location and returns false', () => {
  const ix = new ChunkIndex();
  const id = idOf(1);
  assert.equal(ix.add(id, locOf(1)), true);
  assert.equal(ix.add(Buffer.from(id), locOf(2)), false);
  assert.equal(ix.size, 1);
  assert.deepEqual(ix.get(id), locOf(1));
});

test('bad ids and locations are refused without changing the index', () => {
  const ix = new ChunkIndex();
  assert.throws(() => ix.add(new Uint8Array(31), locOf(0)), RangeError);
  assert.throws(() => ix.has(new Uint8Array(33)), RangeError);
  assert.throws(() => ix.add(idOf(0), { ...locOf(0), offset: 2 ** 32 }), RangeError);
  assert.throws(() => ix.add(idOf(0), { ...locOf(0), length: -1 }), RangeError);
  assert.throws(() => ix.add(idOf(0), { ...locOf(0), type: 256 }), RangeError);
  assert.throws(() => ix.add(idOf(0), { ...locOf(0), pack: 1.5 }), RangeError);
  assert.equal(ix.size, 0);
  assert.throws(() => ix.locationAt(0), RangeError);
});

test('300k entries across many segments and table resizes', () => {
  const N = 300_000;
  const ix = new ChunkIndex({ segmentBits: 10 }); // 1024 entries per segment: 293 segments
  for (let i = 0; i < N; i++) assert.equal(ix.add(idOf(i), locOf(i)), true);
  assert.equal(ix.size, N);
  for (let i = 0; i < N; i += 7) assert.deepEqual(ix.get(idOf(i)), locOf(i), `entry ${i}`);
  for (let i = 0; i < 20_000; i++) assert.equal(ix.has(idOf(i, 'miss')), false);
  // Re-adding everything changes nothing.
  for (let i = 0; i < N; i += 13) assert.equal(ix.add(idOf(i), locOf(i + 1)), false);
  assert.equal(ix.size, N);
  assert.deepEqual(ix.get(idOf(N - 1)), locOf(N - 1));
  // Table at most 0.7 full, and memory near 49 bytes per entry plus the table.
  const tableBytes = ix.byteSize - 293 * 1024 * 49;
  assert.ok(tableBytes >= (N / 0.7) * 4 && tableBytes <= (2 * N / 0.7) * 4, `table ${tableBytes} bytes`);
});

test('iteration yields every entry once, in insertion order', () => {
  const ix = new ChunkIndex({ segmentBits: 4 });
  for (let i = 0; i < 100; i++) ix.add(idOf(i), locOf(i));
  ix.add(idOf(5), locOf(999)); // duplicate: not a new entry
  const seen = [...ix];
  assert.equal(seen.length, 100);
  seen.forEach(([id, loc], i) => {
    assert.deepEqual(id, new Uint8Array(idOf(i)));
    assert.deepEqual(loc, locOf(i));
  });
  const viaForEach: string[] = [];
  ix.forEach((id, e) => viaForEach.push(`${e}:${Buffer.from(id).toString('hex')}`));
  assert.deepEqual(viaForEach, seen.map(([id], e) => `${e}:${Buffer.from(id).toString('hex')}`));
});

test('ids that share their first bytes still resolve (probing compares whole ids)', () => {
  const ix = new ChunkIndex({ initialCapacity: 10 });
  const ids = Array.from({ length: 200 }, (_, i) => {
    const id = new Uint8Array(32); // same first 4 bytes: every id hashes to one slot
    id[31] = i;
    id[20] = i >> 3;
    return id;
  });
  ids.forEach((id, i) => assert.equal(ix.add(id, locOf(i)), true));
  ids.forEach((id, i) => assert.deepEqual(ix.get(id), locOf(i)));
  const other = new Uint8Array(32);
  other[31] = 250;
  assert.equal(ix.has(other), false);
});
