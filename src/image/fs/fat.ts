/**
 * FAT12/16/32 allocation: everything before the data area (boot sector, reserved sectors, every
 * FAT copy, the FAT12/16 root directory) is used; a cluster is used when any FAT copy has a
 * non-zero entry for it (copies that disagree never make a cluster free).
 */
import { mergeRanges, type ByteRange } from '../ranges.js';
import type { BlockSource } from '../source.js';
import { FilesystemError, ascii, le, partitionReader, type FilesystemAnalysis, type FilesystemModule, type FilesystemType } from './types.js';

interface Bpb {
  bytesPerSector: number; sectorsPerCluster: number; reserved: number; fats: number; rootEntries: number;
  totalSectors: number; fatSectors: number; rootDirSectors: number; dataStart: number; clusters: number;
  type: FilesystemType; label: string; serial: number; activeFat: number | undefined;
}

const pow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

function parseBpb(b: Uint8Array, partitionSize: number): Bpb {
  const v = le(b);
  const bad = (why: string) => new FilesystemError('FAT', why);
  if (b[510] !== 0x55 || b[511] !== 0xaa) throw bad('no boot sector signature');
  if (b[0] !== 0xeb && b[0] !== 0xe9) throw bad('no jump instruction in the boot sector');
  const bytesPerSector = v.getUint16(11, true);
  const sectorsPerCluster = b[13]!;
  const reserved = v.getUint16(14, true);
  const fats = b[16]!;
  const rootEntries = v.getUint16(17, true);
  const totalSectors = v.getUint16(19, true) || v.getUint32(32, true);
  const fatSectors = v.getUint16(22, true) || v.getUint32(36, true);
  if (!pow2(bytesPerSector) || bytesPerSector < 512 || bytesPerSector > 4096) throw bad(`${bytesPerSector} bytes per sector`);
  if (!pow2(sectorsPerCluster) || sectorsPerCluster * bytesPerSector > 256 * 1024) throw bad(`${sectorsPerCluster} sectors per cluster`);
  if (reserved < 1 || fats < 1 || fats > 4 || fatSectors < 1) throw bad('reserved sectors, FAT count or FAT size is zero or implausible');
  if (totalSectors * bytesPerSector > partitionSize) throw bad(`${totalSectors} sectors do not fit the partition of ${partitionSize} bytes`);
  const rootDirSectors = Math.ceil((rootEntries * 32) / bytesPerSector);
  const dataStart = reserved + fats * fatSectors + rootDirSectors;
  if (dataStart >= totalSectors) throw bad('the FATs and root directory fill the whole volume');
  const clusters = Math.floor((totalSectors - dataStart) / sectorsPerCluster);
  // The count of clusters alone decides the FAT type (Microsoft's FAT specification).
  const type: FilesystemType = clusters < 4085 ? 'fat12' : clusters < 65525 ? 'fat16' : 'fat32';
  if (clusters > 0x0ffffff5) throw bad(`${clusters} clusters is more than FAT32 can address`);
  const entryBits = type === 'fat12' ? 12 : type === 'fat16' ? 16 : 32;
  if (Math.ceil(((clusters + 2) * entryBits) / 8) > fatSectors * bytesPerSector) throw bad(`a FAT of ${fatSectors} sectors cannot hold ${clusters} clusters`);
  const ext = type === 'fat32' ? 64 : 36; // offset of the extended BPB
  let activeFat: number | undefined;
  if (type === 'fat32') {
    if (rootEntries !== 0 || v.getUint16(19, true) !== 0) throw bad('a FAT32 boot sector with FAT12/16 fields set');
    const flags = v.getUint16(40, true);
    if (flags & 0x80) activeFat = flags & 0x0f; // mirroring off: one FAT is the live one
    if (activeFat !== undefined && activeFat >= fats) throw bad(`active FAT ${activeFat} of ${fats}`);
  }
  const hasExt = b[ext + 2] === 0x29;
  const label = hasExt ? ascii(b, ext + 7, 11).replace(/ +$/, '') : '';
  return {
    bytesPerSector, sectorsPerCluster, reserved, fats, rootEntries, totalSectors, fatSectors, rootDirSectors, dataStart, clusters, type,
    label: label === 'NO NAME' ? '' : label, serial: hasExt ? v.getUint32(ext + 3, true) : 0, activeFat,
  };
}

