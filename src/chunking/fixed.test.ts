import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { LifeboatError } from '../util/errors.js';
import { DEFAULT_FIXED_CHUNK_SIZE, alignedSpans, fixedChunks, fixedChunksOfRange, type FixedChunk } from './fixed.js';

async function* pieces(data: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let o = 0; o < data.length; o += size) yield data.subarray(o, Math.min(data.length, o + size));
}

async function collect(it: AsyncIterable<FixedChunk>): Promise<FixedChunk[]> {
  const out: FixedChunk[] = [];
  for await (const c of it) out.push(c);
  return out;
}

test('alignedSpans splits a range at multiples of the chunk size', () => {
  assert.deepEqual([...alignedSpans(0, 2048, 1024)], [
    { index: 0, offset: 0, length: 1024 },
    { index: 1, offset: 1024, length: 1024 },
  ]);
  assert.deepEqual([...alignedSpans(1000, 3100, 1024)], [
    { index: 0, offset: 1000, length: 24 },
    { index: 1, offset: 1024, length: 1024 },
    { index: 2, offset: 2048, length: 1024 },
    { index: 3, offset: 3072, length: 28 },
  ]);
  assert.deepEqual([...alignedSpans(5, 5, 1024)], []);
  // Offsets beyond 4 GiB stay exact (drives are large).
  const big = 5 * 2 ** 40 + 17;
  assert.deepEqual([...alignedSpans(big, big + 2 ** 20, 2 ** 20)].map((s) => s.length), [2 ** 20 - 17, 17]);
  assert.equal([...alignedSpans(0, 10, 512)][0]!.index, 0);
  assert.equal(DEFAULT_FIXED_CHUNK_SIZE, 1024 * 1024);
});

test('bad chunk sizes and ranges are refused', () => {
  assert.throws(() => [...alignedSpans(0, 10, 1000)], RangeError);
  assert.throws(() => [...alignedSpans(0, 10, 256)], RangeError);
  assert.throws(() => [...alignedSpans(10, 0, 1024)], RangeError);
  assert.throws(() => [...alignedSpans(-1, 0, 1024)], RangeError);
});

test('fixedChunks: aligned chunks of a stream, whatever the read sizes', async () => {
  const data = randomBytes(10 * 4096 + 100);
  for (const readSize of [1, 1000, 4096, 9999, data.length]) {
    const chunks = await collect(fixedChunks(pieces(data, readSize), { chunkSize: 4096 }));
    assert.deepEqual(chunks.map((c) => [c.index, c.offset, c.bytes.length]), [
      ...Array.from({ length: 10 }, (_, i) => [i, i * 4096, 4096]),
      [10, 40960, 100],
    ], `read size ${readSize}`);
    for (const c of chunks) {
      assert.deepEqual(Buffer.from(c.bytes), data.subarray(c.offset, c.offset + c.bytes.length));
      assert.equal(c.bytes.byteOffset, 0);
      assert.equal(c.bytes.buffer.byteLength, c.bytes.length);
    }
  }
});

test('fixedChunks from an unaligned start: the first chunk ends at the next boundary', async () => {
  const data = randomBytes(3000);
  const chunks = await collect(fixedChunks(pieces(data, 700), { chunkSize: 1024, start: 1024 * 7 + 1000 }));
  assert.deepEqual(chunks.map((c) => [c.index, c.offset, c.bytes.length]), [
    [7, 8168, 24],
    [8, 8192, 1024],
    [9, 9216, 1024],
    [10, 10240, 928],
  ]);
  assert.deepEqual(Buffer.concat(chunks.map((c) => c.bytes)), data);
});

test('fixedChunks: a changed byte changes exactly one chunk', async () => {
  const a = randomBytes(64 * 1024);
  const b = Buffer.from(a);
  b[33_000] = b[33_000]! ^ 1;
  const ca = await collect(fixedChunks(pieces(a, 5000), { chunkSize: 8192 }));
  const cb = await collect(fixedChunks(pieces(b, 3000), { chunkSize: 8192 }));
  const differing = ca.map((c, i) => (Buffer.from(c.bytes).equals(cb[i]!.bytes) ? -1 : i)).filter((i) => i >= 0);
  assert.deepEqual(differing, [4]);
});

test('fixedChunks copies: a source that reuses its buffer does not corrupt chunks', async () => {
  const data = randomBytes(20_000);
  const buf = new Uint8Array(3000);
  async function* reuse(): AsyncGenerator<Uint8Array> {
    for (let o = 0; o < data.length; o += buf.length) {
      const n = Math.min(buf.length, data.length - o);
      buf.set(data.subarray(o, o + n));
      yield buf.subarray(0, n);
    }
  }
  const chunks = await collect(fixedChunks(reuse(), { chunkSize: 4096 }));
  assert.deepEqual(Buffer.concat(chunks.map((c) => c.bytes)), data);
  assert.deepEqual(await collect(fixedChunks(pieces(new Uint8Array(0), 1))), []);
});

test('fixedChunksOfRange reads one aligned span at a time and checks short reads', async () => {
  const disk = randomBytes(50_000);
  const reads: [number, number][] = [];
  const reader = {
    read: async (offset: number, length: number) => {
      reads.push([offset, length]);
      return disk.subarray(offset, offset + length);
    },
  };
  const chunks = await collect(fixedChunksOfRange(reader, 1000, 9000, { chunkSize: 4096 }));
  assert.deepEqual(reads, [[1000, 3096], [4096, 4096], [8192, 808]]);
  assert.deepEqual(chunks.map((c) => c.index), [0, 1, 2]);
  assert.deepEqual(Buffer.concat(chunks.map((c) => c.bytes)), disk.subarray(1000, 9000));

  const short = { read: async (_o: number, length: number) => new Uint8Array(length - 1) };
  await assert.rejects(collect(fixedChunksOfRange(short, 0, 4096, { chunkSize: 4096 })), (e) => e instanceof LifeboatError && e.code === 'io');
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(collect(fixedChunksOfRange(reader, 0, 4096, { chunkSize: 4096, signal: ac.signal })), { name: 'AbortError' });
});
