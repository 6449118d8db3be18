import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  AVG_SIZE, Chunker, DEFAULT_PARAMS, GEAR_SEED, MASK_L, MASK_S, MAX_SIZE, MIN_SIZE,
  chunkBoundaries, chunkStream, gearTable, masksFor, zeroChunkLength, type ChunkParams, type ZeroRun,
} from './fastcdc.js';

const MiB = 1024 * 1024;

/** xorshift32 (13, 17, 5): the golden input; any change to it invalidates the frozen cuts below. */
function xorshiftBytes(n: number, seed: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(n / 4));
  let x = seed >>> 0;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    words[i] = x;
  }
  return new Uint8Array(words.buffer, 0, n);
}

/** The format as written in docs/FORMAT.md §5, one byte at a time: the reference to agree with. */
function referenceCuts(data: Uint8Array, p: ChunkParams): number[] {
  const gear = gearTable();
  const { maskS, maskL } = masksFor(p.avg);
  const out: number[] = [];
  let start = 0;
  while (start < data.length) {
    const remaining = data.length - start;
    let cut = start + Math.min(remaining, p.max);
    if (remaining > p.min) {
      let h = 0;
      const normal = start + Math.min(p.avg, remaining);
      const end = start + Math.min(p.max, remaining);
      for (let i = start + p.min; i < end; i++) {
        h = (h * 2 + gear[data[i]!]!) % 2 ** 32;
        if ((h & (i < normal ? maskS : maskL)) === 0) { cut = i + 1; break; }
      }
    }
    out.push(cut);
    start = cut;
  }
  return out;
}

async function* pieces(data: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let o = 0; o < data.length; o += size) yield data.subarray(o, Math.min(data.length, o + size));
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const c of it) out.push(c);
  return out;
}

