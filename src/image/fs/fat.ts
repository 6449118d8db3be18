/**
 * FAT12/16/32 allocation: everything before the data area (boot sector, reserved sectors, every
 * FAT copy, the FAT12/16 root directory) is used; a cluster is used when any FAT copy has a
 * non-zero entry for it (copies that disagree never make a cluster free).
 */
import { mergeRanges, type ByteRange } from '../ranges.js';
import type { BlockSource } from '../source.js';
import {
  FilesystemError, LIMITS, ascii, extentFile, le, partitionReader, pushExtent,
  type Extent, type FilesystemAnalysis, type FilesystemReader, type FilesystemType, type FsEntry, type ReadableFilesystemModule,
} from './types.js';

interface Bpb {
  bytesPerSector: number; sectorsPerCluster: number; reserved: number; fats: number; rootEntries: number;
  totalSectors: number; fatSectors: number; rootDirSectors: number; dataStart: number; clusters: number;
  type: FilesystemType; label: string; serial: number; activeFat: number | undefined; rootCluster: number;
}

const pow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

function parseBpb(b: Uint8Array, partitionSize: number, reading = false): Bpb {
  const v = le(b);
  const bad = (why: string) => new FilesystemError('FAT', why, { reading });
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
    rootCluster: type === 'fat32' ? v.getUint32(44, true) : 0,
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

// ------------------------------------------------------------------ read-only browsing

/** FAT pages kept in memory while following chains. */
const FAT_PAGE = 64 * 1024;
const FAT_PAGES_CACHED = 64;
/** A FAT folder holds at most 65536 entries of 32 bytes. */
const MAX_DIR_BYTES = 65536 * 32;
const ATTR_RO = 0x01;
const ATTR_VOLUME = 0x08;
const ATTR_DIR = 0x10;
const ATTR_LFN = 0x0f;
/** Reference of the FAT12/16 root folder, which lives in a fixed region rather than in clusters. */
const FIXED_ROOT = -1;

/** FAT date and time (local time, read as UTC as Linux does with no tz option) to ms since 1970. */
function fatTime(date: number, time: number, tenths = 0): number | undefined {
  if (date === 0) return undefined;
  const day = date & 31;
  const month = (date >> 5) & 15;
  const year = 1980 + (date >> 9);
  return Date.UTC(year, month - 1, day, time >> 11, (time >> 5) & 63, (time & 31) * 2) + tenths * 10;
}

function lfnChecksum(short: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < 11; i++) sum = ((((sum & 1) << 7) | (sum >> 1)) + short[i]!) & 0xff;
  return sum;
}

