import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { lifeboat } from '../cli/testing.js';
import { sh, shStatus, tempDir, writeTree } from './testing.js';

interface Created {
  id: string;
  bytesRead: number;
  size: number;
  partitions: { index: number; filesystem?: string; method: string }[];
}

// Drives formatted without a partition table (USB sticks, memory cards, a partition imaged on its
// own): the filesystem is found on the whole drive and only its allocated blocks are read.
for (const fs of ['ext4', 'vfat'] as const) {
  test(`a ${fs} filesystem without a partition table: only its used blocks are read, the restore passes its checker and holds the files`, async (t) => {
    const d = tempDir();
    t.after(d.cleanup);
    const files = writeTree(join(d.path, 'tree'), fs === 'ext4' ? 4 : 5, 40, 300_000);
    if (fs === 'ext4') sh('truncate -s 96M disk.img && mkfs.ext4 -q -F -b 4096 -d tree disk.img', d.path);
    else sh('truncate -s 96M disk.img && mkfs.vfat -F 32 disk.img >/dev/null && MTOOLS_SKIP_CHECK=1 mcopy -s -i disk.img tree/* ::/', d.path);
    const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
    assert.equal((await lifeboat(['init'], env)).code, 0);
    const r = await lifeboat(['image', 'create', '--json', join(d.path, 'disk.img')], env);
    assert.equal(r.code, 0, r.stderr);
    const c = JSON.parse(r.stdout) as Created;
    assert.equal(c.partitions.length, 1);
    assert.equal(c.partitions[0]!.filesystem, fs === 'ext4' ? 'ext4' : 'fat32');
    assert.equal(c.partitions[0]!.method, 'allocation');
    assert.ok(c.bytesRead < c.size / 2, `read ${c.bytesRead} of ${c.size}: only the used blocks`);

    const out = join(d.path, 'out.img');
    const rr = await lifeboat(['image', 'restore', c.id, '--target', out], env);
    assert.equal(rr.code, 0, rr.stderr);
    const check = shStatus(fs === 'ext4' ? `e2fsck -fn ${out}` : `fsck.vfat -n ${out}`);
    assert.equal(check.status, 0, check.out);
    const one = files[files.length - 1]!;
    const got = fs === 'ext4' ? sh(`debugfs -R 'cat /${one}' ${out} 2>/dev/null | base64 -w0`) : sh(`MTOOLS_SKIP_CHECK=1 mtype -i ${out} ::/${one} | base64 -w0`);
    assert.equal(got, readFileSync(join(d.path, 'tree', one)).toString('base64'));
    const ls = await lifeboat(['image', 'ls', c.id, '1:/'], env);
    assert.equal(ls.code, 0, ls.stderr);
    assert.ok(ls.stdout.includes(one.split('/')[0]!), ls.stdout);
  });
}
