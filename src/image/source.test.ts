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

test('runs of pieces are read with one vectored request, each into its own buffer; a failed or short run is read again piece by piece with the bad-sector retry', async () => {
  const disk = new Uint8Array(256 * 1024);
  for (let i = 0; i < disk.length; i++) disk[i] = (i * 7) & 0xff;
  const bad = { start: 70_144, end: 70_656 }; // one sector inside the second piece
  let vectored = 0;
  let single = 0;
  let shortBy = 0;
  const readAt = async (buf: Uint8Array, pos: number) => {
    single++;
    if (pos < bad.end && pos + buf.length > bad.start) throw Object.assign(new Error('EIO'), { code: 'EIO' });
    buf.set(disk.subarray(pos, pos + buf.length));
    return buf.length;
  };
  const readvAt = async (bufs: Uint8Array[], pos: number) => {
    vectored++;
    let n = 0;
    for (const b of bufs) {
      if (pos + n < bad.end && pos + n + b.length > bad.start) throw Object.assign(new Error('EIO'), { code: 'EIO' });
      b.set(disk.subarray(pos + n, pos + n + b.length));
      n += b.length;
    }
    return n - shortBy;
  };
  const reported: [number, number][] = [];
  const src = sourceOverReadAt('fake', disk.length, true, readAt, async () => undefined, { onUnreadable: (s, l) => reported.push([s, l]) }, readvAt);
  assert.equal(typeof src.readRun, 'function');

  const clean = await src.readRun!(131_072, [65_536, 65_536]);
  assert.equal(vectored, 1);
  assert.equal(single, 0, 'a clean run is one request');
  assert.deepEqual(clean.map((b) => [b.byteOffset, b.byteLength, b.buffer.byteLength]), [[0, 65_536, 65_536], [0, 65_536, 65_536]], 'each piece owns its buffer');
  assert.deepEqual(Buffer.concat(clean), Buffer.from(disk.subarray(131_072)));

  const damaged = await src.readRun!(0, [65_536, 65_536]);
  assert.equal(vectored, 2);
  assert.ok(single > 2, 'the failed run was read again piece by piece');
  assert.deepEqual(reported, [[bad.start, bad.end - bad.start]], 'the bad sector is reported once');
  const expected = Buffer.from(disk.subarray(0, 131_072));
  expected.fill(0, bad.start, bad.end);
  assert.deepEqual(Buffer.concat(damaged), expected, 'the bad sector reads as zeros, everything else intact');

  shortBy = 100;
  single = 0;
  const short = await src.readRun!(131_072, [65_536, 65_536]);
  assert.equal(single, 2, 'a short run is read again piece by piece');
  assert.deepEqual(Buffer.concat(short), Buffer.from(disk.subarray(131_072)));

  await assert.rejects(src.readRun!(200_000, [65_536]), (e: unknown) => e instanceof LifeboatError && e.code === 'invalid-argument');
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
