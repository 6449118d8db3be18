import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { assertSameTree, lifeboat, tempDir } from './testing.js';

/** Every file of the repository folder that parity protects (all but locks and the sidecars). */
function protectedFiles(repo: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(repo);
  return out.filter((p) => !/^(parity|locks)\//.test(relative(repo, p))).sort();
}

/** A deterministic position in [0, n). */
function spot(seed: number, n: number): number {
  return Math.floor(((Math.sin(seed * 12.9898) * 43758.5453) % 1 + 1) % 1 * n);
}

test('with --parity 10%, a flipped byte or a zeroed 4 KiB sector in any one file of the repository loses nothing', async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const repo = join(dir.path, 'repo');
  const src = join(dir.path, 'src');
  mkdirSync(join(src, 'sub'), { recursive: true });
  writeFileSync(join(src, 'big.bin'), randomBytes(3 * 1024 * 1024));
  writeFileSync(join(src, 'sub', 'notes.txt'), 'hello parity\n'.repeat(2000));
  for (let i = 0; i < 5; i++) writeFileSync(join(src, 'sub', `f${i}`), randomBytes(1000 + i * 70_000));
  const env = { LIFEBOAT_REPO: repo, LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init', '--parity', '10%'], env)).code, 0);
  const b = await lifeboat(['backup', src, '--json'], env);
  assert.equal(b.code, 0, b.stderr);
  const snapshot = (JSON.parse(b.stdout) as { snapshot: string }).snapshot;
  assert.equal((await lifeboat(['pin', snapshot, '--note', 'keep'], env)).code, 0);
  assert.ok((await lifeboat(['check', '--read-data'], env)).code === 0);

  const files = protectedFiles(repo);
  assert.ok(files.some((f) => f.includes('/data/')) && files.some((f) => f.includes('/index/')) && files.some((f) => f.includes('/snapshots/')) && files.some((f) => f.endsWith('/config')) && files.some((f) => f.includes('/pins/')));
  for (const f of files) assert.ok(statSync(join(repo, 'parity', relative(repo, f))).size > 0, `${f} has its parity`);

  // One damage per file at a time: every restore is byte-identical and the correction is reported.
  let seed = 1;
  for (const f of files) {
    const good = readFileSync(f);
    for (const kind of ['flip', 'sector'] as const) {
      const bad = Buffer.from(good);
      const at = spot(seed++, bad.length);
      if (kind === 'flip') bad[at] = bad[at]! ^ 0x10;
      else bad.fill(0, at, Math.min(bad.length, at + 4096));
      writeFileSync(f, bad);
      const target = join(dir.path, `restore-${seed}`);
      // A pin is read by the listing, everything else by a restore.
      const pin = relative(repo, f).startsWith('pins/');
      const r = await lifeboat(pin ? ['snapshots'] : ['restore', snapshot, '--target', target], env);
      assert.equal(r.code, 0, `${relative(repo, f)} ${kind} at ${at}: ${r.stderr}`);
      // A byte the restore did not need (a snapshot's stored copy, say) is corrected when check reads everything.
      const told = /corrected from its parity/.test(r.stderr) ? r.stderr : (await lifeboat(['check', '--read-data'], env)).stderr;
      assert.match(told, /corrected from its parity/, `${relative(repo, f)} ${kind}`);
      if (pin) assert.match(r.stdout, /keep/);
      else assertSameTree(src, join(target, 'src'));
      writeFileSync(f, good);
    }
  }

  // A sector of every file rotten at once: check --read-data and restore still lose nothing.
  for (const f of files) {
    const bad = readFileSync(f);
    const at = spot(seed++, bad.length);
    bad.fill(0xee, at, Math.min(bad.length, at + 4096));
    writeFileSync(f, bad);
  }
  const check = await lifeboat(['check', '--read-data'], env);
  assert.equal(check.code, 0, check.stdout + check.stderr);
  assert.match(check.stderr, /corrected from its parity/);
  const target = join(dir.path, 'restore-all');
  const r = await lifeboat(['restore', snapshot, '--target', target], env);
  assert.equal(r.code, 0, r.stderr);
  assertSameTree(src, join(target, 'src'));
});

test('parity add gives an existing repository parity; check finds missing and damaged sidecars and parity add puts them back', async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const repo = join(dir.path, 'repo');
  const src = join(dir.path, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'a.bin'), randomBytes(600_000));
  const env = { LIFEBOAT_REPO: repo, LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  assert.equal((await lifeboat(['backup', src], env)).code, 0);
  assert.equal((await lifeboat(['parity', 'add'], env)).code, 2, 'an amount is needed the first time');
  const add = await lifeboat(['parity', 'add', '10%', '--json'], env);
  assert.equal(add.code, 0, add.stderr);
  const files = protectedFiles(repo);
  assert.deepEqual(JSON.parse(add.stdout), { written: files.length, sound: 0, enabled: true });
  for (const f of files) assert.ok(statSync(join(repo, 'parity', relative(repo, f))).isFile());
  assert.equal((await lifeboat(['parity', 'add', '20%'], env)).code, 2, 'the amount cannot change');

  // A rotten sector in the pack is now corrected on restore.
  const pack = files.filter((f) => f.includes('/data/')).sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
  const good = readFileSync(pack);
  const bad = Buffer.from(good);
  bad.fill(0, 100_000, 104_096);
  writeFileSync(pack, bad);
  const r = await lifeboat(['restore', 'latest', '--target', join(dir.path, 'out')], env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /corrected from its parity/);
  assertSameTree(src, join(dir.path, 'out', 'src'));
  writeFileSync(pack, good);

  // A missing sidecar (check) and a damaged one (check --read-data) are warnings; parity add rewrites both, byte for byte.
  const side = (f: string) => join(repo, 'parity', relative(repo, f));
  const index = files.find((f) => f.includes('/index/'))!;
  const indexSide = readFileSync(side(index));
  const packSide = readFileSync(side(pack));
  rmSync(side(index));
  const damaged = Buffer.from(packSide);
  damaged[damaged.length >> 1] = damaged[damaged.length >> 1]! ^ 1;
  writeFileSync(side(pack), damaged);
  const c1 = await lifeboat(['check'], env);
  assert.equal(c1.code, 0, c1.stdout);
  assert.match(c1.stdout, /index\/\w+: has no parity/);
  const c2 = await lifeboat(['check', '--read-data'], env);
  assert.match(c2.stdout, /data\/\w+\/\w+: its parity is damaged/);
  const fix = await lifeboat(['parity', 'add', '--json'], env);
  assert.deepEqual(JSON.parse(fix.stdout), { written: 2, sound: files.length - 2, enabled: false });
  assert.ok(readFileSync(side(index)).equals(indexSide) && readFileSync(side(pack)).equals(packSide));
  const c3 = await lifeboat(['check', '--read-data'], env);
  assert.doesNotMatch(c3.stdout, /parity/);

  // Prune repacks and deletes through parity: new packs get sidecars, deleted ones lose theirs.
  writeFileSync(join(src, 'a.bin'), randomBytes(300_000));
  assert.equal((await lifeboat(['backup', src], env)).code, 0);
  assert.equal((await lifeboat(['forget', '--keep-last', '1'], env)).code, 0);
  const p = await lifeboat(['prune'], env);
  assert.equal(p.code, 0, p.stderr);
  const after = protectedFiles(repo);
  const sidecars = readdirSync(join(repo, 'parity'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => relative(join(repo, 'parity'), join(e.parentPath, e.name)));
  assert.deepEqual(sidecars.sort(), after.map((f) => relative(repo, f)).sort());
  const c4 = await lifeboat(['check', '--read-data'], env);
  assert.equal(c4.code, 0, c4.stdout);
  assert.doesNotMatch(c4.stdout, /parity/);
});