async function analyze(source: BlockSource, offset: number, size: number): Promise<FilesystemAnalysis> {
  const read = partitionReader(source, 'FAT', offset, size);
  if (size < 512) throw new FilesystemError('FAT', 'partition too small');
  const p = parseBpb(await read(0, 512), size);
  const ss = p.bytesPerSector;
  const clusterBytes = p.sectorsPerCluster * ss;
  const n = p.clusters + 2;
  // Union of all FAT copies (or only the active one when mirroring is off, as the spec says the others are stale).
  // A bitset keeps memory at clusters/8 bytes; the FAT is read in pieces.
  const inUse = new Uint8Array((n >> 3) + 1);
  const entryBits = p.type === 'fat12' ? 12 : p.type === 'fat16' ? 16 : 32;
  const fatBytes = Math.ceil((n * entryBits) / 8);
  const PIECE = 4 * 1024 * 1024; // a multiple of 4, so FAT16/32 entries never straddle pieces
  for (let f = 0; f < p.fats; f++) {
    if (p.activeFat !== undefined && f !== p.activeFat) continue;
    const base = (p.reserved + f * p.fatSectors) * ss;
    for (let pos = 0; pos < fatBytes; pos += PIECE) {
      // FAT12 (at most 6 KiB) is read whole, with one spare byte for the last 12-bit entry when there is one.
      const len = p.type === 'fat12' ? Math.min(fatBytes + 1, p.fatSectors * ss) : Math.min(PIECE, fatBytes - pos);
      const fat = await read(base + pos, len);
      const v = le(fat);
      if (p.type === 'fat12') {
        for (let c = 2; c < n; c++) {
          const o = c + (c >> 1);
          const e = o + 1 < fat.length ? (c & 1 ? v.getUint16(o, true) >> 4 : v.getUint16(o, true) & 0xfff) : c & 1 ? fat[o]! >> 4 : fat[o]!;
          if (e !== 0) inUse[c >> 3]! |= 1 << (c & 7);
        }
      } else if (p.type === 'fat16') {
        const first = Math.max(2, pos / 2);
        const last = Math.min(n, (pos + fat.length) / 2);
        for (let c = first; c < last; c++) if (v.getUint16(c * 2 - pos, true) !== 0) inUse[c >> 3]! |= 1 << (c & 7);
      } else {
        const first = Math.max(2, pos / 4);
        const last = Math.min(n, (pos + fat.length) / 4);
        for (let c = first; c < last; c++) if ((v.getUint32(c * 4 - pos, true) & 0x0fffffff) !== 0) inUse[c >> 3]! |= 1 << (c & 7);
      }
    }
  }
  const dataStart = p.dataStart * ss;
  const used: ByteRange[] = [{ start: 0, end: dataStart }];
  let usedClusters = 0;
  let run = -1;
  for (let c = 2; c <= n; c++) {
    const on = c < n && ((inUse[c >> 3]! >> (c & 7)) & 1) === 1;
    if (on) usedClusters++;
    if (on && run < 0) run = c;
    else if (!on && run >= 0) {
      used.push({ start: dataStart + (run - 2) * clusterBytes, end: dataStart + (c - 2) * clusterBytes });
      run = -1;
    }
  }
  const warnings: string[] = [];
  if (p.type === 'fat32') {
    // FSInfo's free count is only a hint; a large disagreement means the FAT or the hint is damaged.
    const fsinfoSector = le(await read(0, 512)).getUint16(48, true);
    if (fsinfoSector > 0 && fsinfoSector < p.reserved) {
      const fi = await read(fsinfoSector * ss, 512);
      const fv = le(fi);
      if (fv.getUint32(0, true) === 0x41615252 && fv.getUint32(484, true) === 0x61417272) {
        const free = fv.getUint32(488, true);
        if (free !== 0xffffffff) {
          const mine = p.clusters - usedClusters;
          if (Math.abs(free - mine) > Math.max(64, p.clusters / 50)) throw new FilesystemError('FAT32', `the FAT marks ${mine} clusters free but FSInfo says ${free}`);
          if (free !== mine) warnings.push(`the FAT marks ${mine} clusters free, FSInfo says ${free}`);
        }
      }
    }
  }
  const dataEnd = dataStart + p.clusters * clusterBytes;
  // Sectors after the last whole cluster and anything of the partition beyond the volume are not the filesystem's to call free.
  used.push({ start: dataEnd, end: size });
  const merged = mergeRanges(used, size);
  return {
    info: {
      type: p.type,
      ...(p.label ? { label: p.label } : {}),
      uuid: `${(p.serial >>> 16).toString(16).toUpperCase().padStart(4, '0')}-${(p.serial & 0xffff).toString(16).toUpperCase().padStart(4, '0')}`,
      blockSize: clusterBytes,
      totalBytes: p.totalSectors * ss,
      usedBytes: usedClusters * clusterBytes,
      warnings,
    },
    used: merged,
  };
}

export const fat: FilesystemModule = {
  name: 'FAT',
  async detect(source, offset, size) {
    if (size < 512) return false;
    const b = await source.read(offset, 512);
    if (b[510] !== 0x55 || b[511] !== 0xaa || (b[0] !== 0xeb && b[0] !== 0xe9)) return false;
    if (ascii(b, 3, 8) === 'NTFS    ' || ascii(b, 3, 8) === 'EXFAT   ') return false;
    try {
      parseBpb(b, size);
      return true;
    } catch {
      // A FAT label in the boot sector with a damaged BPB is still FAT (so the caller warns and reads everything).
      return ascii(b, 54, 3) === 'FAT' || ascii(b, 82, 5) === 'FAT32';
    }
  },
  analyze,
};

