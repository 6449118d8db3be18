/**
 * NTFS allocation: the boot sector locates the MFT; record 0 ($MFT) maps the MFT itself; record 6
 * ($Bitmap) holds the cluster bitmap as a non-resident $DATA attribute. Records are checked with
 * their update sequence (fixups) before any field is used; runlists are bounded and must stay
 * inside the volume. The backup boot sector after the last cluster is always kept.
 */
import { bitmapRuns, mergeRanges, type ByteRange } from '../ranges.js';
import type { BlockSource } from '../source.js';
import {
  FilesystemError, LIMITS, ascii, bufferFile, extentFile, le, partitionReader, pushExtent, u64le,
  type Extent, type FilesystemAnalysis, type FilesystemReader, type FsEntry, type FsFile, type ReadableFilesystemModule,
} from './types.js';

const MAX_RUNS = 65536;
const BITMAP_PIECE = 4 * 1024 * 1024;

interface Boot {
  bytesPerSector: number; clusterSize: number; totalSectors: number; clusters: number; mftLcn: number; recordSize: number; serial: string;
}

const bad = (why: string) => new FilesystemError('NTFS', why);

function parseBoot(b: Uint8Array, partitionSize: number): Boot {
  const v = le(b);
  if (ascii(b, 3, 8) !== 'NTFS    ') throw bad('no NTFS signature in the boot sector');
  if (b[510] !== 0x55 || b[511] !== 0xaa) throw bad('no boot sector signature');
  const bytesPerSector = v.getUint16(11, true);
  if (bytesPerSector < 256 || bytesPerSector > 4096 || (bytesPerSector & (bytesPerSector - 1)) !== 0) throw bad(`${bytesPerSector} bytes per sector`);
  const spc = b[13]!;
  const sectorsPerCluster = spc <= 0x80 ? spc : 2 ** (256 - spc);
  if (sectorsPerCluster < 1 || (sectorsPerCluster & (sectorsPerCluster - 1)) !== 0 || sectorsPerCluster * bytesPerSector > 2 * 1024 * 1024) throw bad(`${spc} as sectors per cluster`);
  const clusterSize = sectorsPerCluster * bytesPerSector;
  const totalSectors = u64le(v, 40);
  if (totalSectors < 16 || totalSectors * bytesPerSector > partitionSize) throw bad(`${totalSectors} sectors do not fit the partition of ${partitionSize} bytes`);
  const clusters = Math.floor(totalSectors / sectorsPerCluster);
  const mftLcn = u64le(v, 48);
  if (mftLcn < 1 || mftLcn >= clusters) throw bad(`the MFT is said to start at cluster ${mftLcn} of ${clusters}`);
  const cpr = v.getInt8(64);
  const recordSize = cpr > 0 ? cpr * clusterSize : cpr < 0 && cpr >= -31 ? 2 ** -cpr : 0;
  if (recordSize < 256 || recordSize > 65536 || (recordSize & (recordSize - 1)) !== 0) throw bad(`MFT record size ${recordSize}`);
  return { bytesPerSector, clusterSize, totalSectors, clusters, mftLcn, recordSize, serial: u64le(v, 72).toString(16).toUpperCase() };
}

/** Checks the "FILE" (or "INDX") magic and applies the update sequence array in place. */
function fixup(rec: Uint8Array, what: string, magic = 'FILE'): void {
  const v = le(rec);
  if (ascii(rec, 0, 4) !== magic) throw bad(`${what} has no ${magic} signature`);
  const usaOffset = v.getUint16(4, true);
  const usaCount = v.getUint16(6, true);
  if (usaCount !== rec.length / 512 + 1 || usaOffset < 0x28 || usaOffset % 2 !== 0 || usaOffset + usaCount * 2 > rec.length) throw bad(`${what} has an invalid update sequence`);
  const usn = v.getUint16(usaOffset, true);
  for (let i = 1; i < usaCount; i++) {
    const end = i * 512 - 2;
    if (v.getUint16(end, true) !== usn) throw bad(`${what} failed its update sequence check (torn write or damage)`);
    v.setUint16(end, v.getUint16(usaOffset + i * 2, true), true);
  }
}

