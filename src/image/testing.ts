/** Test helpers for the image parsers: shell commands as independent checkers, temp dirs, seeded bytes. */
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function sh(cmd: string, cwd?: string, env: Record<string, string> = {}): string {
  return execFileSync('bash', ['-euo', 'pipefail', '-c', cmd], { cwd, encoding: 'utf8', env: { ...process.env, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', ...env }, maxBuffer: 64 * 1024 * 1024 });
}

/** Like sh, but returns stdout+stderr and the exit status instead of throwing. */
export function shStatus(cmd: string, cwd?: string): { status: number; out: string } {
  try {
    return { status: 0, out: execFileSync('bash', ['-c', `${cmd} 2>&1`], { cwd, encoding: 'utf8', env: { ...process.env, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' }, maxBuffer: 64 * 1024 * 1024 }) };
  } catch (e) {
    const err = e as { status?: number; stdout?: string };
    return { status: err.status ?? -1, out: err.stdout ?? '' };
  }
}

export function tempDir(prefix = 'lifeboat-image-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

import { prng } from '../util/testing.js';

export { prng };

export function seededBytes(seed: number, n: number): Buffer {
  const r = prng(seed);
  const b = Buffer.alloc(n);
  let x = 0;
  for (let i = 0; i < n; i++) {
    if ((i & 3) === 0) x = (r() * 0x100000000) >>> 0;
    b[i] = (x >>> ((i & 3) * 8)) & 0xff;
  }
  return b;
}

/**
 * Writes a tree of deterministic files into `dir`: a few folders, sizes from 0 to `maxSize`,
 * one larger file, and names with spaces. Returns the relative paths.
 */
export function writeTree(dir: string, seed: number, count: number, maxSize: number): string[] {
  const r = prng(seed);
  const paths: string[] = [];
  sh(`mkdir -p "${dir}/docs/sub dir" "${dir}/photos"`);
  const folders = ['', 'docs', 'docs/sub dir', 'photos'];
  for (let i = 0; i < count; i++) {
    const folder = folders[i % folders.length]!;
    const rel = `${folder ? folder + '/' : ''}file ${i}.bin`;
    const size = i === 0 ? 0 : Math.floor(r() * maxSize);
    writeFileSync(join(dir, rel), seededBytes(seed * 1000 + i, size));
    paths.push(rel);
  }
  writeFileSync(join(dir, 'big.bin'), seededBytes(seed + 7, maxSize * 8));
  paths.push('big.bin');
  return paths;
}

/**
 * Zeroes every byte of [offset, offset + size) in the file at `path` that lies outside `used`
 * (ranges relative to offset). Returns how many of those bytes were not zero before.
 */
export function zeroOutside(path: string, used: readonly { start: number; end: number }[], offset: number, size: number): number {
  const fd = openSync(path, 'r+');
  let changed = 0;
  try {
    let cursor = 0;
    const buf = Buffer.alloc(1 << 20);
    const zap = (start: number, end: number) => {
      for (let o = start; o < end; o += buf.length) {
        const n = Math.min(buf.length, end - o);
        readSync(fd, buf, 0, n, offset + o);
        for (let i = 0; i < n; i++) if (buf[i] !== 0) changed++;
        buf.fill(0, 0, n);
        writeSync(fd, buf, 0, n, offset + o);
      }
    };
    for (const r of used) {
      if (r.start > cursor) zap(cursor, r.start);
      cursor = Math.max(cursor, r.end);
    }
    if (cursor < size) zap(cursor, size);
  } finally {
    closeSync(fd);
  }
  return changed;
}

/** A file of `size` bytes of seeded noise, so that free space holds stale data worth zeroing. */
export function noiseFile(path: string, size: number, seed: number): void {
  const fd = openSync(path, 'w');
  try {
    const block = seededBytes(seed, 1 << 20);
    for (let o = 0; o < size; o += block.length) writeSync(fd, block, 0, Math.min(block.length, size - o), o);
  } finally {
    closeSync(fd);
  }
}

/** Flips the low bit of one byte. */
export function flip(b: Buffer, at: number): void {
  b.writeUInt8(b.readUInt8(at) ^ 1, at);
}

/** A disk of `size` bytes where only the given blocks hold (pseudo-random) data. */
export function sparseDisk(size: number, blockSize: number, filled: readonly number[]): Buffer {
  const d = Buffer.alloc(size);
  let x = 12345;
  for (const b of filled) {
    for (let o = b * blockSize; o < Math.min(size, (b + 1) * blockSize); o++) {
      x = (x * 1103515245 + 12345) >>> 0;
      d[o] = x >>> 24;
    }
  }
  return d;
}

/** Feeds a whole disk to a VHD/VHDX writer block by block (all-zero blocks as absent). */
export async function writeAll(w: { blockSize: number; writeBlock(i: number, d: Buffer | undefined): Promise<void>; finish(): Promise<void> }, disk: Buffer): Promise<void> {
  const n = Math.ceil(disk.length / w.blockSize);
  for (let i = 0; i < n; i++) {
    const block = Buffer.alloc(w.blockSize);
    disk.copy(block, 0, i * w.blockSize, Math.min(disk.length, (i + 1) * w.blockSize));
    await w.writeBlock(i, block.every((b) => b === 0) ? undefined : block);
  }
  await w.finish();
}

/** A 64 MiB MBR disk with one ext4 partition holding a few MB of files (mostly empty). */
export function makeExt4Disk(dir: string): string {
  mkdirSync(join(dir, 'tree'), { recursive: true });
  let x = 99;
  for (let i = 0; i < 12; i++) {
    const b = Buffer.alloc(100_000 + i * 20_000);
    for (let j = 0; j < b.length; j++) b[j] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
    writeFileSync(join(dir, 'tree', `f${i}.bin`), b);
  }
  sh(`truncate -s 64M disk.img
printf 'label: dos\\nstart=2048, size=100352, type=83\\n' | sfdisk -q disk.img
truncate -s $((100352*512)) p1.img && mkfs.ext4 -q -F -b 4096 -d tree p1.img
dd if=p1.img of=disk.img bs=512 seek=2048 conv=notrunc status=none && rm p1.img`, dir);
  return join(dir, 'disk.img');
}

/** The QEMU arguments of the boot tests: software emulation, serial console on stdio, OVMF's firmware for UEFI (a copy of its variables in `dir`). */
export function qemuArgs(uefi: boolean, dir: string, memoryMiB = 512): string[] {
  const args = ['-accel', 'tcg', '-m', String(memoryMiB), '-nographic', '-no-reboot', '-display', 'none', '-serial', 'stdio', '-monitor', 'none'];
  if (uefi) {
    const vars = join(dir, `vars-${Date.now()}.fd`);
    copyFileSync('/usr/share/OVMF/OVMF_VARS_4M.fd', vars);
    args.push('-drive', 'if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd', '-drive', `if=pflash,format=raw,file=${vars}`);
  }
  return args;
}

/** Boots a disk under QEMU (software emulation) and resolves true if the marker appears. */
export function boots(disk: string, uefi: boolean, dir: string, timeoutMs: number, marker = 'LIFEBOAT-BOOT-OK'): Promise<boolean> {
  const args = qemuArgs(uefi, dir);
  args.push('-drive', `file=${disk},format=raw,if=ide`);
  return new Promise((res) => {
    const q = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      q.kill('SIGKILL');
      res(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    q.stdout.setEncoding('latin1').on('data', (d: string) => {
      out += d;
      if (out.includes(marker)) finish(true);
      if (out.length > 1_000_000) out = out.slice(-10_000);
    });
    q.on('close', () => finish(out.includes(marker)));
  });
}

/** Sectors of the partitions of makeSystemDisk: an ESP, a system partition and a data partition. */
export const SYSTEM_DISK = { p1: 2048, p1Sectors: 16384, p2: 18432, p2Sectors: 49152, p3: 67584, p3Sectors: 98304, size: 90 * 1024 * 1024 } as const;

/**
 * A 90 MiB GPT disk as a user's: 1 an 8 MiB FAT ESP ("ESP", a boot loader file), 2 a 24 MiB ext4
 * system partition ("system", about 3 MB of files), 3 a 48 MiB data partition ("DATA" FAT32 or
 * "data" ext4) holding 16 MB of files, and 200 KB of boot code in the gap before partition 1.
 * The trees written into the filesystems are left in `dir` (esp/, system/, data/).
 */
export function makeSystemDisk(dir: string, data: 'fat' | 'ext4'): string {
  const D = SYSTEM_DISK;
  mkdirSync(join(dir, 'esp', 'EFI', 'BOOT'), { recursive: true });
  writeFileSync(join(dir, 'esp', 'EFI', 'BOOT', 'BOOTX64.EFI'), seededBytes(1, 300_000));
  mkdirSync(join(dir, 'system'), { recursive: true });
  writeTree(join(dir, 'system'), 2, 12, 150_000);
  mkdirSync(join(dir, 'data'), { recursive: true });
  for (let i = 0; i < 8; i++) writeFileSync(join(dir, 'data', `video${i}.bin`), seededBytes(100 + i, 2_000_000));
  const dataFs =
    data === 'fat'
      ? `mkfs.vfat -F 32 -s 1 -n DATA p3.img >/dev/null && mcopy -s -m -Q -D o -i p3.img data/* ::/`
      : `mkfs.ext4 -q -F -L data -d data p3.img`;
  sh(`truncate -s ${D.size} disk.img
sgdisk -o -n 1:${D.p1}:+${D.p1Sectors} -t 1:EF00 -c 1:EFI -n 2:${D.p2}:+${D.p2Sectors} -t 2:8300 -n 3:${D.p3}:+${D.p3Sectors} -t 3:0700 disk.img >/dev/null
truncate -s $((${D.p1Sectors}*512)) p1.img && mkfs.vfat -n ESP p1.img >/dev/null && mcopy -s -m -Q -D o -i p1.img esp/* ::/
truncate -s $((${D.p2Sectors}*512)) p2.img && mkfs.ext4 -q -F -L system -d system p2.img
truncate -s $((${D.p3Sectors}*512)) p3.img && ${dataFs}
dd if=p1.img of=disk.img bs=512 seek=${D.p1} conv=notrunc status=none
dd if=p2.img of=disk.img bs=512 seek=${D.p2} conv=notrunc status=none
dd if=p3.img of=disk.img bs=512 seek=${D.p3} conv=notrunc status=none
head -c 200000 /dev/urandom | dd of=disk.img bs=512 seek=40 conv=notrunc status=none
rm p1.img p2.img p3.img`, dir, { MTOOLS_SKIP_CHECK: '1' });
  return join(dir, 'disk.img');
}
