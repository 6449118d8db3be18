import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { lifeboat, tempDir } from '../cli/testing.js';
import { makeExt4Disk } from './testing.js';

test('repair snapshots on an image with a lost pack: the new image keeps every intact chunk and lists the lost bytes', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const disk = makeExt4Disk(d.path);
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const c = await lifeboat(['image', 'create', disk, '--json'], env);
  assert.equal(c.code, 0, c.stderr);
  // Lose the largest pack (data chunks; the small one holds the map and manifest).
  const packs: string[] = [];
  const walk = (p: string) => readdirSync(p).forEach((n) => (statSync(join(p, n)).isDirectory() ? walk(join(p, n)) : packs.push(join(p, n))));
  walk(join(d.path, 'repo', 'data'));
  const biggest = packs.sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
  rmSync(biggest);
  assert.equal((await lifeboat(['check'], env)).code, 1);
  assert.equal((await lifeboat(['repair', 'index'], env)).code, 0);
  const rep = await lifeboat(['repair', 'snapshots', '--forget'], env);
  assert.equal(rep.code, 0, rep.stderr + rep.stdout);
  assert.match(rep.stdout, /bytes \d+–\d+/);
  assert.equal((await lifeboat(['check', '--read-data'], env)).code, 0, 'the repaired repository checks clean');

  const info = JSON.parse((await lifeboat(['image', 'info', 'latest', '--json'], env)).stdout) as { unreadable: { start: number; length: number }[] };
  assert.ok(info.unreadable.length > 0);
  const out = join(d.path, 'out.img');
  const r = await lifeboat(['image', 'restore', 'latest', '--target', out], env);
  assert.equal(r.code, 0, r.stderr);
  const a = readFileSync(disk);
  const b = readFileSync(out);
  assert.equal(a.length, b.length);
  const lost = (o: number) => info.unreadable.some((u) => o >= u.start && o < u.start + u.length);
  let differing = 0;
  for (let o = 0; o < a.length; o += 4096) {
    const same = a.subarray(o, o + 4096).equals(b.subarray(o, o + 4096));
    if (!same) {
      differing++;
      assert.ok(lost(o), `byte ${o} differs but is not listed as lost`);
      assert.ok(b.subarray(o, o + 4096).every((x) => x === 0), 'lost bytes restore as zeros');
    }
  }
  assert.ok(differing > 0, 'the lost pack really held data of this image');
  assert.ok(a.subarray(0, 512).equals(b.subarray(0, 512)) || lost(0), 'intact chunks restore exactly');
});
