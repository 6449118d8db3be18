import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ntfs, lznt1 } from './ntfs.js';
import { FilesystemError, type FilesystemReader, type FsEntry } from './types.js';
import { memorySource } from '../source.js';
import { sh, tempDir } from '../testing.js';
import { compareTree, readAll, fillNtfs, ntfsHostTree } from './read-testing.js';

async function find(r: FilesystemReader, path: string): Promise<FsEntry> {
  let e = await r.root();
  for (const part of path.split('/').filter(Boolean)) {
    const next = (await r.list(e)).find((x) => x.name === part);
    assert.ok(next, `${path}: ${part} not found`);
    e = next;
  }
  return e;
}

test('NTFS reads as ntfs-3g wrote it: B+ tree index, symlinks, fragmented, sparse, compressed (LZNT1), streams, hard links through an attribute list', async () => {
  const d = tempDir();
  try {
    const t = join(d.path, 't');
    ntfsHostTree(t);
    const img = join(d.path, 'n.img');
    sh(`truncate -s 48M ${img} && mkntfs -Q -F -q -L LBNTFS ${img}`);
    fillNtfs(img, t, join(d.path, 'mnt'));
    const bytes = readFileSync(img);
    const r = await ntfs.open(memorySource(bytes), 0, bytes.length);
    assert.equal(r.label, 'LBNTFS');
    const cat = (p: string, extra = '') => Buffer.from(sh(`ntfscat ${extra} ${img} '${p}' | base64 -w0`), 'base64');
    // Everything ntfsls lists at the root, and nothing else (system files are hidden by both).
    const names = (await r.list(await r.root())).map((e) => e.name).sort();
    const ntfsls = sh(`ntfsls ${img}`).split('\n').filter(Boolean).sort();
    assert.deepEqual(names, ntfsls);
    // The host tree, by content.
    for (const p of ['Ünïcödé – ファイル 📁.bin', 'Dir with spaces/sub/deep.txt', 'resident.txt', 'big.bin', 'empty']) {
      assert.ok((await readAll(r, await find(r, p))).equals(readFileSync(join(t, p))), p);
    }
    // Fragmented files: more than one run, read like ntfscat reads them.
    assert.ok(Number(/Total runs: (\d+)/.exec(sh(`ntfsinfo -v -F /frag/a.bin ${img} 2>/dev/null`))?.[1]) > 10, 'a.bin is fragmented');
    for (const p of ['frag/a.bin', 'frag/b.bin', 'sparse.bin', 'packed/text.txt', 'packed/noise.bin', 'packed/mixed.bin', 'links/original.txt']) {
      assert.ok((await readAll(r, await find(r, p))).equals(cat(`/${p}`)), `${p} equals ntfscat`);
    }
    assert.match(sh(`ntfsinfo -F /packed/text.txt ${img}`), /Compressed/i);
    // The stream is listed, and reads as ntfscat -s reads it.
    const streamy = await find(r, 'streamy.txt');
    assert.deepEqual(streamy.streams, [{ name: 'secret', size: 14 }]);
    assert.equal((await readAll(r, streamy, 'secret')).toString(), 'hidden stream\n');
    // Hard links: thirteen names, one record; its names overflowed into an attribute list.
    const links = await r.list(await find(r, 'links'));
    assert.equal(links.length, 13);
    assert.equal(new Set(links.map((e) => e.ref)).size, 1);
    assert.equal(links[0]!.nlink, 13);
    assert.match(sh(`ntfsinfo -F /links/original.txt ${img}`), /ATTRIBUTE_LIST/);
    // 400 names: an index allocation (B+ tree), listed completely.
    const idx = await r.list(await find(r, 'index'));
    assert.equal(idx.length, 400);
    assert.deepEqual(idx.map((e) => e.name).sort(), sh(`ntfsls -p /index ${img}`).split('\n').filter((n) => n && n !== '.' && n !== '..').sort());
    const link = await find(r, 'link-rel');
    assert.equal(link.type, 'symlink');
    assert.equal((await r.readlink(link)).toString(), 'Dir with spaces/sub/deep.txt');
    assert.ok((await compareTree(r, t, { ignore: ['frag', 'packed', 'links', 'index', 'sparse.bin', 'streamy.txt', 'link-rel'] })) >= 6);
  } finally {
    d.cleanup();
  }
});

test('LZNT1: literal-only, back-reference and uncompressed chunks; damage is an error, not a crash', () => {
  // "abcabcabcabc": 3 literals, then a back-reference of 9 at distance 3.
  const out = new Uint8Array(4096 * 2);
  const pos = 3;
  let l = 12;
  for (let q = pos - 1; q >= 0x10; q >>= 1) l--;
  const token = ((3 - 1) << l) | (9 - 3);
  const chunk = Buffer.from([0x08, 0x61, 0x62, 0x63, token & 0xff, token >> 8]);
  const h = 0xb000 | (chunk.length - 1);
  lznt1(Buffer.concat([Buffer.from([h & 0xff, h >> 8]), chunk, Buffer.from([0xff, 0x3f]), Buffer.alloc(4096, 0x7a)]), out);
  assert.equal(Buffer.from(out.subarray(0, 12)).toString(), 'abcabcabcabc');
  assert.equal(Buffer.from(out.subarray(4096, 8192)).toString(), 'z'.repeat(4096));
  assert.throws(() => lznt1(Buffer.from([0x05, 0xb0, 0x01, 0xff, 0xff]), new Uint8Array(4096)), FilesystemError);
});
