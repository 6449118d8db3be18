import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { constants } from 'node:perf_hooks';
import { Names, type Hex } from '../repo/ids.js';
import { BlobType, Repository } from '../repo/repository.js';
import { FaultStore } from '../store/fault.js';
import { LocalStore } from '../store/local.js';
import { backup } from './backup.js';
import { loadDir } from './tree.js';
import { restore } from './restore.js';
import { SEGMENT } from './restore-plan.js';
import { newRepo, tmp, watchFullCollections } from './testing.js';

/** Where chunk `k` of file `name` (in the one backed-up folder) is stored: its index entry and pack file. */
async function chunkPlace(repo: Repository, root: Hex, dir: string, name: string, k: number) {
  const [top] = await loadDir(repo, root);
  const entry = (await loadDir(repo, top!.subtree!)).find((e) => e.name.toString() === name)!;
  const loc = repo.index.get(Buffer.from(entry.content![k]!, 'hex'))!;
  return { loc, pack: join(dir, 'repo', ...Names.pack(loc.packId).split('/')) };
}

/** Restores with the warnings collected: path → message. */
async function restoreWarned(repo: Repository, snapshot: Parameters<typeof restore>[1], target: string) {
  const warnings = new Map<string, string>();
  const r = await restore(repo, snapshot, { target, onEvent: (e) => e.type === 'warning' && warnings.set(e.path, e.message) });
  return { summary: r.summary, warnings };
}

/** Every file under `src` either restored byte-identical under `out` or named in `lost` (and then absent). */
function sameOrLost(src: string, out: string, lost: ReadonlySet<string>): number {
  let same = 0;
  for (const rel of fs.readdirSync(src, { recursive: true }) as string[]) {
    if (!fs.statSync(join(src, rel)).isFile()) continue;
    if (lost.has(rel)) assert.ok(!fs.existsSync(join(out, rel)), `${rel} is not left half written`);
    else {
      assert.deepEqual(fs.readFileSync(join(out, rel)), fs.readFileSync(join(src, rel)), rel);
      same++;
    }
  }
  return same;
}

test('restore on worker threads: many small files come back exact; a damaged block loses its file only, with a plain warning', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  fs.mkdirSync(join(src, 'sub'), { recursive: true });
  for (let i = 0; i < 300; i++) {
    const p = join(src, i % 2 ? 'sub' : '', `f${i}`);
    fs.writeFileSync(p, `file ${i} `.repeat(i * 7));
    fs.chmodSync(p, 0o600 + (i % 64));
    fs.utimesSync(p, new Date(1_600_000_000_000 + i * 1000), new Date(1_500_000_000_000 + i * 1000));
  }
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  const r = await backup(repo, { paths: [src] });

  const target = join(dir, 'target');
  const rr = await restore(repo, r.snapshot, { target, verify: true });
  assert.equal(rr.summary.errors, 0);
  assert.equal(rr.summary.files, 300);
  assert.equal(rr.summary.verified, 300);
  for (let i = 0; i < 300; i++) {
    const rel = join(i % 2 ? 'sub' : '', `f${i}`);
    const a = fs.statSync(join(src, rel));
    const b = fs.statSync(join(target, 'src', rel));
    assert.deepEqual(fs.readFileSync(join(target, 'src', rel)), fs.readFileSync(join(src, rel)), rel);
    assert.equal(b.mode, a.mode, `${rel} mode`);
    assert.equal(b.mtimeMs, a.mtimeMs, `${rel} mtime`);
    assert.equal(b.atimeMs, a.atimeMs, `${rel} atime`);
  }

  // Damage the stored block of one file (inside its envelope): the worker's check must catch it.
  const { loc, pack } = await chunkPlace(repo, r.snapshot.root, dir, 'f100', 0);
  const bytes = fs.readFileSync(pack);
  bytes[loc.offset + Math.floor(loc.length / 2)]! ^= 0x40;
  fs.chmodSync(pack, 0o600);
  fs.writeFileSync(pack, bytes);
  const { summary, warnings } = await restoreWarned(repo, r.snapshot, join(dir, 'target2'));
  assert.equal(summary.errors, 1);
  assert.deepEqual([...warnings.keys()], ['/src/f100']);
  assert.match(warnings.get('/src/f100')!, /^\/src\/f100 could not be restored: .*damaged/);
  assert.equal(sameOrLost(src, join(dir, 'target2', 'src'), new Set(['f100'])), 299);
});

