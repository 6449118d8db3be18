import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../store/memory.js';
import type { Store } from '../store/store.js';
import { LifeboatError } from '../util/errors.js';
import { checkRepository } from './check.js';
import { asId, Names } from './ids.js';
import { PASSWORD, backupFiles, chunk, fixtureWalkers, listing, loadEverything, names, newRepository, reopen } from './maintenance-testing.js';
import { loadPins, pinSnapshot, unpinSnapshot } from './pins.js';
import { prune } from './prune.js';
import { BlobType, Repository } from './repository.js';

/** Three snapshots: A (unique data), B and C sharing "common"; each backup makes its own packs. */
async function threeSnapshots(store: Store = new MemoryStore()) {
  const { repo } = await newRepository(store);
  const common = chunk(4000);
  const a = await backupFiles(repo, { '/data/a': [chunk(3000), chunk(3000)] }, '2024-01-01T00:00:00Z');
  const b = await backupFiles(repo, { '/data/common': [common], '/data/b': [chunk(9000)] }, '2024-01-02T00:00:00Z');
  const c = await backupFiles(repo, { '/data/common': [common], '/data/c': [chunk(1000)] }, '2024-01-03T00:00:00Z');
  return { store, repo, a, b, c };
}

async function clean(store: Store): Promise<void> {
  const repo = await reopen(store);
  const report = await checkRepository(repo, { readData: true, walkers: fixtureWalkers });
  assert.deepEqual(report.errors, []);
  assert.deepEqual(report.warnings, []);
}

async function errorCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof LifeboatError, String(e));
    assert.match(e.message, /Prune stopped without changing anything/);
    return e.code;
  }
  return 'ok';
}

test('prune deletes unused packs, repacks partly used ones, rewrites the index, and everything left still loads', async () => {
  const { store, repo, a, b } = await threeSnapshots();
  const packsBefore = await names(store, 'data/');
  assert.equal(packsBefore.length, 6, 'one data pack and one tree pack per backup');
  await store.delete(Names.snapshot(a));
  await store.delete(Names.snapshot(b));

  const dry = await prune(await reopen(store), { walkers: fixtureWalkers, dryRun: true, maxUnusedPercent: 0 });
  assert.equal(dry.packs.deleted, 3, "A's two packs and B's tree pack");
  assert.equal(dry.packs.repacked, 1, "B's data pack holds 'common', which C needs");
  assert.deepEqual(await names(store, 'data/'), packsBefore, 'a dry run changes nothing');

  const r = await prune(await reopen(store), { walkers: fixtureWalkers, maxUnusedPercent: 0 });
  assert.equal(r.packs.deleted, 3);
  assert.equal(r.packs.repacked, 1);
  assert.equal(r.packs.written, 1);
  assert.equal(r.blobsUsed, 4, "C's root, 'common', C's chunk and the copy of C's snapshot file");
  assert.ok(r.bytes.freed > 15_000, `freed ${r.bytes.freed}`);
  assert.equal(r.bytes.freed, r.bytes.deleted - r.bytes.written);
  assert.equal(r.indexFiles.deleted, 3);
  assert.equal(r.indexFiles.written, 1);
  assert.equal((await names(store, 'data/')).length, 3, "C's two packs and the new one");
  await clean(store);
  assert.equal(await loadEverything(await reopen(store)), 3);

  // Nothing left to do: a second prune changes nothing.
  const before = await listing(store);
  const again = await prune(await reopen(store), { walkers: fixtureWalkers, maxUnusedPercent: 0 });
  assert.equal(again.bytes.freed, 0);
  assert.deepEqual(await listing(store), before);
  void repo;
});

test('--max-unused tolerates partly used packs up to the limit', async () => {
  const { store, b } = await threeSnapshots();
  await store.delete(Names.snapshot(b)); // B's 9000-byte chunk becomes unused; 'common' stays used
  const lenient = await prune(await reopen(store), { walkers: fixtureWalkers, dryRun: true, maxUnusedPercent: 1000 });
  assert.equal(lenient.packs.repacked, 0);
  assert.ok(lenient.bytes.unusedRemaining > 9000);
  const strict = await prune(await reopen(store), { walkers: fixtureWalkers, dryRun: true, maxUnusedPercent: 5 });
  assert.equal(strict.packs.repacked, 1);
});

test('prune removes packs that no index mentions (left by an interrupted backup)', async () => {
  const { store, repo } = await threeSnapshots();
  // An interrupted writer: packs uploaded, no index written.
  await repo.saveBlob(BlobType.data, chunk(5000));
  const indexes = await names(store, 'index/');
  await repo.flush();
  for (const n of await names(store, 'index/')) if (!indexes.includes(n)) await store.delete(n);
  assert.equal((await names(store, 'data/')).length, 7);
  const r = await prune(await reopen(store), { walkers: fixtureWalkers });
  assert.equal(r.packs.unindexed, 1);
  assert.equal((await names(store, 'data/')).length, 6);
  await clean(store);
});

