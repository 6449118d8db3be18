import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fat } from './fat.js';
import { FilesystemError } from './types.js';
import { openSource } from '../source.js';
import { rangeBytes } from '../ranges.js';
import { noiseFile, sh, shStatus, tempDir, writeTree, zeroOutside } from '../testing.js';

const MT = { MTOOLS_SKIP_CHECK: '1' };

async function analyzeFile(path: string) {
  const src = await openSource(path);
  try {
    assert.equal(await fat.detect(src, 0, src.size), true);
    return await fat.analyze(src, 0, src.size);
  } finally {
    await src.close();
  }
}

/** fsck.fat -n -v: "N files, used/total clusters" and the cluster size. */
function fsckCounts(img: string): { used: number; total: number; clusterBytes: number } {
  const r = shStatus(`fsck.fat -n -v ${img}`);
  assert.equal(r.status, 0, r.out);
  const m = /(\d+) files?, (\d+)\/(\d+) clusters/.exec(r.out);
  const cs = /(\d+) bytes per cluster/.exec(r.out);
  assert.ok(m && cs, r.out);
  return { used: Number(m[2]), total: Number(m[3]), clusterBytes: Number(cs[1]) };
}

async function checkFat(bits: 12 | 16 | 32, sizeMb: number, mkfsArgs: string, seed: number) {
  const d = tempDir();
  try {
    const tree = join(d.path, 'tree');
    writeTree(tree, seed, bits === 12 ? 12 : 50, bits === 12 ? 20_000 : 150_000);
    const img = join(d.path, 'fat.img');
    noiseFile(img, sizeMb * 1024 * 1024, seed);
    sh(`mkfs.vfat -F ${bits} ${mkfsArgs} -n LBTEST ${img} >/dev/null`);
    sh(`mcopy -i ${img} -s -Q -D o ${tree}/* ::/`, undefined, MT);
    // Delete some files: their clusters are free but still hold their old contents.
    sh(`mdel -i ${img} ::/big.bin "::/docs/file 1.bin" && rm ${tree}/big.bin "${tree}/docs/file 1.bin"`, undefined, MT);
    const a = await analyzeFile(img);
    const counts = fsckCounts(img);
    assert.equal(a.info.type, `fat${bits}`);
    assert.equal(a.info.label, 'LBTEST');
    assert.equal(a.info.blockSize, counts.clusterBytes);
    assert.equal(a.info.usedBytes / a.info.blockSize, counts.used, 'used clusters as fsck.fat counts them');
    // mshowfat lists each file's clusters; every one of them lies in our used ranges.
    const chains = sh(`mdir -i ${img} -/ -b ::/ | xargs -d '\\n' -I{} mshowfat -i ${img} "{}"`, undefined, MT);
    const clusters = [...chains.matchAll(/<(\d+)(?:-(\d+))?>/g)].flatMap((m) => {
      const a0 = Number(m[1]);
      const b0 = m[2] ? Number(m[2]) : a0;
      return Array.from({ length: b0 - a0 + 1 }, (_, i) => a0 + i);
    });
    assert.ok(clusters.length > 10, chains);
    // The data area's start, computed here from the boot sector fields (not by the module).
    const bs = readFileSync(img).subarray(0, 512);
    const fatSectors = bs.readUInt16LE(22) || bs.readUInt32LE(36);
    const dataStart = bs.readUInt16LE(11) * (bs.readUInt16LE(14) + bs[16]! * fatSectors + Math.ceil((bs.readUInt16LE(17) * 32) / bs.readUInt16LE(11)));
    for (const c of clusters) {
      const off = dataStart + (c - 2) * a.info.blockSize;
      assert.ok(a.used.some((r) => r.start <= off && off + a.info.blockSize <= r.end), `cluster ${c} is in a used range`);
    }
    const zeroed = join(d.path, 'zeroed.img');
    copyFileSync(img, zeroed);
    const changed = zeroOutside(zeroed, a.used, 0, a.info.totalBytes);
    assert.ok(changed > 100_000, `free clusters held stale data that was zeroed (${changed} bytes)`);
    fsckCounts(zeroed);
    const out = join(d.path, 'out');
    sh(`mkdir ${out} && mcopy -i ${zeroed} -s -Q -n ::/* ${out}/ && diff -r ${tree} ${out}`, undefined, MT);
    assert.ok(rangeBytes(a.used) >= a.info.usedBytes);
    return a;
  } finally {
    d.cleanup();
  }
}

test('FAT12 used clusters match fsck.fat and mshowfat; zeroing the rest keeps fsck.fat and mcopy happy', async () => {
  await checkFat(12, 2, '', 11);
});

test('FAT16', async () => {
  await checkFat(16, 24, '-s 2', 12);
});

test('FAT32 with 512-byte clusters', async () => {
  await checkFat(32, 48, '-s 1', 13);
});

test('damaged boot sectors and a FSInfo that disagrees badly are FilesystemErrors', async () => {
  const d = tempDir();
  try {
    const img = join(d.path, 'fat.img');
    sh(`truncate -s 48M ${img} && mkfs.vfat -F 32 -s 1 ${img} >/dev/null`);
    // FSInfo free count (sector 1, offset 488) says only 10 clusters are free.
    sh(`printf '\\x0a\\x00\\x00\\x00' | dd of=${img} bs=1 seek=$((512 + 488)) conv=notrunc status=none`);
    await assert.rejects(analyzeFile(img), (e: unknown) => e instanceof FilesystemError && /FSInfo says 10/.test(e.message));
    const img2 = join(d.path, 'fat2.img');
    sh(`truncate -s 32M ${img2} && mkfs.vfat -F 16 ${img2} >/dev/null`);
    sh(`printf '\\x03' | dd of=${img2} bs=1 seek=13 conv=notrunc status=none`); // 3 sectors per cluster
    const src = await openSource(img2);
    try {
      assert.equal(await fat.detect(src, 0, src.size), true, 'still recognised as FAT');
      await assert.rejects(fat.analyze(src, 0, src.size), (e: unknown) => e instanceof FilesystemError && /3 sectors per cluster/.test(e.message));
    } finally {
      await src.close();
    }
  } finally {
    d.cleanup();
  }
});
