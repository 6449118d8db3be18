/**
 * Builds the rescue kit's disk: an MBR with one active FAT32 partition from 1 MiB, GRUB's BIOS
 * boot code in the MBR and its core image in the gap before the partition (the way grub-install
 * lays them out), and whatever UEFI firmware starts in the partition (EFI/BOOT/BOOTX64.EFI).
 * And an initramfs: a "newc" cpio archive, gzip-compressed, as the Linux kernel unpacks it.
 */
import { gzipSync } from 'node:zlib';
import { LifeboatError } from '../util/errors.js';

const SECTOR = 512;
/** The partition starts at 1 MiB, leaving 2047 sectors for GRUB's core image. */
export const PARTITION_START = 2048;

export interface BootDiskParts {
  /** GRUB's boot.img (at least its first 440 bytes: the code of the MBR). */
  readonly bootImage?: Uint8Array;
  /** GRUB's core.img for i386-pc, written from sector 1. */
  readonly coreImage?: Uint8Array;
  /** The filesystem of the partition (FAT32). */
  readonly partition: Uint8Array;
  /** MBR partition type: 0x0c (FAT32, LBA). */
  readonly type?: number;
  /** The disk signature (the 32-bit id operating systems tell disks apart by). */
  readonly signature: number;
}

export function buildBootDisk(p: BootDiskParts): Buffer {
  if (p.partition.length % SECTOR !== 0) throw new LifeboatError('invalid-argument', 'The partition must be whole sectors.');
  const sectors = PARTITION_START + p.partition.length / SECTOR;
  const disk = Buffer.alloc(sectors * SECTOR);
  if (p.bootImage) Buffer.from(p.bootImage.buffer, p.bootImage.byteOffset, 440).copy(disk, 0);
  if (p.coreImage) {
    const core = Buffer.from(p.coreImage);
    const n = Math.ceil(core.length / SECTOR);
    if (n >= PARTITION_START) throw new LifeboatError('invalid-argument', 'GRUB\'s core image does not fit before the partition.');
    core.copy(disk, SECTOR);
    // diskboot.img's block list (the last 12 bytes of core.img's first sector): the rest of core.img starts at LBA 2.
    disk.writeBigUInt64LE(2n, SECTOR + 500);
    disk.writeUInt16LE(n - 1, SECTOR + 508);
    disk.writeUInt16LE(0x820, SECTOR + 510);
  }
  disk.writeUInt32LE(p.signature >>> 0, 440);
  const e = 446;
  disk[e] = 0x80; // active: BIOSes that want a bootable partition find one
  chs(disk, e + 1, PARTITION_START);
  disk[e + 4] = p.type ?? 0x0c;
  chs(disk, e + 5, sectors - 1);
  disk.writeUInt32LE(PARTITION_START, e + 8);
  disk.writeUInt32LE(sectors - PARTITION_START, e + 12);
  disk[510] = 0x55;
  disk[511] = 0xaa;
  Buffer.from(p.partition.buffer, p.partition.byteOffset, p.partition.length).copy(disk, PARTITION_START * SECTOR);
  return disk;
}

/** CHS address of `lba` with 255 heads and 63 sectors per track (1023/254/63 past the limit). */
function chs(b: Buffer, at: number, lba: number): void {
  let c = Math.floor(lba / (255 * 63));
  let h = Math.floor(lba / 63) % 255;
  let s = (lba % 63) + 1;
  if (c > 1023) [c, h, s] = [1023, 254, 63];
  b[at] = h;
  b[at + 1] = (s & 0x3f) | ((c >> 2) & 0xc0);
  b[at + 2] = c & 0xff;
}

export interface CpioEntry {
  readonly path: string;
  /** File type and permission bits (0o100755, 0o40755, 0o120777 for a symlink). */
  readonly mode: number;
  /** A file's bytes, or a symlink's target. */
  readonly data?: Uint8Array;
}

/** A gzip-compressed "newc" cpio archive, as the kernel unpacks an initramfs. */
export function buildInitramfs(entries: readonly CpioEntry[], level = 6): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const pad = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  const add = (path: string, mode: number, data: Uint8Array) => {
    const name = Buffer.from(path + '\0', 'utf8');
    const hex = (n: number) => n.toString(16).padStart(8, '0');
    const header = Buffer.from('070701' + [ino++, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, name.length, 0].map(hex).join(''), 'latin1');
    parts.push(header, name, pad(header.length + name.length), Buffer.from(data.buffer, data.byteOffset, data.length), pad(data.length));
  };
  for (const e of entries) add(e.path.replace(/^\/+/, ''), e.mode, e.data ?? new Uint8Array());
  add('TRAILER!!!', 0, new Uint8Array());
  return gzipSync(Buffer.concat(parts), { level });
}
