/**
 * Delta blobs between images, on a real ext4 filesystem changed by debugfs: the second image stores
 * changed 4 KiB blocks instead of whole 1 MiB chunks, restores exactly, survives prune of the first
 * image, and a damaged base is reported (and repaired) as damage of the delta's image.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, openSync, readFileSync, readSync, closeSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { lifeboat, tempDir } from '../cli/testing.js';
import { LocalStore } from '../store/local.js';
import { Repository, BlobType } from '../repo/repository.js';
import { asId, Names, toHex } from '../repo/ids.js';
import { forEachChunk, loadManifest } from './imager.js';
import { IMAGE_CHUNK_SIZE } from './manifest.js';
import { seededBytes, sh } from './testing.js';

const CHUNK = IMAGE_CHUNK_SIZE;
const BLOCK = 4096;
const P1 = 2048 * 512; // the ext4 partition's offset in makeExt4Disk

interface Created {
  id: string;
  bytesAdded: number;
  chunksNew: number;
  chunksDelta: number;
}

/** Per image chunk of two equal-size files, how many 4 KiB blocks differ (chunks with none left out). */
function changedBlocks(a: Buffer, b: Buffer): Map<number, number> {
  const out = new Map<number, number>();
  for (let o = 0; o < a.length; o += BLOCK) {
    if (a.compare(b, o, o + BLOCK, o, o + BLOCK) !== 0) out.set(Math.floor(o / CHUNK), (out.get(Math.floor(o / CHUNK)) ?? 0) + 1);
  }
  return out;
}

/**
 * A 64 MiB MBR disk with one ext4 partition holding incompressible files, many of them small so
 * that several share a chunk (compressible fixture data would hide what deltas save).
 */
function makeDisk(dir: string): string {
  mkdirSync(join(dir, 'tree', 'sub'), { recursive: true });
  for (let i = 0; i < 60; i++) {
    const size = i < 40 ? 1000 + ((i * 7919) % 20_000) : 30_000 + ((i * 104_729) % 120_000);
    writeFileSync(join(dir, 'tree', i % 3 === 0 ? 'sub' : '', `f${i}.bin`), seededBytes(i + 1, size));
  }
  sh(`truncate -s 64M disk.img
printf 'label: dos\\nstart=2048, size=100352, type=83\\n' | sfdisk -q disk.img
truncate -s $((100352*512)) p1.img && mkfs.ext4 -q -F -b 4096 -d tree p1.img
dd if=p1.img of=disk.img bs=512 seek=2048 conv=notrunc status=none && rm p1.img`, dir, { E2FSPROGS_FAKE_TIME: '1738627200' });
  return join(dir, 'disk.img');
}

/** Makes the disk, images it, rewrites a few files and adds one with debugfs, images it again. */
async function twoImages(t: TestContext) {
  const d = tempDir('lifeboat-delta-');
  t.after(d.cleanup);
  const disk = makeDisk(d.path);
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const c1 = await lifeboat(['image', 'create', disk, '--json'], env);
  assert.equal(c1.code, 0, c1.stderr);
  const s1 = JSON.parse(c1.stdout) as Created;
  const disk1 = join(d.path, 'disk1.img');
  copyFileSync(disk, disk1);

  const cmds: string[] = [];
  for (const [n, f] of [4, 11, 17, 25, 38, 44].entries()) {
    const dir = f % 3 === 0 ? 'sub' : '';
    const size = readFileSync(join(d.path, 'tree', dir, `f${f}.bin`)).length;
    writeFileSync(join(d.path, `new${n}`), seededBytes(500 + n, size));
    cmds.push(`cd /${dir}`, `rm f${f}.bin`, `write ${join(d.path, `new${n}`)} f${f}.bin`);
  }
  writeFileSync(join(d.path, 'small'), seededBytes(900, 5000));
  cmds.push(`write ${join(d.path, 'small')} small.bin`);
  writeFileSync(join(d.path, 'cmds'), `${cmds.join('\n')}\n`);
  sh(`debugfs -w -f cmds 'disk.img?offset=${P1}' >/dev/null 2>&1 && e2fsck -fn 'disk.img?offset=${P1}' >/dev/null 2>&1`, d.path, { E2FSPROGS_FAKE_TIME: '1738627200' });

  const c2 = await lifeboat(['image', 'create', disk, '--json'], env);
  assert.equal(c2.code, 0, c2.stderr);
  const s2 = JSON.parse(c2.stdout) as Created;
  return { d, env, disk, disk1, s1, s2, changed: changedBlocks(readFileSync(disk1), readFileSync(disk)) };
}

