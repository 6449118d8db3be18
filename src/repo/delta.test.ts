import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { LifeboatError } from '../util/errors.js';
import { MemoryStore } from '../store/memory.js';
import type { Store } from '../store/store.js';
import { checkRepository } from './check.js';
import { applyDelta, changedBlocks, encodeDelta, parseDelta } from './delta.js';
import { Names, toHex, type Hex } from './ids.js';
import { decodeIndex, encodeIndex } from './index-file.js';
import { fixtureRepairer, fixtureWalkers, loadEverything, names, newRepository, packOf, reopen } from './maintenance-testing.js';
import { BlobType, PackWriter, parsePack, type PackEntry } from './pack.js';
import { prune } from './prune.js';
import { repairIndex, repairSnapshots } from './repair.js';
import type { Repository } from './repository.js';

const BS = 4096;

/** A copy of `base` with the given 4 KiB blocks overwritten by random bytes. */
function changed(base: Buffer, blocks: readonly number[]): Buffer {
  const c = Buffer.from(base);
  for (const j of blocks) randomBytes(Math.min(BS, c.length - j * BS)).copy(c, j * BS);
  return c;
}

function corruptCode(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof LifeboatError, String(e));
    return e.code;
  }
  return 'ok';
}

test('a delta carries only the changed blocks and rebuilds the chunk exactly', () => {
  const baseId = randomBytes(32);
  const base = randomBytes(64 * 1024);
  const chunk = changed(base, [0, 5, 15]);
  const enc = encodeDelta(baseId, base, chunk)!;
  assert.ok(enc, 'three of sixteen blocks changed: a delta');
  assert.equal(enc.length, 1 + 32 + 4 + 4 + 2 + 3 * BS, 'header, a 2-byte bitmap and three blocks');
  const d = parseDelta(enc, 'test');
  assert.deepEqual(d.base, baseId);
  assert.equal(d.blockSize, BS);
  assert.equal(d.length, chunk.length);
  assert.equal(changedBlocks(d), 3);
  assert.deepEqual(applyDelta(d, base, 'test'), chunk);
  assert.equal(base.equals(chunk), false, 'the base is not modified in place');

  // An unchanged chunk is an empty delta; more than half changed is no delta; so are other lengths.
  assert.equal(changedBlocks(parseDelta(encodeDelta(baseId, base, base)!, 't')), 0);
  assert.ok(encodeDelta(baseId, base, changed(base, [0, 1, 2, 3, 4, 5, 6, 7])), 'exactly half: still a delta');
  assert.equal(encodeDelta(baseId, base, changed(base, [0, 1, 2, 3, 4, 5, 6, 7, 8])), undefined, 'more than half: stored whole');
  assert.equal(encodeDelta(baseId, base, chunk.subarray(0, 60_000)), undefined);

  // A chunk whose length is not a multiple of the block size: the last block is shorter.
  const shortBase = randomBytes(10_000);
  const short = changed(shortBase, [2]);
  const sd = encodeDelta(baseId, shortBase, short)!;
  assert.equal(sd.length, 1 + 32 + 4 + 4 + 1 + (10_000 - 2 * BS));
  assert.deepEqual(applyDelta(parseDelta(sd, 't'), shortBase, 't'), short);
});

test('a damaged change list is refused: truncated, too long, stray bitmap bits, unknown version, wrong base length', () => {
  const baseId = randomBytes(32);
  const base = randomBytes(10_000);
  const enc = encodeDelta(baseId, base, changed(base, [1]))!;
  assert.equal(corruptCode(() => parseDelta(enc.subarray(0, enc.length - 1), 't')), 'corrupt');
  assert.equal(corruptCode(() => parseDelta(Buffer.concat([enc, Buffer.of(0)]), 't')), 'corrupt');
  assert.equal(corruptCode(() => parseDelta(enc.subarray(0, 20), 't')), 'corrupt');
  const stray = Buffer.from(enc);
  stray[41]! |= 0x80; // block 7 of a 3-block chunk
  assert.equal(corruptCode(() => parseDelta(stray, 't')), 'corrupt');
  const v9 = Buffer.from(enc);
  v9[0] = 9;
  assert.equal(corruptCode(() => parseDelta(v9, 't')), 'unsupported-version');
  const odd = Buffer.from(enc);
  odd.writeUInt32LE(3000, 33);
  assert.equal(corruptCode(() => parseDelta(odd, 't')), 'corrupt');
  assert.equal(corruptCode(() => applyDelta(parseDelta(enc, 't'), base.subarray(0, 9000), 't')), 'corrupt');
});

