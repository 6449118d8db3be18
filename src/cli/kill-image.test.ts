/**
 * Crash safety with a real SIGKILL, for images and prune (issue 6, P5): `lifeboat image create`
 * and `lifeboat prune` are killed at random moments. After each kill `check --read-data` passes
 * and every image snapshot restores byte for byte; the next image and a final prune succeed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { killedAfter, lifeboat, tempDir } from './testing.js';

test('image create and prune killed with SIGKILL at random moments: check --read-data clean, every image restores byte for byte', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const disks: string[] = [];
  const ids: string[] = [];
  const newDisk = (i: number) => {
    const p = join(d.path, `disk${i}.img`);
    writeFileSync(p, Buffer.concat([randomBytes(8 * 1024 * 1024), Buffer.alloc(4 * 1024 * 1024), randomBytes(12 * 1024 * 1024)]));
    return p;
  };
  const imageOk = async (p: string) => {
    const started = Date.now();
    const r = await lifeboat(['image', 'create', '--json', p], env);
    assert.equal(r.code, 0, r.stderr);
    disks.push(p);
    ids.push((JSON.parse(r.stdout) as { id: string }).id);
    return Date.now() - started;
  };
  const full = await imageOk(newDisk(0));
  const verify = async (what: string) => {
    const check = await lifeboat(['check', '--read-data'], env);
    assert.equal(check.code, 0, `${what}: check --read-data\n${check.stdout}${check.stderr}`);
    for (let i = 0; i < ids.length; i++) {
      const out = join(d.path, `out-${i}.img`);
      rmSync(out, { force: true });
      const r = await lifeboat(['image', 'restore', ids[i]!, '--target', out], env);
      assert.equal(r.code, 0, `${what}: image restore ${ids[i]}: ${r.stderr}`);
      assert.ok(readFileSync(out).equals(readFileSync(disks[i]!)), `${what}: ${disks[i]} restores byte for byte`);
    }
  };
  let kills = 0;
  for (let r = 0; r < 4; r++) {
    const disk = newDisk(r + 1);
    // Spread over the run (start-up, reading, packing, the index, the snapshot), but before its
    // end: a later image (with a parent to compare against) can take less than the first.
    const ms = Math.round((0.1 + 0.7 * ((r + Math.random()) / 4)) * full);
    const k = await killedAfter(ms, ['image', 'create', disk], env);
    if (k.killed) kills++;
    await verify(`image round ${r}, killed after ${ms} ms of ~${full}`);
    await imageOk(disk);
  }
  // Forget half of the images, then kill prune at random moments until one finishes.
  for (const id of ids.splice(0, 3)) assert.equal((await lifeboat(['forget', id], env)).code, 0);
  disks.splice(0, 3);
  const pruneFull = Date.now();
  const dry = await lifeboat(['prune', '--dry-run', '--max-unused', '0'], env);
  assert.equal(dry.code, 0);
  const pruneMs = Math.max(200, (Date.now() - pruneFull) * 3);
  for (let r = 0; r < 3; r++) {
    const ms = Math.round(((r + Math.random()) / 3) * pruneMs);
    const k = await killedAfter(ms, ['prune', '--max-unused', '0'], env);
    if (k.killed) kills++;
    await verify(`prune round ${r}, killed after ${ms} ms (${k.killed ? 'killed' : `finished, code ${k.code}`})`);
  }
  const pr = await lifeboat(['prune', '--max-unused', '0'], env);
  assert.equal(pr.code, 0, pr.stdout + pr.stderr);
  await verify('after a full prune');
  assert.ok(kills >= 3, `${kills} runs were killed mid-way`);
});
