import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { listAll, rejectsWithCode, storeConformanceSuite } from './conformance.js';
import { FaultStore } from './fault.js';
import { LocalStore } from './local.js';
import { MemoryStore } from './memory.js';
import { RetryStore, type RetryOptions } from './retry.js';
import { StoreError, isTransient, type PutOptions, type StoreStat, type OperationOptions } from './store.js';

storeConformanceSuite('retry around memory', async () => ({ store: new RetryStore(new MemoryStore()), cleanup: async () => {} }));
storeConformanceSuite('retry around a local folder', async () => {
  const dir = await fs.mkdtemp(join(tmpdir(), 'lifeboat-retry-'));
  return { store: new RetryStore(new LocalStore(join(dir, 'repo'))), cleanup: () => fs.rm(dir, { recursive: true, force: true }) };
});

const data = (n: number, fill = 1): Uint8Array => new Uint8Array(n).fill(fill);

/** Retries with waits short enough for a test, recording each one. */
function quick(extra: RetryOptions = {}): { options: RetryOptions; delays: number[] } {
  const delays: number[] = [];
  return { delays, options: { baseDelayMs: 2, random: () => 0, onRetry: (r) => delays.push(r.delayMs), ...extra } };
}

test('RetryStore: a transient failure is retried until the call succeeds, with growing waits', async () => {
  const inner = new MemoryStore();
  const fault = new FaultStore(inner, { transientFailures: 3 });
  const { options, delays } = quick();
  const s = new RetryStore(fault, options);
  await s.put('data/a', data(10));
  assert.equal(fault.counts.put, 4, 'three failures, then the put that landed');
  assert.deepEqual(delays, [1, 2, 4], 'equal jitter with random 0: half of 2, 4, 8 ms');
  fault.transientFailures = 2;
  assert.deepEqual(new Uint8Array(await s.get('data/a')), data(10));
  assert.equal(fault.counts.get, 3);
  fault.transientFailures = 1;
  assert.deepEqual(await listAll(s, ''), [{ name: 'data/a', size: 10 }]);
  fault.transientFailures = 1;
  assert.equal((await s.stat('data/a'))?.size, 10);
  fault.transientFailures = 1;
  await s.delete('data/a');
  assert.equal(await inner.stat('data/a'), undefined);
});

test('RetryStore: waits double up to maxDelayMs, and jitter spreads them between half and all of it', async () => {
  const { options, delays } = quick({ baseDelayMs: 4, maxDelayMs: 16, maxAttempts: 6 });
  await assert.rejects(new RetryStore(new FaultStore(new MemoryStore(), { transientFailures: 10 }), options).stat('x'));
  assert.deepEqual(delays, [2, 4, 8, 8, 8]);
  const high = quick({ baseDelayMs: 4, maxDelayMs: 16, maxAttempts: 6, random: () => 0.999 });
  await assert.rejects(new RetryStore(new FaultStore(new MemoryStore(), { transientFailures: 10 }), high.options).stat('x'));
  assert.deepEqual(high.delays, [4, 8, 16, 16, 16]);
});

test('RetryStore: a permanent failure is passed on at once, without a retry', async () => {
  const inner = new MemoryStore();
  await inner.put('data/bad', data(10));
  const fault = new FaultStore(inner, { failGets: ['data/bad'] });
  const { options, delays } = quick();
  const s = new RetryStore(fault, options);
  await rejectsWithCode(s.get('data/bad'), 'io');
  assert.equal(fault.counts.get, 1);
  await rejectsWithCode(s.get('data/missing'), 'not-found');
  assert.equal(fault.counts.get, 2);
  await s.put('config', data(1), { ifAbsent: true });
  await rejectsWithCode(s.put('config', data(1), { ifAbsent: true }), 'conflict');
  assert.deepEqual(delays, []);
});

