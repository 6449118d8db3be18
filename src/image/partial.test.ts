/**
 * Images of some partitions (issue 21, P10 item 3): `image create --exclude-partition 3` on a GPT
 * disk made by the real tools (ESP, ext4 system, a data partition of FAT32 or ext4) reads and
 * stores only the rest; restore lays out the same table, fills partitions 1–2 byte for byte and
 * leaves 3 empty (an empty FAT32 that fsck.vfat accepts, or no signature blkid finds), with a note;
 * incremental images across different choices, export, check and prune keep working.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { lifeboat } from '../cli/testing.js';
import { SYSTEM_DISK as D, makeSystemDisk, noiseFile, seededBytes, sh, shStatus, tempDir } from './testing.js';

const MT = { MTOOLS_SKIP_CHECK: '1' };
const MiB = 1024 * 1024;
const p3Start = D.p3 * 512;
const p3End = (D.p3 + D.p3Sectors) * 512;

function du(path: string): number {
  return Number(sh(`du -sb '${path}'`).split('\t')[0]);
}

/** The partition table as sfdisk dumps it, without the file's name. */
function table(dir: string, file: string): string {
  return sh(`sfdisk -d ${file} | sed 's/^${file}/DISK/; /^device:/d'`, dir);
}

/** Partitions 1 and 2 and every byte outside partition 3 are the source's; both filesystems check clean and hold the same files. */
function assertSystemRestored(dir: string, source: string, out: string): void {
  assert.equal(table(dir, out), table(dir, source), 'the same partition table');
  sh(`cmp -n ${p3Start} ${source} ${out}`, dir); // table, boot code gap, ESP, system
  sh(`cmp -i ${p3End} ${source} ${out}`, dir); // after partition 3, with the GPT backup
  sh(`rm -rf chk && mkdir chk && dd if=${out} of=chk/p1 bs=512 skip=${D.p1} count=${D.p1Sectors} status=none && fsck.vfat -n chk/p1 >/dev/null
mcopy -s -n -i chk/p1 ::/EFI chk/ && cmp chk/EFI/BOOT/BOOTX64.EFI esp/EFI/BOOT/BOOTX64.EFI
e2fsck -fn '${out}?offset=${D.p2 * 512}' >/dev/null 2>&1
mkdir chk/sys && debugfs -R 'rdump / chk/sys' '${out}?offset=${D.p2 * 512}' 2>/dev/null
diff -r -x lost+found system chk/sys`, dir, MT);
}

function readAt(path: string, offset: number, length: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(length);
    readSync(fd, b, 0, length, offset);
    return b;
  } finally {
    closeSync(fd);
  }
}

