/**
 * lifeboat rescue-kit copy-to: the bundled rescue program, Node.js and RESCUE.txt go next to the
 * repository, and the copy runs on its own: with a plain `node` from a folder without
 * node_modules, and with the Node.js it carries (start.sh), restoring an image with the recovery key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { lifeboat, tempDir } from './testing.js';
import { sh } from '../image/testing.js';
import { imageRepository, rescue } from './rescue-testing.js';

test('rescue-kit copy-to puts a program beside the repository that restores on its own', { timeout: 180_000 }, async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const { repo, disk, recoveryKey } = await imageRepository(d.path);
  const r = await lifeboat(['rescue-kit', 'copy-to', repo, '--json']); // the repository itself: the kit goes beside it
  assert.equal(r.code, 0, r.stderr);
  const drive = join(d.path, 'backup-drive');
  const folder = join(drive, 'lifeboat-rescue');
  assert.equal((JSON.parse(r.stdout) as { folder: string }).folder, folder);
  assert.match(readFileSync(join(drive, 'RESCUE.txt'), 'utf8'), /recovery key/);
  for (const f of ['lifeboat-rescue.js', 'node', 'start.sh', 'lifeboat_fs.node', 'lib/ld-linux.so']) assert.ok(existsSync(join(folder, f)), f);
  assert.equal(existsSync(join(repo, 'lifeboat-rescue')), false, 'nothing is written into the repository');

  // A plain node, from a folder far from any node_modules.
  sh('truncate -s 80M big.img && mkdir -p elsewhere', d.path);
  const answers = ['', recoveryKey, '1', '1', '1', 'yes', '1'];
  const plain = await rescue(['--search', drive, '--target', join(d.path, 'big.img')], answers, [process.execPath, join(folder, 'lifeboat-rescue.js')], join(d.path, 'elsewhere'));
  assert.equal(plain.code, 0, plain.out);
  assert.match(plain.out, /read back and verified/);
  sh(`cmp -n ${64 * 1024 * 1024} ${disk} big.img`, d.path);

  // The Node.js the kit carries, started as RESCUE.txt says (PATH without node).
  sh('truncate -s 0 big.img && truncate -s 80M big.img', d.path);
  const carried = await rescue(['--search', drive, '--target', join(d.path, 'big.img')], answers, ['/bin/sh', join(folder, 'start.sh')], join(d.path, 'elsewhere'), { PATH: '/usr/bin/nonexistent:/bin', TMPDIR: d.path });
  assert.equal(carried.code, 0, carried.out);
  assert.match(carried.out, /read back and verified/);
  sh(`cmp -n ${64 * 1024 * 1024} ${disk} big.img`, d.path);
});

test('rescue-kit copy-to: a missing folder is one plain sentence', async () => {
  const r = await lifeboat(['rescue-kit', 'copy-to', '/nonexistent/drive']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^lifeboat: \/nonexistent\/drive does not exist\. Name the backup drive's folder/);
});
