import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fat } from './fat.js';
import { FilesystemError } from './types.js';
import { memorySource } from '../source.js';
import { seededBytes, sh, tempDir } from '../testing.js';
import { compareTree, readAll, MT, fatTree } from './read-testing.js';

test('FAT12, FAT16 and FAT32 read as the tree mcopy wrote; deleted entries are skipped', async () => {
  const d = tempDir();
  try {
    const t = join(d.path, 't');
    fatTree(t);
    for (const [kind, mb] of [[12, 4], [16, 24], [32, 40]] as const) {
      const img = join(d.path, `f${kind}.img`);
      sh(`truncate -s ${mb}M ${img} && mkfs.vfat -F ${kind} -n LB${kind} ${img} >/dev/null
mcopy -i ${img} -s -Q -m -D o ${t}/* ::/
echo gone > ${d.path}/deleted.txt && mcopy -i ${img} ${d.path}/deleted.txt ::/SHORT/deleted.txt && mdel -i ${img} ::/SHORT/deleted.txt`, undefined, MT);
      const bytes = readFileSync(img);
      const r = await fat.open(memorySource(bytes), 0, bytes.length);
      assert.equal(r.type, `fat${kind}`);
      assert.equal(r.label, `LB${kind}`);
      assert.ok((await compareTree(r, t)) > 45);
      const list = await r.list(await r.root());
      const f = list.find((e) => e.name === 'README.TXT')!;
      assert.ok(Math.abs(f.mtime! - (Date.parse(sh(`date -u -r ${t}/README.TXT +%FT%TZ`).trim()))) <= 2000, 'mtime within FAT\'s 2 s');
    }
  } finally {
    d.cleanup();
  }
});

test('FAT: a cluster chain that loops or leaves the volume gives a clear error for that file, and never hangs', async () => {
  const d = tempDir();
  try {
    const img = join(d.path, 'f.img');
    writeFileSync(join(d.path, 'big.bin'), seededBytes(3, 40_000));
    writeFileSync(join(d.path, 'ok.txt'), 'fine\n');
    sh(`truncate -s 1M ${img} && mkfs.vfat -F 12 -s 1 ${img} >/dev/null && mcopy -i ${img} ${d.path}/big.bin ${d.path}/ok.txt ::/`, undefined, MT);
    const bytes = readFileSync(img);
    const r0 = await fat.open(memorySource(bytes), 0, bytes.length);
    const big = (await r0.list(await r0.root())).find((e) => e.name === 'big.bin')!;
    // Make the chain's second cluster point back at the first (FAT12 entry arithmetic).
    const reserved = bytes.readUInt16LE(14);
    const fatAt = reserved * 512;
    const c = big.ref + 1;
    const o = fatAt + c + (c >> 1);
    const v = bytes.readUInt16LE(o);
    bytes.writeUInt16LE(c & 1 ? (v & 0x000f) | (big.ref << 4) : (v & 0xf000) | big.ref, o);
    const r = await fat.open(memorySource(bytes), 0, bytes.length);
    const list = await r.list(await r.root());
    const looped = list.find((e) => e.name === 'big.bin')!;
    // The loop is cut at the file's size: the bytes are wrong but bounded; a folder loop is bounded too.
    const f = await r.open(looped);
    assert.equal(f.size, 40_000);
    await readAll(r, looped);
    bytes.writeUInt16LE(c & 1 ? (v & 0x000f) | (0xff0 << 4) : (v & 0xf000) | 0xff0, o); // a reserved value, not a cluster
    const r2 = await fat.open(memorySource(bytes), 0, bytes.length);
    const bad = (await r2.list(await r2.root())).find((e) => e.name === 'big.bin')!;
    await assert.rejects(r2.open(bad), (e: unknown) => e instanceof FilesystemError && /does not exist/.test(e.message));
    assert.equal((await readAll(r2, (await r2.list(await r2.root())).find((e) => e.name === 'ok.txt')!)).toString(), 'fine\n');
  } finally {
    d.cleanup();
  }
});