test('prune keeps one copy of a blob stored twice (two packs, two index files)', async () => {
  const { store } = await newRepository();
  const shared = chunk(3000);
  // Two writers that raced: each stored the same blob in its own pack and index file.
  const r1 = await reopen(store);
  const r2 = await reopen(store);
  await backupFiles(r1, { '/data/x': [shared] }, '2024-01-01T00:00:00Z');
  await backupFiles(r2, { '/data/x': [shared] }, '2024-01-01T00:00:01Z');
  assert.equal((await names(store, 'index/')).length, 2);
  const r = await prune(await reopen(store), { walkers: fixtureWalkers, maxUnusedPercent: 0 });
  assert.equal(r.packs.deleted, 1, 'the duplicate data pack goes (each tree pack holds the copy of its own snapshot file)');
  await clean(store);
  assert.equal(await loadEverything(await reopen(store)), 4);
});

test('prune refuses, changing nothing, when it cannot know what is needed', async () => {
  // A kind without a walker.
  const s1 = await threeSnapshots();
  const before1 = await listing(s1.store);
  assert.equal(await errorCode(prune(await reopen(s1.store), { walkers: {} })), 'corrupt');
  assert.deepEqual(await listing(s1.store), before1);

  // A walk that fails (the root tree's pack is gone).
  const s2 = await threeSnapshots();
  await s2.store.delete(Names.pack(s2.repo.index.get(Buffer.from((await s2.repo.loadSnapshot(s2.c)).root, 'hex'))!.packId));
  const before2 = await listing(s2.store);
  assert.equal(await errorCode(prune(await reopen(s2.store), { walkers: fixtureWalkers })), 'corrupt');
  assert.deepEqual(await listing(s2.store), before2);

  // A needed blob that no index lists (its index file was lost).
  const s3 = await threeSnapshots();
  await s3.store.delete((await names(s3.store, 'index/'))[0]!);
  const before3 = await listing(s3.store);
  assert.equal(await errorCode(prune(await reopen(s3.store), { walkers: fixtureWalkers })), 'corrupt');
  assert.deepEqual(await listing(s3.store), before3);

  // A damaged index file.
  const s4 = await threeSnapshots();
  const victim = (await names(s4.store, 'index/'))[1]!;
  const bytes = Buffer.from(await s4.store.get(victim));
  bytes[bytes.length - 3]! ^= 1;
  await s4.store.put(victim, bytes);
  const before4 = await listing(s4.store);
  assert.equal(await errorCode(prune(await Repository.open(s4.store, PASSWORD), { walkers: fixtureWalkers })), 'corrupt');
  assert.deepEqual(await listing(s4.store), before4);

  // A damaged snapshot.
  const s5 = await threeSnapshots();
  const sb = Buffer.from(await s5.store.get(Names.snapshot(s5.b)));
  sb[20]! ^= 1;
  await s5.store.put(Names.snapshot(s5.b), sb);
  const before5 = await listing(s5.store);
  assert.equal(await errorCode(prune(await reopen(s5.store), { walkers: fixtureWalkers })), 'corrupt');
  assert.deepEqual(await listing(s5.store), before5);
});

test('pins: pin with a note, re-pin replaces the note, unpin; prune drops pins of forgotten snapshots', async () => {
  const { store, repo, a, b } = await threeSnapshots();
  await pinSnapshot(repo, a, 'before the upgrade', new Date('2024-02-01T00:00:00Z'));
  await pinSnapshot(repo, b, 'first');
  await pinSnapshot(repo, b, 'second');
  const pins = await loadPins(repo);
  assert.deepEqual([...pins.keys()].sort(), [a, b].sort());
  assert.equal(pins.get(a)!.note, 'before the upgrade');
  assert.equal(pins.get(a)!.time, '2024-02-01T00:00:00.000Z');
  assert.equal(pins.get(b)!.note, 'second');
  assert.equal((await names(store, 'pins/')).length, 2, 're-pinning leaves one pin object');
  assert.equal(await unpinSnapshot(repo, b), true);
  assert.equal(await unpinSnapshot(repo, b), false);
  assert.deepEqual([...(await loadPins(repo)).keys()], [a]);
  await assert.rejects(pinSnapshot(repo, asId('f'.repeat(64))), /no snapshot/);

  // A pin object cannot be moved to another snapshot: it is bound to its name.
  const [pinName] = await names(store, 'pins/');
  await store.put(`pins/${b}/${pinName!.split('/')[2]!}`, await store.get(pinName!));
  const moved = (await loadPins(repo)).get(b)!;
  assert.equal(moved.damaged, true, 'an unreadable pin still pins (when in doubt, keep)');

  await store.delete(Names.snapshot(a));
  await store.delete(Names.snapshot(b));
  const r = await prune(await reopen(store), { walkers: fixtureWalkers });
  assert.equal(r.pinsRemoved, 2);
  assert.deepEqual(await names(store, 'pins/'), []);
});

