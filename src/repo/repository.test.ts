import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { FaultStore } from '../store/fault.js';
import { MemoryStore } from '../store/memory.js';
import { LifeboatError } from '../util/errors.js';
import { BlobType, Repository } from './repository.js';
import { checkRepository } from './check.js';
import { normalizeRecoveryKey } from './keys.js';
import { asId, Names, toHex, type Hex } from './ids.js';
import { repairConfig } from './repair.js';
import { encodeSignedJson } from './signed-json.js';
import type { Snapshot } from './snapshot.js';

process.env['LIFEBOAT_INSECURE_FAST_KDF'] = '1';

function snap(root: Hex, time: string): Snapshot {
  return { version: 1, kind: 'files', time, host: 'h', user: 'u', paths: ['/x'], tags: [], root };
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof LifeboatError, `expected LifeboatError, got ${String(e)}`);
    return e.code;
  }
  return 'ok';
}

async function fresh() {
  const store = new MemoryStore();
  const { repo, recoveryKey } = await Repository.init(store, 'correct horse');
  await repo.loadIndex();
  return { store, repo, recoveryKey };
}

test('init, open with password and with the recovery key typed loosely; wrong password is refused', async () => {
  const { store, repo, recoveryKey } = await fresh();
  assert.match(recoveryKey, /^([0-9A-Z]{5}-){7}[0-9A-Z]{5}$/);
  const again = await Repository.open(store, 'correct horse');
  assert.equal(again.config.id, repo.config.id);
  const loose = recoveryKey.toLowerCase().replace(/-/g, ' ');
  assert.equal(normalizeRecoveryKey(loose), recoveryKey);
  const viaRecovery = await Repository.open(store, loose);
  assert.equal(viaRecovery.keySlot.kind, 'recovery');
  assert.equal(await code(Repository.open(store, 'wrong')), 'wrong-password');
  assert.equal(await code(Repository.init(store, 'x')), 'repository-exists');
});

test('a store without config is not a repository; a newer version is refused before any password', async () => {
  const store = new MemoryStore();
  assert.equal(await code(Repository.open(store, 'x')), 'no-repository');
  const { store: s2 } = await fresh();
  const cfg = Buffer.from(await s2.get(Names.config)).toString('utf8').replace('"version":1', '"version":2');
  for (const n of [Names.config, Names.configCopy]) await s2.put(n, Buffer.from(cfg));
  assert.equal(await code(Repository.open(s2, 'anything')), 'unsupported-version');
});

test('the config is kept twice: one missing or damaged config object costs one warning, and repair config writes it again', async () => {
  const { store, repo } = await fresh();
  const good = Buffer.from(await store.get(Names.config));
  assert.ok(good.equals(await store.get(Names.configCopy)), 'init writes the same bytes twice');
  const openWarned = async () => {
    const warnings: string[] = [];
    const r = await Repository.open(store, 'correct horse', { onWarning: (m) => warnings.push(m) });
    return { r, warnings };
  };
  // A flipped byte that still parses (the MAC tells), then a deleted config: the copy opens it.
  await store.put(Names.config, Buffer.from(good.toString('utf8').replace('"version":1', '"version":3')));
  assert.equal((await Repository.readConfig(store)).config.version, 1, 'no version error before the password');
  let { r, warnings } = await openWarned();
  assert.equal(r.config.id, repo.config.id);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /config file is damaged; Lifeboat uses its copy \(config\.copy\)/);
  await store.delete(Names.config);
  ({ r, warnings } = await openWarned());
  assert.match(warnings[0]!, /config file is missing/);
  await r.loadIndex();
  const report = await checkRepository(r);
  assert.ok(report.errors.some((e) => e.file === Names.config && /is missing/.test(e.message)), JSON.stringify(report));
  assert.deepEqual((await repairConfig(r, { dryRun: true })).written, [Names.config]);
  assert.equal(await store.stat(Names.config), undefined, 'a dry run writes nothing');
  assert.deepEqual((await repairConfig(r)).written, [Names.config]);
  assert.ok(good.equals(await store.get(Names.config)));
  ({ warnings } = await openWarned());
  assert.deepEqual(warnings, []);
  // A damaged copy: the config opens silently; check names the copy and repair writes it again.
  await store.put(Names.configCopy, good.subarray(0, 40));
  ({ r, warnings } = await openWarned());
  assert.deepEqual(warnings, []);
  await r.loadIndex();
  assert.ok((await checkRepository(r)).errors.some((e) => e.file === Names.configCopy));
  assert.deepEqual((await repairConfig(r)).written, [Names.configCopy]);
  assert.ok(good.equals(await store.get(Names.configCopy)));
  assert.deepEqual((await checkRepository(r)).errors, []);
  // An older repository without a copy opens as before; check warns, repair config writes the copy.
  await store.delete(Names.configCopy);
  ({ r, warnings } = await openWarned());
  assert.deepEqual(warnings, []);
  await r.loadIndex();
  const old = await checkRepository(r);
  assert.deepEqual(old.errors, []);
  assert.ok(old.warnings.some((w) => w.file === Names.configCopy));
  assert.deepEqual((await repairConfig(r)).written, [Names.configCopy]);
  // An authentic config of a newer version is refused even beside an older copy (no damage there).
  const newer = encodeSignedJson({ ...repo.config, version: 2 }, repo.keys.macKey);
  await store.put(Names.config, newer);
  assert.equal(await code(Repository.open(store, 'correct horse')), 'unsupported-version');
});