test('large files are written chunk by chunk on the workers, reading packs directly; a truncated or missing pack loses only the files with data in it', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  fs.mkdirSync(src);
  // Several files of many chunks each (some sparse), restored in parallel into one descriptor each.
  for (let f = 0; f < 3; f++) {
    const big = Buffer.alloc(6 * 1024 * 1024 + f * 77777);
    for (let i = 0; i + 4 <= big.length; i += 4) big.writeUInt32LE(((i + f) * 2654435761) >>> 0, i);
    fs.writeFileSync(join(src, `big${f}.bin`), big);
  }
  const fd = fs.openSync(join(src, 'sparse.img'), 'w');
  fs.writeSync(fd, Buffer.alloc(3 * 1024 * 1024, 7), 0, 3 * 1024 * 1024, 2 * 1024 * 1024);
  fs.ftruncateSync(fd, 16 * 1024 * 1024);
  fs.closeSync(fd);
  // Hard links in one folder, restored concurrently: one inode, never copies.
  fs.writeFileSync(join(src, 'l0'), 'linked');
  for (let i = 1; i < 5; i++) fs.linkSync(join(src, 'l0'), join(src, `l${i}`));

  const repo = await newRepo(dir);
  t.after(() => repo.close());
  const r = await backup(repo, { paths: [src] });
  const target = join(dir, 'target');
  const rr = await restore(repo, r.snapshot, { target, verify: true });
  assert.equal(rr.summary.errors, 0);
  for (const name of ['big0.bin', 'big1.bin', 'big2.bin', 'sparse.img']) {
    assert.deepEqual(fs.readFileSync(join(target, 'src', name)), fs.readFileSync(join(src, name)), name);
  }
  assert.ok(fs.statSync(join(target, 'src', 'sparse.img')).blocks * 512 < 4 * 1024 * 1024, 'holes stay holes');
  const ino = fs.statSync(join(target, 'src', 'l0')).ino;
  for (let i = 1; i < 5; i++) assert.equal(fs.statSync(join(target, 'src', `l${i}`)).ino, ino, `l${i} is a link`);
  assert.equal(rr.summary.hardlinks, 4);

  // The pack holding a chunk of big1.bin: cut short, then removed.
  const { loc, pack } = await chunkPlace(repo, r.snapshot.root, dir, 'big1.bin', 1);
  fs.chmodSync(pack, 0o600);
  fs.truncateSync(pack, loc.offset + 10);
  for (const [target, why] of [[join(dir, 'target2'), /truncated or damaged/], [join(dir, 'target3'), /does not exist/]] as const) {
    const { summary, warnings } = await restoreWarned(repo, r.snapshot, target);
    assert.ok(warnings.has('/src/big1.bin'), [...warnings.keys()].join());
    assert.equal(summary.errors, warnings.size);
    for (const m of warnings.values()) assert.match(m, why);
    const lost = new Set([...warnings.keys()].map((p) => p.slice('/src/'.length)));
    assert.ok(sameOrLost(src, join(target, 'src'), lost) > 0, 'the files in other packs are restored');
    fs.rmSync(pack, { force: true }); // then the pack is gone altogether
  }
});

