import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { FilesystemTree } from '../image-tree.js';
import { copyOut } from '../../tree/restore.js';
import { join } from 'node:path';
import { ext } from './ext.js';
import { FilesystemError } from './types.js';
import { memorySource } from '../source.js';
import { seededBytes, sh, tempDir } from '../testing.js';
import { compareTree, readAll, extTree } from './read-testing.js';

test('ext4 (1 KiB blocks, htree, inline data, extent depth 1) and ext2 (indirect blocks) read as the tree they were made from', async () => {
  const d = tempDir();
  try {
    const t = join(d.path, 't');
    extTree(t);
    const e4 = join(d.path, 'e4.img');
    const e2 = join(d.path, 'e2.img');
    sh(`truncate -s 40M ${e4} && mkfs.ext4 -q -b 1024 -O inline_data -d ${t} ${e4} && e2fsck -fyD ${e4} >/dev/null 2>&1 || true
truncate -s 40M ${e2} && mkfs.ext2 -q -b 1024 -d ${t} ${e2}`);
    assert.match(sh(`debugfs -R 'htree many' ${e4} 2>&1`), /Root node dump/);
    assert.match(sh(`debugfs -R 'ex holey' ${e4} 2>&1`), /^ 1\/ 1/m);
    for (const img of [e4, e2]) {
      const bytes = readFileSync(img);
      const r = await ext.open(memorySource(bytes), 0, bytes.length);
      const n = await compareTree(r, t, { posix: true, ignore: ['lost+found'] });
      assert.ok(n > 3000);
      const root = await r.root();
      const list = await r.list(root);
      const big = list.find((e) => e.name === 'big')!;
      const link = list.find((e) => e.name === 'big link')!;
      assert.equal(big.ref, link.ref, 'a hard link is the same inode');
      assert.equal(big.nlink, 2);
      const f = await r.open(big);
      assert.deepEqual(Buffer.from(await f.read(399_990, 100)), seededBytes(5, 400_000).subarray(399_990));
      assert.equal((await f.read(400_000, 10)).length, 0);
      const sparse = list.find((e) => e.name === 'sparse')!;
      assert.equal((await readAll(r, sparse)).indexOf('middle'), 2_000_000);
    }
  } finally {
    d.cleanup();
  }
});

test('ext: a folder entry pointing at a damaged inode or an extent outside the filesystem gives a clear error for that item only', async () => {
  const d = tempDir();
  try {
    const t = join(d.path, 't');
    sh(`mkdir -p ${t}/dir && head -c 100000 /dev/urandom > ${t}/dir/f && echo ok > ${t}/ok`);
    const img = join(d.path, 'e.img');
    sh(`truncate -s 8M ${img} && mkfs.ext4 -q -b 1024 -O ^metadata_csum -d ${t} ${img}`);
    const ino = Number(/Inode: (\d+)/.exec(sh(`debugfs -R 'stat dir/f' ${img} 2>/dev/null`))![1]);
    const loc = /located at block (\d+), offset (0x[0-9a-f]+)/.exec(sh(`debugfs -R 'imap <${ino}>' ${img} 2>/dev/null`))!;
    const at = Number(loc[1]) * 1024 + Number(loc[2]);
    const bytes = readFileSync(img);
    bytes.writeUInt32LE(0x7fffffff, at + 0x28 + 12 + 8); // first extent's start block
    const r = await ext.open(memorySource(bytes), 0, bytes.length);
    const root = await r.list(await r.root());
    const dir = root.find((e) => e.name === 'dir')!;
    const f = (await r.list(dir)).find((e) => e.name === 'f')!;
    await assert.rejects(r.open(f), (e: unknown) => e instanceof FilesystemError && /outside the filesystem/.test(e.message) && /damaged here/.test(e.message));
    assert.equal((await readAll(r, root.find((e) => e.name === 'ok')!)).toString(), 'ok\n');
  } finally {
    d.cleanup();
  }
});

test('ext: a 4 GiB sparse file on an 8 MiB filesystem is copied out by skipping its holes', async () => {
  const d = tempDir();
  try {
    const t = join(d.path, 't');
    sh(`mkdir -p ${t} && truncate -s 4G ${t}/huge && echo middle | dd of=${t}/huge bs=1 seek=3000000000 conv=notrunc status=none && echo end >> ${t}/huge`);
    const img = join(d.path, 'e.img');
    sh(`truncate -s 8M ${img} && mkfs.ext4 -q -b 4096 -d ${t} ${img}`);
    const bytes = readFileSync(img);
    const r = await ext.open(memorySource(bytes), 0, bytes.length);
    const huge = (await r.list(await r.root())).find((e) => e.name === 'huge')!;
    const f = await r.open(huge);
    assert.equal(f.size, 4 * 1024 ** 3 + 4);
    assert.equal(f.nextData!(0), Math.floor(3_000_000_000 / 4096) * 4096);
    const started = Date.now();
    const out = join(d.path, 'out');
    const tree = new FilesystemTree(r);
    const s = await copyOut(tree, [{ node: tree.node(huge), shown: '/huge' }], out);
    assert.equal(s.files, 1);
    assert.ok(Date.now() - started < 30_000, `took ${Date.now() - started} ms`); // a loop would never end; a wide bound tolerates a busy machine
    const st = statSync(join(out, 'huge'));
    assert.equal(st.size, 4 * 1024 ** 3 + 4);
    assert.ok(st.blocks * 512 < 1024 * 1024);
    assert.equal(sh(`dd if=${join(out, 'huge')} bs=1 skip=3000000000 count=6 status=none`), 'middle');
  } finally {
    d.cleanup();
  }
});
