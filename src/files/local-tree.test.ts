import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { LocalTree } from './local-tree.js';
import { SnapshotTree } from './snapshot-tree.js';
import { backup } from './backup.js';
import { blocks, newRepo, tmp } from './testing.js';
import { walk } from '../tree/tree.js';
import { copyOut } from '../tree/restore.js';
import { lifeboat } from '../cli/testing.js';
import { platform } from './platform/platform.js';

const setTimes = (p: Buffer, a: bigint, m: bigint) => platform().setTimes(p, a, m);

/** A small tree with what a copy must keep: nested folders, a symlink, a hard link pair, a sparse file, a non-UTF-8 name, modes and times. */
function smallTree(root: string): void {
  fs.mkdirSync(join(root, 'docs', 'sub'), { recursive: true });
  fs.writeFileSync(join(root, 'docs', 'a.txt'), 'alpha\n');
  fs.writeFileSync(join(root, 'docs', 'sub', 'b.bin'), Buffer.alloc(300_000, 7));
  fs.symlinkSync('a.txt', join(root, 'docs', 'link'));
  fs.writeFileSync(join(root, 'hard1'), 'linked');
  fs.linkSync(join(root, 'hard1'), join(root, 'docs', 'hard2'));
  const fd = fs.openSync(join(root, 'sparse'), 'w');
  fs.writeSync(fd, Buffer.alloc(4096, 9), 0, 4096, 4 * 1024 * 1024);
  fs.ftruncateSync(fd, 8 * 1024 * 1024);
  fs.closeSync(fd);
  fs.writeFileSync(Buffer.from(join(root, 'n\xff.t'), 'latin1'), 'odd name');
  fs.chmodSync(join(root, 'docs', 'a.txt'), 0o640);
  execFileSync('touch', ['-h', '-d', '2020-01-02 03:04:05.123456789', join(root, 'docs', 'a.txt')]);
}

/** `find` listing (an independent checker): path, type, mode, size, mtime, link count. */
function listing(root: string): string[] {
  return execFileSync('sh', ['-c', `cd "$1" && find . -mindepth 1 -printf '%P|%y|%m|%s|%T@|%n|%l\\n' | LC_ALL=C sort`, 'sh', root])
    .toString('latin1')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const f = l.split('|');
      if (f[1] === 'd') f[3] = f[4] = '-'; // folder sizes depend on the filesystem, their times on what was written into them
      return f.join('|');
    });
}

test('a folder as a tree: walk lists what find lists, and copyOut of it makes an identical copy (hard links, symlinks, sparse files, odd names)', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  smallTree(src);
  const tree = new LocalTree(src);
  const walked: string[] = [];
  for await (const f of walk(tree, await tree.root())) walked.push(f.path.slice(1));
  const found = execFileSync('sh', ['-c', `cd "$1" && find . -mindepth 1 -printf '%P\\n'`, 'sh', src]).toString('latin1').split('\n').filter(Boolean);
  assert.equal(walked.length, found.length);
  const plain = (p: string) => /^[\x20-\x7e]*$/.test(p);
  assert.deepEqual(walked.filter(plain).sort(), found.filter(plain).sort());

  const out = join(dir, 'out');
  const s = await copyOut(tree, [{ node: await tree.root(), shown: '/' }], out, { setTimes });
  assert.equal(s.errors, 0);
  assert.equal(s.hardlinks, 1);
  assert.deepEqual(listing(out), listing(src));
  assert.ok(blocks(join(out, 'sparse')) * 512 < 64 * 1024, 'the sparse file stays sparse');
  assert.equal(fs.statSync(join(out, 'hard1')).ino, fs.statSync(join(out, 'docs', 'hard2')).ino);
});

test('the same restorer copies a folder out of a file snapshot, byte-identical with its metadata', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  smallTree(src);
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  const r = await backup(repo, { paths: [src] });
  const snap = new SnapshotTree(repo, r.snapshot);
  const root = await snap.root();
  const top = (await snap.list(root)).find((n) => n.name.toString() === 'src')!;
  const out = join(dir, 'out');
  const s = await copyOut(snap, [{ node: top, shown: '/src' }], out, { setTimes });
  assert.equal(s.errors, 0);
  assert.deepEqual(listing(join(out, 'src')), listing(src));
});

test('lifeboat diff SNAPSHOT FOLDER shows what changed on this computer since that backup', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'docs');
  smallTree(src);
  const env = { LIFEBOAT_REPO: join(dir, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  assert.equal((await lifeboat(['backup', src], env)).code, 0);
  const same = await lifeboat(['diff', 'latest', src], env);
  assert.equal(same.code, 0, same.stderr);
  assert.equal(same.stdout, '', 'nothing changed yet');

  fs.writeFileSync(join(src, 'docs', 'sub', 'b.bin'), Buffer.alloc(300_001, 7));
  fs.rmSync(join(src, 'docs', 'link'));
  fs.writeFileSync(join(src, 'docs', 'sub', 'new.txt'), 'new');
  fs.chmodSync(join(src, 'hard1'), 0o600); // and so docs/hard2, the same file
  const d = await lifeboat(['diff', 'latest', src], env);
  assert.equal(d.code, 0, d.stderr);
  assert.deepEqual(d.stdout.trim().split('\n').sort(), ['-  /docs/link', 'M  /docs/sub/b.bin', 'U  /docs', 'U  /docs/sub', 'U  /hard1', 'U  /docs/hard2', '+  /docs/sub/new.txt'].sort());
  // A folder inside the backup compares with the snapshot's copy of it.
  const sub = await lifeboat(['--json', 'diff', 'latest', join(src, 'docs', 'sub')], env);
  assert.deepEqual(JSON.parse(sub.stdout), [{ kind: 'modified', path: '/b.bin' }, { kind: 'added', path: '/new.txt' }]);
  const outside = await lifeboat(['diff', 'latest', dir], env);
  assert.equal(outside.code, 1);
  assert.match(outside.stderr, /does not hold .*; it holds /);
});
