import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { BufferPool, forgetPages, keepAllocatorLean, release } from './memory.js';
import { MessageChannel } from 'node:worker_threads';
import { nativeAddon } from './native.js';

test('the allocator tuning applies here (Linux, glibc, the native addon built by npm ci)', () => {
  assert.equal(keepAllocatorLean(), true);
});

test('release frees a whole buffer at once and refuses anything that shares its memory', (t) => {
  if (!nativeAddon()) {
    assert.equal(release(Buffer.allocUnsafeSlow(1024)), false, 'without the addon nothing is released');
    t.skip('the native addon is not built here');
    return;
  }
  const big = Buffer.allocUnsafeSlow(64 * 1024 * 1024).fill(1);
  const before = process.memoryUsage().arrayBuffers;
  assert.equal(release(big), true);
  assert.equal(big.length, 0, 'every view of a released buffer is empty');
  // No collection ran: the bytes went back when release returned.
  assert.ok(before - process.memoryUsage().arrayBuffers >= 64 * 1024 * 1024, 'the 64 MiB were given back at once');

  const pooled = Buffer.from('a slice of the shared pool');
  assert.equal(release(pooled), false);
  const whole = Buffer.allocUnsafeSlow(4096).fill(7);
  assert.equal(release(whole.subarray(1)), false, 'a part of a buffer is never released');
  assert.equal(release(new Uint8Array(0)), false);
  assert.equal(pooled.toString(), 'a slice of the shared pool');
  assert.equal(whole.length, 4096);
  assert.equal(whole[4095], 7);
  assert.equal(Buffer.from('the pool still works').toString(), 'the pool still works');
});

test('for a restore the allocator reuses freed large blocks instead of faulting in fresh pages for each one', (t) => {
  if (!nativeAddon()) {
    t.skip('the native addon is not built here');
    return;
  }
  // In a child process: the policy is process-wide. 200 blocks of 1 MiB, each written and freed
  // before the next, as a restore worker does with a chunk; the page faults they cost are counted.
  const faults = (policy: string): number => {
    const script = `
      import { ${policy}, release } from ${JSON.stringify(new URL('./memory.js', import.meta.url).href)};
      if (!${policy}()) throw new Error('policy not applied');
      const before = process.resourceUsage().minorPageFault;
      for (let i = 0; i < 200; i++) { const b = Buffer.allocUnsafeSlow(1024 * 1024).fill(i); if (!release(b)) throw new Error('not released'); }
      console.log(process.resourceUsage().minorPageFault - before);`;
    return Number(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }).trim());
  };
  const lean = faults('keepAllocatorLean');
  const reuse = faults('reuseLargeBlocks');
  assert.ok(lean >= 200 * 200, `each freed block goes back to the system, so each new one faults its 256 pages in (${lean} faults)`);
  assert.ok(reuse < 2000, `the freed block is reused: its pages are faulted in once (${reuse} faults)`);
});

test('reusingLargeBlocks reuses freed large blocks while any such work runs, and leaves the allocator lean once the last one ends', (t) => {
  if (!nativeAddon()) {
    t.skip('the native addon is not built here');
    return;
  }
  // In a child process (the policy is process-wide): two overlapping works, then a third phase
  // after both; 100 blocks of 1 MiB each written and freed, the page faults counted per phase.
  const script = `
    import { keepAllocatorLean, release, reusingLargeBlocks } from ${JSON.stringify(new URL('./memory.js', import.meta.url).href)};
    if (!keepAllocatorLean()) throw new Error('policy not applied');
    const blocks = () => {
      const before = process.resourceUsage().minorPageFault;
      for (let i = 0; i < 100; i++) { const b = Buffer.allocUnsafeSlow(1024 * 1024).fill(i); if (!release(b)) throw new Error('not released'); }
      return process.resourceUsage().minorPageFault - before;
    };
    const out = {};
    let endInner;
    const inner = reusingLargeBlocks(() => new Promise((r) => (endInner = r)));
    await reusingLargeBlocks(async () => { out.nested = blocks(); });
    out.innerStillRunning = blocks();
    endInner();
    await inner;
    out.after = blocks();
    console.log(JSON.stringify(out));`;
  const f = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }).trim()) as { nested: number; innerStillRunning: number; after: number };
  assert.ok(f.nested < 2000, `blocks are reused while two works run (${f.nested} faults)`);
  assert.ok(f.innerStillRunning < 2000, `and while one of them still runs (${f.innerStillRunning} faults)`);
  assert.ok(f.after >= 100 * 200, `once none runs, each freed block goes back to the system again (${f.after} faults)`);
});