interface Attribute { type: number; nonResident: boolean; name: string; body: Uint8Array; flags: number }

function attributes(rec: Uint8Array, what: string): Attribute[] {
  const v = le(rec);
  let o = v.getUint16(20, true);
  const inUse = Math.min(v.getUint32(24, true), rec.length);
  const out: Attribute[] = [];
  for (let n = 0; n < 256; n++) {
    if (o + 8 > inUse) throw bad(`${what}: attribute list runs past the record`);
    const type = v.getUint32(o, true);
    if (type === 0xffffffff) return out;
    const len = v.getUint32(o + 4, true);
    if (len < 16 || len % 8 !== 0 || o + len > inUse) throw bad(`${what}: attribute of length ${len} at ${o} is invalid`);
    const body = rec.subarray(o, o + len);
    const nameLen = body[9]!;
    const nameOff = le(body).getUint16(10, true);
    if (nameLen && nameOff + nameLen * 2 > len) throw bad(`${what}: attribute name outside the attribute`);
    let name = '';
    for (let k = 0; k < nameLen; k++) name += String.fromCharCode(le(body).getUint16(nameOff + k * 2, true));
    out.push({ type, nonResident: body[8] === 1, name, body, flags: le(body).getUint16(12, true) });
    o += len;
  }
  throw bad(`${what}: too many attributes`);
}

interface Run { vcn: number; lcn: number | undefined; length: number }

/** Decodes a non-resident attribute's runlist; every run must lie within the volume's clusters. */
function runlist(attr: Attribute, clusters: number, what: string): { runs: Run[]; realSize: number; startVcn: number } {
  const b = attr.body;
  const v = le(b);
  if (b.length < 64) throw bad(`${what}: non-resident attribute too short`);
  const startVcn = u64le(v, 16);
  const lastVcn = u64le(v, 24);
  const realSize = u64le(v, 48);
  let o = v.getUint16(32, true);
  const runs: Run[] = [];
  let vcn = startVcn;
  let lcn = 0;
  while (o < b.length && b[o] !== 0) {
    if (runs.length >= MAX_RUNS) throw bad(`${what}: more than ${MAX_RUNS} runs`);
    const h = b[o]!;
    const lenBytes = h & 0xf;
    const offBytes = h >> 4;
    if (lenBytes < 1 || lenBytes > 8 || offBytes > 8 || o + 1 + lenBytes + offBytes > b.length) throw bad(`${what}: runlist entry at ${o} is invalid`);
    let length = 0;
    for (let k = lenBytes - 1; k >= 0; k--) length = length * 256 + b[o + 1 + k]!;
    let delta = 0;
    if (offBytes > 0) {
      for (let k = offBytes - 1; k >= 0; k--) delta = delta * 256 + b[o + 1 + lenBytes + k]!;
      if (b[o + lenBytes + offBytes]! & 0x80) delta -= 2 ** (8 * offBytes);
    }
    if (length < 1 || length > clusters) throw bad(`${what}: run of ${length} clusters`);
    let runLcn: number | undefined;
    if (offBytes > 0) {
      lcn += delta;
      if (lcn < 0 || lcn + length > clusters) throw bad(`${what}: run at cluster ${lcn} (${length} clusters) lies outside the volume of ${clusters} clusters`);
      runLcn = lcn;
    }
    runs.push({ vcn, lcn: runLcn, length });
    vcn += length;
    o += 1 + lenBytes + offBytes;
  }
  if (runs.length > 0 && vcn !== lastVcn + 1) throw bad(`${what}: runlist covers clusters up to ${vcn - 1}, the attribute says ${lastVcn}`);
  return { runs, realSize, startVcn };
}