test('index files: version 2 carries delta bases; without deltas version 1 is written; version 1 is still read', () => {
  const entry = (type: 0 | 1 | 2, offset: number, base?: Buffer): PackEntry => ({ type, id: randomBytes(32), offset, length: 100 + offset, rawLength: 65536, ...(base ? { base } : {}) });
  const base = randomBytes(32);
  const packs = [
    { packId: randomBytes(32), entries: [entry(0, 0), entry(2, 200, base), entry(0, 500)] },
    { packId: randomBytes(32), entries: [entry(1, 0)] },
  ];
  const decode = (body: Buffer) => {
    const out: { packId: string; entries: PackEntry[] }[] = [];
    decodeIndex(body, 'x', (packId) => out.push({ packId: toHex(packId), entries: [] }), (type, id, offset, length, rawLength, b) => {
      out[out.length - 1]!.entries.push({ type, id: Buffer.from(id), offset, length, rawLength, ...(b ? { base: Buffer.from(b) } : {}) });
    });
    return out;
  };
  const v2 = encodeIndex(packs);
  assert.equal(v2[4], 2);
  assert.deepEqual(decode(v2), packs.map((p) => ({ packId: toHex(p.packId), entries: p.entries })));

  // The same index without the delta is version 1, byte for byte the old format: 45 bytes an entry.
  const plain = [{ packId: packs[0]!.packId, entries: [packs[0]!.entries[0]!, packs[0]!.entries[2]!] }];
  const v1 = encodeIndex(plain);
  assert.equal(v1[4], 1);
  assert.equal(v1.length, 9 + 36 + 2 * 45);
  assert.deepEqual(decode(v1), plain.map((p) => ({ packId: toHex(p.packId), entries: p.entries })));

  // A version 1 file cannot name a base, so a delta entry in one is damage; a delta needs a base.
  const bad = Buffer.from(v1);
  bad[9 + 36] = 2;
  assert.equal(corruptCode(() => decode(bad)), 'corrupt');
  assert.throws(() => encodeIndex([{ packId: randomBytes(32), entries: [entry(2, 0)] }]), RangeError);
  const v3 = Buffer.from(v1);
  v3[4] = 3;
  assert.equal(corruptCode(() => decode(v3)), 'unsupported-version');
});

test('pack headers: version 2 only for packs holding a delta, with its base; version 1 unchanged', async () => {
  const key = randomBytes(32);
  const base = randomBytes(32);
  const store = new MemoryStore();
  const finished = async (w: PackWriter) => store.get(Names.pack((await w.finish()).id));
  const w = new PackWriter(key, store.createWriter());
  w.add(BlobType.delta, randomBytes(32), [Buffer.from('x')], 65536, base);
  w.add(BlobType.delta, randomBytes(32), [Buffer.from('yy')], 4000, base);
  const entries = parsePack(key, await finished(w), 'p');
  assert.deepEqual(entries.map((e) => [e.type, e.rawLength, e.base && toHex(e.base)]), [[2, 65536, toHex(base)], [2, 4000, toHex(base)]]);
  assert.deepEqual(entries.map((e) => [e.offset, e.length]), w.entries.map((e) => [e.offset, e.length]));

  const w1 = new PackWriter(key, store.createWriter());
  w1.add(BlobType.data, randomBytes(32), [Buffer.from('z')], 1);
  const p1 = parsePack(key, await finished(w1), 'p1');
  assert.equal(p1[0]!.base, undefined);
  assert.throws(() => new PackWriter(key, store.createWriter()).add(BlobType.delta, randomBytes(32), [Buffer.from('x')], 1), RangeError);
  assert.throws(() => new PackWriter(key, store.createWriter()).add(BlobType.data, randomBytes(32), [Buffer.from('x')], 1, base), RangeError);
});

// ------------------------------------------------------------------ repository level

/** Saves a chunk as a delta against a stored full blob; returns its (chunk) id. */
async function saveDelta(repo: Repository, baseId: Uint8Array, base: Buffer, chunk: Buffer): Promise<Buffer> {
  const enc = encodeDelta(baseId, base, chunk);
  assert.ok(enc);
  const r = await repo.saveBlob(BlobType.delta, enc, repo.blobId(chunk), { base: baseId, length: chunk.length });
  assert.equal(r.added, true);
  return r.id;
}