async function open(source: BlockSource, offset: number, size: number): Promise<FilesystemReader> {
  const read = partitionReader(source, 'FAT', offset, size, true);
  if (size < 512) throw new FilesystemError('FAT', 'partition too small', { reading: true });
  const p = parseBpb(await read(0, 512), size, true);
  const fsName = p.type.toUpperCase();
  const dmg = (why: string) => new FilesystemError(fsName, why, { reading: true });
  const ss = p.bytesPerSector;
  const clusterBytes = p.sectorsPerCluster * ss;
  const dataStart = p.dataStart * ss;
  const fatBase = (p.reserved + (p.activeFat ?? 0) * p.fatSectors) * ss;
  const fatBytes = p.fatSectors * ss;
  const eoc = p.type === 'fat12' ? 0xff8 : p.type === 'fat16' ? 0xfff8 : 0x0ffffff8;
  const pages = new Map<number, Promise<Uint8Array>>();
  const fatPage = (n: number) => {
    let got = pages.get(n);
    if (!got) {
      // One extra byte so a 12-bit entry straddling two pages is read whole.
      got = read(fatBase + n * FAT_PAGE, Math.min(FAT_PAGE + 1, fatBytes - n * FAT_PAGE));
      got.catch(() => pages.delete(n));
      pages.set(n, got);
      if (pages.size > FAT_PAGES_CACHED) pages.delete(pages.keys().next().value!);
    }
    return got;
  };
  const next = async (c: number): Promise<number> => {
    const byte = p.type === 'fat12' ? c + (c >> 1) : p.type === 'fat16' ? c * 2 : c * 4;
    const page = await fatPage(Math.floor(byte / FAT_PAGE));
    const v = le(page);
    const o = byte % FAT_PAGE;
    if (p.type === 'fat12') return c & 1 ? v.getUint16(o, true) >> 4 : v.getUint16(o, true) & 0xfff;
    if (p.type === 'fat16') return v.getUint16(o, true);
    return v.getUint32(o, true) & 0x0fffffff;
  };
  /** The clusters of a chain as byte extents; at most `maxClusters` are followed (loops end there). */
  const chain = async (first: number, maxClusters: number, what: string): Promise<Extent[]> => {
    const out: Extent[] = [];
    let c = first;
    for (let k = 0; k < maxClusters; k++) {
      if (c < 2 || c >= p.clusters + 2) throw dmg(`${what}: its cluster chain points to cluster ${c}, which does not exist`);
      pushExtent(out, k * clusterBytes, clusterBytes, dataStart + (c - 2) * clusterBytes);
      const n = await next(c);
      if (n >= eoc) return out;
      if (n === 0 || n === eoc - 1) throw dmg(`${what}: its cluster chain runs into a ${n === 0 ? 'free' : 'bad'} cluster`);
      c = n;
    }
    return out;
  };

  const dirBytes = async (dir: FsEntry): Promise<Uint8Array> => {
    if (dir.ref === FIXED_ROOT) return read((p.reserved + p.fats * p.fatSectors) * ss, p.rootEntries * 32);
    if (dir.ref === 0) return new Uint8Array(0);
    const max = Math.min(p.clusters, Math.ceil(MAX_DIR_BYTES / clusterBytes));
    const ext = await chain(dir.ref, max, `folder ${dir.name}`);
    const total = ext.reduce((s, e) => s + e.length, 0);
    return extentFile(ext, total, read).read(0, total);
  };

  const root: FsEntry = { name: '/', nameBytes: Buffer.from('/'), ref: p.type === 'fat32' ? p.rootCluster : FIXED_ROOT, type: 'dir', size: 0, mode: 0o755 };
  return {
    type: p.type,
    ...(p.label ? { label: p.label } : {}),
    root: async () => root,
    async list(dir) {
      if (dir.type !== 'dir') throw dmg(`${dir.name} is not a folder`);
      const b = await dirBytes(dir);
      const v = le(b);
      const out: FsEntry[] = [];
      let lfn: number[][] = [];
      let lfnSum = -1;
      let lfnNext = 0;
      for (let o = 0; o + 32 <= b.length; o += 32) {
        const first = b[o]!;
        if (first === 0) break;
        const attr = b[o + 11]!;
        if (first === 0xe5) {
          lfn = [];
          continue;
        }
        if ((attr & 0x3f) === ATTR_LFN) {
          const seq = first & 0x1f;
          if (first & 0x40) {
            lfn = [];
            lfnSum = b[o + 13]!;
            lfnNext = seq;
          }
          if (seq !== lfnNext || seq === 0 || b[o + 13] !== lfnSum) {
            lfn = [];
            lfnNext = -1;
            continue;
          }
          const units: number[] = [];
          for (const [at, n] of [[1, 5], [14, 6], [28, 2]] as const) for (let k = 0; k < n; k++) units.push(v.getUint16(o + at + k * 2, true));
          lfn[seq - 1] = units;
          lfnNext = seq - 1;
          continue;
        }
        const short = b.subarray(o, o + 11);
        let name: string | undefined;
        if (lfn.length > 0 && lfnNext === 0 && lfnChecksum(short) === lfnSum) {
          const units = lfn.flat();
          const end = units.indexOf(0);
          name = String.fromCharCode(...(end >= 0 ? units.slice(0, end) : units.filter((u) => u !== 0xffff)));
        }
        lfn = [];
        lfnNext = -1;
        if (attr & ATTR_VOLUME) continue;
        if (name === undefined) {
          const nt = b[o + 12]!;
          const raw = Buffer.from(short);
          if (raw[0] === 0x05) raw[0] = 0xe5;
          let base = raw.subarray(0, 8).toString('latin1').replace(/ +$/, '');
          let extn = raw.subarray(8, 11).toString('latin1').replace(/ +$/, '');
          if (nt & 0x08) base = base.toLowerCase();
          if (nt & 0x10) extn = extn.toLowerCase();
          name = extn ? `${base}.${extn}` : base;
        }
        if (name === '.' || name === '..') continue;
        if (out.length >= LIMITS.dirEntries) throw dmg(`folder ${dir.name} has too many entries`);
        const cluster = (p.type === 'fat32' ? v.getUint16(o + 20, true) * 0x10000 : 0) + v.getUint16(o + 26, true);
        const isDir = (attr & ATTR_DIR) !== 0;
        const mtime = fatTime(v.getUint16(o + 24, true), v.getUint16(o + 22, true));
        const atime = fatTime(v.getUint16(o + 18, true), 0);
        const ctime = fatTime(v.getUint16(o + 16, true), v.getUint16(o + 14, true), b[o + 13]);
        out.push({
          name,
          nameBytes: Buffer.from(name, 'utf8'),
          ref: cluster,
          type: isDir ? 'dir' : 'file',
          size: isDir ? 0 : v.getUint32(o + 28, true),
          mode: isDir ? 0o755 : attr & ATTR_RO ? 0o444 : 0o644,
          ...(mtime !== undefined ? { mtime } : {}),
          ...(atime !== undefined ? { atime } : {}),
          ...(ctime !== undefined ? { ctime } : {}),
        });
      }
      return out;
    },
    async open(file, stream) {
      if (stream !== undefined) throw dmg('FAT files have no named streams');
      if (file.type !== 'file') throw dmg(`${file.name} is not a file`);
      if (file.size === 0) return extentFile([], 0, read);
      const need = Math.ceil(file.size / clusterBytes);
      if (need > p.clusters) throw dmg(`${file.name} is larger than the volume`);
      const ext = await chain(file.ref, need, file.name);
      if (ext.reduce((s, e) => s + e.length, 0) < file.size) throw dmg(`${file.name}: its cluster chain is shorter than the file`);
      return extentFile(ext, file.size, read);
    },
    readlink: async () => {
      throw dmg('FAT has no symbolic links');
    },
  };
}

export const fat: ReadableFilesystemModule = {
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
  open,
};

