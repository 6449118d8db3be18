import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { backup, nodeFileAccess, type BackupEvent, type FileAccess } from './backup.js';
import { diff, type Change } from '../tree/tree.js';
import { SnapshotTree } from './snapshot-tree.js';
import { PathMatcher } from './pattern.js';
import { restore } from './restore.js';
import { scanTotal } from './scan.js';
import { newRepo, tmp } from './testing.js';
import { Estimator } from '../util/progress.js';

process.env['LIFEBOAT_INSECURE_FAST_KDF'] = '1';

/** File access whose reads share one steady rate (bytes/s), whatever the concurrency: a slow disk. */
function throttled(rate: number): FileAccess {
  let free = performance.now();
  const wait = async (n: number) => {
    const start = Math.max(performance.now(), free);
    free = start + (n / rate) * 1000;
    await sleep(free - performance.now());
  };
  return {
    ...nodeFileAccess,
    open: async (p, flags) => {
      const fh = await nodeFileAccess.open(p, flags);
      return new Proxy(fh, {
        get(target, prop) {
          if (prop === 'read') {
            return async (...args: Parameters<FileHandle['read']>) => {
              const r = await (target.read as (...a: unknown[]) => Promise<{ bytesRead: number }>).apply(target, args);
              await wait(r.bytesRead);
              return r;
            };
          }
          const v = Reflect.get(target, prop, target) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    },
  };
}

test('progress: the size walk counts what the backup handles (excludes and --exclude-larger-than too)', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  for (const d of ['a', 'a/b', 'skip', 'c']) fs.mkdirSync(join(src, d), { recursive: true });
  fs.writeFileSync(join(src, 'a', 'one'), Buffer.alloc(1000, 1));
  fs.writeFileSync(join(src, 'a', 'b', 'two'), Buffer.alloc(2000, 2));
  fs.writeFileSync(join(src, 'skip', 'no'), Buffer.alloc(4000, 3));
  fs.writeFileSync(join(src, 'c', 'big'), Buffer.alloc(100_000, 4));
  fs.symlinkSync('a/one', join(src, 'link'));
  const excludes = ['**/skip'];
  const total = await scanTotal([src], { excludes: new PathMatcher(excludes), excludeLargerThan: 50_000, signal: new AbortController().signal });
  assert.deepEqual(total, { files: 2, bytes: 3000 });
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  const r = await backup(repo, { paths: [src], excludes, excludeLargerThan: 50_000 });
  assert.deepEqual(total, { files: r.summary.totalFiles, bytes: r.summary.totalBytes });
});

test('progress: a backup from a steady source shows its real total only, reaches 100% only at the end, and its time left at 25% predicts the end within 30%', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  fs.mkdirSync(src);
  // 48 files of 256 KiB (12 MiB) read at 1.5 MiB/s: about 8 s.
  for (let i = 0; i < 48; i++) fs.writeFileSync(join(src, `f${String(i).padStart(2, '0')}`), Buffer.alloc(256 * 1024, i));
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  const started = performance.now();
  const seen: { t: number; e: Extract<BackupEvent, { type: 'progress' }> }[] = [];
  const r = await backup(repo, { paths: [src], fs: throttled(1.5 * 1024 * 1024), scanTotal: true, onEvent: (e) => e.type === 'progress' && seen.push({ t: performance.now(), e }) });
  const ended = performance.now();
  const total = r.summary.totalBytes;
  assert.equal(total, 48 * 256 * 1024);
  assert.ok(seen.length > 10, `${seen.length} progress events`);
  for (const { e } of seen) {
    if (e.bytesTotal !== undefined) {
      assert.equal(e.bytesTotal, total, 'the only total is the real one');
      assert.equal(e.filesTotal, 48);
      assert.ok(e.bytesDone <= e.bytesTotal);
    }
  }
  const last = seen[seen.length - 1]!.e;
  assert.equal(last.bytesDone, total);
  assert.equal(last.bytesTotal, total);
  // Half-way through, the walk has long finished: the total is there.
  assert.ok(seen.filter(({ e }) => e.bytesDone >= total / 2).every(({ e }) => e.bytesTotal === total));

  // The estimate the CLI would show, fed with the events as they came.
  let now = 0;
  const est = new Estimator(() => now);
  now = started / 1000;
  const quarter = seen
    .map(({ t: at, e }) => {
      now = at / 1000;
      return { at, p: est.sample(e.bytesDone, e.bytesTotal) };
    })
    .find(({ p }) => p.total !== undefined && p.done >= p.total / 4 && p.eta !== undefined);
  assert.ok(quarter, 'a time left is shown');
  assert.ok(quarter.p.done <= total * 0.4, `shown by ${Math.round((quarter.p.done / total) * 100)}%`);
  const actual = (ended - quarter.at) / 1000;
  t.diagnostic(`at ${Math.round((quarter.p.done / total) * 100)}%: estimated ${quarter.p.eta!.toFixed(2)} s left, took ${actual.toFixed(2)} s`);
  assert.ok(Math.abs(quarter.p.eta! - actual) <= 0.3 * actual, `estimated ${quarter.p.eta!.toFixed(2)} s left, took ${actual.toFixed(2)} s`);
});

test('progress: a restore reaches its total, counting files already there', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  fs.mkdirSync(src);
  for (let i = 0; i < 5; i++) fs.writeFileSync(join(src, `f${i}`), Buffer.alloc(50_000, i));
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  const r = await backup(repo, { paths: [src] });
  const target = join(dir, 'target');
  for (let round = 0; round < 2; round++) {
    const events: { bytesDone: number; totalBytes?: number }[] = [];
    await restore(repo, r.snapshot, { target, onEvent: (e) => e.type === 'progress' && events.push(e) });
    const last = events[events.length - 1]!;
    assert.equal(last.totalBytes, 250_000);
    assert.equal(last.bytesDone, 250_000, round === 0 ? 'written' : 'already there (skipped)');
    assert.ok(events.every((e) => e.bytesDone <= e.totalBytes!));
  }
});