test('blobs round-trip, deduplicate, and compress only when it helps', async () => {
  const { store, repo } = await fresh();
  const text = Buffer.from('hello lifeboat '.repeat(10000));
  const noise = randomBytes(300_000);
  const a = await repo.saveBlob(BlobType.data, text);
  const b = await repo.saveBlob(BlobType.data, noise);
  const a2 = await repo.saveBlob(BlobType.data, Buffer.from(text));
  assert.equal(a.added, true);
  assert.equal(b.added, true);
  assert.equal(a2.added, false);
  assert.deepEqual(a2.id, a.id);
  await repo.flush();
  assert.deepEqual(Buffer.from(await repo.loadBlob(a.id)), text);
  assert.deepEqual(Buffer.from(await repo.loadBlob(b.id)), noise);
  const locA = repo.index.get(a.id)!;
  const locB = repo.index.get(b.id)!;
  assert.ok(locA.length < text.length / 10, 'text is compressed');
  assert.ok(locB.length >= noise.length, 'random data is stored raw');
  // A second process sees the data through the index files.
  const other = await Repository.open(store, 'correct horse');
  await other.loadIndex();
  assert.equal(other.index.size, 2);
  assert.deepEqual(Buffer.from(await other.loadBlob(b.id)), noise);
});

test('snapshots: save, list in time order, find by prefix and latest', async () => {
  const { repo } = await fresh();
  const t = await repo.saveBlob(BlobType.tree, Buffer.from('{}'));
  const id1 = await repo.saveSnapshot(snap(toHex(t.id), '2026-01-01T00:00:00Z'));
  const id2 = await repo.saveSnapshot(snap(toHex(t.id), '2026-02-01T00:00:00Z'));
  const list = await repo.listSnapshots();
  assert.deepEqual(list.map((s) => s.id), [id1, id2]);
  assert.equal((await repo.findSnapshot('latest')).id, id2);
  assert.equal((await repo.findSnapshot(id1.slice(0, 6))).id, id1);
  assert.equal(await code(repo.findSnapshot('zz')), 'invalid-argument');
});

test('check --read-data passes on a healthy repository and names any file with one changed byte', async () => {
  const { store, repo } = await fresh();
  for (let i = 0; i < 5; i++) await repo.saveBlob(BlobType.data, randomBytes(50_000 + i));
  const t = await repo.saveBlob(BlobType.tree, Buffer.from('{"entries":[]}'));
  await repo.saveSnapshot(snap(toHex(t.id), '2026-01-01T00:00:00Z'));
  const ok = await checkRepository(repo, { readData: true });
  assert.deepEqual(ok.errors, []);
  assert.equal(ok.counts.blobs, 7, 'five data blobs, the tree, and the copy of the snapshot file');

  const names: string[] = [];
  for (const prefix of ['keys/', 'data/', 'index/', 'snapshots/']) for await (const o of store.list(prefix)) names.push(o.name);
  assert.ok(names.length >= 5);
  for (const name of names) {
    const original = await store.get(name);
    for (const pos of [0, Math.floor(original.length / 2), original.length - 1]) {
      const bad = Buffer.from(original);
      bad[pos]! ^= 0x01;
      await store.put(name, bad);
      const r = await checkRepository(repo, { readData: true });
      assert.ok(r.errors.some((e) => e.file === name), `flip at ${pos} of ${name} not reported: ${JSON.stringify(r.errors)}`);
      await store.put(name, original);
    }
  }
  // config and its copy: every byte is covered by their signature, checked at open and by check;
  // with both damaged the repository does not open.
  for (const name of [Names.config, Names.configCopy]) {
    const bad = Buffer.from(await store.get(name));
    bad[10]! ^= 0x01;
    await store.put(name, bad);
    const r = await checkRepository(repo, { readData: true });
    assert.ok(r.errors.some((e) => e.file === name), `flip in ${name} not reported: ${JSON.stringify(r.errors)}`);
  }
  assert.notEqual(await code(Repository.open(store, 'correct horse')), 'ok');
});