/** A fixture "files" snapshot whose one file is the given blob ids (any type). */
async function snapshotOf(repo: Repository, files: Record<string, readonly Uint8Array[]>, time: string): Promise<Hex> {
  const tree = { files: Object.entries(files).map(([path, ids]) => ({ path, blobs: ids.map((i) => toHex(i)) })) };
  const root = await repo.saveBlob(BlobType.tree, Buffer.from(JSON.stringify(tree)));
  return repo.saveSnapshot({ version: 1, kind: 'files', time, host: 'h', user: 'u', paths: ['/data'], tags: [], root: toHex(root.id) });
}

async function clean(store: Store): Promise<void> {
  const report = await checkRepository(await reopen(store), { readData: true, walkers: fixtureWalkers });
  assert.deepEqual(report.errors, []);
  assert.deepEqual(report.warnings, []);
}

/** S1 needs the full chunk B; S2 needs the delta D (B with three blocks changed). */
async function baseAndDelta(store: Store = new MemoryStore()) {
  const { repo } = await newRepository(store);
  const base = randomBytes(64 * 1024);
  const baseId = (await repo.saveBlob(BlobType.data, base)).id;
  const s1 = await snapshotOf(repo, { '/data/disk': [baseId] }, '2024-01-01T00:00:00Z');
  const chunk = changed(base, [1, 2, 9]);
  const deltaId = await saveDelta(repo, baseId, base, chunk);
  const s2 = await snapshotOf(repo, { '/data/disk': [deltaId] }, '2024-01-02T00:00:00Z');
  return { store, repo, base, baseId, chunk, deltaId, s1, s2 };
}

test('a delta blob is indexed with its base, survives reopening and repair index, and loads as the whole chunk', async () => {
  const { store, baseId, chunk, deltaId } = await baseAndDelta();
  let repo = await reopen(store);
  const loc = repo.index.get(deltaId)!;
  assert.equal(loc.type, BlobType.delta);
  assert.equal(loc.rawLength, chunk.length, 'raw length is the rebuilt chunk length');
  assert.ok(loc.length < 4 * BS, `stored ${loc.length} bytes for three changed blocks`);
  assert.deepEqual(loc.base, baseId);
  assert.equal(repo.index.deltaCount, 1);
  assert.equal(repo.index.get(baseId)!.base, undefined);
  assert.deepEqual(Buffer.from(await repo.loadBlob(deltaId)), chunk);
  assert.equal(repo.hasBlob(repo.blobId(chunk)), true, 'the chunk deduplicates against the delta');
  await clean(store);

  // Rebuilt from the pack headers alone, the index still knows the base.
  for (const n of await names(store, 'index/')) await store.delete(n);
  const r = await repairIndex(await reopen(store));
  assert.equal(r.damagedPacks.length, 0);
  repo = await reopen(store);
  assert.deepEqual(repo.index.get(deltaId)!.base, baseId);
  assert.deepEqual(Buffer.from(await repo.loadBlob(deltaId)), chunk);
  await clean(store);
});

test('a delta that does not rebuild its id, or names another base than the index, is reported as damaged', async () => {
  const { repo } = await newRepository();
  const base = randomBytes(64 * 1024);
  const baseId = (await repo.saveBlob(BlobType.data, base)).id;
  const other = randomBytes(64 * 1024);
  const otherId = (await repo.saveBlob(BlobType.data, other)).id;
  // Changes computed against `other` but filed under `base`: rebuilding gives the wrong bytes.
  const chunk = changed(other, [3]);
  const enc = encodeDelta(baseId, other, chunk)!;
  const liar = repo.blobId(chunk);
  await repo.saveBlob(BlobType.delta, enc, liar, { base: baseId, length: chunk.length });
  // A delta whose change list names `other` while the index says `base`.
  const enc2 = encodeDelta(otherId, other, chunk)!;
  const swapped = repo.blobId(changed(other, [4]));
  await repo.saveBlob(BlobType.delta, enc2, swapped, { base: baseId, length: chunk.length });
  await repo.flush();
  await assert.rejects(repo.loadBlob(liar), (e: unknown) => e instanceof LifeboatError && e.code === 'corrupt' && /does not match its id once its changes are applied to its base/.test(e.message));
  await assert.rejects(repo.loadBlob(swapped), (e: unknown) => e instanceof LifeboatError && e.code === 'corrupt' && /another block than the index says/.test(e.message));
  const report = await checkRepository(repo, { readData: true, walkers: fixtureWalkers });
  assert.equal(report.errors.filter((e) => /does not match its id once|another block than the index says/.test(e.message)).length, 2, JSON.stringify(report.errors));
});