/** The unnamed $DATA runs of a record (several extents in one record are joined). */
function dataRuns(rec: Uint8Array, clusters: number, what: string): { runs: Run[]; realSize: number } {
  const attrs = attributes(rec, what);
  const data = attrs.filter((a) => a.type === 0x80 && a.name === '');
  if (data.length === 0) {
    if (attrs.some((a) => a.type === 0x20)) throw new FilesystemError('NTFS', `${what} keeps its data in other MFT records (attribute list)`, { unsupported: true });
    throw bad(`${what} has no data attribute`);
  }
  const parts = data.map((a) => {
    if (!a.nonResident) throw bad(`${what} has resident data`);
    if (a.flags & 0x8001) throw bad(`${what} is compressed or sparse`);
    return runlist(a, clusters, what);
  }).sort((x, y) => x.startVcn - y.startVcn);
  const realSize = parts.find((p) => p.startVcn === 0)?.realSize;
  if (realSize === undefined) throw bad(`${what} has no first data extent`);
  const runs = parts.flatMap((p) => p.runs);
  for (let i = 1; i < runs.length; i++) if (runs[i]!.vcn !== runs[i - 1]!.vcn + runs[i - 1]!.length) throw bad(`${what}: data extents leave a gap`);
  return { runs, realSize };
}

async function analyze(source: BlockSource, offset: number, size: number): Promise<FilesystemAnalysis> {
  const read = partitionReader(source, 'NTFS', offset, size);
  if (size < 512) throw bad('partition too small');
  const boot = parseBoot(await read(0, 512), size);
  const cs = boot.clusterSize;
  const rs = boot.recordSize;

  // Record 0 ($MFT) maps the MFT, so later records are found even when the MFT is fragmented.
  const mft0 = await read(boot.mftLcn * cs, rs);
  fixup(mft0, 'MFT record 0 ($MFT)');
  const mft = dataRuns(mft0, boot.clusters, 'MFT record 0 ($MFT)');
  const readRecord = async (n: number, what: string): Promise<Uint8Array> => {
    const byte = n * rs;
    if (byte + rs > mft.realSize) throw bad(`${what} lies beyond the end of the MFT`);
    const vcn = Math.floor(byte / cs);
    const run = mft.runs.find((r) => vcn >= r.vcn && vcn < r.vcn + r.length);
    if (run?.lcn === undefined) throw bad(`${what} is not mapped by the MFT's runlist`);
    // A record may span clusters; with records ≤ cluster size and aligned it never crosses runs.
    if (rs > cs && Math.floor((byte + rs - 1) / cs) >= run.vcn + run.length) throw new FilesystemError('NTFS', `${what} spans MFT fragments`, { unsupported: true });
    const rec = await read((run.lcn + (vcn - run.vcn)) * cs + (byte % cs), rs);
    fixup(rec, what);
    return rec;
  };

  const bitmapRec = await readRecord(6, 'MFT record 6 ($Bitmap)');
  const bm = dataRuns(bitmapRec, boot.clusters, 'MFT record 6 ($Bitmap)');
  const needBytes = Math.ceil(boot.clusters / 8);
  if (bm.realSize < needBytes) throw bad(`$Bitmap holds ${bm.realSize} bytes; ${boot.clusters} clusters need ${needBytes}`);
  const allocated = bm.runs.reduce((s, r) => s + r.length, 0) * cs;
  if (allocated < needBytes) throw bad('$Bitmap runlist is shorter than the bitmap');

  const used: ByteRange[] = [];
  let usedClusters = 0;
  let bitBase = 0; // cluster number of the first bit of the current piece
  for (const r of bm.runs) {
    if (bitBase >= boot.clusters) break;
    if (r.lcn === undefined) throw bad('$Bitmap is sparse');
    for (let k = 0; k < r.length * cs && bitBase < boot.clusters; k += BITMAP_PIECE) {
      const n = Math.min(BITMAP_PIECE, r.length * cs - k, Math.ceil((boot.clusters - bitBase) / 8));
      const piece = await read(r.lcn * cs + k, n);
      // Bits beyond the cluster count are padding (set to 1 by Windows); ignore them.
      usedClusters += bitmapRuns(piece, Math.min(n * 8, boot.clusters - bitBase), bitBase, cs, 0, used);
      bitBase += n * 8;
    }
  }
  if (bitBase < boot.clusters) throw bad('$Bitmap ends before the last cluster');

  // Label: $Volume (record 3), resident $VOLUME_NAME (0x60).
  let label = '';
  const warnings: string[] = [];
  try {
    const vol = await readRecord(3, 'MFT record 3 ($Volume)');
    const name = attributes(vol, '$Volume').find((a) => a.type === 0x60 && !a.nonResident);
    if (name) {
      const nv = le(name.body);
      const len = nv.getUint32(16, true);
      const off = nv.getUint16(20, true);
      if (off + len <= name.body.length) label = Buffer.from(name.body.subarray(off, off + len)).toString('utf16le');
    }
  } catch (e) {
    if (!(e instanceof FilesystemError)) throw e;
    warnings.push(`volume label unreadable: ${e.reason}`);
  }

  // Boot sector, and everything after the last cluster: the backup boot sector lives at the last sector of the partition.
  used.push({ start: 0, end: Math.min(size, cs) });
  used.push({ start: boot.clusters * cs, end: size });
  const merged = mergeRanges(used, size);
  return {
    info: {
      type: 'ntfs',
      ...(label ? { label } : {}),
      uuid: boot.serial,
      blockSize: cs,
      totalBytes: boot.totalSectors * boot.bytesPerSector,
      usedBytes: usedClusters * cs,
      warnings,
    },
    used: merged,
  };
}

