/**
 * The tests every Store backend must pass, registered with node:test. A backend's own test file
 * calls `storeConformanceSuite('local folder', make)`; `make` returns a fresh, empty store and a
 * cleanup function, and is called once per test so tests cannot see each other's objects.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { isLifeboatError, type ErrorCode } from '../util/errors.js';
import type { Store, StoreStat } from './store.js';

export interface StoreFixture {
  store: Store;
  cleanup(): Promise<void>;
}

/** Asserts that `p` rejects with a LifeboatError of the given code and a non-empty message. */
export async function rejectsWithCode(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isLifeboatError(e), `expected a LifeboatError('${code}'), got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.ok(e.message.length > 10);
    return true;
  });
}

/** Every object under `prefix`, sorted by name. */
export async function listAll(store: Store, prefix: string): Promise<StoreStat[]> {
  const out: StoreStat[] = [];
  for await (const o of store.list(prefix)) out.push({ name: o.name, size: o.size });
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function bytes(n: number): Uint8Array {
  return new Uint8Array(randomBytes(n));
}

export function storeConformanceSuite(name: string, make: () => Promise<StoreFixture>): void {
  describe(`Store conformance: ${name}`, () => {
    let fx: StoreFixture | undefined;
    let s: Store;
    beforeEach(async () => {
      fx = await make();
      s = fx.store;
    });
    afterEach(async () => {
      await fx?.store.close();
      await fx?.cleanup();
      fx = undefined;
    });

    test('round trip of empty, small and nested objects', async () => {
      const objects: [string, Uint8Array][] = [
        ['config', bytes(300)],
        ['empty', new Uint8Array(0)],
        ['data/ab/ab0123456789', bytes(4096)],
        ['a/b/c/d/e.f-g_h', bytes(1)],
      ];
      for (const [n, d] of objects) await s.put(n, d);
      for (const [n, d] of objects) assert.deepEqual(new Uint8Array(await s.get(n)), d, n);
    });

    test('stored bytes do not change when the caller changes its buffers', async () => {
      const d = bytes(64);
      const original = new Uint8Array(d);
      await s.put('obj', d);
      d.fill(0);
      const got = await s.get('obj');
      assert.deepEqual(new Uint8Array(got), original);
      got.fill(7);
      assert.deepEqual(new Uint8Array(await s.get('obj')), original);
    });

    test('ranged get: start, middle, end, zero-length and open-ended', async () => {
      const d = bytes(1000);
      await s.put('obj', d);
      const range = async (offset: number, length?: number): Promise<Uint8Array> => new Uint8Array(await s.get('obj', offset, length));
      assert.deepEqual(await range(0, 10), d.subarray(0, 10));
      assert.deepEqual(await range(400, 123), d.subarray(400, 523));
      assert.deepEqual(await range(990, 10), d.subarray(990));
      assert.deepEqual(await range(0, 1000), d);
      assert.equal((await range(0, 0)).length, 0);
      assert.equal((await range(500, 0)).length, 0);
      assert.equal((await range(1000, 0)).length, 0);
      assert.deepEqual(await range(700), d.subarray(700));
      assert.equal((await range(1000)).length, 0);
    });

    test("a range past the end is 'corrupt', never a short answer", async () => {
      await s.put('obj', bytes(100));
      await rejectsWithCode(s.get('obj', 95, 10), 'corrupt');
      await rejectsWithCode(s.get('obj', 0, 101), 'corrupt');
      await rejectsWithCode(s.get('obj', 101, 0), 'corrupt');
      await rejectsWithCode(s.get('obj', 200), 'corrupt');
    });

    test("a missing object is 'not-found'", async () => {
      await rejectsWithCode(s.get('missing'), 'not-found');
      await rejectsWithCode(s.get('no/such/object', 0, 10), 'not-found');
      await s.put('data/x', bytes(10));
      await rejectsWithCode(s.get('data/y'), 'not-found');
    });

    test('stat of present and absent objects', async () => {
      await s.put('data/ab/obj', bytes(1234));
      await s.put('empty', new Uint8Array(0));
      assert.deepEqual(await s.stat('data/ab/obj'), { name: 'data/ab/obj', size: 1234 });
      assert.deepEqual(await s.stat('empty'), { name: 'empty', size: 0 });
      assert.equal(await s.stat('data/ab/other'), undefined);
      assert.equal(await s.stat('nowhere/obj'), undefined);
      assert.equal(await s.stat('data/ab'), undefined, 'a "folder" is not an object');
    });

    test('list by prefix returns each object once with its size, and nothing else', async () => {
      const objects: Record<string, number> = {
        config: 10,
        'data/ab/ab01': 100,
        'data/ab/ab02': 0,
        'data/cd/cd01': 300,
        'datax/1': 5,
        'index/01': 40,
        'index/02': 50,
        'snapshots/aa11': 7,
        'snapshots/ab22': 8,
      };
      for (const [n, size] of Object.entries(objects)) await s.put(n, bytes(size));
      const expect = (prefix: string): StoreStat[] =>
        Object.entries(objects)
          .filter(([n]) => n.startsWith(prefix))
          .map(([n, size]) => ({ name: n, size }))
          .sort((a, b) => (a.name < b.name ? -1 : 1));
      for (const prefix of ['', 'data/', 'data/ab/', 'data/cd/', 'data', 'index/', 'snapshots/', 'snapshots/a', 'snapshots/ab', 'config', 'c']) {
        assert.deepEqual(await listAll(s, prefix), expect(prefix), `list(${JSON.stringify(prefix)})`);
      }
    });

    test('list of an empty or missing prefix yields nothing', async () => {
      assert.deepEqual(await listAll(s, ''), []);
      assert.deepEqual(await listAll(s, 'snapshots/'), []);
      await s.put('data/ab/x', bytes(3));
      assert.deepEqual(await listAll(s, 'snapshots/'), []);
      assert.deepEqual(await listAll(s, 'data/zz/'), []);
      assert.deepEqual(await listAll(s, 'data/ab/x/'), [], 'an object is not a folder');
    });

    test('delete removes the object; deleting a missing object is fine', async () => {
      await s.put('locks/1', bytes(10));
      await s.put('locks/2', bytes(10));
      await s.delete('locks/1');
      await rejectsWithCode(s.get('locks/1'), 'not-found');
      assert.equal(await s.stat('locks/1'), undefined);
      assert.deepEqual((await listAll(s, 'locks/')).map((o) => o.name), ['locks/2']);
      await s.delete('locks/1');
      await s.delete('never/was');
    });

    test('putting the same bytes again is harmless; a sequential put replaces', async () => {
      const d = bytes(500);
      await s.put('obj', d);
      await s.put('obj', d);
      assert.deepEqual(new Uint8Array(await s.get('obj')), d);
      assert.deepEqual(await listAll(s, ''), [{ name: 'obj', size: 500 }]);
      const e = bytes(20);
      await s.put('obj', e);
      assert.deepEqual(new Uint8Array(await s.get('obj')), e);
    });

    test("ifAbsent creates a new object, and on an existing one fails with 'conflict' leaving it as it was", async () => {
      const first = bytes(100);
      await s.put('config', first, { ifAbsent: true });
      assert.deepEqual(new Uint8Array(await s.get('config')), first);
      await rejectsWithCode(s.put('config', bytes(50), { ifAbsent: true }), 'conflict');
      await rejectsWithCode(s.put('config', first, { ifAbsent: true }), 'conflict');
      assert.deepEqual(new Uint8Array(await s.get('config')), first);
      assert.deepEqual(await listAll(s, ''), [{ name: 'config', size: 100 }]);
      await s.delete('config');
      await s.put('config', bytes(7), { ifAbsent: true });
      assert.equal((await s.stat('config'))?.size, 7);
    });

    test('8 concurrent ifAbsent puts of one name: exactly one wins', async () => {
      const candidates = Array.from({ length: 8 }, (_, i) => bytes(1000 + i));
      const results = await Promise.allSettled(candidates.map((d) => s.put('locks/exclusive', d, { ifAbsent: true })));
      const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
      assert.equal(winners.length, 1, `winners: ${winners.join(', ')}`);
      for (const r of results) {
        if (r.status === 'rejected') assert.ok(isLifeboatError(r.reason) && r.reason.code === 'conflict', String(r.reason));
      }
      assert.deepEqual(new Uint8Array(await s.get('locks/exclusive')), candidates[winners[0]!]);
      assert.deepEqual(await listAll(s, ''), [{ name: 'locks/exclusive', size: 1000 + winners[0]! }]);
    });

    test('invalid names are rejected before any I/O', async () => {
      const bad = ['../x', '/abs', 'a//b', 'a/./b', 'a/../b', '.', '..', '', 'a/', 'with space', 'back\\slash', 'data/ab\0c', 'é'];
      for (const n of bad) {
        const invalid = { message: /invalid store object name/ };
        await assert.rejects(s.put(n, bytes(1)), invalid, `put ${JSON.stringify(n)}`);
        await assert.rejects(s.put(n, bytes(1), { ifAbsent: true }), invalid, `put ifAbsent ${JSON.stringify(n)}`);
        await assert.rejects(s.get(n), invalid, `get ${JSON.stringify(n)}`);
        await assert.rejects(s.stat(n), invalid, `stat ${JSON.stringify(n)}`);
        await assert.rejects(s.delete(n), invalid, `delete ${JSON.stringify(n)}`);
      }
      for (const p of ['../', '/', '/abs/', 'a//', 'a/../', './', 'with space/', 'back\\slash/']) {
        await assert.rejects(listAll(s, p), { message: /invalid store list prefix/ }, `list ${JSON.stringify(p)}`);
      }
      assert.deepEqual(await listAll(s, ''), [], 'nothing was stored');
    });

    test('a 9 MiB object round trips, whole and by range', async () => {
      const d = bytes(9 * 1024 * 1024);
      await s.put('data/big', d);
      assert.equal((await s.stat('data/big'))?.size, d.length);
      assert.ok(Buffer.from(await s.get('data/big')).equals(d));
      assert.ok(Buffer.from(await s.get('data/big', d.length - 5000, 5000)).equals(d.subarray(d.length - 5000)));
      // Large ranges at once, again and again (a server answers them from buffers it reuses).
      for (let round = 0; round < 3; round++) {
        const ranges = [0, 1, 2].map((i) => ({ offset: 1000 * round + i * 2 * 1024 * 1024 + i, length: 2 * 1024 * 1024 + 3 * i + 1 }));
        const got = await Promise.all(ranges.map((r) => s.get('data/big', r.offset, r.length)));
        ranges.forEach((r, i) => assert.ok(Buffer.from(got[i]!).equals(d.subarray(r.offset, r.offset + r.length)), `round ${round}, range ${i}`));
      }
    });

    test('a writer stores its pieces under the name given at commit, shows nothing before, and the caller may reuse each piece once written', async () => {
      const d = bytes(3 * 1024 * 1024 + 17);
      const w = s.createWriter();
      const piece = Buffer.alloc(1024 * 1024);
      for (let off = 0; off < d.length; off += piece.length) {
        const n = Math.min(piece.length, d.length - off);
        piece.set(d.subarray(off, off + n));
        await w.write(piece.subarray(0, n));
        piece.fill(0xee); // reused at once, as a pack writer reuses its stages
      }
      assert.deepEqual(await listAll(s, ''), [], 'nothing is visible before commit');
      await w.commit('data/ab/streamed');
      assert.ok(Buffer.from(await s.get('data/ab/streamed')).equals(d));
      assert.deepEqual((await listAll(s, '')).map((o) => o.name), ['data/ab/streamed']);

      const empty = s.createWriter();
      await empty.commit('empty');
      assert.equal((await s.stat('empty'))?.size, 0, 'a writer with no writes stores an empty object');

      const dropped = s.createWriter();
      await dropped.write(bytes(1000));
      await dropped.abort();
      const taken = s.createWriter();
      await taken.write(bytes(10));
      await rejectsWithCode(taken.commit('empty', { ifAbsent: true }), 'conflict');
      await taken.abort();
      assert.deepEqual((await listAll(s, '')).map((o) => o.name), ['data/ab/streamed', 'empty'], 'aborted and refused writers leave nothing');
      assert.equal((await s.stat('empty'))?.size, 0);
    });

    test('properties: a positive whole number of uploads in flight', () => {
      assert.ok(Number.isInteger(s.properties.uploadsInFlight) && s.properties.uploadsInFlight >= 1, String(s.properties.uploadsInFlight));
    });

    test('with an aborted signal every operation rejects with its reason and changes nothing', async () => {
      const stop = new AbortController();
      const reason = new Error('stopped by the test');
      stop.abort(reason);
      const signal = stop.signal;
      const isReason = (e: unknown): boolean => e === reason;
      const kept = bytes(100);
      await s.put('data/kept', kept);
      await assert.rejects(s.put('data/new', bytes(10), { signal }), isReason, 'put');
      await assert.rejects(s.put('data/new', bytes(10), { ifAbsent: true, signal }), isReason, 'put ifAbsent');
      await assert.rejects(s.get('data/kept', undefined, undefined, { signal }), isReason, 'get');
      await assert.rejects(s.get('data/kept', 10, 20, { signal }), isReason, 'ranged get');
      await assert.rejects(s.stat('data/kept', { signal }), isReason, 'stat');
      await assert.rejects(
        (async () => {
          for await (const _ of s.list('', { signal })) assert.fail('listed despite the abort');
        })(),
        isReason,
        'list',
      );
      await assert.rejects(s.delete('data/kept', { signal }), isReason, 'delete');
      const stopped = s.createWriter({ signal });
      await assert.rejects(stopped.write(bytes(10)), isReason, 'writer write');
      await stopped.abort();
      const late = s.createWriter();
      await late.write(bytes(10));
      await assert.rejects(late.commit('data/new', { signal }), isReason, 'writer commit');
      assert.deepEqual(await listAll(s, ''), [{ name: 'data/kept', size: 100 }]);
      assert.deepEqual(new Uint8Array(await s.get('data/kept')), kept);
    });

    test('a put aborted while it runs stores the whole object or nothing', async () => {
      const reason = new Error('stopped by the test');
      for (const turns of [0, 1, 3, 10]) {
        const stop = new AbortController();
        const d = bytes(2 * 1024 * 1024);
        const name = `data/aborted${turns}`;
        const put = s.put(name, d, { signal: stop.signal });
        for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
        stop.abort(reason);
        const [outcome] = await Promise.allSettled([put]);
        if (outcome.status === 'fulfilled') assert.ok(Buffer.from(await s.get(name)).equals(d), `${name} is whole`);
        else {
          assert.equal(outcome.reason, reason);
          assert.equal(await s.stat(name), undefined, `${name} is absent`);
        }
      }
      for (const o of await listAll(s, '')) assert.equal(o.size, 2 * 1024 * 1024, `${o.name} is whole`);
    });

    test('500 objects are all listed', async () => {
      const names = Array.from({ length: 500 }, (_, i) => `data/${(i % 16).toString(16).padStart(2, '0')}/${i.toString(16).padStart(8, '0')}`);
      for (let i = 0; i < names.length; i += 50) await Promise.all(names.slice(i, i + 50).map((n, j) => s.put(n, bytes((i + j) % 97))));
      const listed = await listAll(s, 'data/');
      assert.equal(listed.length, 500);
      assert.deepEqual(listed.map((o) => o.name), [...names].sort());
      for (const o of listed) assert.equal(o.size, parseInt(o.name.slice(-8), 16) % 97);
    });
  });
}
