import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { RingReader, RingWriter } from './shared-ring.js';

test('a shared ring hands out space until the reader holds all of it, and frees in any order', () => {
  const reader = new RingReader(1024);
  const writer = new RingWriter(reader.handle);
  const a = writer.reserve(400)!;
  const b = writer.reserve(400)!;
  assert.equal(writer.reserve(400), undefined, 'full: 800 of 1024 held');
  assert.deepEqual([a.from, a.at, a.end, b.from, b.at, b.end], [0, 0, 400, 400, 400, 800]);
  a.view.fill(1);
  b.view.fill(2);
  assert.deepEqual([...new Set(reader.view(a.at, 400))], [1]);
  assert.deepEqual([...new Set(reader.view(b.at, 400))], [2]);

  // Freed out of order: nothing comes back until the first is freed too.
  reader.free(b.from, b.end);
  assert.equal(reader.used, 800);
  assert.equal(writer.reserve(400), undefined);
  reader.free(a.from, a.end);
  assert.equal(reader.used, 0);

  // 400 bytes do not fit between 800 and the end: the reservation starts again at the beginning,
  // and the skipped 224 bytes are part of it.
  const c = writer.reserve(400)!;
  assert.deepEqual([c.from, c.at, c.end], [800, 1024, 1424]);
  assert.equal(c.view.byteOffset, 0);
  assert.equal(reader.used, 624);
  // Only what was used is kept when nothing was reserved after it.
  const end = writer.shrink(c, 100);
  assert.equal(end, 1124);
  assert.equal(reader.used, 324);
  const d = writer.reserve(50)!;
  assert.equal(writer.shrink(c, 10), c.end, 'not after a later reservation');
  reader.free(c.from, end);
  reader.free(d.from, d.end);
  assert.equal(reader.used, 0);
  assert.equal(writer.reserve(1025), undefined, 'more than the ring holds');
});

test('positions wrap around 2^32 and the ring goes on', () => {
  const reader = new RingReader(256);
  const writer = new RingWriter(reader.handle);
  // Head and tail just below 2^32, as after 4 GiB of envelopes.
  const ctrl = new Int32Array(reader.handle.ctrl);
  Atomics.store(ctrl, 0, -1000);
  Atomics.store(ctrl, 1, -1000);
  let wrapped = false;
  for (let i = 0; i < 1000; i++) {
    const r = writer.reserve(20 + (i % 100))!; // at most half the ring: always fits once all is freed
    assert.ok(r, `reservation ${i}`);
    if (r.end < r.from) wrapped = true;
    r.view.fill(i & 0xff);
    assert.ok(reader.view(r.at, r.view.length).every((x) => x === (i & 0xff)));
    reader.free(r.from, writer.shrink(r, 1 + (i % 90)));
    assert.equal(reader.used, 0);
  }
  assert.ok(wrapped);
});

test('a worker thread writes into the ring while the main thread reads and frees', async () => {
  const reader = new RingReader(4096);
  const url = new URL('./shared-ring.js', import.meta.url).href;
  // The writer finds the ring full now and then (4 KiB, up to 700 bytes a message) and retries.
  const w = new Worker(
    `import(${JSON.stringify(url)}).then(({ RingWriter }) => {
      const { parentPort, workerData } = require('node:worker_threads');
      const writer = new RingWriter(workerData);
      let sent = 0;
      const go = () => {
        while (sent < 2000) {
          const n = 1 + ((sent * 37) % 700);
          const r = writer.reserve(n);
          if (!r) return setTimeout(go, 1);
          r.view.fill(sent & 0xff);
          parentPort.postMessage({ i: sent, from: r.from, at: r.at, end: r.end, n });
          sent++;
        }
      };
      go();
    });`,
    { eval: true, workerData: reader.handle },
  );
  let got = 0;
  let held: { from: number; end: number }[] = [];
  await new Promise<void>((resolve, reject) => {
    w.on('error', reject);
    w.on('message', (m: { i: number; from: number; at: number; end: number; n: number }) => {
      assert.equal(m.i, got++);
      assert.ok(reader.view(m.at, m.n).every((x) => x === (m.i & 0xff)), `message ${m.i} intact`);
      held.push({ from: m.from, end: m.end });
      // Freed three at a time, out of order.
      if (held.length === 3) {
        for (const k of [2, 0, 1]) reader.free(held[k]!.from, held[k]!.end);
        held = [];
      }
      if (got === 2000) resolve();
    });
  });
  await w.terminate();
  for (const h of held) reader.free(h.from, h.end);
  assert.equal(reader.used, 0);
});
