import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ext } from './ext.js';
import { FilesystemError } from './types.js';
import { memorySource } from '../source.js';
import { seededBytes, sh, tempDir } from '../testing.js';
import { compareTree, readAll } from './read-testing.js';

/** A tree with everything the ext reader must handle. */
export function extTree(t: string): void {
  sh(`mkdir -p "${t}/many" "${t}/a/b/c/d/e/f/g/h" "${t}/empty dir"
for i in $(seq 1 3000); do echo $i > "${t}/many/file-$i"; done
echo deep > "${t}/a/b/c/d/e/f/g/h/file.txt"
ln -s a/b "${t}/fast"
ln -s "$(printf 'x%.0s' $(seq 1 200))" "${t}/slow"
truncate -s 5M "${t}/sparse" && echo middle | dd of="${t}/sparse" bs=1 seek=2000000 conv=notrunc status=none && echo end >> "${t}/sparse"
chmod 4750 "${t}/a/b/c/d/e/f/g/h/file.txt"; chmod 700 "${t}/empty dir"`);
  writeFileSync(join(t, 'big'), seededBytes(5, 400_000));
  sh(`ln "${t}/big" "${t}/big link"`);
  sh(`python3 -c "
f=open('${t}/holey','wb')
for i in range(40): f.seek(i*8192); f.write(bytes([i+1])*1024)"`); // no trailing hole: mkfs.ext4 -d with inline_data drops it (e2fsprogs 1.47.0)
  writeFileSync(join(t, 'inline'), 'short file kept in the inode');
}

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
