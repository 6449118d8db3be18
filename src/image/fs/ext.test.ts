import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { ext } from './ext.js';
import { FilesystemError } from './types.js';
import { openSource } from '../source.js';
import { rangeBytes } from '../ranges.js';
import { noiseFile, sh, shStatus, tempDir, writeTree, zeroOutside } from '../testing.js';

async function analyzeFile(path: string, offset = 0, size?: number) {
  const src = await openSource(path);
  try {
    assert.equal(await ext.detect(src, offset, size ?? src.size), true);
    return await ext.analyze(src, offset, size ?? src.size);
  } finally {
    await src.close();
  }
}

function dumpe2fsUsed(spec: string): { blocks: number; used: number; blockSize: number } {
  const h = sh(`dumpe2fs -h '${spec}' 2>/dev/null`);
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(h)?.[1]);
  return { blocks: field('Block count'), used: field('Block count') - field('Free blocks'), blockSize: field('Block size') };
}

function partcloneUsedBlocks(tool: string, path: string, dir: string): number {
  sh(`${tool} -c -s ${path} -o - -L ${dir}/pc.log > /dev/null 2>&1`);
  const log = sh(`cat ${dir}/pc.log`);
  return Number(/Space in use:.*= (\d+) Blocks/.exec(log)?.[1]);
}

/**
 * Builds a filesystem over noise with -d from a seeded tree, deletes some files (so that free
 * blocks hold stale data), and checks our used ranges against dumpe2fs, partclone, e2fsck and
 * debugfs on a copy where everything outside them is zeroed.
 */
async function checkExt(mkfs: string, sizeMb: number, seed: number, expectType: string, expectBlock: number) {
  const d = tempDir();
  try {
    const tree = join(d.path, 'tree');
    writeTree(tree, seed, 60, 200_000);
    const img = join(d.path, 'fs.img');
    noiseFile(img, sizeMb * 1024 * 1024, seed);
    sh(`${mkfs} -q -E nodiscard -L lbtest -d ${tree} ${img}`);
    // Delete some files so that their blocks are free but not zero.
    sh(`debugfs -w -R 'rm /big.bin' ${img} 2>/dev/null && debugfs -w -R 'rm "/photos/file 3.bin"' ${img} 2>/dev/null`);
    sh(`rm "${tree}/big.bin" "${tree}/photos/file 3.bin"`);
    const fsck0 = shStatus(`e2fsck -fn ${img}`);
    assert.equal(fsck0.status, 0, fsck0.out);
    const a = await analyzeFile(img);
    const dump = dumpe2fsUsed(img);
    assert.equal(a.info.type, expectType);
    assert.equal(a.info.label, 'lbtest');
    assert.equal(a.info.blockSize, expectBlock);
    assert.equal(dump.blockSize, expectBlock);
    assert.equal(a.info.totalBytes, dump.blocks * dump.blockSize);
    assert.equal(a.info.usedBytes, dump.used * dump.blockSize, 'used bytes = (block count - free blocks) × block size, as dumpe2fs says');
    assert.equal(partcloneUsedBlocks('partclone.extfs', img, d.path), dump.used, 'partclone agrees');
    assert.equal(rangeBytes(a.used), a.info.usedBytes, 'the ranges cover exactly the used blocks');
    for (let i = 1; i < a.used.length; i++) assert.ok(a.used[i]!.start > a.used[i - 1]!.end, 'sorted and merged');
    // Zero everything else in a copy: still a valid filesystem with the same files.
    const zeroed = join(d.path, 'zeroed.img');
    copyFileSync(img, zeroed);
    const changed = zeroOutside(zeroed, a.used, 0, a.info.totalBytes);
    assert.ok(changed > 1_000_000, `free space held stale data that was zeroed (${changed} bytes)`);
    const fsck = shStatus(`e2fsck -fn ${zeroed}`);
    assert.equal(fsck.status, 0, fsck.out);
    const out = join(d.path, 'out');
    sh(`mkdir ${out} && debugfs -R 'rdump / ${out}' ${zeroed} 2>/dev/null && rm -rf ${out}/lost+found && diff -r ${tree} ${out}`);
    return a;
  } finally {
    d.cleanup();
  }
}

test('ext4 with 1 KiB blocks: used blocks match dumpe2fs and partclone; a copy zeroed outside them passes e2fsck and reads the same files', async () => {
  await checkExt('mkfs.ext4 -b 1024', 48, 1, 'ext4', 1024);
});

test('ext4 with 4 KiB blocks (64bit, flex_bg, metadata_csum, uninitialised groups)', async () => {
  const a = await checkExt('mkfs.ext4 -b 4096 -O 64bit,metadata_csum', 160, 2, 'ext4', 4096);
  assert.ok(a.info.usedBytes < 0.5 * a.info.totalBytes);
});

test('ext4 without flex_bg and with gdt_csum instead of metadata_csum', async () => {
  await checkExt('mkfs.ext4 -b 4096 -O ^flex_bg,^metadata_csum,uninit_bg,^64bit', 96, 3, 'ext4', 4096);
});

test('ext3 and ext2 (no sparse_super on ext2, so every group has a backup superblock)', async () => {
  await checkExt('mkfs.ext3 -b 1024', 32, 4, 'ext3', 1024);
  await checkExt('mkfs.ext2 -b 4096 -O ^sparse_super,^resize_inode', 64, 5, 'ext2', 4096);
});

test('ext4 inside a partition: offsets are relative to the partition, space after the filesystem is kept', async () => {
  const d = tempDir();
  try {
    const tree = join(d.path, 'tree');
    writeTree(tree, 9, 20, 50_000);
    const disk = join(d.path, 'disk.img');
    sh(`truncate -s 40M ${disk} && printf 'label: dos\\n2048,30M,83\\n' | sfdisk -q ${disk}`);
    // A filesystem 24 MiB long in a 30 MiB partition.
    sh(`mkfs.ext4 -q -E offset=1048576,nodiscard -d ${tree} ${disk} 24M`);
    const a = await analyzeFile(disk, 1048576, 30 * 1024 * 1024);
    const dump = dumpe2fsUsed(`${disk}?offset=1048576`);
    assert.equal(a.info.usedBytes, dump.used * dump.blockSize);
    const last = a.used[a.used.length - 1]!;
    assert.equal(last.end, 30 * 1024 * 1024);
    assert.ok(last.start <= 24 * 1024 * 1024);
  } finally {
    d.cleanup();
  }
});

test('a damaged group descriptor or superblock is a FilesystemError', async () => {
  const d = tempDir();
  try {
    const img = join(d.path, 'fs.img');
    sh(`truncate -s 16M ${img} && mkfs.ext4 -q -b 4096 ${img}`);
    // Flip a byte of group descriptor 0 (block 1): its checksum no longer matches.
    sh(`printf '\\x77' | dd of=${img} bs=1 seek=$((4096 + 12)) conv=notrunc status=none`);
    await assert.rejects(analyzeFile(img), (e: unknown) => e instanceof FilesystemError && /group descriptor 0 checksum mismatch/.test(e.message));
    const img2 = join(d.path, 'fs2.img');
    sh(`truncate -s 16M ${img2} && mkfs.ext2 -q -b 1024 ${img2}`);
    // ext2 has no checksums: make the free count disagree wildly with the bitmaps instead.
    sh(`printf '\\x10\\x00' | dd of=${img2} bs=1 seek=$((1024 + 12)) conv=notrunc status=none`);
    await assert.rejects(analyzeFile(img2), (e: unknown) => e instanceof FilesystemError && /superblock says/.test(e.message));
  } finally {
    d.cleanup();
  }
});
