import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ntfs } from './ntfs.js';
import { FilesystemError } from './types.js';
import { openSource } from '../source.js';
import { rangeBytes } from '../ranges.js';
import { noiseFile, sh, shStatus, tempDir, writeTree, zeroOutside } from '../testing.js';

async function analyzeFile(path: string) {
  const src = await openSource(path);
  try {
    assert.equal(await ntfs.detect(src, 0, src.size), true);
    return await ntfs.analyze(src, 0, src.size);
  } finally {
    await src.close();
  }
}

/** Mounts with ntfs-3g (FUSE), runs fn, always unmounts. */
function withMount<T>(img: string, mnt: string, ro: boolean, fn: () => T): T {
  mkdirSync(mnt, { recursive: true });
  sh(`ntfs-3g ${ro ? '-o ro ' : ''}${img} ${mnt}`);
  try {
    return fn();
  } finally {
    sh(`umount ${mnt} || fusermount3 -u ${mnt}`);
  }
}

test('NTFS: used clusters match partclone; zeroing the rest keeps ntfsfix, ntfs-3g and ntfscat happy', async () => {
  const d = tempDir();
  try {
    const tree = join(d.path, 'tree');
    writeTree(tree, 21, 80, 200_000);
    const img = join(d.path, 'ntfs.img');
    noiseFile(img, 96 * 1024 * 1024, 21);
    sh(`mkntfs -Q -F -q -L LBTEST ${img}`);
    const mnt = join(d.path, 'mnt');
    withMount(img, mnt, false, () => sh(`cp -r ${tree}/. ${mnt}/ && rm ${mnt}/big.bin "${mnt}/docs/file 1.bin"`));
    sh(`rm ${tree}/big.bin "${tree}/docs/file 1.bin"`);
    const a = await analyzeFile(img);
    assert.equal(a.info.type, 'ntfs');
    assert.equal(a.info.label, 'LBTEST');
    assert.equal(a.info.blockSize, 4096);
    sh(`partclone.ntfs -c -s ${img} -o - -L ${d.path}/pc.log >/dev/null 2>&1`);
    const log = readFileSync(join(d.path, 'pc.log'), 'utf8');
    const inUse = Number(/Space in use:.*= (\d+) Blocks/.exec(log)?.[1]);
    const blockSize = Number(/Block size:\s+(\d+)/.exec(log)?.[1]);
    assert.equal(blockSize, a.info.blockSize);
    assert.equal(a.info.usedBytes / a.info.blockSize, inUse, 'used clusters as partclone counts them');
    const size = 96 * 1024 * 1024;
    // The backup boot sector (last sector of the partition) is in the used ranges.
    const last = a.used[a.used.length - 1]!;
    assert.equal(last.end, size);
    assert.ok(last.start <= size - 512);
    assert.ok(rangeBytes(a.used) - a.info.usedBytes <= 4096, 'only the tail after the last cluster is added');
    const zeroed = join(d.path, 'zeroed.img');
    copyFileSync(img, zeroed);
    const changed = zeroOutside(zeroed, a.used, 0, size);
    assert.ok(changed > 1_000_000, `free clusters held stale data that was zeroed (${changed} bytes)`);
    const fix = shStatus(`ntfsfix -n ${zeroed}`);
    assert.equal(fix.status, 0, fix.out);
    assert.doesNotMatch(fix.out, /corrupt|error|inconsistent/i);
    withMount(zeroed, join(d.path, 'mnt2'), true, () => sh(`diff -r ${tree} ${join(d.path, 'mnt2')}`));
    const cat = sh(`ntfscat ${zeroed} "/photos/file 7.bin" | sha256sum`);
    assert.equal(cat.split(' ')[0], sh(`sha256sum "${tree}/photos/file 7.bin"`).split(' ')[0]);
  } finally {
    d.cleanup();
  }
});

test('damaged NTFS metadata: boot sector fields, MFT record fixups and a $Bitmap runlist past the volume', async () => {
  const d = tempDir();
  try {
    const img = join(d.path, 'ntfs.img');
    sh(`truncate -s 16M ${img} && mkntfs -Q -F -q ${img}`);
    const boot = readFileSync(img).subarray(0, 512);
    const mftOffset = Number(boot.readBigUInt64LE(48)) * boot.readUInt16LE(11) * boot[13]!;
    const rec6 = mftOffset + 6 * 1024;
    const cases: [string, number, number[], RegExp][] = [
      ['MFT location past the volume', 48, [0xff, 0xff, 0xff, 0], /the MFT is said to start at cluster/],
      ['torn $Bitmap record', rec6 + 510, [0x12, 0x34], /record 6 \(\$Bitmap\) failed its update sequence check/],
      ['$MFT magic', mftOffset, [0x42], /record 0 \(\$MFT\) has no FILE signature/],
    ];
    // $Bitmap's runlist: find its $DATA attribute and make the first run's cluster offset huge.
    const rec = readFileSync(img).subarray(rec6, rec6 + 1024);
    let o = rec.readUInt16LE(20);
    while (rec.readUInt32LE(o) !== 0x80) o += rec.readUInt32LE(o + 4);
    const run = o + rec.readUInt16LE(o + 32);
    const lenBytes = rec[run]! & 0xf;
    const offBytes = rec[run]! >> 4;
    cases.push(['$Bitmap runlist past the volume', rec6 + run + 1 + lenBytes + offBytes - 1, [0x7f], /run at cluster \d+ .* lies outside the volume/]);
    for (const [what, off, bytes, re] of cases) {
      const copy = join(d.path, 'c.img');
      copyFileSync(img, copy);
      sh(`printf '${bytes.map((x) => `\\x${x.toString(16).padStart(2, '0')}`).join('')}' | dd of=${copy} bs=1 seek=${off} conv=notrunc status=none`);
      await assert.rejects(analyzeFile(copy), (e: unknown) => e instanceof FilesystemError && re.test(e.message), what);
    }
  } finally {
    d.cleanup();
  }
});
