/** The rescue kit's FAT32 writer, MBR and initramfs, checked by independent tools: fsck.vfat, mtools, sfdisk, cpio. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdirSync, openSync, readFileSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { buildFat32, fatSizeFor, writeEmptyFat32 } from './fat-writer.js';
import { buildBootDisk, buildInitramfs, PARTITION_START } from './boot-disk.js';
import { seededBytes, sh, tempDir } from './testing.js';

test('a FAT32 filesystem that fsck.vfat finds clean and mtools reads back byte for byte', (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const files = [
    { path: 'VMLINUZ', data: seededBytes(1, 3_000_001) },
    { path: 'EMPTY.TXT', data: new Uint8Array() },
    { path: 'EFI/BOOT/BOOTX64.EFI', data: seededBytes(2, 171_456) },
    { path: 'EFI/BOOT/SYSLINUX.CFG', data: Buffer.from('DEFAULT x\n') },
    { path: 'A/B/C/DEEP.BIN', data: seededBytes(3, 513) },
  ];
  const size = fatSizeFor(files);
  const fat = buildFat32(files, { size, hiddenSectors: PARTITION_START, label: 'LIFEBOATKIT', volumeId: 0x1234abcd });
  assert.equal(fat.length, size);
  writeFileSync(join(d.path, 'p.img'), fat);
  sh('fsck.vfat -n p.img', d.path);
  const minfo = sh('MTOOLS_SKIP_CHECK=1 minfo -i p.img ::', d.path);
  assert.match(minfo, /hidden sectors: 2048/);
  sh('mkdir out && MTOOLS_SKIP_CHECK=1 mcopy -s -n -i p.img ::/ out/', d.path);
  for (const f of files) assert.ok(readFileSync(join(d.path, 'out', f.path)).equals(Buffer.from(f.data)), f.path);
  assert.match(sh('MTOOLS_SKIP_CHECK=1 mlabel -s -i p.img ::', d.path), /LIFEBOATKIT/);
  assert.throws(() => buildFat32([{ path: 'long-name.txt', data: new Uint8Array() }], { size, hiddenSectors: 0, label: 'X', volumeId: 1 }), /not a short upper-case FAT name/);
});

test('an empty FAT32 of any size from 33 MB to 2 TB, written piece by piece, that fsck.vfat finds clean and mtools finds empty', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const MiB = 1024 * 1024;
  for (const [size, clusterBytes] of [[40 * MiB, 512], [300 * MiB, 4096], [20 * 1024 * MiB, 16384]] as const) {
    const file = join(d.path, `fat-${size}.img`);
    closeSync(openSync(file, 'w'));
    truncateSync(file, size);
    const fd = openSync(file, 'r+');
    let written = 0;
    try {
      const ok = await writeEmptyFat32({ size, hiddenSectors: 2048, label: 'Vidéos+more', volumeId: 0xdeadbeef }, async (offset, data) => {
        assert.ok(offset + data.length <= size && data.length <= MiB);
        writeSync(fd, data, 0, data.length, offset);
        written += data.length;
      });
      assert.equal(ok, true);
    } finally {
      closeSync(fd);
    }
    assert.ok(written < size / 100 + MiB, `${written} bytes written for ${size}`);
    sh(`fsck.vfat -n '${file}'`);
    const info = sh(`MTOOLS_SKIP_CHECK=1 minfo -i '${file}' ::`);
    assert.match(info, new RegExp(`cluster size: ${clusterBytes / 512} sectors`));
    assert.match(info, /hidden sectors: 2048/);
    assert.match(sh(`MTOOLS_SKIP_CHECK=1 mdir -i '${file}' ::`), /No files/);
    assert.match(sh(`MTOOLS_SKIP_CHECK=1 mlabel -s -i '${file}' ::`), /VID_OS_MORE/);
  }
  assert.equal(await writeEmptyFat32({ size: 20 * MiB, hiddenSectors: 0, label: '', volumeId: 1 }, () => assert.fail('nothing is written')), false, 'too small for FAT32');
});

test('the kit disk: one active FAT32 partition at 1 MiB that sfdisk reads, GRUB sectors before it', (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const files = [{ path: 'HELLO.TXT', data: Buffer.from('hello') }];
  const part = buildFat32(files, { size: fatSizeFor(files), hiddenSectors: PARTITION_START, label: 'KIT', volumeId: 7 });
  const core = seededBytes(4, 30_000);
  const disk = buildBootDisk({ partition: part, signature: 0x12345678, bootImage: Buffer.alloc(512, 0x90), coreImage: core });
  writeFileSync(join(d.path, 'disk.img'), disk);
  const table = JSON.parse(sh('sfdisk --json disk.img', d.path)) as { partitiontable: { label: string; partitions: { start: number; size: number; type: string; bootable?: boolean }[] } };
  assert.equal(table.partitiontable.label, 'dos');
  assert.deepEqual(table.partitiontable.partitions.map((p) => [p.start, p.size, p.type, p.bootable]), [[2048, part.length / 512, 'c', true]]);
  assert.equal(disk.readBigUInt64LE(512 + 500), 2n, 'the rest of core.img starts at sector 2');
  assert.equal(disk.readUInt16LE(512 + 508), Math.ceil(core.length / 512) - 1);
  assert.equal(sh('MTOOLS_SKIP_CHECK=1 mtype -i disk.img@@1M ::/HELLO.TXT', d.path), 'hello');
});

test('an initramfs the cpio tool unpacks: files, modes and symlinks', (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const big = seededBytes(5, 1_000_003);
  const gz = buildInitramfs([
    { path: 'bin', mode: 0o40755 },
    { path: 'init', mode: 0o100755, data: Buffer.from('#!/bin/sh\n') },
    { path: 'bin/busybox', mode: 0o100755, data: big },
    { path: 'bin/sh', mode: 0o120777, data: Buffer.from('busybox') },
  ]);
  writeFileSync(join(d.path, 'i.gz'), gz);
  mkdirSync(join(d.path, 'x'));
  sh('zcat ../i.gz | cpio -id --quiet', join(d.path, 'x'));
  assert.ok(readFileSync(join(d.path, 'x', 'bin', 'busybox')).equals(big));
  assert.equal(sh('stat -c %a init', join(d.path, 'x')).trim(), '755');
  assert.equal(sh('readlink bin/sh', join(d.path, 'x')).trim(), 'busybox');
});
