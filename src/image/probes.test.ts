import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { analyzeDisk } from './layout.js';
import { filesystemProbes, partitionTableReader } from './probes.js';
import { openSource } from './source.js';
import { sh, tempDir, writeTree } from './testing.js';

test('a whole MBR disk through layout.ts: ext4, FAT16 and NTFS (logical) read by allocation, an unknown partition and a damaged one read whole', async () => {
  const d = tempDir();
  try {
    const tree = join(d.path, 'tree');
    writeTree(tree, 31, 10, 30_000);
    const disk = join(d.path, 'disk.img');
    const M = 1024 * 1024;
    // p1 ext4 16M @1M, p2 FAT16 20M @17M, p3 unknown 4M @37M, p4 extended @41M: p5 NTFS 16M, p6 ext4 (damaged) 8M.
    sh(`truncate -s 72M ${disk} && printf 'label: dos\\n2048,16M,83\\n,20M,6\\n,4M,da\\n,,5\\n,16M,7\\n,8M,83\\n' | sfdisk -q ${disk}`);
    const parts = JSON.parse(sh(`sfdisk --json ${disk}`)).partitiontable.partitions as { start: number; size: number }[];
    const at = (i: number) => parts[i]!.start * 512;
    sh(`mkfs.ext4 -q -E offset=${at(0)} -d ${tree} ${disk} 16M`);
    sh(`truncate -s 20M ${d.path}/fat.img && mkfs.vfat -F 16 -n PART2 ${d.path}/fat.img >/dev/null && MTOOLS_SKIP_CHECK=1 mcopy -i ${d.path}/fat.img -s -Q ${tree}/* ::/ && dd if=${d.path}/fat.img of=${disk} bs=1M seek=${at(1) / M} conv=notrunc status=none`);
    sh(`head -c 4M /dev/urandom | dd of=${disk} bs=1M seek=${at(2) / M} conv=notrunc status=none`);
    sh(`truncate -s 16M ${d.path}/n.img && mkntfs -Q -F -q -L PART5 ${d.path}/n.img && dd if=${d.path}/n.img of=${disk} bs=512 seek=${parts[4]!.start} conv=notrunc status=none`);
    sh(`mkfs.ext4 -q -b 1024 -E offset=${at(5)} ${disk} 8M`);
    // Damage p6: its first group descriptor's checksum no longer matches (1 KiB blocks: descriptors in block 2).
    sh(`printf '\\x55' | dd of=${disk} bs=1 seek=${at(5) + 2048 + 4} conv=notrunc status=none`);
    const src = await openSource(disk);
    try {
      const layout = await analyzeDisk(src, partitionTableReader, filesystemProbes);
      assert.equal(layout.table.kind, 'mbr');
      assert.deepEqual(layout.partitions.map((p) => [p.index, p.filesystem ?? null, p.label ?? null, p.method]), [
        [1, 'ext4', null, 'allocation'], [2, 'fat16', 'PART2', 'allocation'], [3, null, null, 'all'], [5, 'ntfs', 'PART5', 'allocation'], [6, null, null, 'all'],
      ]);
      assert.match(layout.warnings.join('\n'), /partition 6: ext metadata looks damaged \(.*group descriptor 0 checksum mismatch/);
      const inUsed = (o: number, l: number) => layout.used.some((r) => r.start <= o && o + l <= r.end);
      assert.ok(inUsed(0, at(0)), 'the MBR and the gap before the first partition');
      assert.ok(inUsed(at(2), 4 * M), 'the unknown partition, whole');
      assert.ok(inUsed(at(5), 8 * M), 'the damaged partition, whole');
      assert.ok(inUsed(parts[3]!.start * 512, 512), 'the first EBR');
      assert.ok(inUsed(at(4) - 2048 * 512, 512) || inUsed(at(5) - 2048 * 512, 512), 'the EBRs of the logical partitions');
      const total = layout.used.reduce((s, r) => s + r.end - r.start, 0);
      assert.ok(total < 0.6 * src.size, `only part of the disk is read (${total} of ${src.size})`);
    } finally {
      await src.close();
    }
  } finally {
    d.cleanup();
  }
});
