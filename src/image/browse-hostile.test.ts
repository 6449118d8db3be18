/** Hostile and damaged images: unsafe names are refused, a folder that contains itself is cut, nothing lands outside the target. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { FilesystemTree } from './image-tree.js';
import { copyOut } from '../tree/restore.js';
import { ext } from './fs/ext.js';
import { memorySource } from './source.js';
import { sh, tempDir } from './testing.js';

function patchName(img: Buffer, from: string, to: Buffer): void {
  const at = img.indexOf(Buffer.from(from));
  assert.ok(at > 0, `${from} found in the image`);
  assert.equal(img.indexOf(Buffer.from(from), at + 1), -1, `${from} is unique`);
  to.copy(img, at);
}

test('names with "/" or NUL and a folder that contains itself are refused with warnings; nothing is written outside the target', async () => {
  const d = tempDir();
  try {
    const t = join(d.path, 't');
    sh(`mkdir -p ${t}/loop/INNERDIRX ${t}/ok && echo a > ${t}/EVILNAME1 && echo b > ${t}/EVILNAME2 && echo c > ${t}/ok/fine.txt && echo d > ${t}/loop/INNERDIRX/x`);
    const img = join(d.path, 'e.img');
    sh(`truncate -s 4M ${img} && mkfs.ext4 -q -b 1024 -O ^metadata_csum -d ${t} ${img}`);
    const loopIno = Number(/Inode: (\d+)/.exec(sh(`debugfs -R 'stat /loop' ${img} 2>/dev/null`))![1]);
    const bytes = readFileSync(img);
    patchName(bytes, 'EVILNAME1', Buffer.from('../../../'));
    patchName(bytes, 'EVILNAME2', Buffer.from('ab\0cdefgh'));
    // INNERDIRX's entry now names /loop's own inode: /loop/INNERDIRX is /loop again.
    const at = bytes.indexOf(Buffer.from('INNERDIRX'));
    bytes.writeUInt32LE(loopIno, at - 8);
    const fs = await ext.open(memorySource(bytes), 0, bytes.length);
    const warnings: string[] = [];
    const target = join(d.path, 'deep', 'target');
    mkdirSync(target, { recursive: true });
    const tree = new FilesystemTree(fs);
    const s = await copyOut(tree, [{ node: await tree.root(), shown: '/' }], target, { onWarning: (_p, m) => warnings.push(m) });
    assert.ok(warnings.some((w) => /named "\.\.\/\.\.\/\.\.\/".*unsafe/.test(w)), warnings.join('\n'));
    assert.ok(warnings.some((w) => /named "ab\\u0000cdefgh".*unsafe/.test(w)), warnings.join('\n'));
    assert.ok(warnings.some((w) => /contains itself/.test(w)), warnings.join('\n'));
    assert.equal(s.errors, 3);
    assert.equal(readFileSync(join(target, 'ok', 'fine.txt'), 'utf8'), 'c\n');
    assert.ok(lstatSync(join(target, 'loop')).isDirectory());
    assert.ok(!existsSync(join(target, 'loop', 'INNERDIRX')), 'the looping folder is cut, not created');
    // Only the target was written to.
    assert.deepEqual(readdirSync(join(d.path, 'deep')), ['target']);
    assert.deepEqual(readdirSync(d.path).sort(), ['deep', 'e.img', 't']);
    assert.ok(!existsSync(join(d.path, 'deep', 'target', 'ab')));
  } finally {
    d.cleanup();
  }
});