test('progress: a restore of some paths (--include) has the real total of what they hold', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  fs.mkdirSync(join(src, 'docs', 'deep'), { recursive: true });
  fs.writeFileSync(join(src, 'docs', 'a'), Buffer.alloc(30_000, 1));
  fs.writeFileSync(join(src, 'docs', 'deep', 'b'), Buffer.alloc(20_000, 2));
  fs.writeFileSync(join(src, 'other'), Buffer.alloc(70_000, 3));
  fs.writeFileSync(join(src, 'one'), Buffer.alloc(5_000, 4));
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  const r = await backup(repo, { paths: [src] });
  const events: { bytesDone: number; totalBytes?: number }[] = [];
  await restore(repo, r.snapshot, { target: join(dir, 'target'), includes: ['/src/docs', '/src/one'], scanTotal: true, onEvent: (e) => e.type === 'progress' && events.push(e) });
  const last = events[events.length - 1]!;
  assert.equal(last.totalBytes, 55_000, 'docs (50,000) and one (5,000), not other');
  assert.equal(last.bytesDone, 55_000);
  assert.ok(events.every((e) => e.totalBytes === 55_000 && e.bytesDone <= 55_000));
});

test('progress: the summary counts folders as lifeboat diff shows them (a change deep inside changes one folder, not all above it)', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  fs.mkdirSync(join(src, 'a', 'b', 'c', 'd'), { recursive: true });
  fs.mkdirSync(join(src, 'x', 'y'), { recursive: true });
  fs.writeFileSync(join(src, 'a', 'b', 'c', 'd', 'file'), 'one');
  fs.writeFileSync(join(src, 'x', 'y', 'keep'), 'keep');
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  const r1 = await backup(repo, { paths: [src] });
  assert.equal(r1.summary.dirsNew, 7);
  const old = new Date(Date.now() - 3600_000);
  // Changed content (the folders' mtimes stay), a new file in x/y (its mtime moves), a new folder.
  fs.writeFileSync(join(src, 'a', 'b', 'c', 'd', 'file'), 'two!');
  fs.utimesSync(join(src, 'a', 'b', 'c', 'd'), old, old);
  fs.writeFileSync(join(src, 'x', 'y', 'new'), 'new');
  fs.mkdirSync(join(src, 'a', 'fresh'));
  const r2 = await backup(repo, { paths: [src], parent: r1.snapshotId });
  const changes: Change[] = [];
  const [t1, t2] = [new SnapshotTree(repo, r1.snapshot), new SnapshotTree(repo, r2.snapshot)];
  for await (const c of diff(t1, await t1.root(), t2, await t2.root())) changes.push(c);
  const folders = (kind: string) => changes.filter((c) => c.kind === kind && (c.after ?? c.before)!.type === 'dir').map((c) => c.path).sort();
  // d (touched above), y (a new file) and a (a new folder) changed; fresh is new.
  assert.deepEqual(folders('metadata'), ['/src/a', '/src/a/b/c/d', '/src/x/y']);
  assert.deepEqual(folders('added'), ['/src/a/fresh']);
  assert.equal(r2.summary.dirsChanged, folders('metadata').length);
  assert.equal(r2.summary.dirsNew, folders('added').length);
  assert.equal(r2.summary.dirsUnchanged, 8 - 1 - 3, 'src, a/b, a/b/c, x');
  assert.equal(r2.summary.filesChanged, 1);
  assert.equal(r2.summary.filesNew, 1);
});
