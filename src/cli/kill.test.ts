/**
 * Crash safety with a real SIGKILL (issue 6, P5): `lifeboat backup` is killed at random moments
 * (a few rounds, from "just started" to "about to write its snapshot"). After each kill,
 * `check --read-data` passes, every earlier snapshot restores intact, and the next backup
 * succeeds and uploads only what the killed one had not stored. A prune right after a kill gets
 * its exclusive lock (the dead process's lock is stale) and leaves every snapshot intact.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { killedAfter, lifeboat, tempDir, assertSameTree } from './testing.js';

function makeTree(dir: string, seedFiles: number, size: number): void {
  mkdirSync(join(dir, 'sub'), { recursive: true });
  for (let i = 0; i < seedFiles; i++) writeFileSync(join(dir, i % 2 ? 'sub' : '', `f${i}.bin`), randomBytes(size));
  for (let i = 0; i < 20; i++) writeFileSync(join(dir, 'sub', `small${i}.txt`), randomBytes(500 + i * 700));
}

/** Bytes of all files under `dir` (the packs of a repository's data folder). */
function bytesUnder(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) n += e.isDirectory() ? bytesUnder(join(dir, e.name)) : statSync(join(dir, e.name)).size;
  return n;
}

test('a backup killed with SIGKILL at random moments leaves a repository that checks clean; old snapshots restore; the next backup succeeds', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  const trees: string[] = [];
  const ids: string[] = [];
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const first = join(d.path, 'tree0');
  makeTree(first, 4, 2 * 1024 * 1024);
  const b0 = await lifeboat(['backup', '--json', first], env);
  assert.equal(b0.code, 0, b0.stderr);
  trees.push(first);
  ids.push((JSON.parse(b0.stdout) as { snapshot: string }).snapshot);

  // How long a full backup of a new 24 MiB tree takes here, to spread the kills over it.
  const timed = join(d.path, 'timed');
  makeTree(timed, 6, 4 * 1024 * 1024);
  const started = Date.now();
  const bt = await lifeboat(['backup', '--json', timed], env);
  assert.equal(bt.code, 0, bt.stderr);
  const full = Date.now() - started;
  const fullBytes = (JSON.parse(bt.stdout) as { summary: { bytesAdded: number } }).summary.bytesAdded;
  const data = join(env.LIFEBOAT_REPO, 'data');
  trees.push(timed);
  ids.push((JSON.parse(bt.stdout) as { snapshot: string }).snapshot);

  let kills = 0;
  const rounds = 5;
  for (let r = 0; r < rounds; r++) {
    const tree = join(d.path, `tree${r + 1}`);
    makeTree(tree, 6, 4 * 1024 * 1024);
    // From the process's start-up to the end of a whole backup, spread over the rounds.
    const ms = Math.round(((r + Math.random()) / rounds) * full);
    const before = bytesUnder(data);
    const k = await killedAfter(ms, ['backup', tree], env);
    const storedByKilled = bytesUnder(data) - before;
    if (k.killed) kills++;
    const what = `round ${r}, killed after ${ms} ms of ~${full} (${k.killed ? 'killed' : `finished first, code ${k.code}`})`;

    const check = await lifeboat(['check', '--read-data'], env);
    assert.equal(check.code, 0, `${what}: check --read-data\n${check.stdout}${check.stderr}`);
    assert.match(check.stdout, /No errors were found/);
    for (let i = 0; i < ids.length; i++) {
      const target = join(d.path, `restore-${r}-${i}`);
      const rs = await lifeboat(['restore', ids[i]!, '--target', target], env);
      assert.equal(rs.code, 0, `${what}: restore ${ids[i]}: ${rs.stderr}`);
      assertSameTree(trees[i]!, join(target, trees[i]!.split('/').pop()!));
    }
    const next = await lifeboat(['backup', '--json', tree], env);
    assert.equal(next.code, 0, `${what}: the next backup: ${next.stderr}`);
    // It reuses every pack the killed run stored: together they add about one backup's worth.
    const added = (JSON.parse(next.stdout) as { summary: { bytesAdded: number } }).summary.bytesAdded;
    assert.ok(storedByKilled + added <= fullBytes * 1.1, `${what}: the killed run stored ${storedByKilled} bytes, the next added ${added}; one backup is ${fullBytes}`);
    trees.push(tree);
    ids.push((JSON.parse(next.stdout) as { snapshot: string }).snapshot);
  }
  assert.ok(kills >= 3, `at least 3 of ${rounds} backups were killed mid-way (${kills})`);
  // A last kill mid-way, then prune: the dead process's lock (this host, pid gone) is stale and
  // cleared, so the exclusive lock is granted; prune removes the packs the dead backup left.
  const last = join(d.path, 'tree-last');
  makeTree(last, 6, 4 * 1024 * 1024);
  const k = await killedAfter(Math.round(full * 0.6), ['backup', last], env);
  const pr = await lifeboat(['prune'], env);
  assert.equal(pr.code, 0, `prune after a ${k.killed ? 'killed' : 'finished'} backup: ${pr.stdout}${pr.stderr}`);
  const finalCheck = await lifeboat(['check', '--read-data'], env);
  assert.equal(finalCheck.code, 0, finalCheck.stdout);
  for (let i = 0; i < ids.length; i++) {
    const target = join(d.path, `restore-final-${i}`);
    assert.equal((await lifeboat(['restore', ids[i]!, '--target', target], env)).code, 0);
    assertSameTree(trees[i]!, join(target, trees[i]!.split('/').pop()!));
  }
});
