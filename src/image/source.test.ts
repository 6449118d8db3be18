import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { LifeboatError } from '../util/errors.js';
import { openSource, sourceOverReadAt } from './source.js';
import { parseMounts, linuxPlatform } from './platform/linux.js';
import { portablePlatform } from './platform/platform.js';
import { mountedOn, mountWarnings } from './probes.js';
import { sh, tempDir } from './testing.js';

test('bad sectors are retried, reported once as one range and read as zeros; the rest is intact', async () => {
  const disk = new Uint8Array(64 * 1024).fill(0xab);
  const bad = { start: 8192, end: 9216 };
  let calls = 0;
  const readAt = async (buf: Uint8Array, pos: number) => {
    calls++;
    if (pos < bad.end && pos + buf.length > bad.start) throw Object.assign(new Error('EIO'), { code: 'EIO' });
    buf.set(disk.subarray(pos, pos + buf.length));
    return buf.length;
  };
  const reported: [number, number][] = [];
  const src = sourceOverReadAt('fake', disk.length, true, readAt, async () => undefined, { onUnreadable: (s, l) => reported.push([s, l]) });
  const got = await src.read(4000, 16000);
  assert.deepEqual(reported, [[8192, 1024]]);
  assert.equal(calls, 1 + 9 + 2 * 3 + 22, 'one big read, then one per good piece and three per bad sector');
  assert.ok(got.subarray(0, 4192).every((b) => b === 0xab));
  assert.ok(got.subarray(4192, 5216).every((b) => b === 0));
  assert.ok(got.subarray(5216).every((b) => b === 0xab));
  await assert.rejects(src.read(60000, 8000), (e: unknown) => e instanceof LifeboatError && e.code === 'invalid-argument');
});

test('openSource: image files, a clear error for a missing path, and /proc/self/mounts parsing', async () => {
  const d = tempDir();
  try {
    const f = join(d.path, 'disk.img');
    sh(`printf 'hello' > ${f} && truncate -s 3M ${f}`);
    const src = await openSource(f);
    assert.equal(src.size, 3 * 1024 * 1024);
    assert.equal(src.isDevice, false);
    assert.equal(Buffer.from(await src.read(0, 5)).toString(), 'hello');
    await src.close();
    await assert.rejects(openSource(join(d.path, 'nope')), (e: unknown) => e instanceof LifeboatError && e.code === 'not-found' && /does not exist/.test(e.message));
    await assert.rejects(openSource(d.path), (e: unknown) => e instanceof LifeboatError && /neither a drive nor a disk image/.test(e.message));
    assert.deepEqual(parseMounts('/dev/sda1 / ext4 rw,relatime 0 0\n/dev/sdb1 /media/My\\040Disk fuseblk ro,nosuid 0 0\n'), [
      { device: '/dev/sda1', mountpoint: '/', fstype: 'ext4', readOnly: false },
      { device: '/dev/sdb1', mountpoint: '/media/My Disk', fstype: 'fuseblk', readOnly: true },
    ]);
  } finally {
    d.cleanup();
  }
});

test('a loop device: size from sysfs and by reading, its partitions, and mounts on them', async () => {
  const d = tempDir();
  const f = join(d.path, 'disk.img');
  sh(`truncate -s 20M ${f} && printf 'label: dos\\n2048,12M,83\\n' | sfdisk -q ${f} && mkfs.ext4 -q -E offset=1048576 ${f} 12M`);
  const loop = sh(`losetup -f --show ${f}`).trim();
  const mnt = join(d.path, 'mnt');
  let mounted = false;
  try {
    const src = await openSource(loop);
    assert.equal(src.isDevice, true);
    assert.equal(src.size, 20 * 1024 * 1024);
    await src.close();
    assert.equal(await linuxPlatform.deviceSize(loop), 20 * 1024 * 1024);
    assert.equal(await portablePlatform.deviceSize(loop), 20 * 1024 * 1024, 'the portable reading probe agrees');
    assert.equal(await linuxPlatform.isBlockDevice(loop), true);
    assert.equal(await linuxPlatform.isBlockDevice(f), false);
    sh(`partx -a ${loop}`);
    assert.deepEqual(await linuxPlatform.relatedDevices(loop), [loop, `${loop}p1`]);
    assert.equal(await linuxPlatform.deviceSize(`${loop}p1`), 12 * 1024 * 1024);
    assert.deepEqual(await mountedOn(loop), []);
    mkdirSync(mnt);
    sh(`mount ${loop}p1 ${mnt}`);
    mounted = true;
    const on = await mountedOn(loop);
    assert.deepEqual(on, [{ mountpoint: mnt, device: `${loop}p1`, readOnly: false }]);
    assert.match((await mountWarnings(loop)).join('\n'), new RegExp(`${loop}p1 is mounted read-write at ${mnt}`));
    sh(`mount -o remount,ro ${mnt}`);
    assert.deepEqual(await mountWarnings(loop), []);
  } finally {
    if (mounted) sh(`umount ${mnt}`);
    sh(`partx -d ${loop} || true; losetup -d ${loop}`);
    d.cleanup();
  }
});
