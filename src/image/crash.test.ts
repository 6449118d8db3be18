/**
 * Crash safety of an image by fault injection (issue 6, P5): the store "dies" at every put an
 * image of a small raw disk file makes, with the crashing put lost or landed. After each crash
 * the repository checks clean with --read-data, the image that existed before restores byte for
 * byte, and the next image succeeds, restores intact and uploads only what the crashed one had
 * not stored (its unindexed packs are indexed first, as the CLI does).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkRepository } from '../repo/check.js';
import { indexUnindexedPacks } from '../repo/repair.js';
import { Repository } from '../repo/repository.js';
import type { Hex } from '../repo/ids.js';
import type { Snapshot } from '../repo/snapshot.js';
import { FaultStore, InjectedCrash } from '../store/fault.js';
import { MemoryStore } from '../store/memory.js';
import type { Store } from '../store/store.js';
import { createImage, imageReferences, loadManifest, writeImage, type ImageReader, type ImageWriter } from './imager.js';

process.env['LIFEBOAT_INSECURE_FAST_KDF'] = '1';
const PASSWORD = 'pw';
const MiB = 1024 * 1024;
const walkers = { image: (repo: Repository, s: Snapshot, visit: (id: Uint8Array) => boolean) => imageReferences(repo, s.root, visit) };

async function cloneStore(src: Store): Promise<MemoryStore> {
  const out = new MemoryStore();
  for (const prefix of ['config', 'keys/', 'data/', 'index/', 'snapshots/', 'locks/', 'pins/']) {
    for await (const o of src.list(prefix)) await out.put(o.name, await src.get(o.name));
  }
  return out;
}

async function count(store: Store, prefix: string): Promise<number> {
  let n = 0;
  for await (const _ of store.list(prefix)) n++;
  return n;
}

function fileReader(path: string): ImageReader {
  const bytes = readFileSync(path);
  return { size: bytes.length, read: async (o, l) => bytes.subarray(o, o + l) };
}

function memoryWriter(size: number): ImageWriter & { bytes: Buffer } {
  const bytes = Buffer.alloc(size);
  return {
    bytes,
    size,
    sparse: true,
    write: async (o, d) => void bytes.set(d, o),
    read: async (o, l) => bytes.subarray(o, o + l),
    sync: async () => undefined,
  };
}

async function open(store: Store): Promise<Repository> {
  const repo = await Repository.open(store, PASSWORD);
  await repo.loadIndex();
  return repo;
}

async function image(repo: Repository, path: string, time: string): Promise<{ id: Hex; bytesAdded: number }> {
  const src = fileReader(path);
  const res = await createImage(repo, src, [{ start: 0, end: src.size }], { table: { kind: 'none' }, partitions: [], source: { path }, unreadable: [] });
  const id = await repo.saveSnapshot({ version: 1, kind: 'image', time, host: 'h', user: 'u', paths: [path], tags: [], root: res.manifestId, summary: { bytesAdded: res.bytesAdded } });
  return { id, bytesAdded: res.bytesAdded };
}

async function restoresIntact(repo: Repository, id: Hex, path: string, what: string): Promise<void> {
  const want = readFileSync(path);
  const s = await repo.loadSnapshot(id);
  const w = memoryWriter(want.length);
  await writeImage(repo, await loadManifest(repo, s.root), w);
  assert.ok(w.bytes.equals(want), `${what}: the image of ${path} restores byte for byte`);
}

test('an image that crashes at any put leaves a clean repository; the retry succeeds and reuses what was indexed', async (t) => {
  const d = mkdtempSync(join(tmpdir(), 'lifeboat-image-crash-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  // Disk A: data, a zero gap, data. Disk B: A's first part, then 20 MiB new (2 data packs).
  const partA = randomBytes(6 * MiB);
  const diskA = Buffer.concat([partA, Buffer.alloc(2 * MiB), randomBytes(2 * MiB)]);
  const diskB = Buffer.concat([partA, Buffer.alloc(MiB), randomBytes(20 * MiB)]);
  const pathA = join(d, 'a.img');
  const pathB = join(d, 'b.img');
  writeFileSync(pathA, diskA);
  writeFileSync(pathB, diskB);

  const base = new MemoryStore();
  const { repo: r0 } = await Repository.init(base, PASSWORD);
  await r0.loadIndex();
  const a = await image(r0, pathA, '2026-01-01T00:00:00Z');

  const probeStore = new FaultStore(await cloneStore(base));
  const probe = await image(await open(probeStore), pathB, '2026-01-02T00:00:00Z');
  const puts = probeStore.counts.put;
  assert.ok(puts >= 5, `an image of B makes ${puts} puts`);
  const newBytes = 20 * MiB;
  assert.ok(probe.bytesAdded > newBytes && probe.bytesAdded < newBytes * 1.1, `the clean image added ${probe.bytesAdded} bytes (only what A lacks)`);

  let indexedRounds = 0;
  let adoptedRounds = 0;
  for (let n = 1; n <= puts; n++) {
    for (const lands of [false, true]) {
      const what = `crash at put ${n}/${puts} (${lands ? 'landed' : 'lost'})`;
      const inner = await cloneStore(base);
      const indexBefore = await count(inner, 'index/');
      const fault = new FaultStore(inner, { crashAtPut: n, crashedPutLands: lands });
      await assert.rejects(image(await open(fault), pathB, '2026-01-02T00:00:00Z'), (e) => e instanceof InjectedCrash, what);

      const after = await open(inner);
      assert.deepEqual((await checkRepository(after, { readData: true, walkers })).errors, [], `${what}: check --read-data`);
      const snaps = (await after.listSnapshots()).map((s) => s.id);
      assert.ok(snaps.includes(a.id), `${what}: the old image is listed`);
      assert.equal(snaps.length, lands && n === puts ? 2 : 1, `${what}: only a complete snapshot can exist`);
      await restoresIntact(after, a.id, pathA, what);

      const indexed = (await count(inner, 'index/')) > indexBefore;
      const adopted = await indexUnindexedPacks(after); // as `lifeboat image create` does
      if (adopted.packs > 0) adoptedRounds++;
      const retry = await image(after, pathB, '2026-01-03T00:00:00Z');
      assert.ok(retry.bytesAdded + adopted.bytes <= probe.bytesAdded * 1.05, `${what}: ${adopted.bytes} bytes were stored before the crash, and the retry added ${retry.bytesAdded}`);
      if (indexed) {
        indexedRounds++;
        assert.ok(retry.bytesAdded < newBytes / 10, `${what}: the index had landed, yet the retry added ${retry.bytesAdded} bytes`);
      } else {
        assert.ok(retry.bytesAdded <= probe.bytesAdded * 1.05, `${what}: the retry added ${retry.bytesAdded} bytes`);
      }
      const again = await open(inner);
      assert.deepEqual((await checkRepository(again, { readData: true, walkers })).errors, [], `${what}: check after the retry`);
      await restoresIntact(again, retry.id, pathB, `${what}, retry`);
    }
  }
  assert.ok(adoptedRounds >= 2, `some crashes left stored packs that the retry reused (${adoptedRounds} rounds)`);
  assert.ok(indexedRounds >= 2, `some crashes came after the index landed (${indexedRounds} rounds)`);
});
