/**
 * backup --dry-run (P10 item 4): how many files and bytes a backup would read and about how long it
 * takes, without writing to the repository; after a backup, only what changed is counted as read.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { lifeboat, tempDir } from './testing.js';

/** Every file and folder under `dir` with its size, sorted: a repository's state as seen from outside. */
function listing(dir: string): string[] {
  const out: string[] = [];
  const visit = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      const st = statSync(p);
      out.push(`${p} ${st.isDirectory() ? 'dir' : st.size}`);
      if (st.isDirectory()) visit(p);
    }
  };
  visit(dir);
  return out.sort();
}

interface Estimate { files: number; bytes: number; seconds: number; complete: boolean; parent?: string; changedFiles: number; bytesToRead: number; speeds: { from: string; bytesPerSecond: number } }

async function dryRun(tree: string, env: Record<string, string>): Promise<{ e: Estimate; text: string }> {
  const j = await lifeboat(['backup', '--dry-run', '--json', tree], env);
  assert.equal(j.code, 0, j.stdout + j.stderr);
  const r = await lifeboat(['backup', '--dry-run', tree], env);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  return { e: JSON.parse(j.stdout) as Estimate, text: r.stdout };
}

test('backup --dry-run counts the tree without writing; after a backup and one change it reads about that file', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const tree = join(d.path, 'data');
  mkdirSync(join(tree, 'sub', 'deeper'), { recursive: true });
  let files = 0;
  let bytes = 0;
  for (let i = 0; i < 30; i++) {
    const size = 1000 + i * 517;
    writeFileSync(join(tree, i % 3 === 0 ? 'sub' : i % 3 === 1 ? 'sub/deeper' : '.', `f${i}.bin`), Buffer.alloc(size, i));
    files++;
    bytes += size;
  }
  const repo = join(d.path, 'repo');
  const env = { LIFEBOAT_REPO: repo, LIFEBOAT_PASSWORD: 'pw', XDG_CACHE_HOME: join(d.path, 'cache') };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const before = listing(repo);

  const first = await dryRun(tree, env);
  assert.equal(first.e.files, files);
  assert.equal(first.e.bytes, bytes);
  assert.equal(first.e.bytesToRead, bytes);
  assert.equal(first.e.complete, true);
  assert.equal(first.e.parent, undefined);
  assert.equal(first.e.speeds.from, 'defaults');
  assert.match(first.text, new RegExp(`^Would back up ${files} files \\(.+\\); all of it would be read .*typical speeds.*Nothing was written\\.\\n$`));
  assert.deepEqual(listing(repo), before, 'a dry run leaves the repository as it was');

  const b = await lifeboat(['backup', tree], env);
  assert.equal(b.code, 0, b.stdout + b.stderr);
  const changed = join(tree, 'sub', 'f3.bin');
  writeFileSync(changed, Buffer.alloc(40_000, 9));
  const afterBackup = listing(repo);

  const second = await dryRun(tree, env);
  assert.equal(second.e.files, files);
  assert.equal(second.e.bytes, bytes - (1000 + 3 * 517) + 40_000);
  assert.equal(second.e.changedFiles, 1);
  assert.equal(second.e.bytesToRead, 40_000);
  assert.ok(second.e.parent);
  assert.equal(second.e.speeds.from, 'earlier backups');
  assert.ok(second.e.speeds.bytesPerSecond > 0);
  assert.match(second.text, /about 40\.0 kB in 1 file changed since the last backup \([0-9a-f]{8}\) would be read; about \d+ s \(from the speed of earlier backups here\)/);
  assert.deepEqual(listing(repo), afterBackup, 'a dry run after a backup leaves the repository as it was');
  assert.match((await lifeboat(['backup', '--help'], env)).stdout, /lifeboat backup --dry-run ~\/Documents/);
});

test('backup --dry-run without earlier backups measures a short trial run, writing nothing to the repository', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const tree = join(d.path, 'data');
  let bytes = 0;
  for (let dir = 0; dir < 20; dir++) {
    mkdirSync(join(tree, `d${dir}`), { recursive: true });
    for (let i = 0; i < 150; i++) {
      const b = randomBytes(4096 + ((dir * 150 + i) % 7) * 1024);
      writeFileSync(join(tree, `d${dir}`, `f${i}`), b);
      bytes += b.length;
    }
  }
  writeFileSync(join(tree, 'large.bin'), randomBytes(24 << 20));
  bytes += 24 << 20;
  const repo = join(d.path, 'repo');
  const env = { LIFEBOAT_REPO: repo, LIFEBOAT_PASSWORD: 'pw', XDG_CACHE_HOME: join(d.path, 'cache') };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const before = listing(repo);
  const { e, text } = await dryRun(tree, env);
  assert.equal(e.files, 3001);
  assert.equal(e.bytes, bytes);
  assert.equal(e.speeds.from, 'a trial run');
  assert.ok(e.speeds.bytesPerSecond > 0 && e.seconds > 0, JSON.stringify(e));
  assert.match(text, /about \d+ s \(from a few seconds of trial here; later estimates use the speed of real backups\)\. Nothing was written\.\n$/);
  assert.deepEqual(listing(repo), before, 'the trial run writes nothing into the repository');
});

test('backup --dry-run of a path that does not exist says so, as the backup would, and writes nothing', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const repo = join(d.path, 'repo');
  const env = { LIFEBOAT_REPO: repo, LIFEBOAT_PASSWORD: 'pw', XDG_CACHE_HOME: join(d.path, 'cache') };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const before = listing(repo);
  const missing = join(d.path, 'nothing-here');
  const r = await lifeboat(['backup', '--dry-run', missing], env);
  assert.deepEqual(listing(repo), before);
  const real = await lifeboat(['backup', missing], env);
  assert.equal(r.code, real.code);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, new RegExp(`^lifeboat: Nothing would be backed up: ${missing} does not exist\\. Check the path`, 'm'));
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
});