test('a FAT data partition left out: only the system is read and stored; restore formats it empty, incremental images follow any choice', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const disk = makeSystemDisk(d.path, 'fat');
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);

  // Wrong choices: one sentence, exit 2, nothing stored.
  for (const [args, said] of [
    [['--exclude-partition', '7'], /This drive has no partition 7; its partitions are 1, 2, 3/],
    [['--partitions', '1', '--exclude-partition', '3'], /either --partitions .* or --exclude-partition .*, not both/],
    [['--partitions', '1,x'], /give partition numbers/],
  ] as const) {
    const r = await lifeboat(['image', 'create', disk, ...args], env);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, said);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }

  const dry = await lifeboat(['image', 'create', disk, '--dry-run', '--exclude-partition', '3'], env);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /3: fat32, 50\.3 MB, left out/);
  const plan = JSON.parse((await lifeboat(['image', 'create', disk, '--dry-run', '--json', '--partitions', '1,2'], env)).stdout) as { bytesToRead: number; partitions: { method: string; filesystem?: string; label?: string; usedBytes: number }[] };
  assert.deepEqual(plan.partitions.map((p) => p.method), ['allocation', 'allocation', 'excluded']);
  assert.equal(plan.partitions[2]!.filesystem, 'fat32');
  assert.equal(plan.partitions[2]!.label, 'DATA');
  assert.equal(plan.partitions[2]!.usedBytes, 0);
  assert.ok(plan.bytesToRead < D.size - (p3End - p3Start), `would read ${plan.bytesToRead}`);

  // The repository grows by about the system's used bytes (its files are noise: they do not compress), not by the 16 MB of data.
  const before = du(join(d.path, 'repo'));
  const c1 = await lifeboat(['image', 'create', disk, '--exclude-partition', '3'], env);
  assert.equal(c1.code, 0, c1.stderr);
  assert.match(c1.stdout, /Partition 3 \(FAT32 'DATA', 50\.3 MB\) was left out: restoring this image leaves it empty\./);
  const grown = du(join(d.path, 'repo')) - before;
  const systemFiles = du(join(d.path, 'system')) + du(join(d.path, 'esp')) + 200_000;
  assert.ok(grown > systemFiles * 0.8 && grown < systemFiles + 1.5 * MiB, `the repository grew by ${grown} bytes for ${systemFiles} bytes of system files`);
  const snaps = () => lifeboat(['snapshots', '--json'], env).then((r) => JSON.parse(r.stdout) as { id: string; parent?: string; summary: { bytesRead: number; bytesAdded: number } }[]);
  const s1 = (await snaps()).at(-1)!;
  assert.ok(s1.summary.bytesRead < plan.bytesToRead + MiB);

  const info = await lifeboat(['image', 'info', s1.id], env);
  assert.match(info.stdout, /3 +Microsoft basic data +fat32 +DATA +not in this image \(50\.3 MB\)/);
  assert.match((await lifeboat(['image', 'ls', s1.id], env)).stdout, /3 +fat32 +DATA .*\(not in this image\)/);
  for (const args of [['image', 'ls', s1.id, '3:/'], ['image', 'restore-files', s1.id, '3:/video1.bin', '--target', join(d.path, 'files')]]) {
    const r = await lifeboat(args, env);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /Partition 3 \(FAT32 'DATA', 50\.3 MB\) was left out of this image, so it holds no files here; restore its files from a file backup\.\n$/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
  assert.equal((await lifeboat(['image', 'ls', s1.id, '2:/docs'], env)).code, 0, 'the imaged partitions browse as ever');

  const r1 = await lifeboat(['image', 'restore', s1.id, '--target', join(d.path, 'out.img'), '--json'], env);
  assert.equal(r1.code, 0, r1.stderr);
  const res = JSON.parse(r1.stdout) as { leftOut: { index: number; filesystem: string; label: string; formatted: string | null; note: string }[] };
  assert.deepEqual(res.leftOut.map((l) => [l.index, l.filesystem, l.label, l.formatted]), [[3, 'fat32', 'DATA', 'fat32']]);
  const text = await lifeboat(['image', 'restore', s1.id, '--target', join(d.path, 'out.img'), '--force'], env);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /Partition 3 \(FAT32 'DATA', 50\.3 MB\) was not in this image: it is an empty FAT32 filesystem now\. Restore its files from your file backup\./);
  assertSystemRestored(d.path, 'disk.img', 'out.img');
  sh(`dd if=out.img of=chk/p3 bs=512 skip=${D.p3} count=${D.p3Sectors} status=none && fsck.vfat -n chk/p3 >/dev/null`, d.path);
  assert.match(sh(`mdir -i chk/p3 ::`, d.path, MT), /No files/);
  assert.match(sh(`mlabel -s -i chk/p3 ::`, d.path, MT), /DATA/);
  assert.match(sh(`minfo -i chk/p3 ::`, d.path, MT), /hidden sectors: 67584/);

  // Export: the partition left out is zeros, the rest is the drive's.
  const ex = await lifeboat(['image', 'export', s1.id, join(d.path, 'export.img')], env);
  assert.equal(ex.code, 0, ex.stderr);
  sh(`cmp -n ${p3Start} disk.img export.img && cmp -i ${p3End} disk.img export.img && cmp -n ${p3End - p3Start} -i ${p3Start}:0 export.img /dev/zero`, d.path);

  // A change to the system and to the data: the next partial image is incremental (it follows s1).
  sh(`printf 'new system file\\n' > new.txt && debugfs -w -R 'write new.txt new.txt' 'disk.img?offset=${D.p2 * 512}' >/dev/null 2>&1 && cp new.txt system/new.txt
dd if=disk.img of=p3.img bs=512 skip=${D.p3} count=${D.p3Sectors} status=none && mcopy -i p3.img new.txt ::/added.txt && dd if=p3.img of=disk.img bs=512 seek=${D.p3} conv=notrunc status=none`, d.path, MT);
  assert.equal((await lifeboat(['image', 'create', disk, '--exclude-partition', '3'], env)).code, 0);
  const s2 = (await snaps()).at(-1)!;
  assert.equal(s2.parent, s1.id);
  assert.ok(s2.summary.bytesAdded < 200_000, `the second image added ${s2.summary.bytesAdded} bytes`);
  assert.equal((await lifeboat(['image', 'restore', s2.id, '--target', join(d.path, 'out2.img')], env)).code, 0);
  assertSystemRestored(d.path, 'disk.img', 'out2.img');

  // The whole drive after a partial image: partition 3 has no parent data, the rest follows; restored byte for byte.
  assert.equal((await lifeboat(['image', 'create', disk], env)).code, 0);
  const s3 = (await snaps()).at(-1)!;
  assert.equal(s3.parent, s2.id);
  assert.ok(s3.summary.bytesAdded > 15_000_000, 'partition 3 is stored now');
  assert.equal((await lifeboat(['image', 'restore', s3.id, '--target', join(d.path, 'out3.img')], env)).code, 0);
  sh(`cmp disk.img out3.img`, d.path);

  // Only partition 2 after the whole drive: the ESP (too small for FAT32) is left blank, and said so.
  assert.equal((await lifeboat(['image', 'create', disk, '--partitions', '2'], env)).code, 0);
  const s4 = (await snaps()).at(-1)!;
  assert.equal(s4.parent, s3.id);
  const r4 = await lifeboat(['image', 'restore', s4.id, '--target', join(d.path, 'out4.img')], env);
  assert.equal(r4.code, 0, r4.stderr);
  assert.match(r4.stdout, /Partition 1 \(FAT12 'ESP', 8\.39 MB\) was not in this image and is blank now: format it as FAT12, then restore its files from your file backup\./);
  assert.match(r4.stdout, /Partition 3 \(FAT32 'DATA', 50\.3 MB\) was not in this image: it is an empty FAT32/);
  sh(`e2fsck -fn 'out4.img?offset=${D.p2 * 512}' >/dev/null 2>&1 && cmp -n ${D.p2Sectors * 512} -i ${D.p2 * 512} disk.img out4.img`, d.path);
  assert.equal(shStatus(`blkid -p -O ${D.p1 * 512} -S ${D.p1Sectors * 512} out4.img`, d.path).status, 2, 'no filesystem signature where the ESP was');

  assert.equal((await lifeboat(['check', '--read-data'], env)).code, 0);
  assert.equal((await lifeboat(['forget', s3.id], env)).code, 0);
  assert.equal((await lifeboat(['prune'], env)).code, 0);
  assert.equal((await lifeboat(['check', '--read-data'], env)).code, 0);
  assert.equal((await lifeboat(['image', 'restore', s2.id, '--target', join(d.path, 'out2.img'), '--force'], env)).code, 0, 'a partial image whose child was pruned still restores');
  assertSystemRestored(d.path, 'disk.img', 'out2.img');
});

