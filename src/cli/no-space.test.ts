/**
 * Destination full in the middle of a backup (issue 6, P5). A real full drive: the repository on
 * an 8 MiB tmpfs, a 20 MB tree. The CLI exits non-zero with a plain message about space (no stack
 * trace), no half-written file is kept, the repository checks clean with --read-data, the earlier
 * snapshot restores, and no snapshot of the failed backup exists. Also an image onto the full
 * drive, and (in process, with FaultStore) the drive filling at every put of a backup.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkRepository } from '../repo/check.js';
import { Repository } from '../repo/repository.js';
import type { Snapshot } from '../repo/snapshot.js';
import { MemoryStore } from '../store/memory.js';
import type { Store } from '../store/store.js';
import { backup } from '../files/backup.js';
import { fileTreeReferences } from '../files/tree.js';
import { LifeboatError } from '../util/errors.js';
import { lifeboat, tempDir } from './testing.js';

const canMount = process.getuid?.() === 0;

test('a backup onto a drive that fills up fails with a plain message and leaves the repository intact', { skip: !canMount && 'needs root to mount a tmpfs' }, async (t) => {
  const d = tempDir();
  const mnt = join(d.path, 'mnt');
  mkdirSync(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mnt]);
  t.after(() => {
    try {
      execFileSync('umount', [mnt]);
    } finally {
      d.cleanup();
    }
  });
  const env = { LIFEBOAT_REPO: join(mnt, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);

  const small = join(d.path, 'small');
  mkdirSync(small);
  writeFileSync(join(small, 'a.txt'), 'hello');
  writeFileSync(join(small, 'b.bin'), randomBytes(300_000));
  const b1 = await lifeboat(['backup', '--json', small], env);
  assert.equal(b1.code, 0, b1.stderr);
  const firstId = (JSON.parse(b1.stdout) as { snapshot: string }).snapshot;

  const big = join(d.path, 'big');
  mkdirSync(join(big, 'sub'), { recursive: true });
  for (let i = 0; i < 4; i++) writeFileSync(join(big, i % 2 ? 'sub' : '', `f${i}.bin`), randomBytes(5_000_000));
  const b2 = await lifeboat(['backup', big], env);
  assert.notEqual(b2.code, 0, 'the backup must fail');
  assert.match(b2.stderr, /is full/);
  assert.match(b2.stderr, /\(\d+(\.\d+)? [KMG]?B\)/, 'the message says how big the write that did not fit was');
  assert.match(b2.stderr, /Free some space/);
  assert.doesNotMatch(b2.stderr, /^\s+at /m, 'no stack trace');
  assert.equal(readdirSync(join(mnt, 'repo', '.tmp')).length, 0, 'nothing half-written is kept');

  const disk = join(d.path, 'disk.img');
  writeFileSync(disk, randomBytes(20_000_000));
  const img = await lifeboat(['image', 'create', disk], env);
  assert.notEqual(img.code, 0);
  assert.match(img.stderr, /is full/);
  assert.doesNotMatch(img.stderr, /^\s+at |unhandled/im, 'no stack trace or unhandled rejection');

  const check = await lifeboat(['check', '--read-data'], env);
  assert.equal(check.code, 0, check.stdout + check.stderr);
  const snaps = JSON.parse((await lifeboat(['snapshots', '--json'], env)).stdout) as { id: string }[];
  assert.deepEqual(snaps.map((s) => s.id), [firstId], 'no snapshot of the failed runs');
  const target = join(d.path, 'restored');
  assert.equal((await lifeboat(['restore', firstId, '--target', target], env)).code, 0);
  assert.ok(readFileSync(join(target, 'small', 'b.bin')).equals(readFileSync(join(small, 'b.bin'))));
});

test('the store filling up at any put of a backup: no-space error, clean repository, no snapshot of missing data', async (t) => {
  process.env['LIFEBOAT_INSECURE_FAST_KDF'] = '1';
  const d = tempDir();
  t.after(d.cleanup);
  const tree = join(d.path, 'tree');
  mkdirSync(join(tree, 'sub'), { recursive: true });
  for (let i = 0; i < 4; i++) writeFileSync(join(tree, i % 2 ? 'sub' : '', `f${i}.bin`), randomBytes(5_000_000));
  for (let i = 0; i < 10; i++) writeFileSync(join(tree, 'sub', `s${i}.txt`), `small ${i}`);
  const walkers = { files: (repo: Repository, s: Snapshot, visit: (id: Uint8Array) => boolean) => fileTreeReferences(repo, s.root, visit) };
  const open = async (store: Store) => {
    const r = await Repository.open(store, 'pw');
    await r.loadIndex();
    return r;
  };
  const base = new MemoryStore();
  await Repository.init(base, 'pw');
  const clone = async () => {
    const out = new MemoryStore();
    for (const p of ['config', 'keys/']) for await (const o of base.list(p)) await out.put(o.name, await base.get(o.name));
    return out;
  };
  // Count the puts a clean backup makes; then let the drive be full from the (k+1)th put on, for
  // every k. (By count, not bytes: the order of concurrent puts may differ between runs.)
  let puts = 0;
  const probe = await clone();
  const rec = new Proxy(probe, { get: (o, k) => (k === 'put' ? (n: string, b: Uint8Array) => (puts++, o.put(n, b)) : (Reflect.get(o, k) as unknown)) });
  await backup(await open(rec), { paths: [tree] });
  assert.ok(puts >= 4, `${puts} puts`);
  for (let k = 0; k < puts; k++) {
    const inner = await clone();
    let n = 0;
    const full = new Proxy(inner, {
      get: (o, key) =>
        key === 'put'
          ? (name: string, b: Uint8Array) => (++n > k ? Promise.reject(new LifeboatError('no-space', `The drive is full: could not save ${name} (${b.length} bytes).`)) : o.put(name, b))
          : (Reflect.get(o, key) as unknown),
    });
    await assert.rejects(backup(await open(full), { paths: [tree] }), (e) => e instanceof LifeboatError && e.code === 'no-space', `full at put ${k + 1}`);
    const after = await open(inner);
    assert.deepEqual((await checkRepository(after, { readData: true, walkers })).errors, [], `full at put ${k + 1}: check`);
    assert.equal((await after.listSnapshots()).length, 0, `full at put ${k + 1}: no snapshot`);
  }
});
