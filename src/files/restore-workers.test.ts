import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { LifeboatError } from '../util/errors.js';
import { Names, type Hex } from '../repo/ids.js';
import { BlobType, Repository } from '../repo/repository.js';
import { FaultStore } from '../store/fault.js';
import { LocalStore } from '../store/local.js';
import { backup } from './backup.js';
import { loadDir } from './tree.js';
import { restore } from './restore.js';
import { newRepo, tmp } from './testing.js';

/** Where chunk `k` of file `name` (in the one backed-up folder) is stored: its index entry and pack file. */
async function chunkPlace(repo: Repository, root: Hex, dir: string, name: string, k: number) {
  const [top] = await loadDir(repo, root);
  const entry = (await loadDir(repo, top!.subtree!)).find((e) => e.name.toString() === name)!;
  const loc = repo.index.get(Buffer.from(entry.content![k]!, 'hex'))!;
  return { loc, pack: join(dir, 'repo', ...Names.pack(loc.packId).split('/')) };
}

test('restore on worker threads: many small files come back exact; a damaged block stops the restore with a corrupt error', async (t) => {
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
  await assert.rejects(
    restore(repo, r.snapshot, { target: join(dir, 'target2') }),
    (e: unknown) => e instanceof LifeboatError && e.code === 'corrupt' && /damaged/.test(e.message),
  );
});

test('large files are written chunk by chunk on the workers, reading packs directly; a truncated or missing pack stops the restore with a clear error', async (t) => {
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
  await assert.rejects(
    restore(repo, r.snapshot, { target: join(dir, 'target2') }),
    (e: unknown) => e instanceof LifeboatError && e.code === 'corrupt' && /truncated or damaged/.test(e.message),
  );
  fs.rmSync(pack);
  await assert.rejects(
    restore(repo, r.snapshot, { target: join(dir, 'target3') }),
    (e: unknown) => e instanceof LifeboatError && e.code === 'not-found' && /does not exist/.test(e.message),
  );
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
  const packs: string[] = [];
  for await (const o of new LocalStore(join(dir, 'repo')).list('data/')) packs.push(o.name);

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
  assert.ok(reads > 0 && reads <= 30, `${reads} reads through the wrapper`);

  const damaging = new FaultStore(new LocalStore(join(dir, 'repo')), { corruptGets: packs });
  const damaged = await Repository.open(damaging, 'pw');
  t.after(() => damaged.close());
  await assert.rejects(
    restore(damaged, r.snapshot, { target: join(dir, 'target2') }),
    (e: unknown) => e instanceof LifeboatError && e.code === 'corrupt',
  );
});

test('many large files restored at once hold at most 16 of their chunks in memory together (not 8 per file)', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  fs.mkdirSync(src);
  // 12 incompressible files of ~4 chunks each: 8 chunks per file would allow 48 at once.
  for (let f = 0; f < 12; f++) fs.writeFileSync(join(src, `video${f}.mp4`), randomBytes(4 * 1024 * 1024 + f * 1000));
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  const r = await backup(repo, { paths: [src] });
  // Hold back every data blob (every file here is several chunks) until the restore stops asking for more: how many it asks
  // for at once is how many chunks it would hold in memory together.
  let pending = 0;
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const sealedBlob = repo.sealedBlob.bind(repo);
  repo.sealedBlob = async (id) => {
    if (repo.index.get(id)?.type === BlobType.data) {
      pending++;
      await gate;
    }
    return sealedBlob(id);
  };
  const target = join(dir, 'target');
  const restoring = restore(repo, r.snapshot, { target, verify: true });
  // Until the count has stayed the same for a second (a busy machine is slow to ask).
  let seen = -1;
  for (let still = 0; still < 4; still = seen === pending ? still + 1 : 0) {
    seen = pending;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  open();
  const rr = await restoring;
  assert.equal(rr.summary.errors, 0);
  for (let f = 0; f < 12; f++) assert.deepEqual(fs.readFileSync(join(target, 'src', `video${f}.mp4`)), fs.readFileSync(join(src, `video${f}.mp4`)));
  assert.equal(seen, 16, 'the restore asks for 16 large chunks and waits');
});
