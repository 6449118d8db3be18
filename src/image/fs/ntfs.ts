/**
 * NTFS allocation: the boot sector locates the MFT; record 0 ($MFT) maps the MFT itself; record 6
 * ($Bitmap) holds the cluster bitmap as a non-resident $DATA attribute. Records are checked with
 * their update sequence (fixups) before any field is used; runlists are bounded and must stay
 * inside the volume. The backup boot sector after the last cluster is always kept.
 */
import { bitmapRuns, mergeRanges, type ByteRange } from '../ranges.js';
import type { BlockSource } from '../source.js';
import { FilesystemError, ascii, le, partitionReader, u64le, type FilesystemAnalysis, type FilesystemModule } from './types.js';

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

/** Checks the "FILE" magic and applies the update sequence array in place. */
function fixup(rec: Uint8Array, what: string): void {
  const v = le(rec);
  if (ascii(rec, 0, 4) !== 'FILE') throw bad(`${what} has no FILE signature`);
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

export const ntfs: FilesystemModule = {
  name: 'NTFS',
  async detect(source, offset, size) {
    if (size < 512) return false;
    return ascii(await source.read(offset, 512), 3, 8) === 'NTFS    ';
  },
  analyze,
};

