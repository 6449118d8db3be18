/**
 * Crash safety of a files backup by fault injection (issue 6, P5): the store "dies" at the Nth put
 * of a backup, for every N the backup makes, with the crashing put both lost and landed. After
 * each crash the repository checks clean with --read-data, the snapshot that existed before
 * restores byte for byte, and the next backup succeeds, restores intact and uploads only what
 * the crashed one had not stored (its unindexed packs are indexed first, as the CLI does).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertSameTree } from '../cli/testing.js';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { checkRepository } from '../repo/check.js';
import { indexUnindexedPacks } from '../repo/repair.js';
import { Repository } from '../repo/repository.js';
import type { Hex } from '../repo/ids.js';
import type { Snapshot } from '../repo/snapshot.js';
import { FaultStore, InjectedCrash } from '../store/fault.js';
import { MemoryStore } from '../store/memory.js';
import type { Store } from '../store/store.js';
import { backup } from './backup.js';
import { restore } from './restore.js';
import { tmp } from './testing.js';
import { fileTreeReferences } from './tree.js';

const PASSWORD = 'pw';
const filesWalkers = { files: (repo: Repository, s: Snapshot, visit: (id: Uint8Array) => boolean) => fileTreeReferences(repo, s.root, visit) };

async function cloneStore(src: Store): Promise<MemoryStore> {
  const out = new MemoryStore();
  for (const prefix of ['config', 'keys/', 'data/', 'index/', 'snapshots/', 'locks/', 'pins/']) {
    for await (const o of src.list(prefix)) await out.put(o.name, await src.get(o.name));
  }
  return out;
}

async function names(store: Store, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const o of store.list(prefix)) out.push(o.name);
  return out.sort();
}

/** A tree of a few big files (several chunks each) and some small ones; returns its data bytes. */
function makeTree(dir: string, bigFiles: number, bigSize: number): number {
  mkdirSync(join(dir, 'sub', 'deeper'), { recursive: true });
  let total = 0;
  for (let i = 0; i < bigFiles; i++) {
    const b = randomBytes(bigSize);
    writeFileSync(join(dir, i % 2 ? 'sub' : '', `big-${i}.bin`), b);
    total += b.length;
  }
  for (let i = 0; i < 12; i++) {
    const b = randomBytes(1000 + i * 3000);
    writeFileSync(join(dir, 'sub', 'deeper', `small-${i}.txt`), b);
    total += b.length;
  }
  return total;
}

async function open(store: Store): Promise<Repository> {
  const repo = await Repository.open(store, PASSWORD);
  await repo.loadIndex();
  return repo;
}

async function restoresIntact(repo: Repository, id: Hex, source: string, target: string): Promise<void> {
  const snapshot = await repo.loadSnapshot(id);
  await restore(repo, snapshot, { target });
  assertSameTree(source, join(target, basename(source)));
}

test('a files backup that crashes at any put leaves a clean repository; the retry succeeds and reuses what was indexed', async (t) => {
  const d = tmp(t);
  const treeA = join(d, 'tree-A');
  const treeB = join(d, 'tree-B');
  makeTree(treeA, 2, 3 * 1024 * 1024);
  // More than one pack of data (packs close at 8 MiB), so the crash lands between data packs.
  const bBytes = makeTree(treeB, 4, 5 * 1024 * 1024);

  const base = new MemoryStore();
  const { repo: r0 } = await Repository.init(base, PASSWORD);
  await r0.loadIndex();
  const a = await backup(r0, { paths: [treeA], time: '2026-01-01T00:00:00Z' });

  // A clean run, to learn how many puts a backup of B makes and which of them is the index.
  const probeStore = new FaultStore(await cloneStore(base));
  const probe = await backup(await open(probeStore), { paths: [treeB], time: '2026-01-02T00:00:00Z' });
  const puts = probeStore.counts.put;
  assert.ok(puts >= 5, `a backup of B makes ${puts} puts (2+ data packs, tree pack, index, snapshot)`);
  const full = probe.summary.bytesAdded;
  assert.ok(full > bBytes, `the clean backup added ${full} bytes`);

  let round = 0;
  let indexedRounds = 0;
  let adoptedRounds = 0;
  for (let n = 1; n <= puts; n++) {
    for (const lands of [false, true]) {
      round++;
      const inner = await cloneStore(base);
      const indexBefore = (await names(inner, 'index/')).length;
      const fault = new FaultStore(inner, { crashAtPut: n, crashedPutLands: lands });
      const repo = await open(fault);
      await assert.rejects(backup(repo, { paths: [treeB], time: '2026-01-02T00:00:00Z' }), (e) => e instanceof InjectedCrash, `crash at put ${n}`);
      const what = `crash at put ${n}/${puts} (${lands ? 'landed' : 'lost'})`;

      // The repository, as the next process finds it.
      const after = await open(inner);
      const report = await checkRepository(after, { readData: true, walkers: filesWalkers });
      assert.deepEqual(report.errors, [], `${what}: check --read-data`);
      const snaps = await after.listSnapshots();
      assert.ok(snaps.some((s) => s.id === a.snapshotId), `${what}: the old snapshot is listed`);
      // A snapshot written by the crashing put itself (landed) must be complete: check covered it.
      for (const s of snaps) assert.ok(s.id === a.snapshotId || (lands && n === puts), `${what}: unexpected snapshot ${s.id}`);
      await restoresIntact(after, a.snapshotId, treeA, join(d, `restore-a-${round}`));

      const indexed = (await names(inner, 'index/')).length > indexBefore;
      // As the CLI does before a backup: index the packs the crashed run stored but did not index.
      const adopted = await indexUnindexedPacks(after);
      const retry = await backup(after, { paths: [treeB], time: '2026-01-03T00:00:00Z' });
      if (indexed) indexedRounds++;
      if (adopted.packs > 0) adoptedRounds++;
      if (indexed) assert.ok(retry.summary.bytesAdded < bBytes / 10, `${what}: the index had landed, yet the retry added ${retry.summary.bytesAdded} bytes`);
      // Only what had not been stored is uploaded again.
      assert.ok(retry.summary.bytesAdded + adopted.bytes <= full * 1.05, `${what}: ${adopted.bytes} bytes were stored before the crash, and the retry added ${retry.summary.bytesAdded}`);
      const again = await open(inner);
      assert.deepEqual((await checkRepository(again, { readData: true, walkers: filesWalkers })).errors, [], `${what}: check after the retry`);
      await restoresIntact(again, retry.snapshotId, treeB, join(d, `restore-b-${round}`));
    }
  }
  assert.ok(adoptedRounds >= 2, `some crashes left stored packs that the retry reused (${adoptedRounds} rounds)`);
  assert.ok(indexedRounds >= 2, `some crashes came after the index landed (${indexedRounds} of ${round} rounds)`);
});