// ------------------------------------------------------------------ read-only browsing

const ATTR_LIST = 0x20;
const STANDARD_INFORMATION = 0x10;
const DATA = 0x80;
const INDEX_ROOT = 0x90;
const INDEX_ALLOCATION = 0xa0;
const REPARSE_POINT = 0xc0;
const TAG_SYMLINK = 0xa000000c;
const TAG_JUNCTION = 0xa0000003;
const FIRST_USER_RECORD = 16;
const ROOT_RECORD = 5;
const MAX_LIST_RECORDS = 512;
const MAX_ATTR_LIST = 256 * 1024;
const NTFS_EPOCH = 116444736000000000n;

function ntfsTime(v: DataView, o: number): number {
  return Number(v.getBigUint64(o, true) - NTFS_EPOCH) / 10000;
}

/** 48-bit MFT record number of a file reference. */
function refRecord(v: DataView, o: number): number {
  return v.getUint32(o, true) + (v.getUint16(o + 4, true) * 0x100000000);
}

/** LZNT1: decompresses one compression unit into `out` (whose length is the unit size); the rest stays zero. */
export function lznt1(src: Uint8Array, out: Uint8Array): void {
  const err = () => bad('a compressed block does not decompress');
  let s = 0;
  let d = 0;
  while (s + 2 <= src.length && d < out.length) {
    const h = src[s]! | (src[s + 1]! << 8);
    s += 2;
    if (h === 0) break;
    const len = (h & 0xfff) + 1;
    const end = s + len;
    if (end > src.length) throw err();
    const start = d;
    if ((h & 0x8000) === 0) {
      const n = Math.min(len, out.length - d);
      out.set(src.subarray(s, s + n), d);
    } else {
      while (s < end && d < out.length) {
        const flags = src[s++]!;
        for (let bit = 0; bit < 8 && s < end && d < out.length; bit++) {
          if (((flags >> bit) & 1) === 0) {
            out[d++] = src[s++]!;
            continue;
          }
          if (s + 2 > end) throw err();
          const t = src[s]! | (src[s + 1]! << 8);
          s += 2;
          const pos = d - start;
          let l = 12;
          for (let q = pos - 1; q >= 0x10; q >>= 1) l--;
          const back = (t >>> l) + 1;
          const n = (t & ((1 << l) - 1)) + 3;
          if (back > pos) throw err();
          for (let k = 0; k < n && d < out.length; k++, d++) out[d] = out[d - back]!;
        }
      }
    }
    s = end;
    d = start + 4096;
  }
}

interface Attr { type: number; nonResident: boolean; name: string; body: Uint8Array; flags: number }

