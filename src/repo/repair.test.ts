/**
 * Deliberately broken repositories, built from one small repository, with the exact outcome of
 * check, repair index, repair snapshots and prune for each. Snapshot A holds /data/a (two chunks)
 * and /data/common; B holds /data/b and the same /data/common (stored once, in A's data pack).
 * Each backup wrote one data pack, one tree pack and one index file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Store } from '../store/store.js';
import { checkRepository, type CheckReport } from './check.js';
import { Names, type Hex } from './ids.js';
import { backupFiles, chunk, fixtureRepairer, fixtureWalkers, loadEverything, names, newRepository, PASSWORD, reopen } from './maintenance-testing.js';
import { prune } from './prune.js';
import { repairIndex, repairSnapshots } from './repair.js';
import { BlobType, Repository } from './repository.js';
import { encodeDelta } from './delta.js';

interface Fixture {
  store: Store;
  a: Hex;
  b: Hex;
  /** A's data pack (holds a1, a2, common), A's tree pack, B's data pack (holds b1), B's tree pack. */
  packs: { aData: string; aTree: string; bData: string; bTree: string };
  index: { a: string; b: string };
}

async function build(): Promise<Fixture> {
  const { store, repo } = await newRepository();
  const common = chunk(3000);
  const a = await backupFiles(repo, { '/data/a': [chunk(2000), chunk(2000)], '/data/common': [common] }, '2024-01-01T00:00:00Z');
  const [indexA] = await names(store, 'index/');
  const b = await backupFiles(repo, { '/data/b': [chunk(2500)], '/data/common': [common] }, '2024-01-02T00:00:00Z');
  const indexB = (await names(store, 'index/')).find((n) => n !== indexA)!;
  const rootPack = async (id: Hex) => Names.pack(repo.index.get(Buffer.from((await repo.loadSnapshot(id)).root, 'hex'))!.packId);
  const aTree = await rootPack(a);
  const bTree = await rootPack(b);
  const aData = Names.pack(repo.index.get(repo.blobId(common))!.packId);
  const bData = (await names(store, 'data/')).find((n) => n !== aData && n !== aTree && n !== bTree)!;
  return { store, a, b, packs: { aData, aTree, bData, bTree }, index: { a: indexA!, b: indexB } };
}

