import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { sh, tempDir } from '../image/testing.js';
import { currentPlatform, portablePlatform, type Platform } from '../image/platform/index.js';
import { sameDiskSources } from './setup.js';

test('the same-disk warning compares the destination with each chosen source, through the platform', async () => {
  // Two filesystems on one disk (loop devices over two ranges of one file on this machine's disk, as
  // partitions are; this container's kernel exposes no partitions of loop devices), and a RAM
  // filesystem, which is no disk of theirs.
  const d = tempDir();
  const disk = join(d.path, 'disk.img');
  sh(`truncate -s 40M ${disk}`);
  const loops = [sh(`losetup -f --show --offset 1048576 --sizelimit 16777216 ${disk}`).trim(), sh(`losetup -f --show --offset 18874368 --sizelimit 16777216 ${disk}`).trim()];
  const [m1, m2] = [join(d.path, 'p1'), join(d.path, 'p2')];
  const shm = mkdtempSync('/dev/shm/lifeboat-setup-');
  const mounted: string[] = [];
  try {
    for (const [i, m] of [m1, m2].entries()) {
      sh(`mkfs.ext4 -q ${loops[i]}`);
      mkdirSync(m);
      sh(`mount ${loops[i]} ${m}`);
      mounted.push(m);
    }
    mkdirSync(join(m1, 'Documents'));
    const p = currentPlatform();
    assert.notDeepEqual(await p.disksOf(m1), [], 'the disk is known');
    assert.deepEqual(await p.disksOf(m1), await p.disksOf(m2), 'two filesystems of one disk are one disk');
    assert.deepEqual(await p.disksOf(loops[0]!), await p.disksOf(m1), 'a drive node is on its disk');
    assert.deepEqual(await sameDiskSources(m2, { kind: 'files', paths: [join(m1, 'Documents'), shm], excludes: [] }), [join(m1, 'Documents')]);
    assert.deepEqual(await sameDiskSources(shm, { kind: 'files', paths: [join(m1, 'Documents')], excludes: [] }), []);
    assert.deepEqual(await sameDiskSources(m2, { kind: 'image', device: loops[0]! }), [loops[0]], 'imaging the drive the backup is on');
  } finally {
    for (const m of mounted) sh(`umount ${m}`);
    for (const l of loops) sh(`losetup -d ${l}`);
    rmSync(shm, { recursive: true, force: true });
    d.cleanup();
  }
});

test('where the platform knows no disks, one filesystem stands for one disk; a source that cannot be read is not reported', async () => {
  const fake: Platform = { ...portablePlatform, disksOf: async (p) => (p.startsWith('/media/') ? ['sdb'] : p.startsWith('/nowhere') ? [] : ['sda']) };
  assert.deepEqual(await sameDiskSources('/media/Passport', { kind: 'files', paths: ['/home/ann', '/media/Passport/photos', '/nowhere'], excludes: [] }, fake), ['/media/Passport/photos']);
  assert.deepEqual(await sameDiskSources('/home/ann/backup', { kind: 'files', paths: ['/home/ann', '/srv'], excludes: [] }, fake), ['/home/ann', '/srv']);
  const d = tempDir();
  try {
    assert.deepEqual(await sameDiskSources(d.path, { kind: 'files', paths: [d.path, '/proc'], excludes: [] }, portablePlatform), [d.path]);
  } finally {
    d.cleanup();
  }
});
