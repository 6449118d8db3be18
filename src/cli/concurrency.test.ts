/**
 * Concurrent writers (issue 6, P5): two `lifeboat backup` processes of different trees into one
 * repository at the same time both succeed and both restore intact, and check --read-data is
 * clean; the two share data they both contain. A prune started while a backup holds its lock
 * exits 11 (locked) and the backup still succeeds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BIN, lifeboat, tempDir, type CliResult, assertSameTree } from './testing.js';

function makeTree(dir: string, files: number, size: number, shared?: Buffer): void {
  mkdirSync(join(dir, 'sub'), { recursive: true });
  for (let i = 0; i < files; i++) writeFileSync(join(dir, i % 2 ? 'sub' : '', `f${i}.bin`), randomBytes(size));
  for (let i = 0; i < 30; i++) writeFileSync(join(dir, 'sub', `s${i}.txt`), randomBytes(100 + i * 400));
  if (shared) writeFileSync(join(dir, 'shared.bin'), shared);
}

/** Starts a CLI process; `done` resolves when it exits. */
function start(args: string[], env: Record<string, string>): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, LIFEBOAT_INSECURE_FAST_KDF: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return { child, done: new Promise((res, rej) => (child.on('error', rej), child.on('close', (code) => res({ code, stdout, stderr })))) };
}

test('two backups of different trees into one repository at the same time both succeed and restore intact', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const shared = randomBytes(6 * 1024 * 1024);
  const a = join(d.path, 'alpha');
  const b = join(d.path, 'beta');
  makeTree(a, 6, 3 * 1024 * 1024, shared);
  makeTree(b, 6, 3 * 1024 * 1024, shared);

  for (let round = 0; round < 2; round++) {
    if (round > 0) {
      // The second round changes a file in each tree: incremental backups in parallel too.
      writeFileSync(join(a, 'f0.bin'), randomBytes(1_000_000));
      writeFileSync(join(b, 'sub', 'f1.bin'), randomBytes(1_000_000));
    }
    const [ra, rb] = await Promise.all([start(['backup', '--json', a], env).done, start(['backup', '--json', b], env).done]);
    assert.equal(ra.code, 0, ra.stderr);
    assert.equal(rb.code, 0, rb.stderr);
    const ida = (JSON.parse(ra.stdout) as { snapshot: string }).snapshot;
    const idb = (JSON.parse(rb.stdout) as { snapshot: string }).snapshot;
    assert.notEqual(ida, idb);
    const check = await lifeboat(['check', '--read-data'], env);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /No errors were found/);
    for (const [id, tree] of [[ida, a], [idb, b]] as const) {
      const target = join(d.path, `restore-${round}-${id.slice(0, 8)}`);
      const r = await lifeboat(['restore', id, '--target', target], env);
      assert.equal(r.code, 0, r.stderr);
      assertSameTree(tree, join(target, tree.split('/').pop()!));
    }
  }
  // The same data saved by both at once may be stored twice (each writer's packs are its own);
  // prune removes the duplicate and everything still restores.
  const pr = await lifeboat(['prune', '--max-unused', '0'], env);
  assert.equal(pr.code, 0, pr.stdout + pr.stderr);
  assert.equal((await lifeboat(['check', '--read-data'], env)).code, 0);
  const snaps = JSON.parse((await lifeboat(['snapshots', '--json'], env)).stdout) as { id: string; paths: string[] }[];
  assert.equal(snaps.length, 4);
  for (const s of snaps.slice(-2)) {
    const target = join(d.path, `final-${s.id.slice(0, 8)}`);
    assert.equal((await lifeboat(['restore', s.id, '--target', target], env)).code, 0);
    assertSameTree(s.paths[0]!, join(target, s.paths[0]!.split('/').pop()!));
  }
});

test('a prune started while a backup holds its lock exits 11 (locked); the backup still succeeds', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const tree = join(d.path, 'tree');
  makeTree(tree, 10, 4 * 1024 * 1024);
  const bk = start(['backup', '--json', tree], env);
  let finished = false;
  void bk.done.then(() => (finished = true));
  // Wait until the backup's lock is on disk, then freeze the backup (SIGSTOP) so that it still holds
  // the lock however slowly prune starts on a busy machine: the order no longer depends on timing.
  const locks = join(d.path, 'repo', 'locks');
  const hasLock = () => existsSync(locks) && readdirSync(locks).some((n) => /^[0-9a-f]{64}$/.test(n));
  while (!finished && !hasLock()) await sleep(10);
  bk.child.kill('SIGSTOP');
  let pr: CliResult;
  try {
    assert.ok(!finished && hasLock(), 'the backup was stopped while it held its lock');
    pr = await lifeboat(['prune'], env);
  } finally {
    bk.child.kill('SIGCONT');
  }
  const r = await bk.done;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(pr.code, 11, `prune beside a running backup: ${pr.stdout}${pr.stderr}`);
  assert.match(pr.stderr, /lock/i);
  assert.equal((await lifeboat(['check', '--read-data'], env)).code, 0);
  const target = join(d.path, 'restored');
  assert.equal((await lifeboat(['restore', (JSON.parse(r.stdout) as { snapshot: string }).snapshot, '--target', target], env)).code, 0);
  assertSameTree(tree, join(target, 'tree'));
  // With the backup gone, its lock is released and prune runs.
  assert.equal((await lifeboat(['prune'], env)).code, 0);
});