function sum(r: CheckReport): string[] {
  const short = (f: string) => f.replace(/[0-9a-f]{64}/g, (h) => h.slice(0, 8)).replace(/data\/[0-9a-f]{2}\//, 'data/');
  return [...r.errors.map((e) => `error ${short(e.file)}: ${short(e.message)}`), ...r.warnings.map((w) => `warning ${short(w.file)}: ${short(w.message)}`)];
}

async function check(store: Store, readData = false): Promise<CheckReport> {
  const repo = await Repository.open(store, PASSWORD);
  return checkRepository(repo, { readData, walkers: fixtureWalkers });
}

async function repair(store: Store) {
  return repairIndex(await Repository.open(store, PASSWORD));
}

const UNREF = 'pack not referenced by any index (left by an interrupted backup; "lifeboat repair index" adds it, "lifeboat prune" removes it)';

/** data/ab/abcdef… → data/abcdef12; snapshots/… → snapshots/abcdef12 (as sum() prints them). */
function short(name: string): string {
  return name.replace(/[0-9a-f]{64}/g, (h) => h.slice(0, 8)).replace(/data\/[0-9a-f]{2}\//, 'data/');
}

async function blobHex(store: Store, snapshot: Hex, path?: string): Promise<string> {
  const repo = await reopen(store);
  const snap = await repo.loadSnapshot(snapshot);
  if (!path) return snap.root.slice(0, 16);
  const tree = JSON.parse(Buffer.from(await repo.loadBlob(Buffer.from(snap.root, 'hex'))).toString('utf8')) as { files: { path: string; blobs: string[] }[] };
  return tree.files.find((f) => f.path === path)!.blobs[0]!.slice(0, 16);
}

test('a healthy fixture checks clean; repair index rebuilds the same index', async () => {
  const f = await build();
  assert.deepEqual(sum(await check(f.store, true)), []);
  const r = await repair(f.store);
  assert.deepEqual({ ...r, damagedPacks: r.damagedPacks.length }, { packs: 4, indexedPacks: 4, blobs: 8, damagedPacks: 0, indexFilesWritten: 1, indexFilesDeleted: 2 });
  assert.deepEqual(sum(await check(f.store, true)), []);
  assert.equal(await loadEverything(await reopen(f.store)), 7);
});

test('missing index file costs only time: the packs it named are read from their headers; check warns; repair index rewrites it', async () => {
  const f = await build();
  await f.store.delete(f.index.a);
  assert.equal(await loadEverything(await reopen(f.store)), 7, 'everything restorable before any repair');
  const report = await check(f.store);
  assert.deepEqual(sum(report), [`warning ${short(f.packs.aData)}: ${UNREF}`, `warning ${short(f.packs.aTree)}: ${UNREF}`]);
  assert.deepEqual(report.affected, []);
  const r = await repair(f.store);
  assert.equal(r.indexedPacks, 4);
  assert.equal(r.indexFilesDeleted, 1);
  assert.deepEqual(sum(await check(f.store, true)), []);
  assert.equal(await loadEverything(await reopen(f.store)), 7);
});

test('damaged index file: readers skip it with one warning and read the packs it named from their headers', async () => {
  const f = await build();
  const bytes = Buffer.from(await f.store.get(f.index.a));
  bytes[bytes.length >> 1]! ^= 0x40;
  await f.store.delete(f.index.a);
  await f.store.put(f.index.a, bytes);
  const repo = await Repository.open(f.store, PASSWORD);
  const warnings: string[] = [];
  repo.onWarning = (w) => warnings.push(w);
  await repo.loadIndex();
  await repo.loadIndex();
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /index file .* cannot be read.*repair index/);
  assert.equal(await loadEverything(repo), 7);
  const report = await check(f.store);
  assert.ok(report.errors.every((e) => e.file === f.index.a), JSON.stringify(report.errors));
  assert.ok(report.errors.length > 0, 'check names the damaged index file');
});

/** The id of /data/common's chunk, read from B's tree (B's index survives in these tests). */
async function commonHex(f: Fixture): Promise<string> {
  const repo = await Repository.open(f.store, PASSWORD);
  await repo.loadIndex(() => undefined);
  const snap = await repo.loadSnapshot(f.b);
  const tree = JSON.parse(Buffer.from(await repo.loadBlob(Buffer.from(snap.root, 'hex'))).toString('utf8')) as { files: { path: string; blobs: string[] }[] };
  return tree.files.find((x) => x.path === '/data/common')!.blobs[0]!;
}

test('missing pack: check names the snapshot and file; repair index drops it; repair snapshots keeps the rest and marks the file', async () => {
  const f = await build();
  const bChunk = await blobHex(f.store, f.b, '/data/b');
  await f.store.delete(f.packs.bData);
  const report = await check(f.store);
  assert.deepEqual(sum(report), [
    `error ${short(f.packs.bData)}: the pack is missing, but the index refers to it`,
    `error ${short(Names.snapshot(f.b))}: is affected by the damaged or missing pack ${short(f.packs.bData)}: /data/b`,
  ]);
  assert.deepEqual(report.affected, [{ file: f.packs.bData, snapshots: [{ id: f.b, places: ['/data/b'] }] }]);

  const r = await repair(f.store);
  assert.deepEqual([r.packs, r.indexedPacks, r.blobs, r.damagedPacks.length], [3, 3, 7, 0]);
  assert.deepEqual(sum(await check(f.store)), [`error ${short(Names.snapshot(f.b))}: needs data block ${bChunk}, which is missing`]);

  const fixed = await repairSnapshots(await reopen(f.store), { walkers: fixtureWalkers, repairers: { files: fixtureRepairer }, forget: true });
  assert.equal(fixed.length, 1);
  assert.deepEqual({ ...fixed[0], newId: undefined }, { id: f.b, kind: 'files', status: 'repaired', newId: undefined, badBlobs: 1, damaged: [{ where: '/data/b', message: '1 of 1 blocks lost' }], removed: true });
  const repo = await reopen(f.store);
  const repaired = await repo.loadSnapshot(fixed[0]!.newId!);
  assert.deepEqual(repaired.tags, ['repaired']);
  assert.deepEqual(repaired.meta?.['repaired'], { from: f.b, time: (repaired.meta?.['repaired'] as { time: string }).time, damaged: ['/data/b'] });
  assert.equal(repaired.time, '2024-01-02T00:00:00Z', 'the repaired snapshot keeps its time');
  assert.deepEqual(sum(await check(f.store, true)), []);
  assert.equal(await loadEverything(await reopen(f.store)), 6, "A's four blobs, B's new root and /data/common");
});

test('truncated pack: check names pack, snapshot and file; repair index leaves it out; repair snapshots and prune finish', async () => {
  const f = await build();
  const bytes = await f.store.get(f.packs.bData);
  await f.store.put(f.packs.bData, bytes.subarray(0, bytes.length - 100));
  const report = await check(f.store);
  assert.equal(report.errors.length, 2);
  assert.match(sum(report)[0]!, new RegExp(`^error ${short(f.packs.bData)}: the pack is truncated \\(\\d+ bytes, but blobs reach byte \\d+\\)$`));
  assert.equal(sum(report)[1], `error ${short(Names.snapshot(f.b))}: is affected by the damaged or missing pack ${short(f.packs.bData)}: /data/b`);

  const r = await repair(f.store);
  assert.deepEqual([r.packs, r.indexedPacks], [4, 3]);
  assert.deepEqual(r.damagedPacks.map((d) => [d.file, d.message]), [[f.packs.bData, `The pack ${f.packs.bData} is damaged: its trailer is not a Lifeboat pack trailer (truncated or overwritten).`]]);
  const bChunk = await blobHex(f.store, f.b, '/data/b');
  assert.deepEqual(sum(await check(f.store)), [`error ${short(Names.snapshot(f.b))}: needs data block ${bChunk}, which is missing`, `warning ${short(f.packs.bData)}: ${UNREF}`]);
  const fixed = await repairSnapshots(await reopen(f.store), { walkers: fixtureWalkers, repairers: { files: fixtureRepairer }, forget: true });
  assert.deepEqual(fixed.map((x) => [x.status, x.damaged.map((d) => d.where)]), [['repaired', ['/data/b']]]);
  const p = await prune(await reopen(f.store), { walkers: fixtureWalkers });
  assert.equal(p.packs.unindexed, 1, 'prune removes the truncated pack');
  assert.deepEqual(sum(await check(f.store, true)), []);
});

test('pack with its trailer cut: still restorable; repair index keeps every blob that verifies, so nothing becomes lost', async () => {
  const f = await build();
  const bytes = await f.store.get(f.packs.aData);
  const repo0 = await reopen(f.store);
  const aEnd = Math.max(...[...repo0.index.entries()].filter(([, l]) => Names.pack(l.packId) === f.packs.aData).map(([, l]) => l.offset + l.length));
  await f.store.put(f.packs.aData, bytes.subarray(0, aEnd)); // header and trailer gone, every blob intact
  assert.equal(await loadEverything(await reopen(f.store)), 7, 'restorable through the index');
  const r = await repair(f.store);
  assert.deepEqual(
    r.damagedPacks.map((d) => [d.file, d.keptBlobs]),
    [[f.packs.aData, 3]],
  );
  assert.deepEqual([r.indexedPacks, r.blobs], [4, 8]);
  assert.equal(await loadEverything(await reopen(f.store)), 7, 'repair lost nothing');
  assert.deepEqual((await check(f.store)).errors, []);
});

test('every pack cut before its header and every index file deleted: repair index finds the blobs by scanning the packs, deltas with their bases', async () => {
  const f = await build();
  // An image-like pair: a data chunk and a delta against it, in a pack of deltas of its own.
  const repo = await reopen(f.store);
  await repo.lock(false, 'test');
  const base = chunk(64 * 1024);
  const changed = Buffer.from(base);
  changed.fill(9, 8192, 12288);
  const baseId = (await repo.saveBlob(BlobType.data, base)).id;
  await repo.flush();
  const delta = encodeDelta(baseId, base, changed)!;
  const deltaId = repo.blobId(changed);
  await repo.saveBlob(BlobType.delta, delta, deltaId, { base: baseId, length: changed.length });
  await repo.flush();
  await repo.unlockAll();
  const before = await reopen(f.store);
  const ends = new Map<string, number>();
  for (const [, l] of before.index.entries()) ends.set(Names.pack(l.packId), Math.max(ends.get(Names.pack(l.packId)) ?? 0, l.offset + l.length));
  for (const [pack, end] of ends) await f.store.put(pack, (await f.store.get(pack)).subarray(0, end));
  for (const n of await names(f.store, 'index/')) await f.store.delete(n);
  const r = await repair(f.store);
  assert.equal(r.damagedPacks.length, ends.size);
  assert.ok(r.damagedPacks.every((d) => d.keptBlobs > 0 && d.salvagedBlobs === d.keptBlobs), JSON.stringify(r.damagedPacks));
  assert.equal(r.blobs, before.index.size);
  const after = await reopen(f.store);
  assert.equal(await loadEverything(after), 7, 'every snapshot restores');
  assert.deepEqual(Buffer.from(await after.loadBlob(deltaId)), changed, 'the delta is indexed with its base');
  assert.deepEqual(after.index.baseOf(deltaId), baseId);
});

test('flipped bit in a blob: structure checks clean; --read-data names pack, blob, snapshots and file; repair snapshots --read-data', async () => {
  const f = await build();
  const common = await commonHex(f);
  const repo0 = await reopen(f.store);
  const loc = repo0.index.get(Buffer.from(common, 'hex'))!;
  const bytes = Buffer.from(await f.store.get(f.packs.aData));
  bytes[loc.offset + 40]! ^= 0x10;
  await f.store.put(f.packs.aData, bytes);
  assert.deepEqual(sum(await check(f.store)), [], 'the structure is intact');
  const report = await check(f.store, true);
  assert.deepEqual(sum(report), [
    `error ${short(f.packs.aData)}: the file content does not match its name (damaged)`,
    `error ${short(f.packs.aData)}: A data block in pack ${short(f.packs.aData)} failed its integrity check: it is damaged or was modified. Run "lifeboat check --read-data" to see what is affected.`,
    `error ${short(Names.snapshot(f.a))}: is affected by the damaged or missing pack ${short(f.packs.aData)}: /data/common`,
    `error ${short(Names.snapshot(f.b))}: is affected by the damaged or missing pack ${short(f.packs.aData)}: /data/common`,
  ]);
  const r = await repair(f.store);
  assert.deepEqual([r.indexedPacks, r.blobs], [4, 8], 'the header is intact, so repair index keeps the pack');
  assert.equal((await check(f.store, true)).errors.length, 4, 'repair index cannot bring back data');
  const dry = await repairSnapshots(await reopen(f.store), { walkers: fixtureWalkers, repairers: { files: fixtureRepairer }, readData: true, dryRun: true });
  assert.deepEqual(dry.map((x) => [x.id, x.damaged.map((d) => d.where)]), [[f.a, ['/data/common']], [f.b, ['/data/common']]]);
  const fixed = await repairSnapshots(await reopen(f.store), { walkers: fixtureWalkers, repairers: { files: fixtureRepairer }, readData: true, forget: true });
  assert.deepEqual(fixed.map((x) => [x.status, x.damaged.map((d) => d.where)]), [['repaired', ['/data/common']], ['repaired', ['/data/common']]]);
  // The damaged blob is no longer needed; prune repacks A's pack without it.
  await prune(await reopen(f.store), { walkers: fixtureWalkers, maxUnusedPercent: 0 });
  assert.deepEqual(sum(await check(f.store, true)), []);
});

test('duplicate chunks (same blob in two packs and two index files): check is clean, repair index keeps both, prune keeps one', async () => {
  const { store } = await newRepository();
  const shared = chunk(3000);
  const w1 = await reopen(store);
  const w2 = await reopen(store);
  await backupFiles(w1, { '/data/x': [shared] }, '2024-01-01T00:00:00Z');
  await backupFiles(w2, { '/data/x': [shared] }, '2024-01-01T00:00:01Z');
  assert.deepEqual([(await names(store, 'data/')).length, (await names(store, 'index/')).length], [4, 2]);
  assert.deepEqual(sum(await check(store, true)), []);
  const r = await repair(store);
  assert.deepEqual([r.packs, r.indexedPacks, r.blobs, r.indexFilesWritten, r.indexFilesDeleted], [4, 4, 6, 1, 2]);
  assert.deepEqual(sum(await check(store, true)), []);
  const p = await prune(await reopen(store), { walkers: fixtureWalkers, maxUnusedPercent: 0 });
  assert.equal(p.packs.deleted, 1, 'the duplicate data pack (each tree pack holds its snapshot file copy)');
  assert.deepEqual(sum(await check(store, true)), []);
  assert.equal(await loadEverything(await reopen(store)), 4);
});

test('repair snapshots: a snapshot whose root is lost is unrecoverable (removed with forget); kinds without a repairer are reported', async () => {
  const f = await build();
  await f.store.delete(f.packs.aTree);
  await repair(f.store);
  const noRepairer = await repairSnapshots(await reopen(f.store), { walkers: fixtureWalkers, repairers: {} });
  assert.deepEqual(noRepairer.map((x) => [x.id, x.status]), [[f.a, 'unsupported']]);
  const res = await repairSnapshots(await reopen(f.store), { walkers: fixtureWalkers, repairers: { files: fixtureRepairer }, forget: true });
  assert.deepEqual(res.map((x) => [x.id, x.status, x.removed]), [[f.a, 'unrecoverable', true]]);
  await prune(await reopen(f.store), { walkers: fixtureWalkers });
  assert.deepEqual(sum(await check(f.store, true)), []);
  assert.equal(await loadEverything(await reopen(f.store)), 3);
});