async function open(source: BlockSource, offset: number, size: number): Promise<FilesystemReader> {
  const read = partitionReader(source, 'NTFS', offset, size, true);
  const reword = (e: unknown): unknown => (e instanceof FilesystemError && !/damaged here|cannot read yet/.test(e.message) ? new FilesystemError('NTFS', e.reason, { reading: true, unsupported: e.unsupported }) : e);
  const dmg = (why: string) => new FilesystemError('NTFS', why, { reading: true });
  let boot: Boot;
  try {
    if (size < 512) throw bad('partition too small');
    boot = parseBoot(await read(0, 512), size);
  } catch (e) {
    throw reword(e);
  }
  const cs = boot.clusterSize;
  const rs = boot.recordSize;

  const residentValue = (a: Attr): Uint8Array => {
    const v = le(a.body);
    const len = v.getUint32(16, true);
    const off = v.getUint16(20, true);
    if (off + len > a.body.length) throw dmg(`a resident ${a.name || 'unnamed'} attribute runs past its record`);
    return a.body.subarray(off, off + len);
  };

  /** A stream (a $DATA, $INDEX_ALLOCATION or list) from its attribute parts, which may lie in several records. */
  const stream = (parts: Attr[], what: string): FsFile => {
    if (parts.length === 0) throw dmg(`${what} is missing`);
    if (parts.length === 1 && !parts[0]!.nonResident) return bufferFile(residentValue(parts[0]!));
    if (parts.some((p) => !p.nonResident)) throw dmg(`${what} is both resident and not`);
    const decoded = parts.map((a) => ({ a, ...runlist(a, boot.clusters, what) })).sort((x, y) => x.startVcn - y.startVcn);
    const first = decoded[0]!;
    if (first.startVcn !== 0) throw dmg(`${what} has no first extent`);
    const fv = le(first.a.body);
    const realSize = first.realSize;
    const initSize = Math.min(realSize, u64le(fv, 56));
    const extents: Extent[] = [];
    let vcn = 0;
    for (const d of decoded) {
      if (d.startVcn !== vcn) throw dmg(`${what}: its extents leave a gap or overlap`);
      for (const r of d.runs) {
        pushExtent(extents, r.vcn * cs, r.length * cs, r.lcn === undefined ? undefined : r.lcn * cs);
        vcn = r.vcn + r.length;
      }
      if (d.runs.length === 0) vcn = Math.max(vcn, u64le(le(d.a.body), 24) + 1);
    }
    if (realSize > vcn * cs) throw dmg(`${what} is ${realSize} bytes but its runs hold ${vcn * cs}`);
    const unitLog = fv.getUint16(34, true);
    if (first.a.flags & 0x0001 && unitLog > 0) return compressedFile(extents, realSize, initSize, unitLog, what);
    return extentFile(extents, realSize, read, initSize);
  };

  /** A compressed stream: units of 2^unitLog clusters, stored raw (all allocated), as zeros (none) or LZNT1 (some). */
  const compressedFile = (extents: Extent[], realSize: number, initSize: number, unitLog: number, what: string): FsFile => {
    const unit = cs << unitLog;
    if (cs > 4096 || unitLog > 8) throw new FilesystemError('NTFS', `${what}: compression with clusters of ${cs} bytes`, { reading: true, unsupported: true });
    const raw = extentFile(extents, extents.reduce((s, e) => Math.max(s, e.logical + e.length), 0), read);
    let cached: { u: number; data: Uint8Array } | undefined;
    const unitData = async (u: number): Promise<Uint8Array> => {
      if (cached?.u === u) return cached.data;
      const start = u * unit;
      let allocated = 0;
      for (const e of extents) {
        const s = Math.max(start, e.logical);
        const t = Math.min(start + unit, e.logical + e.length);
        if (t > s && e.physical !== undefined) allocated += t - s;
      }
      let data: Uint8Array;
      if (allocated === unit) data = await raw.read(start, unit);
      else {
        data = new Uint8Array(unit);
        if (allocated > 0) lznt1(await raw.read(start, allocated), data);
      }
      cached = { u, data };
      return data;
    };
    return {
      size: realSize,
      async read(off, length) {
        const end = Math.min(realSize, off + Math.max(0, length));
        if (off >= end) return new Uint8Array(0);
        const out = new Uint8Array(end - off);
        for (let pos = off; pos < Math.min(end, initSize);) {
          const u = Math.floor(pos / unit);
          const n = Math.min(end, initSize, (u + 1) * unit) - pos;
          try {
            const d = await unitData(u);
            out.set(d.subarray(pos - u * unit, pos - u * unit + n), pos - off);
          } catch (e) {
            throw reword(e);
          }
          pos += n;
        }
        return out;
      },
    };
  };

  // The MFT itself: record 0's $DATA, completed through its attribute list when it has one.
  let mftFile: FsFile;
  const readRecord = async (n: number): Promise<Uint8Array> => {
    if (!Number.isSafeInteger(n) || n < 0 || (n + 1) * rs > mftFile.size) throw dmg(`MFT record ${n} does not exist`);
    const rec = await mftFile.read(n * rs, rs);
    fixup(rec, `MFT record ${n}`);
    if ((le(rec).getUint16(22, true) & 1) === 0) throw dmg(`MFT record ${n} is not in use`);
    return rec;
  };
  /** Every attribute of a file, following its attribute list into extension records. */
  const fileAttrs = async (n: number, rec?: Uint8Array): Promise<{ rec: Uint8Array; attrs: Attr[] }> => {
    const base = rec ?? (await readRecord(n));
    const own = attributes(base, `MFT record ${n}`);
    const listAttr = own.find((a) => a.type === ATTR_LIST);
    if (!listAttr) return { rec: base, attrs: own };
    const list = stream([listAttr], `the attribute list of record ${n}`);
    if (list.size > MAX_ATTR_LIST) throw dmg(`the attribute list of record ${n} is ${list.size} bytes`);
    const lb = await list.read(0, list.size);
    const lv = le(lb);
    const others = new Set<number>();
    for (let o = 0; o + 26 <= lb.length;) {
      const len = lv.getUint16(o + 4, true);
      if (len < 26 || o + len > lb.length) throw dmg(`the attribute list of record ${n} is damaged`);
      const r = refRecord(lv, o + 16);
      if (r !== n) others.add(r);
      if (others.size > MAX_LIST_RECORDS) throw dmg(`record ${n} spreads over too many records`);
      o += len;
    }
    const attrs = own.filter((a) => a.type !== ATTR_LIST);
    for (const r of others) {
      const ext = await readRecord(r);
      if (refRecord(le(ext), 0x20) !== n) throw dmg(`MFT record ${r} does not belong to record ${n}`);
      attrs.push(...attributes(ext, `MFT record ${r}`));
    }
    return { rec: base, attrs };
  };
  try {
    const mft0 = await read(boot.mftLcn * cs, rs);
    fixup(mft0, 'MFT record 0 ($MFT)');
    const own = attributes(mft0, 'MFT record 0 ($MFT)');
    mftFile = stream(own.filter((a) => a.type === DATA && a.name === ''), 'the $MFT data');
    if (own.some((a) => a.type === ATTR_LIST)) {
      const all = await fileAttrs(0, mft0);
      mftFile = stream(all.attrs.filter((a) => a.type === DATA && a.name === ''), 'the $MFT data');
    }
  } catch (e) {
    throw reword(e);
  }

  let label: string | undefined;
  try {
    const vol = (await fileAttrs(3)).attrs.find((a) => a.type === 0x60 && !a.nonResident);
    if (vol) label = Buffer.from(residentValue(vol)).toString('utf16le') || undefined;
  } catch {
    /* no label */
  }

  /** Symlink target: an Interix link (what ntfs-3g makes: SYSTEM attribute, $DATA "IntxLNK\1" + UTF-16) or a Windows symlink/junction reparse point. */
  const linkTarget = async (n: number, attrs: Attr[]): Promise<Buffer | undefined> => {
    const rp = attrs.find((a) => a.type === REPARSE_POINT && !a.nonResident);
    if (rp) {
      const b = residentValue(rp);
      const v = le(b);
      if (b.length < 16) return undefined;
      const tag = v.getUint32(0, true);
      const base = tag === TAG_SYMLINK ? 20 : tag === TAG_JUNCTION ? 16 : -1;
      if (base < 0) return undefined;
      const off = v.getUint16(12, true);
      const len = v.getUint16(14, true);
      if (base + off + len > b.length) throw dmg(`the reparse point of record ${n} is damaged`);
      const target = Buffer.from(b.subarray(base + off, base + off + len)).toString('utf16le').replace(/\\/g, '/');
      return Buffer.from(target, 'utf8');
    }
    const parts = attrs.filter((a) => a.type === DATA && a.name === '');
    if (parts.length !== 1 || parts[0]!.nonResident) return undefined;
    const data = residentValue(parts[0]!);
    if (data.length < 8 || data.length > 8 + 8192 || Buffer.from(data.subarray(0, 8)).toString('latin1') !== 'IntxLNK\u0001') return undefined;
    return Buffer.from(Buffer.from(data.subarray(8)).toString('utf16le'), 'utf8');
  };

  const entryOf = async (n: number, rec: Uint8Array, attrs: Attr[], name: string): Promise<FsEntry> => {
    const isDir = (le(rec).getUint16(22, true) & 2) !== 0;
    const si = attrs.find((a) => a.type === STANDARD_INFORMATION && !a.nonResident);
    const siv = si ? residentValue(si) : undefined;
    const times = siv && siv.length >= 48 ? (() => {
      const v = le(siv);
      return { ctime: ntfsTime(v, 16), mtime: ntfsTime(v, 8), atime: ntfsTime(v, 24) };
    })() : {};
    const fileAttrsBits = siv && siv.length >= 36 ? le(siv).getUint32(32, true) : 0;
    const sizeOf = (parts: Attr[]): number => {
      const first = parts.find((a) => !a.nonResident || u64le(le(a.body), 16) === 0);
      if (!first) return 0;
      return first.nonResident ? u64le(le(first.body), 48) : le(first.body).getUint32(16, true);
    };
    const datas = attrs.filter((a) => a.type === DATA);
    const names = [...new Set(datas.map((a) => a.name).filter((x) => x !== ''))];
    const streams = names.map((s) => ({ name: s, size: sizeOf(datas.filter((a) => a.name === s)) }));
    const reparse = (fileAttrsBits & 0x400) !== 0;
    const link = (reparse || (fileAttrsBits & 0x4) !== 0) && (await linkTarget(n, attrs)) !== undefined;
    return {
      name,
      nameBytes: Buffer.from(name, 'utf8'),
      ref: n,
      type: link ? 'symlink' : isDir ? 'dir' : reparse ? 'other' : 'file',
      size: isDir ? 0 : sizeOf(datas.filter((a) => a.name === '')),
      mode: isDir ? 0o755 : fileAttrsBits & 1 ? 0o444 : 0o644,
      ...times,
      nlink: attrs.filter((a) => a.type === 0x30 && !a.nonResident && residentValue(a)[65] !== 2).length,
      ...(streams.length ? { streams } : {}),
    };
  };

  const guard = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (e) {
      throw reword(e);
    }
  };

  return {
    type: 'ntfs',
    ...(label ? { label } : {}),
    root: () => guard(async () => {
      const { rec, attrs } = await fileAttrs(ROOT_RECORD);
      return await entryOf(ROOT_RECORD, rec, attrs, '/');
    }),
    list: (dir) => guard(async () => {
      const { attrs } = await fileAttrs(dir.ref);
      const root = attrs.find((a) => a.type === INDEX_ROOT && a.name === '$I30' && !a.nonResident);
      if (!root) throw dmg(`MFT record ${dir.ref} is not a folder`);
      const rv = residentValue(root);
      if (rv.length < 32) throw dmg(`the index of folder record ${dir.ref} is too short`);
      const blockSize = le(rv).getUint32(8, true);
      const found: { ref: number; name: string }[] = [];
      const vcns: number[] = [];
      const parseNode = (b: Uint8Array, header: number, what: string) => {
        const v = le(b);
        if (header + 16 > b.length) throw dmg(`${what} is too short`);
        let o = header + v.getUint32(header, true);
        const end = Math.min(b.length, header + v.getUint32(header + 4, true));
        for (let k = 0; o + 16 <= end; k++) {
          const len = v.getUint16(o + 8, true);
          const keyLen = v.getUint16(o + 10, true);
          const flags = v.getUint16(o + 12, true);
          if (len < 16 || o + len > end || 16 + keyLen > len) throw dmg(`${what}: an index entry is damaged`);
          if (flags & 1) {
            if (len < 24) throw dmg(`${what}: an index entry is damaged`);
            vcns.push(u64le(v, o + len - 8));
          }
          if (flags & 2) break;
          if (keyLen >= 66) {
            const nameLen = b[o + 16 + 64]!;
            const ns = b[o + 16 + 65]!;
            if (66 + nameLen * 2 > keyLen) throw dmg(`${what}: a file name runs past its entry`);
            if (ns !== 2) {
              const ref = refRecord(v, o);
              const name = Buffer.from(b.subarray(o + 16 + 66, o + 16 + 66 + nameLen * 2)).toString('utf16le');
              if (!(dir.ref === ROOT_RECORD && (ref < FIRST_USER_RECORD || name === '.'))) {
                if (found.length >= LIMITS.dirEntries) throw dmg(`folder record ${dir.ref} has too many entries`);
                found.push({ ref, name });
              }
            }
          }
          o += len;
        }
      };
      parseNode(rv, 16, `the index root of folder record ${dir.ref}`);
      if (vcns.length > 0) {
        const alloc = stream(attrs.filter((a) => a.type === INDEX_ALLOCATION && a.name === '$I30'), `the index of folder record ${dir.ref}`);
        if (blockSize < 512 || blockSize > 65536 || (blockSize & (blockSize - 1)) !== 0) throw dmg(`index blocks of ${blockSize} bytes`);
        const vcnSize = blockSize >= cs ? cs : 512;
        const seen = new Set<number>();
        const maxBlocks = Math.ceil(alloc.size / blockSize);
        while (vcns.length > 0) {
          const vcn = vcns.pop()!;
          if (seen.has(vcn)) continue;
          seen.add(vcn);
          if (seen.size > maxBlocks || (vcn * vcnSize) + blockSize > alloc.size) throw dmg(`the index of folder record ${dir.ref} points outside itself`);
          const blk = await alloc.read(vcn * vcnSize, blockSize);
          fixup(blk, `an index block of folder record ${dir.ref}`, 'INDX');
          parseNode(blk, 0x18, `an index block of folder record ${dir.ref}`);
        }
      }
      const out: FsEntry[] = [];
      for (const f of found) {
        try {
          const { rec, attrs: fa } = await fileAttrs(f.ref);
          out.push(await entryOf(f.ref, rec, fa, f.name));
        } catch (e) {
          if (!(e instanceof FilesystemError)) throw e;
          out.push({ name: f.name, nameBytes: Buffer.from(f.name, 'utf8'), ref: f.ref, type: 'other', size: 0, mode: 0, damaged: e.reason });
        }
      }
      return out;
    }),
    open: (file, streamName) => guard(async () => {
      const { attrs } = await fileAttrs(file.ref);
      const name = streamName ?? '';
      const parts = attrs.filter((a) => a.type === DATA && a.name === name);
      if (parts.some((a) => a.flags & 0x4000)) throw new FilesystemError('NTFS', 'files encrypted with EFS', { reading: true, unsupported: true });
      if (parts.length === 0) throw dmg(streamName === undefined ? `MFT record ${file.ref} has no data` : `there is no stream named ${streamName}`);
      return stream(parts, `the data of MFT record ${file.ref}`);
    }),
    readlink: (link) => guard(async () => {
      const t = await linkTarget(link.ref, (await fileAttrs(link.ref)).attrs);
      if (t === undefined) throw dmg(`MFT record ${link.ref} is not a symbolic link`);
      return t;
    }),
  };
}

export const ntfs: ReadableFilesystemModule = {
  name: 'NTFS',
  async detect(source, offset, size) {
    if (size < 512) return false;
    return ascii(await source.read(offset, 512), 3, 8) === 'NTFS    ';
  },
  analyze,
  open,
};

