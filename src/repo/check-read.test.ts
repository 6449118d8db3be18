/**
 * check --read-data on a folder store: packs are read into a few reused buffers (Store.getInto)
 * that travel to the worker threads and back. A buffer handed out again too soon, or bytes of one
 * pack seen as another's, would show up here as damage in a healthy pack or as damage not found.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalStore } from '../store/local.js';
import type { OperationOptions } from '../store/store.js';
import { CHECK_WORKERS, checkRepository, PACKS_AT_ONCE } from './check.js';
import { toHex } from './ids.js';
import { BlobType, PACK_TARGET_BYTES } from './pack.js';
import { Repository } from './repository.js';

/**
 * A folder store that tells fresh buffers from reused ones: it marks the unused end of each buffer
 * its packs are read into (a buffer's identity as an object does not survive the trip to a worker
 * and back, its memory does).
 */
class CountingStore extends LocalStore {
  static readonly MARK = Buffer.from('reused!!');
  fresh = 0;
  reused = 0;

  override getInto(name: string, take: (size: number) => Uint8Array, options?: OperationOptions): Promise<Uint8Array> {
    return super.getInto(name, (n) => {
      const b = take(n);
      if (b.buffer.byteLength < n + 8) return b;
      const end = Buffer.from(b.buffer, b.buffer.byteLength - 8, 8);
      if (end.equals(CountingStore.MARK)) this.reused++;
      else {
        this.fresh++;
        CountingStore.MARK.copy(end);
      }
      return b;
    }, options);
  }
}

test('check --read-data on a folder reads packs into a few reused buffers, finds a flipped byte in any one pack and only there, and checks a pack larger than a buffer', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lifeboat-check-read-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = new CountingStore(dir);
  const { repo } = await Repository.init(store, 'correct horse');
  await repo.loadIndex();
  for (let i = 0; i < 12; i++) {
    await repo.saveBlob(BlobType.data, randomBytes(40_000 + i));
    await repo.saveBlob(BlobType.data, Buffer.alloc(30_000, i)); // compressed
    await repo.flush(); // a pack each
  }
  await repo.saveBlob(BlobType.data, randomBytes(PACK_TARGET_BYTES + 1024 * 1024 + 1)); // a pack larger than a buffer
  const tree = await repo.saveBlob(BlobType.tree, Buffer.from('{"entries":[]}'));
  await repo.saveSnapshot({ version: 1, kind: 'files', time: '2026-01-01T00:00:00Z', host: 'h', user: 'u', paths: ['/x'], tags: [], root: toHex(tree.id) });

  const packs: string[] = [];
  for await (const o of store.list('data/')) packs.push(o.name);
  assert.ok(packs.length >= 14, `${packs.length} packs`);

  const ok = await checkRepository(repo, { readData: true });
  assert.deepEqual(ok.errors, []);
  assert.equal(ok.counts.packs, packs.length);
  assert.equal(store.fresh + store.reused, packs.length - 1, 'every pack but the large one read into a pooled buffer');
  assert.ok(store.fresh <= PACKS_AT_ONCE, `${store.fresh} fresh buffers for ${packs.length} packs`);

  for (const name of packs) {
    const original = await store.get(name);
    const bad = Buffer.from(original);
    bad[Math.floor(bad.length / 3)]! ^= 0x01;
    await store.put(name, bad);
    const r = await checkRepository(repo, { readData: true });
    assert.ok(r.errors.length > 0 && r.errors.every((e) => e.file === name), `a flip in ${name}: ${JSON.stringify(r.errors)}`);
    await store.put(name, original);
  }
});

/** A repository in `store` with `packs` packs of one random blob each and a snapshot. */
async function repositoryOfPacks(store: LocalStore, packs: number): Promise<Repository> {
  const { repo } = await Repository.init(store, 'correct horse');
  await repo.loadIndex();
  for (let i = 0; i < packs; i++) {
    await repo.saveBlob(BlobType.data, randomBytes(20_000 + i));
    await repo.flush(); // a pack each
  }
  const tree = await repo.saveBlob(BlobType.tree, Buffer.from('{"entries":[]}'));
  await repo.saveSnapshot({ version: 1, kind: 'files', time: '2026-01-01T00:00:00Z', host: 'h', user: 'u', paths: ['/x'], tags: [], root: toHex(tree.id) });
  return repo;
}

test('check --read-data holds the same few pack buffers and threads however many packs there are', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lifeboat-check-bound-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = new CountingStore(dir);
  const repo = await repositoryOfPacks(store, 40);

  // Threads of this process, where /proc tells them: the check's worker threads are the new ones.
  const threads = () => (existsSync('/proc/self/task') ? readdirSync('/proc/self/task').length : 0);
  const before = threads();
  let most = before;
  const r = await checkRepository(repo, { readData: true, onProgress: () => (most = Math.max(most, threads())) });
  assert.deepEqual(r.errors, []);
  assert.ok(r.counts.packs >= 41, `${r.counts.packs} packs`);
  assert.ok(store.fresh <= PACKS_AT_ONCE, `${store.fresh} pack buffers for ${r.counts.packs} packs`);
  assert.ok(most - before <= CHECK_WORKERS, `${most - before} threads started for ${r.counts.packs} packs`);
});

/** A folder store that holds back the first pack read until every other pack was read (or 5 s passed). */
class SlowFirstPackStore extends LocalStore {
  packs = 0;
  readWhileHeld = 0;
  private held: string | undefined;
  private release: (() => void) | undefined;

  override async getInto(name: string, take: (size: number) => Uint8Array, options?: OperationOptions): Promise<Uint8Array> {
    if (!name.startsWith('data/')) return super.getInto(name, take, options);
    if (this.held === undefined) {
      this.held = name;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 5000);
        this.release = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    } else if (name !== this.held) {
      const bytes = await super.getInto(name, take, options);
      if (++this.readWhileHeld === this.packs - 1) this.release?.();
      return bytes;
    }
    return super.getInto(name, take, options);
  }
}

test('check --read-data goes on with the other packs while one pack is slow to read, and still reports every pack', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lifeboat-check-slow-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = new SlowFirstPackStore(dir);
  const repo = await repositoryOfPacks(store, 10);
  for await (const o of store.list('data/')) if (o.name) store.packs++;

  const started = Date.now();
  const r = await checkRepository(repo, { readData: true });
  assert.deepEqual(r.errors, []);
  assert.equal(r.counts.packs, store.packs);
  // Waiting for the slow pack before starting the next ones would read one other pack, then sit
  // out the 5 s: every other pack was read while it was held.
  assert.equal(store.readWhileHeld, store.packs - 1, `${store.readWhileHeld} of the other ${store.packs - 1} packs read while the first was held`);
  assert.ok(Date.now() - started < 4000, `took ${Date.now() - started} ms`);
});
