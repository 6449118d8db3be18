import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { lifeboat, tempDir } from '../cli/testing.js';

function sh(cmd: string, cwd: string): string {
  return execFileSync('bash', ['-euo', 'pipefail', '-c', cmd], { cwd, encoding: 'utf8', env: { ...process.env, LANG: 'C.UTF-8', MTOOLS_SKIP_CHECK: '1' } });
}

/** Deterministic file tree for fixtures. */
function makeTree(dir: string, files: number, seed: number): void {
  mkdirSync(dir, { recursive: true });
  let x = seed >>> 0 || 1;
  const rnd = () => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), (x >>> 0) / 2 ** 32);
  for (let i = 0; i < files; i++) {
    const n = Math.floor(rnd() * 200_000);
    const b = Buffer.alloc(n);
    for (let j = 0; j < n; j += 4) b.writeUInt32LE(Math.floor(rnd() * 2 ** 32), Math.min(j, Math.max(0, n - 4)));
    writeFileSync(join(dir, `file-${i}.bin`), b);
  }
}

test('an MBR disk with ext4 round-trips byte for byte, to a sparse file; a second image adds almost nothing', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  makeTree(join(d.path, 'tree'), 40, 7);
  sh(`truncate -s 96M disk.img
printf 'label: dos\\nstart=2048, size=100352, type=83, bootable\\nstart=104448, size=90112, type=c\\n' | sfdisk -q disk.img
truncate -s $((100352*512)) p1.img && mkfs.ext4 -q -F -b 4096 -d tree p1.img
dd if=p1.img of=disk.img bs=512 seek=2048 conv=notrunc status=none
head -c 300000 /dev/urandom | dd of=disk.img bs=512 seek=1 conv=notrunc status=none  # boot loader gap`, d.path);
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const dry = await lifeboat(['image', 'create', '--dry-run', join(d.path, 'disk.img')], env);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /Would read .* about .* on this machine/);
  const dryJson = JSON.parse((await lifeboat(['image', 'create', '--dry-run', '--json', join(d.path, 'disk.img')], env)).stdout) as { bytesToRead: number; estimatedSeconds: number };
  assert.ok(dryJson.bytesToRead > 0 && dryJson.bytesToRead <= 96 * 1024 * 1024);
  assert.equal((await lifeboat(['snapshots', '--json'], env)).stdout.includes('disk.img'), false, 'a dry run stores nothing');
  const c1 = await lifeboat(['image', 'create', join(d.path, 'disk.img'), '--json'], env);
  assert.equal(c1.code, 0, c1.stderr);
  const s1 = JSON.parse(c1.stdout) as { id: string; bytesAdded: number; bytesRead: number; partitions: { filesystem?: string; method: string; usedBytes: number }[] };
  // Only used blocks are read: the ext4 partition by its bitmap, the unformatted one in full.
  assert.equal(s1.partitions[0]?.filesystem, 'ext4');
  assert.equal(s1.partitions[0]?.method, 'allocation');
  assert.equal(s1.partitions[1]?.method, 'all');
  const dumpe2fs = sh(`dumpe2fs -h p1.img 2>/dev/null`, d.path);
  const blocks = Number(/Block count:\s+(\d+)/.exec(dumpe2fs)![1]) - Number(/Free blocks:\s+(\d+)/.exec(dumpe2fs)![1]);
  assert.equal(s1.partitions[0]?.usedBytes, blocks * 4096, 'used bytes match dumpe2fs');
  // Everything but ext4's free blocks: table, gaps, the unformatted partition, the end of the disk.
  const expectedRead = 96 * 1024 * 1024 - (100352 * 512 - blocks * 4096);
  assert.ok(Math.abs(s1.bytesRead - expectedRead) <= 4096 * 4, `read ${s1.bytesRead}, expected about ${expectedRead}`);
  const c2 = await lifeboat(['image', 'create', join(d.path, 'disk.img'), '--json'], env);
  const s2 = JSON.parse(c2.stdout) as { id: string; bytesAdded: number };
  assert.ok(s2.bytesAdded < s1.bytesAdded / 50, `second image added ${s2.bytesAdded} bytes`);
  // The same drive under another name is still the same drive (its partition table id and size):
  // its image follows the last one. Another disk id makes another drive, with no parent.
  sh(`cp --sparse=always disk.img renamed.img && cp --sparse=always disk.img other.img && printf '\x12\x34\x56\x78' | dd of=other.img bs=1 seek=440 conv=notrunc status=none`, d.path);
  const parentOf = async (path: string): Promise<string | undefined> => {
    const c = await lifeboat(['image', 'create', join(d.path, path), '--json'], env);
    assert.equal(c.code, 0, c.stderr);
    const { id } = JSON.parse(c.stdout) as { id: string };
    const list = JSON.parse((await lifeboat(['snapshots', '--json'], env)).stdout) as { id: string; parent?: string }[];
    return list.find((x) => x.id === id)!.parent;
  };
  assert.equal(await parentOf('renamed.img'), s2.id, 'a renamed drive follows its last image');
  assert.equal(await parentOf('other.img'), undefined, 'a drive with another disk id has no parent');

  const out = join(d.path, 'out.img');
  const r = await lifeboat(['image', 'restore', s1.id.slice(0, 8), '--target', out], env);
  assert.equal(r.code, 0, r.stderr);
  sh(`cmp disk.img out.img`, d.path);
  assert.ok(statSync(out).blocks * 512 < statSync(join(d.path, 'disk.img')).size, 'restored file is sparse');
  sh(`e2fsck -fn 'out.img?offset=${2048 * 512}' >/dev/null`, d.path);
  const info = await lifeboat(['image', 'info', 'latest', '--json'], env);
  assert.equal(info.code, 0, info.stderr);
  assert.equal((JSON.parse(info.stdout) as { size: number }).size, 96 * 1024 * 1024);
  assert.equal((await lifeboat(['check', '--read-data'], env)).code, 0);
});