async function restoresAs(env: Record<string, string>, dir: string, snapshot: string, want: string): Promise<void> {
  const out = join(dir, `out-${snapshot.slice(0, 8)}.img`);
  const r = await lifeboat(['image', 'restore', snapshot, '--target', out], env);
  assert.equal(r.code, 0, r.stderr);
  sh(`cmp '${want}' '${out}' && rm '${out}'`);
}

test('a second image after rewriting a few files stores only the changed 4 KiB blocks of partly changed chunks, and both images restore exactly', async (t) => {
  const { d, env, disk, disk1, s1, s2, changed } = await twoImages(t);
  // What each chunk costs: a partly changed chunk (at most half its blocks) only those blocks,
  // a mostly changed one in full. With chunks alone, every touched chunk would cost a whole chunk.
  let deltaBound = 0;
  let partly = 0;
  for (const n of changed.values()) {
    if (n <= CHUNK / BLOCK / 2) {
      deltaBound += n * BLOCK + 200;
      partly++;
    } else deltaBound += CHUNK;
  }
  const wholeChunks = changed.size * CHUNK;
  assert.ok(partly >= 3, `the mutation changes some chunks only in part (metadata, bitmaps, file tails): ${partly} of ${changed.size}`);
  assert.ok(deltaBound < 0.8 * wholeChunks, `the fixture leaves room for deltas to matter: ${deltaBound} vs ${wholeChunks}`);
  // Manifest, chunk map page, pack headers and the index file come on top.
  const overhead = 32 * 1024;
  assert.ok(s2.bytesAdded <= deltaBound + overhead, `second image added ${s2.bytesAdded} bytes; changed blocks allow ${deltaBound} + ${overhead}`);
  assert.ok(s2.bytesAdded < wholeChunks - (wholeChunks - deltaBound) / 2, `second image added ${s2.bytesAdded}, whole chunks alone would add ${wholeChunks}`);
  assert.ok(s2.chunksDelta >= partly / 2 && s2.chunksDelta <= s2.chunksNew, `${s2.chunksDelta} of ${s2.chunksNew} new chunks are deltas`);
  t.diagnostic(`first image added ${s1.bytesAdded}; second ${s2.bytesAdded} (${s2.chunksDelta} deltas of ${s2.chunksNew} new chunks); changed blocks allow ${deltaBound}, whole chunks ${wholeChunks}`);

  const repo = await Repository.open(new LocalStore(env.LIFEBOAT_REPO), 'pw');
  await repo.loadIndex();
  assert.equal(repo.index.deltaCount, s2.chunksDelta, 'the index knows every delta and its base');
  await repo.close();

  await restoresAs(env, d.path, s1.id, disk1);
  await restoresAs(env, d.path, s2.id, disk);
  // Files out of the second image (through snapshotSource) and a raw export read deltas too.
  const rf = await lifeboat(['image', 'restore-files', s2.id, '1:/', '--target', join(d.path, 'files2')], env);
  assert.equal(rf.code, 0, rf.stderr);
  sh(`mkdir ref2 && debugfs -R 'rdump / ref2' 'disk.img?offset=${P1}' >/dev/null 2>&1 && diff -r ref2 files2 && cmp tree/sub/f0.bin files2/sub/f0.bin && rm -r ref2 files2`, d.path);
  assert.equal((await lifeboat(['image', 'export', s2.id, join(d.path, 'export.img'), '--format', 'raw'], env)).code, 0);
  sh(`cmp disk.img export.img && rm export.img`, d.path);
  const check = await lifeboat(['check', '--read-data'], env);
  assert.equal(check.code, 0, check.stdout + check.stderr);
  const stats = await lifeboat(['stats', '--json'], env);
  assert.equal((JSON.parse(stats.stdout) as { deltaBlobs: number }).deltaBlobs, s2.chunksDelta);

  // A third image of the changed disk adds nothing; one after another change bases its deltas on
  // the first image's chunks (never on a delta), so every delta is one step from a full blob.
  const c3 = await lifeboat(['image', 'create', disk, '--json'], env);
  assert.ok((JSON.parse(c3.stdout) as Created).chunksNew === 0);
  sh(`debugfs -w -R 'write ${join(d.path, 'small')} small2.bin' 'disk.img?offset=${P1}' >/dev/null 2>&1`, d.path);
  const c4 = await lifeboat(['image', 'create', disk, '--json'], env);
  assert.equal(c4.code, 0, c4.stderr);
  const s4 = JSON.parse(c4.stdout) as Created;
  assert.ok(s4.chunksDelta > 0);
  const again = await Repository.open(new LocalStore(env.LIFEBOAT_REPO), 'pw');
  await again.loadIndex();
  for (const [, loc] of again.index.entries()) if (loc.base) assert.equal(again.index.get(loc.base)?.type, BlobType.data, 'a base is a full blob');
  await again.close();
  await restoresAs(env, d.path, s4.id, disk);
  assert.equal((await lifeboat(['check', '--read-data'], env)).code, 0);
});