test('RetryStore: gives up after maxAttempts with the last failure, saying so, no longer transient', async () => {
  const fault = new FaultStore(new MemoryStore(), { transientFailures: 100 });
  const s = new RetryStore(fault, quick({ maxAttempts: 4 }).options);
  await assert.rejects(s.get('data/a'), (e: unknown) => {
    assert.ok(e instanceof StoreError);
    assert.equal(e.code, 'io');
    assert.equal(isTransient(e), false, 'an outer retry must not multiply the attempts');
    assert.match(e.message, /connection .* was lost.*tried 4 times/);
    return true;
  });
  assert.equal(fault.counts.get, 4);
});

test('RetryStore: an abort during a wait rejects at once with its reason, and no further attempt is made', async () => {
  const fault = new FaultStore(new MemoryStore(), { transientFailures: 100 });
  const stop = new AbortController();
  const reason = new Error('stopped by the test');
  const s = new RetryStore(fault, { baseDelayMs: 60_000, onRetry: () => setTimeout(() => stop.abort(reason), 20) });
  const started = performance.now();
  await assert.rejects(s.get('data/a', undefined, undefined, { signal: stop.signal }), (e) => e === reason);
  assert.ok(performance.now() - started < 2000, `took ${Math.round(performance.now() - started)} ms`);
  assert.equal(fault.counts.get, 1);
  await assert.rejects(s.put('data/a', data(1), { signal: stop.signal }), (e) => e === reason);
  assert.equal(fault.counts.put, 0, 'an aborted call is not even tried');
});

/** A store whose first create-only put lands but loses its answer, as over a dropped connection. */
class LostAnswerStore extends MemoryStore {
  lost = 0;
  override async put(name: string, d: Uint8Array, options: PutOptions = {}): Promise<void> {
    await super.put(name, d, options);
    if (this.lost++ === 0) throw new StoreError('io', `The answer to saving ${name} was lost (test).`, true);
  }
}

test("RetryStore: a create-only put whose lost attempt landed succeeds; someone else's object still conflicts", async () => {
  const inner = new LostAnswerStore();
  const s = new RetryStore(inner, quick().options);
  await s.put('locks/mine', data(20, 7), { ifAbsent: true });
  assert.deepEqual(new Uint8Array(await inner.get('locks/mine')), data(20, 7));

  const other = new LostAnswerStore();
  other.lost = 1; // the other process's put answers normally
  await other.put('locks/theirs', data(20, 8), { ifAbsent: true });
  other.lost = 0;
  await assert.rejects(new RetryStore(other, quick().options).put('locks/theirs', data(20, 9), { ifAbsent: true }), (e: unknown) => e instanceof Error && 'code' in e && e.code === 'conflict');
  assert.deepEqual(new Uint8Array(await other.get('locks/theirs')), data(20, 8));
});

/** A store whose first listing fails after two names. */
class BrokenListStore extends MemoryStore {
  failed = false;
  override async *list(prefix: string, options?: OperationOptions): AsyncIterable<StoreStat> {
    let n = 0;
    for await (const o of super.list(prefix, options)) {
      if (n++ === 2 && !this.failed) {
        this.failed = true;
        throw new StoreError('io', 'The listing was cut off (test).', true);
      }
      yield o;
    }
  }
}

test('RetryStore: a listing cut off midway starts over and reports each name once', async () => {
  const inner = new BrokenListStore();
  for (let i = 0; i < 6; i++) await inner.put(`snapshots/${i}`, data(i));
  const names = (await listAll(new RetryStore(inner, quick().options), 'snapshots/')).map((o) => o.name);
  assert.ok(inner.failed);
  assert.deepEqual(names, ['snapshots/0', 'snapshots/1', 'snapshots/2', 'snapshots/3', 'snapshots/4', 'snapshots/5']);
});

test('RetryStore: a writer collects its pieces and puts them with retries at commit', async () => {
  const inner = new MemoryStore();
  const fault = new FaultStore(inner, { transientFailures: 0 });
  const s = new RetryStore(fault, quick().options);
  const w = s.createWriter();
  await w.write(data(5, 1));
  await w.write(data(5, 2));
  fault.transientFailures = 2;
  await w.commit('data/pack');
  assert.deepEqual(new Uint8Array(await inner.get('data/pack')), new Uint8Array([...data(5, 1), ...data(5, 2)]));
  assert.equal(fault.counts.put, 3);
});
