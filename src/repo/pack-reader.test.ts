// The restore planner on a real repository in a folder, counted through the fault-injection store:
// one read per pack when most of it is asked for, shared blobs read once, the budget holds reads
// back, and a failed read fails only the blobs it was to bring.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FaultStore } from '../store/fault.js';
import { LocalStore } from '../store/local.js';
import { Names } from './ids.js';
import { BlobType, Repository, type SpanOutcome } from './repository.js';

async function setup(t: { after(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'lifeboat-reader-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { repo: w } = await Repository.init(new LocalStore(dir), 'pw');
  await w.loadIndex();
  // 20 incompressible blobs of 1 MiB: three packs (8 MiB each at most).
  const blobs: { id: Buffer; data: Buffer }[] = [];
  for (let i = 0; i < 20; i++) {
    const data = randomBytes(1024 * 1024);
    blobs.push({ id: (await w.saveBlob(BlobType.data, data)).id, data });
  }
  await w.flush();
  await w.close();
  const store = new FaultStore(new LocalStore(dir));
  const repo = await Repository.open(store, 'pw');
  t.after(() => repo.close());
  await repo.loadIndex();
  const packs = new Set(blobs.map((b) => repo.index.get(b.id)!.packId));
  return { repo, store, blobs, packs };
}

test('the planner reads each pack once for blobs asked together, hands a shared blob to each asker in its own buffer, and opens them right', async (t) => {
  const { repo, store, blobs, packs } = await setup(t);
  assert.equal(packs.size, 3);
  const reader = repo.packReader({ budget: 64 * 1024 * 1024 });
  const before = store.counts.get;
  // Every blob, the first one three times, asked in one turn.
  const asked = [blobs[0]!, ...blobs, blobs[0]!];
  const leases = await Promise.all(asked.map((b) => reader.get(b.id)));
  assert.equal(store.counts.get - before, 3, 'one read per pack');
  assert.equal(reader.requests, 3);
  const buffers = new Set<ArrayBufferLike>();
  for (const [k, l] of leases.entries()) {
    assert.ok(l);
    const b = asked[k]!;
    assert.ok(Buffer.from(l.blob.id).equals(b.id));
    buffers.add(l.blob.env.buffer);
    assert.equal(l.blob.env.byteLength, l.blob.env.buffer.byteLength, 'each envelope is the whole of its buffer (it moves to a worker alone)');
    const plain = await repo.decodeBlob(l.blob.type, l.blob.id, l.blob.env, l.blob.rawLength, l.blob.packName);
    assert.ok(Buffer.from(plain).equals(b.data));
    l.release();
    l.release(); // twice is harmless
  }
  assert.equal(buffers.size, asked.length, 'the shared blob comes in a buffer of its own for each asker');

  // Two blobs far apart in one pack: two reads, not the whole span.
  const inPack = blobs.filter((b) => repo.index.get(b.id)!.packId === [...packs][0]).sort((a, b) => repo.index.get(a.id)!.offset - repo.index.get(b.id)!.offset);
  const far = [inPack[0]!, inPack[inPack.length - 1]!];
  const before2 = store.counts.get;
  for (const l of await Promise.all(far.map((b) => reader.get(b.id)))) l!.release();
  assert.equal(store.counts.get - before2, 2);
  assert.equal(await reader.get(randomBytes(32)), undefined, 'a blob the index does not hold: undefined (loadBlob says why)');
});

test('the planner holds reads back while the budget is full, and a failed read fails only the blobs it was to bring', async (t) => {
  const { repo, store, blobs, packs } = await setup(t);
  const reader = repo.packReader({ budget: 3 * 1024 * 1024, ahead: 4 });
  const before = store.counts.get;
  const got: { release(): void }[] = [];
  const all = blobs.map((b) => reader.get(b.id).then((l) => void got.push(l!)));
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(got.length > 0 && got.length <= 4, `${got.length} blobs handed out within a 3 MiB budget`);
  const reads = store.counts.get - before;
  assert.ok(reads <= 3, `${reads} reads while nothing was released`);
  // Released as they come: everything arrives, in runs of at most half the budget.
  const releasing = setInterval(() => got.splice(0).forEach((l) => l.release()), 5);
  await Promise.all(all);
  clearInterval(releasing);
  got.splice(0).forEach((l) => l.release());
  assert.ok(store.counts.get - before >= 20 / 1.5, 'small budget, small reads');

  const bad = [...packs][1]!;
  store.failGets.add(Names.pack(bad));
  const results = await Promise.allSettled(blobs.map((b) => reader.get(b.id).then((l) => (l!.release(), l!))));
  for (const [k, r] of results.entries()) {
    const inBad = repo.index.get(blobs[k]!.id)!.packId === bad;
    assert.equal(r.status, inBad ? 'rejected' : 'fulfilled', `blob ${k}`);
  }
});

test('readSpans reads a known list pack by pack in the order first listed, a few reads at once within the budget, each handed over whole; a failed read reaches only its blobs', async (t) => {
  const { repo, store, blobs, packs } = await setup(t);
  // A read is at most a quarter of the budget: 10 MiB holds a whole pack.
  const reader = repo.packReader({ budget: 40 * 1024 * 1024, ahead: 2 });
  const order = [...blobs].reverse(); // the last pack first
  const got: number[] = [];
  const before = store.counts.get;
  let held = 0;
  let maxHeld = 0;
  await reader.readSpans(
    order.map((b) => b.id),
    (r) => {
      assert.ok('read' in r, 'every blob is read');
      const { bytes, blobs: inRead, release } = r.read;
      assert.equal(bytes.byteOffset, 0, 'the read owns its buffer (it moves to a worker whole)');
      assert.equal(bytes.byteLength, bytes.buffer.byteLength);
      for (const b of inRead) {
        got.push(b.k);
        // Each blob lies where the index says, within the read.
        const loc = repo.index.get(order[b.k]!.id)!;
        assert.equal(b.length, loc.length);
        assert.ok(b.offset + b.length <= bytes.length);
      }
      held += bytes.length;
      maxHeld = Math.max(maxHeld, held);
      // Released a little later, as a worker would.
      setTimeout(() => {
        held -= bytes.length;
        release();
      }, 5);
    },
  );
  assert.equal(got.length, blobs.length);
  assert.equal(store.counts.get - before, packs.size, 'one read per pack');
  assert.ok(got.indexOf(0) < got.indexOf(blobs.length - 1), 'the pack listed first is read first');
  assert.ok(maxHeld <= 40 * 1024 * 1024, `${maxHeld} bytes held at most`);

  // Blobs open from the read's bytes as they are: a blob's envelope decodes to its data.
  const reads: SpanOutcome[] = [];
  await reader.readSpans([blobs[3]!.id], (r) => reads.push(r));
  const r = reads[0]!;
  assert.ok(reads.length === 1 && 'read' in r);
  const b = r.read.blobs[0]!;
  const plain = await repo.decodeBlob(b.type, b.id, r.read.bytes.subarray(b.offset, b.offset + b.length), b.rawLength, r.read.packName);
  assert.ok(Buffer.from(plain).equals(blobs[3]!.data));
  r.read.release();

  // A missing pack: its blobs get the error, the others their reads; a blob not indexed is left to the caller.
  const lost = repo.index.get(blobs[0]!.id)!.packId;
  await store.delete(Names.pack(lost));
  const results = new Map<number, string>();
  await reader.readSpans([...blobs.map((b) => b.id), randomBytes(32)], (r) => {
    if ('read' in r) {
      for (const b of r.read.blobs) results.set(b.k, 'read');
      r.read.release();
    } else if ('failed' in r) for (const k of r.failed) results.set(k, 'error');
    else results.set(r.alone, 'alone');
  });
  for (const [k, b] of blobs.entries()) assert.equal(results.get(k), repo.index.get(b.id)!.packId === lost ? 'error' : 'read', `blob ${k}`);
  assert.equal(results.get(blobs.length), 'alone');
});

test('readAhead: prefetched blobs come with one read per pack span, stay sealed until loaded, and stop at the bytes they may hold', async (t) => {
  const { repo, store, blobs } = await setup(t);
  const ahead = repo.readAhead({ budget: 32 * 1024 * 1024, keep: 4 * 1024 * 1024 });
  const before = store.counts.get;
  ahead.prefetch(blobs.slice(0, 8).map((b) => b.id)); // only about four fit
  for (const b of blobs.slice(0, 8)) assert.ok(Buffer.from(await ahead.load(b.id)).equals(b.data));
  const reads = store.counts.get - before;
  assert.ok(reads >= 2 && reads <= 6, `${reads} reads for 8 blobs, 4 prefetched`);
  // With drop (guesses), the oldest make room: nothing waits, and loads of dropped ones read again.
  ahead.prefetch(blobs.slice(8, 16).map((b) => b.id), true);
  for (const b of blobs.slice(8, 16)) assert.ok(Buffer.from(await ahead.load(b.id)).equals(b.data));
  ahead.clear();
});