test('startFullCollection starts one of V8\'s own full collections (not a forced one) and touches no memory', (t) => {
  if (!nativeAddon()) {
    t.skip('the native addon is not built here');
    return;
  }
  // In a child process without --expose-gc: garbage promoted to the old generation, then dropped;
  // V8 would leave it until the old generation reached its limit.
  const script = `
    import { PerformanceObserver, constants } from 'node:perf_hooks';
    import { setTimeout as sleep } from 'node:timers/promises';
    import { startFullCollection } from ${JSON.stringify(new URL('./memory.js', import.meta.url).href)};
    const seen = [];
    new PerformanceObserver((l) => { for (const e of l.getEntries()) seen.push(e.detail); }).observe({ entryTypes: ['gc'] });
    globalThis.keep = [];
    for (let i = 0; i < 300000; i++) globalThis.keep.push({ i, s: String(i) });
    // Until V8's own collections (started by the allocation) are over: a marking in progress would take the call's place.
    for (let i = 0, n = -1; i < 40 && n !== seen.length; i++) { n = seen.length; await sleep(50); }
    globalThis.keep = undefined;
    const from = seen.length;
    const heap = process.memoryUsage().heapUsed;
    const rss = process.memoryUsage().rss;
    startFullCollection();
    const rssAfter = process.memoryUsage().rss;
    for (let i = 0; i < 20 && !seen.slice(from).some((d) => d.kind === constants.NODE_PERFORMANCE_GC_MAJOR); i++) await sleep(10);
    const major = seen.slice(from).filter((d) => d.kind === constants.NODE_PERFORMANCE_GC_MAJOR);
    console.log(JSON.stringify({ major: major.length, forced: major.filter((d) => d.flags & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED).length, freed: heap - process.memoryUsage().heapUsed, grew: rssAfter - rss }));`;
  const r = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as { major: number; forced: number; freed: number; grew: number };
  assert.ok(r.major >= 1, 'a full collection ran');
  assert.equal(r.forced, 0, 'V8 ran it as its own, not as a forced one (which discards optimised code)');
  assert.ok(r.freed > 10 * 1024 * 1024, `the old generation's garbage went (${r.freed} bytes)`);
  assert.ok(r.grew < 8 * 1024 * 1024, `the 128 MiB buffer that starts it is never touched (RSS +${r.grew} bytes)`);
});

test('a buffer pool hands out each buffer once at a time, takes back its own (also after a trip to another thread) and ignores others', async () => {
  const pool = new BufferPool(1024, 2);
  const a = pool.take(100);
  const b = pool.take(1024);
  assert.equal(a.length, 100);
  assert.equal(a.byteOffset, 0);
  assert.notEqual(a.buffer, b.buffer);
  assert.ok(pool.owns(a) && pool.owns(b));
  const big = pool.take(2000); // above the capacity: a buffer of its own, not the pool's
  assert.equal(big.length, 2000);
  assert.equal(pool.owns(big), false);
  pool.give(big);
  // A pooled buffer transferred away and back is a new ArrayBuffer object: still the pool's.
  const { port1, port2 } = new MessageChannel();
  const back = new Promise<Uint8Array>((res) => port2.once('message', (m: Uint8Array) => res(m)));
  port1.postMessage(a, [a.buffer as ArrayBuffer]);
  const returned = await back;
  port1.close();
  assert.equal(a.length, 0, 'the sender no longer holds it');
  pool.give(returned);
  const again = pool.take(50);
  assert.equal(again.buffer.byteLength, 1024);
  again.fill(7); // usable: the returned memory, not a detached buffer
  pool.give(again);
  pool.give(b);
  pool.give(pool.take(1)); // keeps at most two free buffers; more are freed
  assert.equal(pool.take(10).length, 10);
});

test('a pool that keeps only the start of its free buffers resident gives back the pages after it, and keeps the start', (t) => {
  if (!nativeAddon()) return t.skip('needs the native addon');
  const MiB = 1024 * 1024;
  const pool = new BufferPool(8 * MiB, 2, true, 2 * MiB);
  const a = pool.take(8 * MiB);
  a.fill(9);
  pool.give(a);
  const b = pool.take(8 * MiB);
  assert.equal(b.buffer, a.buffer, 'the same buffer, from the pool');
  assert.equal(b[0], 9, 'the kept start is untouched');
  assert.equal(b[2 * MiB - 4096 - 1], 9);
  // The whole pages from 2 MiB on were given back: they read as zeros (a partial page at either
  // end, where the buffer does not start on a page boundary, is kept).
  assert.equal(b[2 * MiB + 4096], 0);
  assert.equal(b.subarray(2 * MiB + 4096, 8 * MiB - 4096).some((x) => x !== 0), false);
  // A pool that keeps everything resident leaves its buffers as they were.
  const whole = new BufferPool(8 * MiB, 2, true);
  const c = whole.take(8 * MiB);
  c.fill(5);
  whole.give(c);
  assert.equal(whole.take(1).buffer, c.buffer);
  assert.equal(new Uint8Array(c.buffer)[8 * MiB - 1], 5);
  // forgetPages keeps the page that holds its first byte.
  const d = new Uint8Array(new SharedArrayBuffer(1 * MiB)).fill(1);
  assert.equal(forgetPages(d, 10), true);
  assert.equal(d[10], 1, 'the rest of the page that holds byte 10 is kept');
  assert.equal(d[MiB / 2], 0);
});