test('an ext4 data partition left out, restored onto a drive that held it: its ends are zeroed, no signature survives, its inside is not written', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const disk = makeSystemDisk(d.path, 'ext4');
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const c = await lifeboat(['image', 'create', disk, '--exclude-partition', '3', '--json'], env);
  assert.equal(c.code, 0, c.stderr);
  const { id } = JSON.parse(c.stdout) as { id: string };

  // The drive the image goes back onto: the same drive (its data partition still there), with noise inside partition 3.
  const target = join(d.path, 'target.img');
  sh(`cp disk.img target.img`, d.path);
  noiseFile(join(d.path, 'noise.bin'), 4 * MiB, 9);
  sh(`dd if=noise.bin of=target.img bs=1M seek=${p3Start / MiB + 20} conv=notrunc status=none`, d.path);
  assert.equal(shStatus(`blkid -p -O ${p3Start} -S ${p3End - p3Start} target.img`, d.path).status, 0, 'ext4 is found there before');
  const loop = sh(`losetup -f --show target.img`, d.path).trim();
  let out;
  try {
    out = await lifeboat(['image', 'restore', id, '--target', loop, '--force'], env);
  } finally {
    sh(`losetup -d ${loop}`, d.path);
  }
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /Partition 3 \(ext4 'data', 50\.3 MB\) was not in this image and is blank now: format it as ext4, then restore its files from your file backup\./);
  assertSystemRestored(d.path, 'disk.img', 'target.img');
  assert.equal(shStatus(`blkid -p -O ${p3Start} -S ${p3End - p3Start} target.img`, d.path).status, 2, 'no filesystem signature is found in partition 3');
  assert.ok(readAt(target, p3Start, MiB).equals(Buffer.alloc(MiB)), 'its first MiB is zeros');
  assert.ok(readAt(target, p3End - MiB, MiB).equals(Buffer.alloc(MiB)), 'its last MiB is zeros');
  assert.ok(readAt(target, p3Start + 20 * MiB, MiB).equals(seededBytes(9, MiB)), 'its inside was not written');
  assert.equal(statSync(target).size, D.size);
});