test('a source that does not exist and a file snapshot given to image restore get clear errors', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const missing = await lifeboat(['image', 'create', join(d.path, 'nope.img')], env);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /does not exist/);
  assert.doesNotMatch(missing.stderr, /\n\s+at /);
  const restore = await lifeboat(['image', 'restore', 'latest', '--target', join(d.path, 'x.img')], env);
  assert.equal(restore.code, 1);
  assert.match(restore.stderr, /no snapshots/i);
  writeFileSync(join(d.path, 'zero.img'), Buffer.alloc(0));
  const empty = await lifeboat(['image', 'create', join(d.path, 'zero.img')], env);
  assert.equal(empty.code, 2);
  assert.match(empty.stderr, /empty/);
});

test('a GPT disk with FAT32, NTFS and ext4 (1 KiB blocks): used blocks only, and the restored filesystems check clean and read back identical files', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  makeTree(join(d.path, 'tree'), 30, 11);
  const mnt = join(d.path, 'mnt');
  mkdirSync(mnt);
  sh(`truncate -s 120M disk.img
sgdisk -o -n 1:2048:+48M -t 1:EF00 -n 2:0:+40M -t 2:0700 -n 3:0:0 -t 3:8300 disk.img >/dev/null
truncate -s 48M p1.img && mkfs.vfat -F 32 -s 1 -n ESP p1.img >/dev/null && mcopy -s -m -Q -D o -i p1.img tree ::/
truncate -s 40M p2.img && mkntfs -F -Q -q p2.img && ntfs-3g p2.img mnt && cp -r tree mnt/ && umount mnt
p3s=$(sgdisk -i 3 disk.img | awk '/First sector/{print $3}'); p3e=$(sgdisk -i 3 disk.img | awk '/Last sector/{print $3}')
truncate -s $(( (p3e - p3s + 1) * 512 )) p3.img && mkfs.ext4 -q -F -b 1024 -d tree p3.img
p2s=$(sgdisk -i 2 disk.img | awk '/First sector/{print $3}')
dd if=p1.img of=disk.img bs=512 seek=2048 conv=notrunc status=none
dd if=p2.img of=disk.img bs=512 seek=$p2s conv=notrunc status=none
dd if=p3.img of=disk.img bs=512 seek=$p3s conv=notrunc status=none`, d.path);
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const c = await lifeboat(['image', 'create', join(d.path, 'disk.img'), '--json'], env);
  assert.equal(c.code, 0, c.stderr);
  const s = JSON.parse(c.stdout) as { id: string; bytesRead: number; partitions: { filesystem?: string; method: string; usedBytes: number; start: number; size: number }[] };
  assert.deepEqual(s.partitions.map((p) => [p.filesystem, p.method]), [['fat32', 'allocation'], ['ntfs', 'allocation'], ['ext4', 'allocation']]);
  assert.ok(s.bytesRead < 0.6 * 120 * 1024 * 1024, `read ${s.bytesRead} of a mostly empty 120 MiB disk`);
  const used = s.partitions.reduce((a, p) => a + p.usedBytes, 0);
  assert.ok(s.bytesRead >= used, 'every used byte was read');

  const r = await lifeboat(['image', 'restore', s.id, '--target', join(d.path, 'out.img')], env);
  assert.equal(r.code, 0, r.stderr);
  sh(`sgdisk -v out.img | grep -q 'No problems found'`, d.path);
  const [p1, p2, p3] = [s.partitions[0]!, s.partitions[1]!, s.partitions[2]!];
  // Each restored partition, cut out, passes its filesystem's own checker, and independent readers
  // give back exactly the files of the source tree.
  sh(`dd if=out.img of=r1.img bs=512 skip=${p1.start / 512} count=${p1.size / 512} status=none
dd if=out.img of=r2.img bs=512 skip=${p2.start / 512} count=${p2.size / 512} status=none
fsck.vfat -n r1.img >/dev/null
ntfsfix -n r2.img >/dev/null
e2fsck -fn 'out.img?offset=${p3.start}' >/dev/null 2>&1
mkdir -p x1 x3 && mcopy -s -n -i r1.img ::/tree x1/ && diff -r tree x1/tree
for f in tree/*; do ntfscat r2.img "/tree/$(basename "$f")" | cmp - "$f"; done
for f in tree/*; do debugfs -R "dump /$(basename "$f") x3/out" 'out.img?offset=${p3.start}' >/dev/null 2>&1; cmp "$f" x3/out; done`, d.path);
});