test('restore reads every pack through the store it is given (wrappers included): many small files in few reads, and damage injected on read is caught', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  for (const sub of ['a', 'b']) {
    fs.mkdirSync(join(src, sub), { recursive: true });
    for (let i = 0; i < 150; i++) fs.writeFileSync(join(src, sub, `f${i}`), `${sub} file ${i} `.repeat(i * 11));
  }
  fs.writeFileSync(join(src, 'big.bin'), randomBytes(3 * 1024 * 1024 + 12345));
  const repo = await newRepo(dir);
  const r = await backup(repo, { paths: [src] });
  await repo.close();
  const counted = new FaultStore(new LocalStore(join(dir, 'repo')));
  const viaWrapper = await Repository.open(counted, 'pw');
  t.after(() => viaWrapper.close());
  await viaWrapper.loadIndex();
  const before = counted.counts.get;
  const target = join(dir, 'target');
  const rr = await restore(viaWrapper, r.snapshot, { target });
  assert.equal(rr.summary.errors, 0);
  assert.equal(rr.summary.files, 301);
  for (const sub of ['a', 'b']) for (let i = 0; i < 150; i++) assert.deepEqual(fs.readFileSync(join(target, 'src', sub, `f${i}`)), fs.readFileSync(join(src, sub, `f${i}`)));
  assert.deepEqual(fs.readFileSync(join(target, 'src', 'big.bin')), fs.readFileSync(join(src, 'big.bin')));
  // 300 small files, a few listings and a 3 MiB file's chunks: the small files' envelopes are read a pack range at a time.
  const reads = counted.counts.get - before;
  assert.ok(reads > 0 && reads <= 8, `${reads} reads through the wrapper`); // 6 measured

  // Every pack that holds file data damaged on read (the listings stay readable): each file is reported, none stops the others.
  const packs = new Set<string>();
  const [top] = await loadDir(viaWrapper, r.snapshot.root);
  for (const sub of await loadDir(viaWrapper, top!.subtree!)) {
    const entries = sub.type === 'dir' ? await loadDir(viaWrapper, sub.subtree!) : [sub];
    for (const e of entries) for (const id of e.content ?? []) packs.add(Names.pack(viaWrapper.index.get(Buffer.from(id, 'hex'))!.packId));
  }

  const damaging = new FaultStore(new LocalStore(join(dir, 'repo')), { corruptGets: [...packs] });
  const damaged = await Repository.open(damaging, 'pw');
  t.after(() => damaged.close());
  const { summary, warnings } = await restoreWarned(damaged, r.snapshot, join(dir, 'target2'));
  // Every read is damaged at each multiple of 512 bytes (store/fault.ts), so a few tiny blobs between come through intact.
  assert.ok(summary.errors > 30 && summary.errors === warnings.size, `${summary.errors} files reported`);
  for (const m of warnings.values()) assert.match(m, /could not be restored: .*damaged/);
  sameOrLost(src, join(dir, 'target2', 'src'), new Set([...warnings.keys()].map((p) => p.slice('/src/'.length))));
});

test('the restore planner: a file spread over several packs, and blobs many files share, come back exact with about one read per pack', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  fs.mkdirSync(join(src, 'copies'), { recursive: true });
  // 20 MiB of random data: chunks in three packs or more. Its copies share every chunk with it.
  const big = randomBytes(20 * 1024 * 1024);
  fs.writeFileSync(join(src, 'big.bin'), big);
  for (let i = 0; i < 3; i++) fs.writeFileSync(join(src, 'copies', `big${i}.bin`), big);
  // Small files with the same content (one blob, used by all of them), and some of their own.
  for (let i = 0; i < 40; i++) fs.writeFileSync(join(src, 'copies', `same${i}.txt`), 'the same words\n'.repeat(100));
  for (let i = 0; i < 40; i++) fs.writeFileSync(join(src, `own${i}.txt`), randomBytes(5000 + i));
  const repo = await newRepo(dir);
  const r = await backup(repo, { paths: [src] });
  await repo.close();

  const counted = new FaultStore(new LocalStore(join(dir, 'repo')));
  const again = await Repository.open(counted, 'pw');
  t.after(() => again.close());
  await again.loadIndex();
  const packs = new Set<string>();
  for (const [, loc] of again.index.entries()) if (loc.type === BlobType.data) packs.add(loc.packId);
  assert.ok(packs.size >= 3, `${packs.size} data packs`);
  const before = counted.counts.get;
  const { summary, warnings } = await restoreWarned(again, r.snapshot, join(dir, 'target'));
  assert.equal(summary.errors, 0, [...warnings.values()].join('\n'));
  assert.equal(summary.files, 84);
  assert.equal(sameOrLost(src, join(dir, 'target', 'src'), new Set()), 84);
  // The listings (one tree pack) and each data pack: 20 MiB of chunks read four times over in one
  // request per pack span of at most 8 MiB (half the local budget), small files a range at a time.
  const reads = counted.counts.get - before;
  t.diagnostic(`${reads} reads for ${packs.size} data packs`);
  assert.ok(reads <= 2 * packs.size + 6, `${reads} reads for ${packs.size} data packs`);
});

