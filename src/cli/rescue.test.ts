/**
 * The rescue program, driven as a person would through piped answers: it finds a real repository
 * in the folders it is given, refuses a wrong password, opens with the recovery key, lists the
 * image, refuses a drive too small, restores onto a larger one after "yes", verifies, copies files
 * out of the image into a folder, and ends asking for a restart.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './testing.js';
import { sh } from '../image/testing.js';
import { imageRepository, rescue } from './rescue-testing.js';

test('the rescue dialogue restores an image with the recovery key and copies files out', { timeout: 120_000 }, async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const { recoveryKey, disk } = await imageRepository(d.path);
  sh('truncate -s 16M small.img && truncate -s 80M big.img && mkdir copies', d.path);
  const args = ['--search', d.path, '--target', join(d.path, 'small.img'), '--target', join(d.path, 'big.img'), '--copy-folder', join(d.path, 'copies')];
  const r = await rescue(args, [
    '', // the one repository found
    'not the password',
    recoveryKey,
    '1', // put an image back
    '1', // the only image
    '1', // the only drive possible: big.img
    'yes',
    '2', // back to the menu
    '2', // copy files
    '1', // the image
    '1', // partition 1
    'c', // the whole folder
    '1', // into the copies folder
    '3', // restart
  ]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /Found a backup repository:\n {2}1\) .*backup-drive\/lifeboat/);
  assert.match(r.out, /neither the password nor the recovery key/);
  assert.match(r.out, /computer "[^"]+" {2}drive .*disk\.img {2}67\.1 MB/);
  assert.match(r.out, /small\.img .* 16\.8 MB: not possible, it is too small/);
  assert.match(r.out, /Everything on .*big\.img \(unknown model, 83\.9 MB\) will be erased/);
  assert.match(r.out, /read back and verified/);
  sh(`cmp -n ${64 * 1024 * 1024} ${disk} big.img`, d.path);
  assert.equal(readFileSync(join(d.path, 'small.img')).every((b) => b === 0), true, 'the refused drive is untouched');
  for (const f of readdirSync(join(d.path, 'tree'))) assert.ok(readFileSync(join(d.path, 'copies', f)).equals(readFileSync(join(d.path, 'tree', f))), f);
});

test('the rescue dialogue: "no" writes nothing, and ending the answers stops without writing', { timeout: 120_000 }, async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const { recoveryKey } = await imageRepository(d.path);
  sh('truncate -s 80M big.img', d.path);
  const r = await rescue(['--search', d.path, '--target', join(d.path, 'big.img')], ['', recoveryKey, '1', '1', '1', 'no']);
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /Nothing was written to .*big\.img/);
  assert.match(r.out, /No more answers; stopping/);
  assert.equal(readFileSync(join(d.path, 'big.img')).every((b) => b === 0), true);

  const none = await rescue(['--search', join(d.path, 'tree')], []);
  assert.equal(none.code, 1);
  assert.match(none.out, /No Lifeboat backups were found/);
});

test('the drive that holds the repository is refused as a target', { timeout: 120_000, skip: process.getuid?.() !== 0 || !existsSync('/dev/loop-control') }, async (t) => {
  const d = tempDir();
  // The backup drive: an ext4 filesystem on a loop device, mounted, with the repository on it.
  sh('truncate -s 200M backup.img && mkfs.ext4 -q -F backup.img && mkdir backup-drive', d.path);
  const loop = sh(`losetup -f --show ${join(d.path, 'backup.img')}`).trim();
  t.after(() => {
    sh(`umount ${join(d.path, 'backup-drive')} 2>/dev/null; losetup -d ${loop}`);
    d.cleanup();
  });
  sh(`mount ${loop} backup-drive`, d.path);
  const { recoveryKey } = await imageRepository(d.path);
  sh('truncate -s 80M big.img', d.path);
  const r = await rescue(['--search', join(d.path, 'backup-drive'), '--target', loop, '--target', join(d.path, 'big.img')], ['', recoveryKey, '1', '1', 'b', '3']);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, new RegExp(`${loop} .*: not possible, it holds the backups`));
  assert.match(r.out, /1\) .*big\.img/);
});

test('the rescue dialogue: a damaged backup is one sentence and back to the menu, never a crash', { timeout: 120_000 }, async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const { recoveryKey, repo } = await imageRepository(d.path);
  sh(`for f in $(find ${join(repo, 'data')} -type f); do truncate -s 100 $f; done; truncate -s 80M big.img`, d.path);
  const r = await rescue(['--search', d.path, '--target', join(d.path, 'big.img')], ['', recoveryKey, '1', '1', '3']);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /That did not work: .*(damaged|corrupt|lifeboat check)/i);
  assert.match(r.out, /That did not work[^\n]*\n\nWhat would you like to do\?/);
  assert.doesNotMatch(r.out, /this is a bug/);
});