test('prune after forgetting the first image keeps the bases of the second; a damaged base is damage of the image that needs its delta', async (t) => {
  const { d, env, disk, s1, s2 } = await twoImages(t);
  assert.ok(s2.chunksDelta > 0);
  assert.equal((await lifeboat(['forget', s1.id], env)).code, 0);
  const p = await lifeboat(['prune', '--json'], env);
  assert.equal(p.code, 0, p.stderr);
  assert.ok((JSON.parse(p.stdout) as { packs: { deleted: number; repacked: number } }).packs.repacked + (JSON.parse(p.stdout) as { packs: { deleted: number } }).packs.deleted > 0, 'prune removed or repacked something');
  await restoresAs(env, d.path, s2.id, disk);
  const clean = await lifeboat(['check', '--read-data'], env);
  assert.equal(clean.code, 0, clean.stdout);

  // A delta of the second image whose base the image does not need directly.
  const repo = await Repository.open(new LocalStore(env.LIFEBOAT_REPO), 'pw');
  await repo.loadIndex();
  const snap = await repo.loadSnapshot(asId(s2.id));
  const m = await loadManifest(repo, snap.root);
  const chunks = new Map<string, number>();
  await forEachChunk(repo, m, (i, id) => {
    if (id) chunks.set(toHex(id), i);
  });
  let victim: { chunk: number; base: Uint8Array } | undefined;
  for (const [hex, i] of chunks) {
    const base = repo.index.baseOf(Buffer.from(hex, 'hex'));
    if (base && !chunks.has(toHex(base))) victim = { chunk: i, base };
  }
  assert.ok(victim, 'some delta is based on a chunk only the forgotten image had');
  const baseLoc = repo.index.get(victim.base)!;
  await repo.close();
  // Damage the base's bytes inside its pack (the pack itself stays).
  const packFile = join(env.LIFEBOAT_REPO, ...Names.pack(baseLoc.packId).split('/'));
  const fd = openSync(packFile, 'r+');
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, baseLoc.offset + 20);
  b[0] = b[0]! ^ 0xff;
  writeSync(fd, b, 0, 1, baseLoc.offset + 20);
  closeSync(fd);

  const bad = await lifeboat(['check', '--read-data'], env);
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, new RegExp(`error: snapshots/${s2.id}: is affected by the damaged or missing pack ${Names.pack(baseLoc.packId)}`));
  assert.match(bad.stdout, /is stored as changes to the data block [0-9a-f]{16}, which cannot be read/);

  const rep = await lifeboat(['repair', 'snapshots', '--read-data', '--forget'], env);
  assert.equal(rep.code, 0, rep.stdout + rep.stderr);
  const info = JSON.parse((await lifeboat(['image', 'info', 'latest', '--json'], env)).stdout) as { unreadable: { start: number; length: number }[] };
  assert.ok(info.unreadable.some((u) => u.start <= victim.chunk * CHUNK && victim.chunk * CHUNK < u.start + u.length), 'the delta whose base is damaged is a lost chunk of the repaired image');
  const out = join(d.path, 'repaired.img');
  assert.equal((await lifeboat(['image', 'restore', 'latest', '--target', out], env)).code, 0);
  const want = readFileSync(disk);
  const got = readFileSync(out);
  for (let o = 0; o < want.length; o += CHUNK) {
    const lost = info.unreadable.some((u) => o >= u.start && o < u.start + u.length);
    if (!lost) assert.ok(want.subarray(o, o + CHUNK).equals(got.subarray(o, o + CHUNK)), `intact chunk at ${o} restores exactly`);
  }
});