test('image restore refuses a drive with a mounted filesystem, and a drive smaller than the image', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  sh(`truncate -s 16M src.img && mkfs.ext4 -q -F src.img && truncate -s 8M small.img && truncate -s 16M busy.img && mkfs.ext4 -q -F busy.img && mkdir -p mnt`, d.path);
  assert.equal((await lifeboat(['init'], env)).code, 0);
  assert.equal((await lifeboat(['image', 'create', join(d.path, 'src.img')], env)).code, 0);
  const busy = sh(`losetup -f --show busy.img`, d.path).trim();
  const small = sh(`losetup -f --show small.img`, d.path).trim();
  try {
    sh(`mount ${busy} mnt`, d.path);
    try {
      const r = await lifeboat(['image', 'restore', 'latest', '--target', busy], env);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /mounted/);
    } finally {
      sh(`umount mnt`, d.path);
    }
    const s = await lifeboat(['image', 'restore', 'latest', '--target', small], env);
    assert.equal(s.code, 2, s.stderr);
    assert.match(s.stderr, /8\.39 MB.*16\.8 MB/);
    sh(`cmp -n 4096 /dev/zero ${small}`, d.path); // nothing was written
  } finally {
    sh(`losetup -d ${busy}; losetup -d ${small}`, d.path);
  }
});