test('from a network store, a restore of 18,000 files (more than a segment held before) is planned at once: every data pack is read once', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  for (let d = 0; d < 20; d++) {
    fs.mkdirSync(join(src, `d${d}`), { recursive: true });
    for (let i = 0; i < 900; i++) fs.writeFileSync(join(src, `d${d}`, `f${i}`), `file ${d}/${i} ${'x'.repeat(i % 50)}`);
  }
  const repo = await newRepo(dir);
  const r = await backup(repo, { paths: [src] });
  await repo.close();

  // The local folder, seen as a network store (several uploads in flight), counting reads per pack.
  const store = new FaultStore(new LocalStore(join(dir, 'repo')));
  Object.defineProperty(store, 'properties', { value: { ...store.properties, uploadsInFlight: 4 } });
  const reads = new Map<string, number>();
  const get = store.get.bind(store);
  store.get = (name, ...rest) => {
    reads.set(name, (reads.get(name) ?? 0) + 1);
    return get(name, ...rest);
  };
  const remote = await Repository.open(store, 'pw');
  t.after(() => remote.close());
  await remote.loadIndex();
  assert.ok(remote.remote);
  const dataPacks = new Set<Hex>();
  for (const [, loc] of remote.index.entries()) if (loc.type === BlobType.data) dataPacks.add(loc.packId);

  const { summary, warnings } = await restoreWarned(remote, r.snapshot, join(dir, 'target'));
  assert.equal(summary.errors, 0, [...warnings.values()].join('\n'));
  assert.equal(summary.files, 18000);
  assert.equal(fs.readFileSync(join(dir, 'target', 'src', 'd19', 'f899'), 'utf8'), `file 19/899 ${'x'.repeat(899 % 50)}`);
  for (const p of dataPacks) assert.equal(reads.get(Names.pack(p)), 1, `pack ${p.slice(0, 8)} read ${reads.get(Names.pack(p))} times`);
});

test('a restore larger than one segment of the plan: read segment by segment, every file exact, hard links and shared chunks across segments', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  fs.mkdirSync(join(src, 'a', 'b'), { recursive: true });
  const big = randomBytes(3 * 1024 * 1024 + 999);
  fs.writeFileSync(join(src, 'big.bin'), big);
  fs.writeFileSync(join(src, 'a', 'b', 'copy.bin'), big); // every chunk shared with big.bin, likely in another segment
  for (let i = 0; i < 120; i++) fs.writeFileSync(join(src, i % 3 ? 'a' : join('a', 'b'), `f${i}`), `small ${i % 40} `.repeat(50 + (i % 40)));
  fs.writeFileSync(join(src, 'l0'), 'linked');
  fs.linkSync(join(src, 'l0'), join(src, 'a', 'b', 'l1'));
  fs.writeFileSync(join(src, 'empty'), '');
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  const r = await backup(repo, { paths: [src] });

  const saved = { ...SEGMENT };
  Object.assign(SEGMENT, { files: 7, open: 1, places: 5 });
  t.after(() => Object.assign(SEGMENT, saved));
  const { summary, warnings } = await restoreWarned(repo, r.snapshot, join(dir, 'target'));
  assert.equal(summary.errors, 0, [...warnings.values()].join('\n'));
  assert.equal(summary.files + summary.hardlinks, 125);
  assert.equal(sameOrLost(src, join(dir, 'target', 'src'), new Set()), 125);
  assert.equal(fs.statSync(join(dir, 'target', 'src', 'l0')).ino, fs.statSync(join(dir, 'target', 'src', 'a', 'b', 'l1')).ino);
});

test('a long restore has V8 collect its main thread\'s old garbage every so many files, in V8\'s own full collections (never forced ones)', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  fs.mkdirSync(src);
  for (let i = 0; i < 400; i++) fs.writeFileSync(join(src, `f${i}`), `file ${i} `.repeat(1 + (i % 30)));
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  const r = await backup(repo, { paths: [src] });

  const saved = { ...SEGMENT };
  Object.assign(SEGMENT, { files: 20 });
  t.after(() => Object.assign(SEGMENT, saved));
  const full = watchFullCollections(t, 40);
  const { summary, warnings } = await restoreWarned(repo, r.snapshot, join(dir, 'target'));
  await full.settled();
  assert.equal(summary.errors, 0, [...warnings.values()].join('\n'));
  assert.equal(sameOrLost(src, join(dir, 'target', 'src'), new Set()), 400);
  // 400 files, one collection started per 40: V8 runs them as it runs its own (some may merge).
  assert.ok(full.flags.length >= 4, `${full.flags.length} full collections during the restore`);
  assert.equal(full.flags.filter((f) => f & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED).length, 0, 'none forced');
});
