/**
 * Writes FAT32 filesystems: a small one in memory with files, for the rescue kit's boot partition
 * (UEFI firmware, GRUB and Linux all read it: short (8.3) upper-case names, files stored
 * contiguously, one fixed time stamp), and an empty one of any size from 33 MB to 2 TB written
 * piece by piece, for a FAT partition an image left out (jobs/image.ts restore). The FAT reader in
 * fs/fat.ts and fsck.vfat check both.
 */
import { LifeboatError } from '../util/errors.js';

export interface FatFile {
  /** '/'-separated path of 8.3 names: "EFI/BOOT/BOOTX64.EFI". */
  readonly path: string;
  readonly data: Uint8Array;
}

export interface FatOptions {
  /** Size of the filesystem in bytes (a multiple of 512). */
  readonly size: number;
  /** Sectors before the filesystem on its drive (the partition's start), for the boot sector. */
  readonly hiddenSectors: number;
  /** Up to 11 characters, A-Z 0-9 and a few more. */
  readonly label: string;
  /** The filesystem's serial number. */
  readonly volumeId: number;
  /** Files' date and time. */
  readonly time?: Date;
}

const SECTOR = 512;
const RESERVED = 32;
const FATS = 2;
const EOC = 0x0fffffff;
const SHORT = /^[A-Z0-9_~!#$%&'()@^{}-]{1,8}(\.[A-Z0-9_~!#$%&'()@^{}-]{1,3})?$/;

/** The 11 bytes of an 8.3 name ("BOOTX64.EFI" -> "BOOTX64 EFI"). */
function shortName(name: string): Buffer {
  if (!SHORT.test(name)) throw new LifeboatError('invalid-argument', `"${name}" is not a short upper-case FAT name (8.3).`);
  const [base, ext = ''] = name.split('.');
  return Buffer.from(base!.padEnd(8, ' ') + ext.padEnd(3, ' '), 'latin1');
}

interface Dir {
  readonly files: Map<string, Uint8Array>;
  readonly dirs: Map<string, Dir>;
  cluster: number;
}

/** The smallest FAT32 filesystem (512-byte clusters) that holds `files`, with `spare` bytes free. */
export function fatSizeFor(files: readonly FatFile[], spare = 4 * 1024 * 1024): number {
  const data = files.reduce((n, f) => n + Math.ceil(f.data.length / SECTOR) * SECTOR + 4 * SECTOR, 0) + spare;
  // FAT32 needs at least 65525 clusters; two FATs of 4 bytes per cluster, the reserved sectors.
  const clusters = Math.max(66_000, Math.ceil(data / SECTOR));
  return (RESERVED + 2 * Math.ceil((clusters * 4) / SECTOR) + clusters) * SECTOR;
}

interface Geometry {
  readonly total: number;
  readonly sectorsPerCluster: number;
  readonly fatSectors: number;
  readonly firstData: number;
  readonly clusters: number;
}

/** FAT32 counts at least 65525 clusters and at most 0x0ffffff5 (fatgen103). */
const MIN_CLUSTERS = 65525;
const MAX_CLUSTERS = 0x0ffffff5;

/** Sectors, FAT size (Microsoft's formula, fatgen103) and clusters of a FAT32 of `size` bytes; undefined when FAT32 cannot span it. */
function geometry(size: number, sectorsPerCluster: number): Geometry | undefined {
  const total = Math.floor(size / SECTOR);
  if (total > 0xffffffff) return undefined;
  const fatSectors = Math.ceil((total - RESERVED) / ((256 * sectorsPerCluster + FATS) / 2));
  const firstData = RESERVED + FATS * fatSectors;
  const clusters = Math.floor((total - firstData) / sectorsPerCluster);
  return clusters >= MIN_CLUSTERS && clusters <= MAX_CLUSTERS ? { total, sectorsPerCluster, fatSectors, firstData, clusters } : undefined;
}

/** The label as FAT stores it: 11 upper-case characters of the allowed set, space-padded; "NO NAME" when empty. */
function fatLabel(label: string): string {
  const clean = label.toUpperCase().replace(/[^A-Z0-9 _~!#$%&'()@^{}-]/g, '_').slice(0, 11).trimEnd();
  return (clean || 'NO NAME').padEnd(11, ' ');
}

/** The boot sector (with boot code that says the partition is not bootable) and the FSInfo sector. */
function bootSectors(g: Geometry, o: FatOptions, rootCluster: number, nextFree: number): { bs: Buffer; info: Buffer } {
  const bs = Buffer.alloc(SECTOR);
  bs.set([0xeb, 0x58, 0x90], 0);
  bs.write('LIFEBOAT', 3, 'latin1');
  bs.writeUInt16LE(SECTOR, 11);
  bs[13] = g.sectorsPerCluster;
  bs.writeUInt16LE(RESERVED, 14);
  bs[16] = FATS;
  bs[21] = 0xf8;
  bs.writeUInt16LE(63, 24);
  bs.writeUInt16LE(255, 26);
  bs.writeUInt32LE(o.hiddenSectors >>> 0, 28);
  bs.writeUInt32LE(g.total, 32);
  bs.writeUInt32LE(g.fatSectors, 36);
  bs.writeUInt32LE(rootCluster, 44);
  bs.writeUInt16LE(1, 48); // FSInfo sector
  bs.writeUInt16LE(6, 50); // backup boot sector
  bs[64] = 0x80;
  bs[66] = 0x29;
  bs.writeUInt32LE(o.volumeId >>> 0, 67);
  bs.write(fatLabel(o.label), 71, 'latin1');
  bs.write('FAT32   ', 82, 'latin1');
  // Boot code for a BIOS that starts this partition: say so and stop.
  const msg = Buffer.from('This partition is not bootable by itself.\r\n\0', 'latin1');
  // mov si, msg; lodsb; test al,al; jz halt; mov ah,0x0e; int 0x10; jmp loop; halt: hlt; jmp halt
  const code = Buffer.from([0xbe, 0, 0, 0xac, 0x84, 0xc0, 0x74, 0x06, 0xb4, 0x0e, 0xcd, 0x10, 0xeb, 0xf5, 0xf4, 0xeb, 0xfd]);
  code.writeUInt16LE(0x7c00 + 90 + code.length, 1);
  code.copy(bs, 90);
  msg.copy(bs, 90 + code.length);
  bs[510] = 0x55;
  bs[511] = 0xaa;
  const info = Buffer.alloc(SECTOR);
  info.writeUInt32LE(0x41615252, 0);
  info.writeUInt32LE(0x61417272, 484);
  info.writeUInt32LE(g.clusters + 2 - nextFree, 488);
  info.writeUInt32LE(nextFree, 492);
  info.writeUInt32LE(0xaa550000, 508);
  return { bs, info };
}

/** The reserved sectors: boot sector and FSInfo, their backups at sectors 6 and 7, zeros between. */
function reservedArea(g: Geometry, o: FatOptions, rootCluster: number, nextFree: number): Buffer {
  const { bs, info } = bootSectors(g, o, rootCluster, nextFree);
  const area = Buffer.alloc(RESERVED * SECTOR);
  bs.copy(area, 0);
  info.copy(area, SECTOR);
  bs.copy(area, 6 * SECTOR);
  info.copy(area, 7 * SECTOR);
  return area;
}

/** The root folder's volume label entry. */
function labelEntry(label: string, date: number, time: number): Buffer {
  const e = Buffer.alloc(32);
  e.write(fatLabel(label), 0, 'latin1');
  e[11] = 0x08;
  e.writeUInt16LE(time, 14);
  e.writeUInt16LE(date, 16);
  e.writeUInt16LE(date, 18);
  e.writeUInt16LE(time, 22);
  e.writeUInt16LE(date, 24);
  return e;
}

function fatDateTime(t: Date): { date: number; time: number } {
  return {
    date: ((t.getUTCFullYear() - 1980) << 9) | ((t.getUTCMonth() + 1) << 5) | t.getUTCDate(),
    time: (t.getUTCHours() << 11) | (t.getUTCMinutes() << 5) | Math.floor(t.getUTCSeconds() / 2),
  };
}

/** Microsoft's default cluster size for a FAT32 volume of `size` bytes, in sectors. */
function defaultSectorsPerCluster(size: number): number {
  const MiB = 1024 * 1024;
  return size <= 260 * MiB ? 1 : size <= 8192 * MiB ? 8 : size <= 16384 * MiB ? 16 : size <= 32768 * MiB ? 32 : 64;
}

/**
 * Writes an empty FAT32 filesystem of `o.size` bytes through `write` (offsets relative to its
 * start): the reserved sectors, both FATs (all zeros but the first three entries) and the root
 * folder, which holds only the label. Nothing else of the area is written: an empty filesystem
 * never reads it. Returns false, writing nothing, when FAT32 cannot span that size (below about
 * 33 MB, above 2 TB). Memory stays below 1 MiB whatever the size.
 */
export async function writeEmptyFat32(o: FatOptions, write: (offset: number, data: Uint8Array) => Promise<void>): Promise<boolean> {
  let g: Geometry | undefined;
  for (let spc = defaultSectorsPerCluster(o.size); spc <= 128 && !g; spc *= 2) g = geometry(o.size, spc);
  for (let spc = defaultSectorsPerCluster(o.size) / 2; spc >= 1 && !g; spc /= 2) g = geometry(o.size, spc);
  if (!g) return false;
  await write(0, reservedArea(g, o, 2, 3));
  const PIECE = 1024 * 1024;
  const fatBytes = g.fatSectors * SECTOR;
  for (let i = 0; i < FATS; i++) {
    const at = (RESERVED + i * g.fatSectors) * SECTOR;
    for (let off = 0; off < fatBytes; off += PIECE) {
      const piece = Buffer.alloc(Math.min(PIECE, fatBytes - off));
      if (off === 0) {
        piece.writeUInt32LE(0x0ffffff8, 0);
        piece.writeUInt32LE(EOC, 4);
        piece.writeUInt32LE(EOC, 8); // the root folder: one cluster
      }
      await write(at + off, piece);
    }
  }
  const root = Buffer.alloc(g.sectorsPerCluster * SECTOR);
  const { date, time } = fatDateTime(o.time ?? new Date(Date.UTC(2026, 0, 1)));
  if (o.label.trim()) labelEntry(o.label, date, time).copy(root, 0);
  await write(g.firstData * SECTOR, root);
  return true;
}

export function buildFat32(files: readonly FatFile[], o: FatOptions): Buffer {
  const g = geometry(o.size, 1);
  if (!g) throw new LifeboatError('invalid-argument', `A FAT32 filesystem needs more room than ${o.size} bytes.`);
  const { total, fatSectors, firstData, clusters } = g;
  const img = Buffer.alloc(total * SECTOR);
  const fat = new Uint32Array(clusters + 2);
  fat[0] = 0x0ffffff8;
  fat[1] = EOC;
  let next = 2;
  const allocate = (bytes: number): number => {
    const n = Math.max(1, Math.ceil(bytes / SECTOR));
    if (next + n > clusters + 2) throw new LifeboatError('no-space', `The files do not fit in ${o.size} bytes of FAT32.`);
    const first = next;
    for (let i = 0; i < n; i++) fat[first + i] = i === n - 1 ? EOC : first + i + 1;
    next += n;
    return first;
  };
  const at = (cluster: number) => (firstData + cluster - 2) * SECTOR;

  const root: Dir = { files: new Map(), dirs: new Map(), cluster: 0 };
  for (const f of files) {
    const parts = f.path.split('/');
    let d = root;
    for (const p of parts.slice(0, -1)) {
      shortName(p);
      let sub = d.dirs.get(p);
      if (!sub) d.dirs.set(p, (sub = { files: new Map(), dirs: new Map(), cluster: 0 }));
      d = sub;
    }
    const name = parts[parts.length - 1]!;
    shortName(name);
    if (d.files.has(name) || d.dirs.has(name)) throw new LifeboatError('invalid-argument', `${f.path} is given twice.`);
    d.files.set(name, f.data);
  }

  const { date, time } = fatDateTime(o.time ?? new Date(Date.UTC(2026, 0, 1)));
  const entry = (name: Buffer, attr: number, cluster: number, size: number): Buffer => {
    const e = Buffer.alloc(32);
    name.copy(e, 0);
    e[11] = attr;
    e.writeUInt16LE(time, 14);
    e.writeUInt16LE(date, 16);
    e.writeUInt16LE(date, 18);
    e.writeUInt16LE(cluster >>> 16, 20);
    e.writeUInt16LE(time, 22);
    e.writeUInt16LE(date, 24);
    e.writeUInt16LE(cluster & 0xffff, 26);
    e.writeUInt32LE(size, 28);
    return e;
  };
  // Folders first (each needs its cluster before its parent's entries are written), then the files.
  const writeDir = (d: Dir, parent: number, isRoot: boolean): void => {
    const count = (isRoot ? 1 : 2) + d.files.size + d.dirs.size + 1;
    d.cluster = allocate(count * 32);
    for (const sub of d.dirs.values()) writeDir(sub, isRoot ? 0 : d.cluster, false);
    const entries: Buffer[] = [];
    if (isRoot) entries.push(labelEntry(o.label, date, time));
    else entries.push(entry(Buffer.from('.          ', 'latin1'), 0x10, d.cluster, 0), entry(Buffer.from('..         ', 'latin1'), 0x10, parent, 0));
    for (const [name, sub] of [...d.dirs].sort(([a], [b]) => (a < b ? -1 : 1))) entries.push(entry(shortName(name), 0x10, sub.cluster, 0));
    for (const [name, data] of [...d.files].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const c = data.length > 0 ? allocate(data.length) : 0;
      if (c) img.set(data, at(c));
      entries.push(entry(shortName(name), 0x20, c, data.length));
    }
    Buffer.concat(entries).copy(img, at(d.cluster));
  };
  writeDir(root, 0, true);

  reservedArea(g, o, root.cluster, next).copy(img, 0);
  const fatBytes = Buffer.from(fat.buffer, fat.byteOffset, fat.byteLength);
  for (let i = 0; i < FATS; i++) fatBytes.copy(img, (RESERVED + i * fatSectors) * SECTOR);
  return img;
}