test('a lost base makes its delta lost: check names the snapshot, repair snapshots marks the file damaged', async () => {
  const { store, repo, baseId, deltaId, s2 } = await baseAndDelta();
  const basePack = packOf(repo, toHex(baseId));
  assert.notEqual(basePack, packOf(repo, toHex(deltaId)));
  await store.delete(basePack);

  const report = await checkRepository(await reopen(store), { readData: true, walkers: fixtureWalkers });
  assert.ok(report.errors.some((e) => e.file === basePack && /missing/.test(e.message)), JSON.stringify(report.errors));
  assert.ok(report.errors.some((e) => e.file === Names.snapshot(s2) && e.message.includes(basePack) && e.message.includes('/data/disk')), 'the snapshot needing the delta is named, with the file');
  assert.ok(report.errors.some((e) => e.file === packOf(repo, toHex(deltaId)) && /stored as changes to the data block .* which cannot be read/.test(e.message)), 'the delta itself is reported');
  const plain = await checkRepository(await reopen(store), { walkers: fixtureWalkers });
  assert.ok(plain.affected.some((a) => a.file === basePack && a.snapshots.some((s) => s.id === s2)), 'without --read-data too');

  const fixed = await repairSnapshots(await reopen(store), { walkers: fixtureWalkers, repairers: { files: fixtureRepairer }, forget: true });
  const r2 = fixed.find((r) => r.id === s2)!;
  assert.equal(r2.status, 'repaired');
  assert.deepEqual(r2.damaged.map((d) => d.where), ['/data/disk']);
});

test('prune: a kept delta keeps its base even when the snapshot that stored the base is gone; repacking copies the base id', async () => {
  for (const maxUnusedPercent of [100, 0]) {
    const store = new MemoryStore();
    const { repo } = await newRepository(store);
    const b1 = randomBytes(64 * 1024);
    const b1Id = (await repo.saveBlob(BlobType.data, b1)).id;
    const s1 = await snapshotOf(repo, { '/data/one': [b1Id] }, '2024-01-01T00:00:00Z');
    const b2 = randomBytes(64 * 1024);
    const b2Id = (await repo.saveBlob(BlobType.data, b2)).id;
    const s0 = await snapshotOf(repo, { '/data/two': [b2Id] }, '2024-01-01T12:00:00Z');
    // One pack holding two deltas: D1 (on B1) and D2 (on B2).
    const c1 = changed(b1, [0]);
    const c2 = changed(b2, [7]);
    const d1 = await saveDelta(repo, b1Id, b1, c1);
    const d2 = await saveDelta(repo, b2Id, b2, c2);
    const s2 = await snapshotOf(repo, { '/data/one': [d1], '/data/two': [d2] }, '2024-01-02T00:00:00Z');
    await snapshotOf(repo, { '/data/one': [d1] }, '2024-01-03T00:00:00Z');
    assert.equal(packOf(repo, toHex(d1)), packOf(repo, toHex(d2)));
    for (const s of [s0, s1, s2]) await store.delete(Names.snapshot(s));

    const r = await prune(await reopen(store), { walkers: fixtureWalkers, maxUnusedPercent });
    const after = await reopen(store);
    assert.ok(after.index.has(b1Id), 'the base of the needed delta stays');
    assert.deepEqual(Buffer.from(await after.loadBlob(d1)), c1);
    assert.deepEqual(after.index.get(d1)!.base, b1Id);
    if (maxUnusedPercent === 100) {
      assert.equal(r.packs.repacked, 0);
      // D2 is not needed but stays in the kept pack: its base must stay too.
      assert.ok(after.index.has(d2) && after.index.has(b2Id), "the unneeded delta kept in a kept pack keeps B2");
      assert.deepEqual(Buffer.from(await after.loadBlob(d2)), c2);
    } else {
      assert.ok(r.packs.repacked >= 1, 'the delta pack is repacked');
      assert.equal(after.index.has(d2), false);
      assert.equal(after.index.has(b2Id), false, 'nothing keeps B2 once D2 is gone');
    }
    assert.equal(await loadEverything(after), 2, 'the root and D1 (rebuilt from B1)');
    await clean(store);
  }
});
