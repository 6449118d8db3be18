/**
 * The readers on mutated metadata: every folder and file either reads or fails with a
 * FilesystemError for that item; never a crash (RangeError, TypeError), a hang or a huge allocation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ext } from './ext.js';
import { fat } from './fat.js';
import { ntfs } from './ntfs.js';
import { FilesystemError, type FilesystemReader, type FsEntry, type ReadableFilesystemModule } from './types.js';
import { memorySource } from '../source.js';
import { prng, sh, tempDir, writeTree } from '../testing.js';

const expected = (e: unknown) => e instanceof FilesystemError;

/** Lists and reads everything reachable, bounded; returns [items read, items refused]. */
async function walk(r: FilesystemReader): Promise<[number, number]> {
  let ok = 0;
  let refused = 0;
  const seen = new Set<number>();
  const todo: FsEntry[] = [await r.root()];
  while (todo.length > 0 && ok + refused < 2000) {
    const dir = todo.pop()!;
    if (seen.has(dir.ref)) continue;
    seen.add(dir.ref);
    let list: FsEntry[];
    try {
      list = await r.list(dir);
      ok++;
    } catch (e) {
      if (!expected(e)) throw e;
      refused++;
      continue;
    }
    for (const e of list) {
      if (e.type === 'dir') todo.push(e);
      else if (e.type === 'file' || e.type === 'symlink') {
        try {
          if (e.type === 'symlink') await r.readlink(e);
          else await (await r.open(e)).read(0, 256 * 1024);
          ok++;
        } catch (err) {
          if (!expected(err)) throw err;
          refused++;
        }
      }
    }
  }
  return [ok, refused];
}

test('fuzz: readers on mutated inode tables, folders, FATs and MFT records fail per item, never crash or hang', async () => {
  const d = tempDir();
  const targets: { name: string; module: ReadableFilesystemModule; image: Buffer; hot: [number, number] }[] = [];
  try {
    const tree = join(d.path, 'tree');
    writeTree(tree, 8, 40, 30_000);
    sh(`mkdir -p ${tree}/many && for i in $(seq 1 300); do echo $i > ${tree}/many/f$i; done && ln -s docs ${tree}/link`);
    const e = join(d.path, 'e.img');
    sh(`truncate -s 8M ${e} && mkfs.ext4 -q -b 1024 -O ^metadata_csum -d ${tree} ${e}`);
    const itable = Number(/Inode table at (\d+)/.exec(sh(`dumpe2fs ${e} 2>/dev/null`))![1]);
    targets.push({ name: 'ext4 inodes', module: ext, image: readFileSync(e), hot: [itable * 1024, itable * 1024 + 64 * 1024] });
    // The folder blocks of /many (a hashed folder: index and leaf blocks).
    const dirBlocks = [...sh(`debugfs -R 'blocks /many' ${e} 2>/dev/null`).matchAll(/\d+/g)].map((m) => Number(m[0]));
    targets.push({ name: 'ext4 folders', module: ext, image: readFileSync(e), hot: [Math.min(...dirBlocks) * 1024, (Math.max(...dirBlocks) + 1) * 1024] });
    const f32 = join(d.path, 'f32.img');
    sh(`truncate -s 40M ${f32} && mkfs.vfat -F 32 -s 1 ${f32} >/dev/null && MTOOLS_SKIP_CHECK=1 mcopy -i ${f32} -s -Q ${tree}/docs ${tree}/many ::/`);
    targets.push({ name: 'fat32', module: fat, image: readFileSync(f32), hot: [16 * 1024, 16 * 1024 + 128 * 1024] });
    const f = join(d.path, 'f.img');
    sh(`truncate -s 16M ${f} && mkfs.vfat -F 16 ${f} >/dev/null && MTOOLS_SKIP_CHECK=1 mcopy -i ${f} -s -Q ${tree}/docs ${tree}/many ${tree}/photos ::/`);
    targets.push({ name: 'fat16', module: fat, image: readFileSync(f), hot: [512, 96 * 1024] });
    const n = join(d.path, 'n.img');
    sh(`truncate -s 16M ${n} && mkntfs -Q -F -q ${n} && mkdir ${d.path}/m && ntfs-3g ${n} ${d.path}/m && cp -r ${tree}/docs ${tree}/many ${d.path}/m/ && umount ${d.path}/m`);
    const nb = readFileSync(n);
    const mft = Number(nb.readBigUInt64LE(48)) * nb.readUInt16LE(11) * nb[13]!;
    targets.push({ name: 'ntfs', module: ntfs, image: nb, hot: [mft, mft + 100 * 1024] });
  } finally {
    d.cleanup();
  }
  const r = prng(77);
  for (const t of targets) {
    const clean = await walk(await t.module.open(memorySource(t.image), 0, t.image.length));
    assert.equal(clean[1], 0, `${t.name} reads cleanly before mutation`);
    let refused = 0;
    const started = Date.now();
    for (let iter = 0; iter < 100; iter++) {
      const img = Buffer.from(t.image);
      const [a, b] = t.hot;
      for (let k = 0; k < 1 + Math.floor(r() * 12); k++) {
        const off = a + Math.floor(r() * (b - a));
        const mode = r();
        img[off] = mode < 0.3 ? 0xff : mode < 0.5 ? 0 : Math.floor(r() * 256);
      }
      try {
        const [, no] = await walk(await t.module.open(memorySource(img), 0, img.length));
        refused += no;
      } catch (e) {
        assert.ok(expected(e), `${t.name} iteration ${iter}: ${e instanceof Error ? e.stack : String(e)}`);
        refused++;
      }
    }
    assert.ok(refused > 0, `${t.name}: some mutations were noticed`);
    // A hang never ends; a busy 2-core CI machine made 100 walks take 23 s once, so the bound is wide.
    assert.ok(Date.now() - started < 120_000, `${t.name}: 100 walks took ${Date.now() - started} ms`);
  }
});
