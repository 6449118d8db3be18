/**
 * image ls and image restore-files end to end: an MBR disk with ext4, FAT16 and NTFS partitions
 * made by the real tools, imaged into a repository; every listing is compared with what debugfs,
 * mtools and ntfsls list, and every restored file with what debugfs, mcopy and ntfscat extract.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lifeboat, tempDir } from '../cli/testing.js';
import { sh, shStatus } from './testing.js';
import { MT, extTree, fatTree, fillNtfs, ntfsHostTree } from './fs/read-testing.js';

interface LsEntry { name: string; type: string; size: number; mode: number; uid?: number; gid?: number; mtime?: string; target?: string; streams?: { name: string; size: number }[] }

const P1 = 2048;
const P1_SECTORS = 45056; // 22 MiB ext4, 1 KiB blocks
const P2 = P1 + P1_SECTORS;
const P2_SECTORS = 20480; // 10 MiB FAT16
const P3 = P2 + P2_SECTORS;
const P3_SECTORS = 57344; // 28 MiB NTFS

function buildDisk(dir: string): void {
  const t = join(dir, 'ext-tree');
  extTree(t);
  const ft = join(dir, 'fat-tree');
  fatTree(ft);
  const nt = join(dir, 'ntfs-tree');
  ntfsHostTree(nt);
  sh(`truncate -s 64M disk.img
printf 'label: dos\\nstart=${P1}, size=${P1_SECTORS}, type=83\\nstart=${P2}, size=${P2_SECTORS}, type=e\\nstart=${P3}, size=${P3_SECTORS}, type=7\\n' | sfdisk -q disk.img
truncate -s $((${P1_SECTORS}*512)) p1.img && mkfs.ext4 -q -b 1024 -O inline_data -L extpart -d ext-tree p1.img && (e2fsck -fyD p1.img >/dev/null 2>&1 || true)
truncate -s $((${P2_SECTORS}*512)) p2.img && mkfs.vfat -F 16 -n FATPART p2.img >/dev/null
cd fat-tree && mcopy -i ../p2.img -s -Q -m -D o * ::/ && cd ..
echo gone > deleted.txt && mcopy -i p2.img deleted.txt ::/SHORT/deleted.txt && mdel -i p2.img ::/SHORT/deleted.txt
truncate -s $((${P3_SECTORS}*512)) p3.img && mkntfs -Q -F -q -L NTFSPART -p ${P3} -H 255 -S 63 p3.img`, dir, MT);
  fillNtfs(join(dir, 'p3.img'), nt, join(dir, 'mnt'));
  sh(`dd if=p1.img of=disk.img bs=512 seek=${P1} conv=notrunc status=none
dd if=p2.img of=disk.img bs=512 seek=${P2} conv=notrunc status=none
dd if=p3.img of=disk.img bs=512 seek=${P3} conv=notrunc status=none`, dir);
}

async function ls(env: Record<string, string>, id: string, loc: string): Promise<LsEntry[]> {
  const r = await lifeboat(['image', 'ls', id, loc, '--json'], env);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { entries: LsEntry[] }).entries;
}

/** Every path of a partition as "path" or "path/" for folders, through image ls. */
async function walk(env: Record<string, string>, id: string, part: number, folders = new Map<string, LsEntry[]>()): Promise<Map<string, LsEntry>> {
  const out = new Map<string, LsEntry>();
  const todo = [''];
  while (todo.length > 0) {
    const dir = todo.pop()!;
    const list = await ls(env, id, `${part}:${dir || '/'}`);
    folders.set(dir || '/', list);
    for (const e of list) {
      const p = `${dir}/${e.name}`;
      out.set(e.type === 'dir' ? `${p}/` : p, e);
      if (e.type === 'dir') todo.push(p);
    }
  }
  return out;
}