function endsOf(chunks: readonly Uint8Array[]): number[] {
  let o = 0;
  return chunks.map((c) => (o += c.length));
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

const GOLDEN_INPUT = xorshiftBytes(24 * MiB, 0x2545f491);
// Computed once with this implementation (and checked against referenceCuts), then frozen.
const GOLDEN_CUTS: readonly number[] = [
  1_786_531, 2_564_025, 3_777_110, 4_940_661, 6_214_487, 7_370_111, 8_752_340,
  9_821_897, 10_962_176, 12_053_632, 13_264_525, 14_377_531, 15_246_983, 16_389_548,
  16_942_537, 19_495_579, 20_557_126, 21_661_980, 22_888_934, 24_420_319, 25_165_824,
];

test('format constants are the frozen fastcdc-lb1 values', () => {
  assert.equal(GEAR_SEED, 0x4c494645);
  assert.deepEqual([MIN_SIZE, AVG_SIZE, MAX_SIZE], [512 * 1024, MiB, 8 * MiB]);
  assert.deepEqual(DEFAULT_PARAMS, { min: MIN_SIZE, avg: AVG_SIZE, max: MAX_SIZE });
  assert.equal(MASK_S, (~0 << (32 - 22)) >>> 0);
  assert.equal(MASK_L, (~0 << (32 - 18)) >>> 0);
  assert.deepEqual(masksFor(AVG_SIZE), { maskS: MASK_S, maskL: MASK_L });
  const g = gearTable();
  assert.equal(g.length, 256);
  assert.deepEqual([...g.subarray(0, 4)], [0x54372838, 0xadd2c6ed, 0xbb7eba2c, 0x7ae272c8]);
  assert.equal(new Set(g).size, 256);
  g[0] = 0; // a copy: callers cannot corrupt the table
  assert.notEqual(gearTable()[0], 0);
});

test('golden vector: 24 MiB of xorshift32 data gives exactly the frozen cuts', () => {
  assert.deepEqual(chunkBoundaries(GOLDEN_INPUT), GOLDEN_CUTS);
});

test('the optimised scanner agrees with the byte-at-a-time reference', () => {
  assert.deepEqual(referenceCuts(GOLDEN_INPUT, DEFAULT_PARAMS), GOLDEN_CUTS);
  const small: ChunkParams = { min: 256, avg: 1024, max: 4096 };
  for (const seed of [1, 2, 3, 0xdeadbeef]) {
    const data = xorshiftBytes(300_000 + (seed & 0xfff), seed);
    assert.deepEqual(chunkBoundaries(data, small), referenceCuts(data, small), `seed ${seed}`);
  }
  // Low-entropy data: runs of one byte value, where the max cut decides.
  const runs = new Uint8Array(200_000);
  for (let i = 0; i < runs.length; i++) runs[i] = (i >> 12) & 3;
  assert.deepEqual(chunkBoundaries(runs, small), referenceCuts(runs, small));
  assert.deepEqual(chunkBoundaries(new Uint8Array(30_000), small), referenceCuts(new Uint8Array(30_000), small));
});

test('chunk sizes lie within [min, max] except the last, and chunks rebuild the input', async () => {
  const p: ChunkParams = { min: 2048, avg: 8192, max: 32768 };
  const data = xorshiftBytes(3 * MiB + 123, 99);
  const chunks = await collect(chunkStream(pieces(data, 65536), p));
  assert.ok(chunks.length > 100);
  chunks.forEach((c, i) => {
    if (i < chunks.length - 1) assert.ok(c.length >= p.min && c.length <= p.max, `chunk ${i} has ${c.length} bytes`);
  });
  assert.ok(chunks[chunks.length - 1]!.length <= p.max);
  assert.deepEqual(Buffer.concat(chunks), Buffer.from(data));
  // Zeros settle the hash at a value that never matches: every chunk is cut at exactly max.
  const zeros = await collect(chunkStream(pieces(new Uint8Array(200_000), 10_000), p));
  assert.deepEqual(zeros.map((c) => c.length), [...Array<number>(6).fill(p.max), 200_000 - 6 * p.max]);
});

test('chunks in pooled buffers: the same cuts and bytes, each buffer handed out once at a time, the last chunk in the buffer that held it', async () => {
  const p: ChunkParams = { min: 2048, avg: 8192, max: 32768 };
  const data = xorshiftBytes(2 * MiB + 4321, 7);
  const want = await collect(chunkStream(pieces(data, 65536), p));
  const free: ArrayBuffer[] = [];
  const out = new Set<ArrayBuffer>();
  let made = 0;
  const buffers = {
    take(n: number): Uint8Array {
      assert.ok(n <= p.max);
      const b = free.pop() ?? (made++, new ArrayBuffer(p.max));
      assert.ok(!out.has(b), 'a buffer handed out twice');
      out.add(b);
      return new Uint8Array(b, 0, n);
    },
    give(v: Uint8Array): void {
      const b = v.buffer as ArrayBuffer;
      assert.ok(out.delete(b), 'given back a buffer not handed out');
      free.push(b);
    },
  };
  const got: Buffer[] = [];
  for await (const c of chunkStream(pieces(data, 65536), p, buffers)) {
    assert.equal(c.byteOffset, 0);
    got.push(Buffer.from(c)); // a copy: the consumer gives the buffer back at once
    buffers.give(c);
  }
  assert.deepEqual(got.map((c) => c.length), want.map((c) => c.length));
  assert.deepEqual(Buffer.concat(got), Buffer.from(data));
  assert.equal(out.size, 0, 'every buffer came back');
  assert.ok(made <= 3, `${made} buffers for chunks consumed one at a time`);
});

test('zero runs given by length cut exactly where the same zeros written out would, whole zero chunks unread', async () => {
  const p: ChunkParams = { min: 2048, avg: 8192, max: 32768 };
  assert.equal(zeroChunkLength(p), p.max);
  assert.equal(zeroChunkLength(), MAX_SIZE); // the format's chunker never cuts inside zeros
  // Data, then holes of several sizes (shorter and longer than a chunk), ending in a hole and in data.
  const layout: (number | Uint8Array)[] = [xorshiftBytes(50_000, 1), 100_000, xorshiftBytes(3000, 2), 1000, xorshiftBytes(40_000, 3), 5 * p.max + 77, xorshiftBytes(10, 4), 200_000];
  const plain = Buffer.concat(layout.map((x) => (typeof x === 'number' ? new Uint8Array(x) : x)));
  async function* sparse(): AsyncGenerator<Uint8Array | ZeroRun> {
    for (const x of layout) {
      if (typeof x === 'number') yield { zeros: x };
      else yield* pieces(x, 4096);
    }
  }
  const got: (Uint8Array | ZeroRun)[] = [];
  for await (const c of chunkStream(sparse(), p)) got.push(c);
  const want = await collect(chunkStream(pieces(plain, 65536), p));
  assert.deepEqual(endsOf(got.map((c) => (c instanceof Uint8Array ? c : new Uint8Array(c.zeros)))), endsOf(want));
  got.forEach((c, i) => {
    if (c instanceof Uint8Array) assert.deepEqual(c, want[i]);
    else assert.ok(want[i]!.every((b) => b === 0) && c.zeros === p.max);
  });
  // The long holes were skipped in whole chunks rather than fed to the chunker.
  assert.ok(got.filter((c) => !(c instanceof Uint8Array)).length >= 8);
});

test('the default parameters: sizes in [512 KiB, 8 MiB], mean near 1 MiB', () => {
  const sizes = GOLDEN_CUTS.map((c, i) => c - (i === 0 ? 0 : GOLDEN_CUTS[i - 1]!));
  sizes.slice(0, -1).forEach((s) => assert.ok(s >= MIN_SIZE && s <= MAX_SIZE, `size ${s}`));
  const mean = GOLDEN_INPUT.length / sizes.length;
  assert.ok(mean > 0.8 * MiB && mean < 1.6 * MiB, `mean ${mean}`);
});

test('inserting bytes near the start changes only the first chunk or two', async () => {
  const edited = new Uint8Array(GOLDEN_INPUT.length + 5);
  edited.set(GOLDEN_INPUT.subarray(0, 1000));
  edited.set([1, 2, 3, 4, 5], 1000);
  edited.set(GOLDEN_INPUT.subarray(1000), 1005);
  const a = (await collect(chunkStream(pieces(GOLDEN_INPUT, MiB)))).map(sha);
  const b = (await collect(chunkStream(pieces(edited, MiB)))).map(sha);
  assert.equal(a.length, b.length);
  const before = new Set(a);
  const changed = b.filter((h) => !before.has(h)).length;
  assert.ok(changed >= 1 && changed <= 2, `${changed} chunks changed`);
  assert.deepEqual(b.slice(2), a.slice(2));
});

test('feeding the stream in odd-sized pieces gives the same cuts as feeding it whole', async () => {
  // 1 byte at a time through the synchronous Chunker (no allocation per call).
  const ch = new Chunker();
  const oneByOne: number[] = [];
  for (let i = 0; i < GOLDEN_INPUT.length; i++) if (ch.nextCut(GOLDEN_INPUT, i, i + 1) === i + 1) oneByOne.push(i + 1);
  assert.equal(ch.pending, GOLDEN_INPUT.length - oneByOne.at(-1)!);
  assert.deepEqual([...oneByOne, GOLDEN_INPUT.length], GOLDEN_CUTS);
  for (const size of [4093, 3 * MiB, 9 * MiB]) {
    assert.deepEqual(endsOf(await collect(chunkStream(pieces(GOLDEN_INPUT, size)))), GOLDEN_CUTS, `pieces of ${size}`);
  }
  // 7-byte pieces through the async path cost one await each: use the first 2 cuts' worth.
  const head = GOLDEN_INPUT.subarray(0, GOLDEN_CUTS[1]! + 1000);
  assert.deepEqual(endsOf(await collect(chunkStream(pieces(head, 7)))), [...GOLDEN_CUTS.slice(0, 2), head.length]);
  // Pieces of varying sizes, each in its own (unaligned) buffer.
  async function* ragged(): AsyncGenerator<Uint8Array> {
    let o = 0;
    let k = 1;
    while (o < GOLDEN_INPUT.length) {
      const n = Math.min(GOLDEN_INPUT.length - o, (k * 7919) % 200_003 + 1);
      const own = new Uint8Array(n + (k & 3));
      own.set(GOLDEN_INPUT.subarray(o, o + n), k & 3);
      yield own.subarray(k & 3);
      o += n;
      k++;
    }
  }
  assert.deepEqual(endsOf(await collect(chunkStream(ragged()))), GOLDEN_CUTS);
});

test('buffers at unaligned offsets (byteOffset & 3 != 0) give the same cuts', () => {
  const data = GOLDEN_INPUT.subarray(0, 6 * MiB + 3);
  const expected = chunkBoundaries(data);
  for (const shift of [1, 2, 3, 5]) {
    const big = new Uint8Array(data.length + shift);
    big.set(data, shift);
    const view = big.subarray(shift);
    assert.equal(view.byteOffset & 3, shift & 3);
    assert.deepEqual(chunkBoundaries(view), expected, `shift ${shift}`);
  }
  assert.deepEqual(chunkBoundaries(Buffer.from(data)), expected);
});

test('chunks own their memory: exact ArrayBuffers, correct even when the source reuses its buffer', async () => {
  const p: ChunkParams = { min: 1024, avg: 4096, max: 16384 };
  const data = xorshiftBytes(500_000, 7);
  const expected = chunkBoundaries(data, p);
  const buf = new Uint8Array(50_000); // one buffer refilled for every read, like a careless reader
  async function* reuse(): AsyncGenerator<Uint8Array> {
    for (let o = 0; o < data.length; o += buf.length) {
      const n = Math.min(buf.length, data.length - o);
      buf.set(data.subarray(o, o + n));
      yield buf.subarray(0, n);
    }
  }
  const chunks: Uint8Array[] = [];
  let o = 0;
  for await (const c of chunkStream(reuse(), p)) {
    assert.equal(c.byteOffset, 0);
    assert.equal(c.buffer.byteLength, c.length);
    assert.deepEqual(c, data.subarray(o, o + c.length));
    o += c.length;
    chunks.push(c);
  }
  assert.deepEqual(endsOf(chunks), expected);
});

test('empty input gives no chunks; short input gives one', async () => {
  assert.deepEqual(await collect(chunkStream(pieces(new Uint8Array(0), 10))), []);
  assert.deepEqual(chunkBoundaries(new Uint8Array(0)), []);
  const short = xorshiftBytes(1000, 5);
  const c = await collect(chunkStream(pieces(short, 3)));
  assert.equal(c.length, 1);
  assert.deepEqual(c[0], short);
});

test('invalid parameters are refused', () => {
  assert.throws(() => new Chunker({ avg: 1000 }), RangeError);
  assert.throws(() => new Chunker({ min: 2 * MiB }), RangeError);
  assert.throws(() => new Chunker({ max: 1024 }), RangeError);
  assert.throws(() => new Chunker().nextCut(new Uint8Array(4), 3, 2), RangeError);
});
