/**
 * Mutated metadata must give a result or a FilesystemError: never a hang, a crash (RangeError,
 * TypeError) or a huge allocation. Images are built once; mutations are seeded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { analyzePartition, FilesystemError } from './index.js';
import { memorySource } from '../source.js';
import { prng, sh, tempDir, writeTree } from '../testing.js';

interface Target { name: string; image: Buffer; hot: [number, number][] }

function build(): Target[] {
  const d = tempDir();
  try {
    const tree = join(d.path, 'tree');
    writeTree(tree, 5, 12, 20_000);
    const e1 = join(d.path, 'e1.img');
    sh(`truncate -s 8M ${e1} && mkfs.ext4 -q -b 1024 -d ${tree} ${e1}`);
    const e4 = join(d.path, 'e4.img');
    sh(`truncate -s 16M ${e4} && mkfs.ext4 -q -b 4096 -O ^metadata_csum -d ${tree} ${e4}`);
    const f16 = join(d.path, 'f16.img');
    sh(`truncate -s 16M ${f16} && mkfs.vfat -F 16 ${f16} >/dev/null && MTOOLS_SKIP_CHECK=1 mcopy -i ${f16} -s -Q ${tree}/* ::/`);
    const f32 = join(d.path, 'f32.img');
    sh(`truncate -s 40M ${f32} && mkfs.vfat -F 32 -s 1 ${f32} >/dev/null`);
    const n = join(d.path, 'n.img');
    sh(`truncate -s 8M ${n} && mkntfs -Q -F -q ${n}`);
    const nb = readFileSync(n);
    const mft = Number(nb.readBigUInt64LE(48)) * nb.readUInt16LE(11) * nb[13]!;
    return [
      // ext: superblock and group descriptors; without metadata_csum most mutations get past the checksums.
      { name: 'ext4-1k', image: readFileSync(e1), hot: [[1024, 2048], [2048, 2048 + 256]] },
      { name: 'ext4-4k', image: readFileSync(e4), hot: [[1024, 1024 + 0x180], [4096, 4096 + 128]] },
      { name: 'fat16', image: readFileSync(f16), hot: [[0, 64], [512, 1024]] },
      { name: 'fat32', image: readFileSync(f32), hot: [[0, 96], [512, 1024]] },
      { name: 'ntfs', image: nb, hot: [[0, 96], [mft, mft + 1024], [mft + 6 * 1024, mft + 7 * 1024]] },
    ];
  } finally {
    d.cleanup();
  }
}

test('fuzz: mutated superblocks, descriptors, boot sectors and MFT records give a result or a FilesystemError', async () => {
  const targets = build();
  const r = prng(1234);
  const outcomes: Record<string, { ok: number; rejected: number }> = {};
  for (const t of targets) {
    const o = (outcomes[t.name] = { ok: 0, rejected: 0 });
    for (let iter = 0; iter < 400; iter++) {
      // Mutate in place and undo afterwards: copying a 40 MB image 400 times costs more than the parsing.
      const img = t.image;
      const saved: [number, number][] = [];
      const n = 1 + Math.floor(r() * 4);
      for (let k = 0; k < n; k++) {
        const [a, b] = t.hot[Math.floor(r() * t.hot.length)]!;
        const off = a + Math.floor(r() * (b - a));
        const mode = r();
        saved.push([off, img[off]!]);
        img[off] = mode < 0.2 ? 0 : mode < 0.4 ? 0xff : mode < 0.6 ? img[off]! ^ (1 << Math.floor(r() * 8)) : Math.floor(r() * 256);
      }
      const size = img.length;
      const res = await analyzePartition(memorySource(img), 0, size).catch((e: unknown) => {
        assert.fail(`${t.name} iteration ${iter}: unexpected ${e instanceof Error ? e.stack : String(e)}`);
      });
      for (const [off, b] of saved.reverse()) img[off] = b;
      if (res.kind === 'analyzed') {
        o.ok++;
        const used = res.analysis.used;
        for (let i = 0; i < used.length; i++) {
          const u = used[i]!;
          assert.ok(u.start >= 0 && u.end <= size && u.start < u.end, `${t.name}: range inside the partition`);
          if (i > 0) assert.ok(u.start > used[i - 1]!.end, `${t.name}: sorted and merged`);
        }
      } else if (res.kind === 'untrusted') {
        assert.ok(res.error instanceof FilesystemError);
        o.rejected++;
      } else o.rejected++;
    }
  }
  // Both outcomes occur for every filesystem: the mutations are neither all harmless nor all fatal.
  for (const [name, o] of Object.entries(outcomes)) assert.ok(o.ok > 0 && o.rejected > 0, `${name}: ${JSON.stringify(o)}`);
});
