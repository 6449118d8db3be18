/**
 * find, diff and dump inside drive images (issue 18, P7: one tree interface): "which files changed
 * between Monday's and Friday's system image" is answered from the repository, without restoring
 * anything; a file comes out with dump, a folder as a tar that tar itself reads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync, readFileSync, symlinkSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, assertSameTree, lifeboat } from '../cli/testing.js';
import { seededBytes, sh, tempDir } from './testing.js';

function disk(dir: string, tree: string): string {
  sh(`rm -f disk.img && truncate -s 64M disk.img
printf 'label: dos\\nstart=2048, size=100352, type=83\\n' | sfdisk -q disk.img
truncate -s $((100352*512)) p1.img && mkfs.ext4 -q -F -b 4096 -d ${tree} p1.img
dd if=p1.img of=disk.img bs=512 seek=2048 conv=notrunc status=none && rm p1.img`, dir);
  return join(dir, 'disk.img');
}

test('diff, find and dump work inside drive images, read from the repository', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  const tree = join(d.path, 'tree');
  const ann = join(tree, 'Users', 'ann');
  mkdirSync(ann, { recursive: true });
  writeFileSync(join(ann, 'notes.txt'), 'monday\n');
  writeFileSync(join(ann, 'photo.bin'), seededBytes(1, 300_000));
  writeFileSync(join(ann, 'keep.bin'), seededBytes(2, 200_000));
  symlinkSync('notes.txt', join(ann, 'latest-notes'));
  for (const f of ['notes.txt', 'photo.bin', 'keep.bin']) utimesSync(join(ann, f), 1_700_000_000, 1_700_000_000);
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const first = await lifeboat(['image', 'create', '--json', disk(d.path, tree)], env);
  assert.equal(first.code, 0, first.stderr);
  writeFileSync(join(ann, 'notes.txt'), 'friday!\n');
  rmSync(join(ann, 'photo.bin'));
  writeFileSync(join(ann, 'new.txt'), 'new\n');
  for (const f of ['notes.txt', 'new.txt']) utimesSync(join(ann, f), 1_700_100_000, 1_700_100_000);
  const second = await lifeboat(['image', 'create', '--json', disk(d.path, tree)], env);
  assert.equal(second.code, 0, second.stderr);
  const [a, b] = [first, second].map((r) => (JSON.parse(r.stdout) as { id: string }).id);

  const changes = JSON.parse((await lifeboat(['diff', '--json', a!, b!], env)).stdout) as { kind: string; path: string }[];
  const files = changes.filter((c) => !['metadata'].includes(c.kind));
  assert.deepEqual(files.sort((x, y) => x.path.localeCompare(y.path)), [
    { kind: 'added', path: '/1/Users/ann/new.txt' },
    { kind: 'modified', path: '/1/Users/ann/notes.txt' },
    { kind: 'removed', path: '/1/Users/ann/photo.bin' },
  ]);

  const dumped = spawnSync(process.execPath, [BIN, 'dump', b!, '1:/Users/ann/notes.txt'], { env: { ...process.env, LIFEBOAT_INSECURE_FAST_KDF: '1', ...env } });
  assert.equal(dumped.status, 0, dumped.stderr.toString());
  assert.equal(dumped.stdout.toString(), 'friday!\n');
  const old = spawnSync(process.execPath, [BIN, 'dump', a!, '/1/Users/ann/photo.bin'], { env: { ...process.env, LIFEBOAT_INSECURE_FAST_KDF: '1', ...env } });
  assert.ok(old.stdout.equals(seededBytes(1, 300_000)), 'a file deleted since comes out of the older image byte for byte');

  const tar = spawnSync(process.execPath, [BIN, 'dump', b!, '/1/Users'], { env: { ...process.env, LIFEBOAT_INSECURE_FAST_KDF: '1', ...env }, maxBuffer: 1 << 26 });
  assert.equal(tar.status, 0, tar.stderr.toString());
  writeFileSync(join(d.path, 'users.tar'), tar.stdout);
  const out = join(d.path, 'untarred');
  mkdirSync(out);
  execFileSync('tar', ['-xf', join(d.path, 'users.tar'), '-C', out]);
  assertSameTree(join(tree, 'Users'), join(out, 'Users'));
  assert.equal(readFileSync(join(out, 'Users', 'ann', 'latest-notes'), 'utf8'), 'friday!\n', 'the symlink came through');

  const found = JSON.parse((await lifeboat(['find', '--images', '--json', 'notes.txt'], env)).stdout) as { snapshot: string; path: string; size: number }[];
  assert.deepEqual(found.map((f) => [f.snapshot, f.path, f.size]), [[a, '/1/Users/ann/notes.txt', 7], [b, '/1/Users/ann/notes.txt', 8]]);
  const plain = await lifeboat(['find', 'notes.txt'], env);
  assert.equal(plain.code, 1, 'without --images, find searches file backups only');
});
