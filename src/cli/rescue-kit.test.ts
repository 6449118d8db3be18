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
import { writeRescueKit } from '../jobs/rescue-kit.js';
import { describeTargetText } from '../image/target-info.js';

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

test('rescue-kit write: refuses a missing image, a mounted drive, a drive over 256 GB, and writes nothing unconfirmed', { timeout: 60_000, skip: process.getuid?.() !== 0 || !existsSync('/dev/loop-control') }, async (t) => {
  const d = tempDir();
  const loops: string[] = [];
  t.after(() => {
    sh(`umount ${join(d.path, 'mnt')} 2>/dev/null || true`);
    for (const l of loops) sh(`losetup -d ${l}`);
    d.cleanup();
  });
  sh('head -c 1048576 /dev/urandom > kit.img && truncate -s 64M stick.img && mkfs.ext4 -q -F stick.img && truncate -s 300G huge.img && mkdir mnt', d.path);
  const missing = await lifeboat(['rescue-kit', 'write', join(d.path, 'none.img'), join(d.path, 'stick.img')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /none\.img does not exist; make the kit first/);

  const stick = sh(`losetup -f --show ${join(d.path, 'stick.img')}`).trim();
  loops.push(stick);
  sh(`mount ${stick} mnt`, d.path);
  const mounted = await lifeboat(['rescue-kit', 'write', join(d.path, 'kit.img'), stick]);
  assert.equal(mounted.code, 2);
  assert.match(mounted.stderr, new RegExp(`${stick} \\(loop device of .*stick\\.img, 67\\.1 MB\\).* is in use \\(.*mnt mounted\\)`));
  sh('umount mnt', d.path);

  const huge = sh(`losetup -f --show ${join(d.path, 'huge.img')}`).trim();
  loops.push(huge);
  const big = await lifeboat(['rescue-kit', 'write', join(d.path, 'kit.img'), huge]);
  assert.equal(big.code, 2);
  assert.match(big.stderr, /322 GB\).* is larger than 256 GB, which is seldom a USB stick/);

  // No terminal to confirm on: nothing is written.
  const unconfirmed = await lifeboat(['rescue-kit', 'write', join(d.path, 'kit.img'), stick]);
  assert.equal(unconfirmed.code, 2);
  assert.match(unconfirmed.stderr, /would erase everything on .*only when you confirm on a terminal/);
  assert.equal(sh(`blkid -o value -s TYPE ${stick}`).trim(), 'ext4', 'the stick is untouched');
});

test('rescue-kit write, confirmed: the stick holds the kit byte for byte; a "no" writes nothing', { timeout: 30_000 }, async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  sh('head -c 3000000 /dev/urandom > kit.img && head -c 4000000 /dev/urandom > stick.img && cp stick.img before.img', d.path);
  const kit = join(d.path, 'kit.img');
  const stick = join(d.path, 'stick.img');
  await assert.rejects(writeRescueKit(kit, stick, { confirm: async () => false }), /Nothing was written to .*stick\.img/);
  sh('cmp stick.img before.img', d.path);
  let asked = '';
  const r = await writeRescueKit(kit, stick, { confirm: async (x) => ((asked = describeTargetText(x)), true) });
  assert.match(asked, /the file .*stick\.img \(4\.00 MB\)/);
  assert.equal(r.bytes, 3_000_000);
  sh('cmp kit.img stick.img', d.path);
});