test('check reports a missing pack and a truncated pack', async () => {
  const { store, repo } = await fresh();
  await repo.saveBlob(BlobType.data, randomBytes(10_000));
  await repo.flush();
  const packs: string[] = [];
  for await (const o of store.list('data/')) packs.push(o.name);
  const pack = packs[0]!;
  const bytes = await store.get(pack);
  await store.put(pack, bytes.subarray(0, bytes.length - 100));
  let r = await checkRepository(repo, { readData: false });
  assert.ok(r.errors.some((e) => e.file === pack && /truncated/.test(e.message)));
  await store.delete(pack);
  r = await checkRepository(repo);
  assert.ok(r.errors.some((e) => e.file === pack && /missing/.test(e.message)));
});

test('locks: shared locks coexist, exclusive conflicts, stale locks are cleared', async () => {
  const { store, repo } = await fresh();
  const other = await Repository.open(store, 'correct horse');
  await repo.lock(false, 'backup');
  await other.lock(false, 'backup');
  const third = await Repository.open(store, 'correct horse');
  assert.equal(await code(third.lock(true, 'prune')), 'locked');
  await repo.unlockAll();
  await other.unlockAll();
  await third.lock(true, 'prune');
  assert.equal(await code(repo.lock(false, 'backup')), 'locked');
  await third.unlockAll();
  // A lock of a process that no longer exists on this host is stale.
  const { sealFile, AAD } = await import('./envelope-file.js');
  const dead = { version: 1, time: new Date().toISOString(), host: Repository.hostname(), pid: 2 ** 22 + 12345, user: 'x', exclusive: true, purpose: 'prune' };
  await store.put(Names.lock(asId('a'.repeat(64))), await sealFile(repo.codec, repo.keys.encKey, AAD.lock, Buffer.from(JSON.stringify(dead))));
  await repo.lock(false, 'backup');
  assert.equal((await repo.listLocks()).length, 1);
  await repo.close();
});