function filesUnder(root: string, rel = ''): string[] {
  const out: string[] = [];
  for (const n of readdirSync(join(root, rel))) {
    const p = rel ? `${rel}/${n}` : n;
    const st = lstatSync(join(root, p));
    if (st.isDirectory()) out.push(...filesUnder(root, p));
    else if (st.isFile()) out.push(p);
  }
  return out;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('image ls and restore-files agree with debugfs, mtools and ntfs-3g on a three-partition MBR disk', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  buildDisk(d.path);
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw', MTOOLS_SKIP_CHECK: '1' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const c = await lifeboat(['image', 'create', join(d.path, 'disk.img'), '--json'], env);
  assert.equal(c.code, 0, c.stderr);
  const id = (JSON.parse(c.stdout) as { id: string }).id.slice(0, 8);

  // Partitions.
  const parts = await lifeboat(['image', 'ls', id, '--json'], env);
  assert.equal(parts.code, 0, parts.stderr);
  const pl = (JSON.parse(parts.stdout) as { partitions: { index: number; filesystem: string; label: string; size: number }[] }).partitions;
  assert.deepEqual(pl.map((p) => [p.index, p.filesystem, p.label, p.size]), [[1, 'ext4', 'extpart', P1_SECTORS * 512], [2, 'fat16', 'FATPART', P2_SECTORS * 512], [3, 'ntfs', 'NTFSPART', P3_SECTORS * 512]]);
  const text = await lifeboat(['image', 'ls', id], env);
  assert.match(text.stdout, /^ 1 {2}ext4 +extpart/m);

  // ext4: every folder as debugfs "ls -p" lists it (inode, mode, owner, size), and the hard link shares an inode.
  const p1 = join(d.path, 'p1.img');
  const extFolders = new Map<string, LsEntry[]>();
  const extAll = await walk(env, id, 1, extFolders);
  let folders = 0;
  for (const [dir, got] of extFolders) {
    const want = sh(`debugfs -R 'ls -p "${dir}"' ${p1} 2>/dev/null`).split('\n').filter(Boolean).map((l) => l.split('/')).filter((f) => f[1] !== '0' && f[5] !== '.' && f[5] !== '..'); // inode 0: unused space
    assert.deepEqual(got.map((g) => g.name).sort(), want.map((w) => w[5]!).sort(), `names in ${dir}`);
    for (const w of want) {
      const g = got.find((x) => x.name === w[5])!;
      assert.equal(g.mode, parseInt(w[2]!, 8) & 0o7777, `mode of ${dir}/${w[5]}`);
      assert.equal(g.uid, Number(w[3]));
      if (g.type === 'file') assert.equal(g.size, Number(w[6]), `size of ${dir}/${w[5]}`);
    }
    folders++;
  }
  assert.ok(folders >= 12 && extAll.size > 3000);
  assert.equal(extAll.get('/fast')?.target, 'a/b');

  // FAT16: exactly what mdir lists (long and non-ASCII names; the deleted file is absent).
  const fatAll = await walk(env, id, 2);
  const mdir = sh(`mdir -i ${join(d.path, 'p2.img')} -b -/ ::/`, undefined, MT).split('\n').filter(Boolean).map((l) => l.replace(/^::/, ''));
  assert.deepEqual([...fatAll.keys()].sort(), mdir.sort());
  assert.ok(!fatAll.has('/SHORT/deleted.txt'));

  // NTFS: exactly what ntfsls -R lists; the stream is listed.
  const ntfsAll = await walk(env, id, 3);
  const want: string[] = [];
  let cur = '';
  for (const l of sh(`ntfsls -R -F ${join(d.path, 'p3.img')} 2>/dev/null`).split('\n')) {
    const h = /^(\/.*):$/.exec(l);
    if (h) cur = h[1]!.replace(/\/$/, '');
    else if (l && l !== './' && l !== '../') want.push(`${cur}/${l}`);
  }
  assert.deepEqual([...ntfsAll.keys()].sort(), want.sort());
  assert.deepEqual(ntfsAll.get('/streamy.txt')?.streams, [{ name: 'secret', size: 14 }]);

  // restore-files of every partition's root equals what the filesystems' own tools extract.
  for (const [n, dump] of [
    [1, `debugfs -R 'rdump / ${d.path}/ref1' ${p1} 2>/dev/null`],
    [2, `mcopy -i ${d.path}/p2.img -s -m -Q ::/* ${d.path}/ref2/`],
  ] as const) {
    mkdirSync(join(d.path, `ref${n}`));
    sh(dump, undefined, MT);
    if (n === 1) {
      // debugfs 1.47.0 dumps an inline-data file as all 60 bytes of i_block; cut it to the size debugfs ls -p gave (checked above).
      for (const [p, e] of extAll) if (e.type === 'file' && statSync(join(d.path, 'ref1', p)).size > e.size) truncateSync(join(d.path, 'ref1', p), e.size);
    }
    const r = await lifeboat(['image', 'restore-files', id, `${n}:/`, '--target', join(d.path, `out${n}`)], env);
    assert.equal(r.code, 0, r.stderr);
    const diff = shStatus(`diff -r --no-dereference ${d.path}/ref${n} ${d.path}/out${n}`);
    assert.equal(diff.status, 0, diff.out);
  }
  const r3 = await lifeboat(['image', 'restore-files', id, '3:/', '--target', join(d.path, 'out3'), '--json'], env);
  assert.equal(r3.code, 0, r3.stderr);
  const files3 = filesUnder(join(d.path, 'out3'));
  assert.ok(files3.length > 420);
  assert.equal(readlinkSync(join(d.path, 'out3', 'link-rel')), 'Dir with spaces/sub/deep.txt');
  const catAll = sh(`cd ${d.path}/out3 && for f in ${files3.map((f) => `'${f.replace(/'/g, `'\\''`)}'`).join(' ')}; do ntfscat ${d.path}/p3.img "/$f" | sha256sum | cut -c1-64; done`).split('\n').filter(Boolean);
  files3.forEach((f, i) => assert.equal(sha(readFileSync(join(d.path, 'out3', f))), catAll[i], `out3/${f} equals ntfscat`));

  // ext metadata: modes, times, owners, symlinks as symlinks, one inode for the hard link, a sparse file stays sparse.
  const o1 = join(d.path, 'out1');
  const deep = 'a/b/c/d/e/f/g/h/file.txt';
  assert.equal(lstatSync(join(o1, deep)).mode & 0o7777, 0o4750);
  assert.equal(lstatSync(join(o1, 'empty dir')).mode & 0o7777, 0o700);
  const mtime = Number(/mtime: (0x[0-9a-f]+)/.exec(sh(`debugfs -R 'stat "/${deep}"' ${p1} 2>/dev/null`))![1]);
  assert.equal(Math.floor(statSync(join(o1, deep)).mtimeMs / 1000), mtime);
  // FAT and NTFS times as image ls shows them (FAT: 2 s steps; NTFS: 100 ns, shown to the ms).
  assert.equal(statSync(join(d.path, 'out2', 'README.TXT')).mtime.toISOString(), fatAll.get('/README.TXT')!.mtime);
  assert.equal(new Date(Math.floor(statSync(join(d.path, 'out3', 'big.bin')).mtimeMs)).toISOString(), ntfsAll.get('/big.bin')!.mtime);
  assert.equal(readlinkSync(join(o1, 'slow')).length, 200);
  assert.ok(lstatSync(join(o1, 'fast')).isSymbolicLink());
  assert.equal(statSync(join(o1, 'big')).ino, statSync(join(o1, 'big link')).ino);
  assert.ok(statSync(join(o1, 'sparse')).blocks * 512 < 1024 * 1024, 'the sparse file is restored sparse');

  // One file out of the image fetches a handful of chunks, not the image.
  const one = await lifeboat(['image', 'restore-files', id, `1:/${deep}`, '--target', join(d.path, 'one'), '--json'], env);
  assert.equal(one.code, 0, one.stderr);
  const stats = JSON.parse(one.stdout) as { chunksFetched: number; chunksInImage: number; files: number };
  assert.equal(stats.files, 1);
  // atime too (checked before anything reads the restored file).
  const atime = Number(/atime: (0x[0-9a-f]+)/.exec(sh(`debugfs -R 'stat "/${deep}"' ${p1} 2>/dev/null`))![1]);
  assert.equal(Math.floor(statSync(join(d.path, 'one', 'file.txt')).atimeMs / 1000), atime);
  assert.ok(stats.chunksFetched > 0 && stats.chunksFetched * 10 < stats.chunksInImage, `${stats.chunksFetched} of ${stats.chunksInImage} chunks fetched`);
  assert.equal(readFileSync(join(d.path, 'one', 'file.txt'), 'utf8'), 'deep\n');

  // A symlink already in the target is replaced, never followed; ".." in a path is refused.
  const outside = join(d.path, 'outside');
  mkdirSync(outside);
  mkdirSync(join(d.path, 'trap'));
  symlinkSync(outside, join(d.path, 'trap', 'a'));
  writeFileSync(join(outside, 'keep'), 'x');
  const trap = await lifeboat(['image', 'restore-files', id, '1:/a', '--target', join(d.path, 'trap')], env);
  assert.equal(trap.code, 0, trap.stderr);
  assert.deepEqual(readdirSync(outside), ['keep']);
  assert.ok(lstatSync(join(d.path, 'trap', 'a')).isDirectory());
  const dots = await lifeboat(['image', 'restore-files', id, '1:/a/../..', '--target', join(d.path, 'dots')], env);
  assert.equal(dots.code, 2);
  assert.match(dots.stderr, /"\.\." is not allowed/);
  const missing = await lifeboat(['image', 'ls', id, '9:/'], env);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /no partition 9/);
});