test('a stale lock this computer may not remove (a Lifeboat server keeps each computer\'s locks its own) is left, and the lock is still taken', async () => {
  const { store, repo } = await fresh();
  const { sealFile, AAD } = await import('./envelope-file.js');
  const dead = { version: 1, time: new Date().toISOString(), host: Repository.hostname(), pid: 2 ** 22 + 12345, user: 'x', exclusive: false, purpose: 'backup' };
  const stale = Names.lock(asId('b'.repeat(64)));
  await store.put(stale, await sealFile(repo.codec, repo.keys.encKey, AAD.lock, Buffer.from(JSON.stringify(dead))));
  // As the server answers an append token that deletes another computer's lock: refused (403, read-only).
  const refusing = new Proxy(store, {
    get(target, prop) {
      if (prop === 'delete') {
        return (name: string) => (name === stale ? Promise.reject(new LifeboatError('read-only', 'refused')) : target.delete(name));
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  const other = await Repository.open(refusing, 'correct horse');
  await other.lock(false, 'backup');
  assert.equal((await other.listLocks()).length, 2, 'its own lock beside the stale one it could not remove');
  await other.unlockAll();
  await repo.close();
});

test('a writer whose lock vanished (stale, removed by another process) refuses to write its snapshot', async () => {
  const { store, repo } = await fresh();
  await repo.lock(false, 'backup');
  const t = await repo.saveBlob(BlobType.tree, Buffer.from('{}'));
  for await (const o of store.list('locks/')) await store.delete(o.name);
  assert.equal(await code(repo.saveSnapshot(snap(toHex(t.id), '2026-01-01T00:00:00Z'))), 'locked');
  assert.equal((await repo.listSnapshots()).length, 0);
});

test('a run closed without finishing (interrupted) still indexes the packs it uploaded, so the next run reuses them', async () => {
  const { store, repo } = await fresh();
  await repo.lock(false, 'backup');
  const blobs = Array.from({ length: 20 }, () => randomBytes(1024 * 1024)); // > one 8 MiB pack
  for (const b of blobs) await repo.saveBlob(BlobType.data, b);
  await repo.close(); // no flush, no snapshot: as after Ctrl-C
  const again = await Repository.open(store, 'correct horse');
  await again.loadIndex();
  const kept = blobs.filter((b) => again.hasBlob(again.blobId(b))).length;
  // A pack closes before the blob that would take it past 8 MiB: two packs of 7 were uploaded.
  assert.ok(kept >= 14, `only ${kept} of 20 blobs were indexed`);
  assert.ok(kept < 20, 'the open pack was not written');
  assert.deepEqual((await checkRepository(again, { readData: true })).errors, []);
});

test('a run that fails midway (drive full) still indexes the packs it finished, and only those: the next run reuses them without reading their headers', async () => {
  const MiB = 1024 * 1024;
  const store = new MemoryStore();
  const fault = new FaultStore(store);
  const { repo } = await Repository.init(fault, 'correct horse');
  await repo.loadIndex();
  await repo.lock(false, 'backup');
  fault.noSpaceAfterBytes = fault.bytesStored + 20 * MiB; // room for two 7 MiB packs, not a third
  const blobs = Array.from({ length: 40 }, () => randomBytes(MiB));
  let failed: unknown;
  try {
    for (const b of blobs) await repo.saveBlob(BlobType.data, b);
    await repo.flush();
  } catch (e) {
    failed = e;
  }
  assert.ok(failed instanceof LifeboatError && failed.code === 'no-space', `the run failed with the full drive: ${String(failed)}`);
  await repo.close();

  const packs = new Set<string>();
  for await (const o of store.list('data/')) packs.add(o.name);
  assert.equal(packs.size, 2, 'two packs were written before the drive filled');
  const again = await Repository.open(store, 'correct horse');
  await again.loadIndex();
  assert.deepEqual(again.recoveredPacks, [], 'every finished pack is in an index file: none is found by its header');
  const indexed = new Set<string>();
  for (const name of again.index.loadedFiles) await again.readIndexFile(name, (id) => indexed.add(Names.pack(id)));
  assert.deepEqual([...indexed].sort(), [...packs].sort(), 'the index lists exactly the packs that were written');
  assert.deepEqual((await checkRepository(again, { readData: true })).errors, []);
  const kept = blobs.filter((b) => again.hasBlob(again.blobId(b))).length;
  assert.equal(kept, 14, 'two packs of seven 1 MiB blobs');

  // The next run stores only what is missing.
  await again.lock(false, 'backup');
  let added = 0;
  for (const b of blobs) if ((await again.saveBlob(BlobType.data, b)).added) added++;
  await again.flush();
  assert.equal(added, blobs.length - kept);
  await again.close();
  const last = await Repository.open(store, 'correct horse');
  await last.loadIndex();
  assert.deepEqual((await checkRepository(last, { readData: true })).errors, []);
});

test('a pack closes before the blob that would take it past 8 MiB; a blob that large alone gets a pack of its own', async () => {
  const { store, repo } = await fresh();
  await repo.lock(false, 'backup');
  const MiB = 1024 * 1024;
  // 1.5 MiB blobs: five fill 7.5 MiB, and a sixth would pass 8 MiB. Then one blob above 8 MiB.
  for (let i = 0; i < 12; i++) await repo.saveBlob(BlobType.data, randomBytes(1.5 * MiB));
  await repo.saveBlob(BlobType.data, randomBytes(8 * MiB + 100));
  await repo.flush();
  const sizes: number[] = [];
  for await (const o of store.list('data/')) sizes.push(o.size);
  assert.equal(sizes.filter((s) => s > 8 * MiB).length, 1, `only the single large blob's pack passes 8 MiB (sizes ${sizes.join(', ')})`);
  assert.equal(sizes.filter((s) => s > 7 * MiB && s <= 8 * MiB).length, 2, 'two packs of five 1.5 MiB blobs');
  assert.deepEqual((await checkRepository(repo, { readData: true })).errors, []);
});

test('init with copyParametersFrom takes the id key and chunker, keeps its own encryption and signing keys and id', async () => {
  const { repo: source } = await Repository.init(new MemoryStore(), 'a');
  const { repo: copy } = await Repository.init(new MemoryStore(), 'b', { copyParametersFrom: source });
  const { repo: other } = await Repository.init(new MemoryStore(), 'a');
  assert.ok(copy.keys.idKey.equals(source.keys.idKey));
  assert.deepEqual(copy.config.chunker, source.config.chunker);
  assert.ok(!copy.keys.encKey.equals(source.keys.encKey) && !copy.keys.macKey.equals(source.keys.macKey));
  assert.notEqual(copy.config.id, source.config.id);
  assert.ok(copy.sharesChunkParameters(source) && source.sharesChunkParameters(copy));
  assert.ok(!other.sharesChunkParameters(source));
  const data = randomBytes(1000);
  assert.ok(copy.blobId(data).equals(source.blobId(data)), 'equal data, equal chunk id');
  // The shared id key survives reopening with the new repository's own password.
  const reopened = await Repository.open(copy.store, 'b');
  assert.ok(reopened.keys.idKey.equals(source.keys.idKey));
  for (const r of [source, copy, other, reopened]) await r.close();
});
