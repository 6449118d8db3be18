/**
 * Partition tables: MBR (primary, extended and logical partitions through the EBR chain) and GPT
 * (protective MBR, primary and backup headers and entry arrays, CRC-checked), or "none". Also the
 * byte ranges of the table structures, and the GPT relocation a restore onto a larger drive needs.
 * Everything read from disk is bounded before it is used: entry counts, chain lengths, offsets.
 */
import { LifeboatError } from '../util/errors.js';
import { crc32 } from './checksum.js';
import { mergeRanges, type ByteRange } from './ranges.js';
import type { BlockSource } from './source.js';

export type TableKind = 'mbr' | 'gpt' | 'none';

export interface Partition {
  /** 1-based: MBR primaries 1–4, logical partitions 5 and up (as Linux numbers them); GPT entry number. */
  readonly index: number;
  /** 'extended' is the MBR container of logical partitions; it holds no filesystem of its own. */
  readonly role: 'primary' | 'extended' | 'logical' | 'gpt';
  /** Byte offset and length on the disk. */
  readonly start: number;
  readonly size: number;
  /** MBR: the type byte as "0x83"; GPT: the type GUID in lower case. */
  readonly type: string;
  readonly typeName: string;
  /** GPT partition name, if any. */
  readonly name?: string;
  /** GPT unique partition GUID. */
  readonly guid?: string;
  /** MBR active flag (0x80), or GPT attribute bit 2 (legacy BIOS bootable). */
  readonly bootable: boolean;
  /** GPT attribute bits as a hex string. */
  readonly attributes?: string;
}

export interface GptInfo {
  readonly sectorSize: number;
  /** Where the headers are (LBA and byte offset), as the header that was used says. */
  readonly primaryHeaderLba: number;
  readonly backupHeaderLba: number;
  readonly primaryHeaderOffset: number;
  readonly backupHeaderOffset: number;
  readonly firstUsableLba: number;
  readonly lastUsableLba: number;
  readonly entriesLba: number;
  readonly entryCount: number;
  readonly entrySize: number;
  readonly primaryValid: boolean;
  readonly backupValid: boolean;
  /** True when the primary was damaged and the backup header was used. */
  readonly usedBackup: boolean;
}

export interface PartitionTable {
  readonly kind: TableKind;
  /** MBR disk signature as 8 hex digits, or the GPT disk GUID. */
  readonly diskId?: string;
  readonly sectorSize: number;
  readonly partitions: readonly Partition[];
  /** Byte ranges of the table structures themselves (MBR, EBRs, GPT headers and entry arrays), merged. */
  readonly structures: readonly ByteRange[];
  readonly gpt?: GptInfo;
  readonly warnings: readonly string[];
}

const MAX_LOGICAL = 256;
const MAX_GPT_ENTRY_BYTES = 4 * 1024 * 1024;

const MBR_TYPES: Record<number, string> = {
  0x01: 'FAT12', 0x04: 'FAT16 <32M', 0x05: 'Extended', 0x06: 'FAT16', 0x07: 'HPFS/NTFS/exFAT', 0x0b: 'W95 FAT32',
  0x0c: 'W95 FAT32 (LBA)', 0x0e: 'W95 FAT16 (LBA)', 0x0f: 'W95 Extended (LBA)', 0x11: 'Hidden FAT12', 0x14: 'Hidden FAT16 <32M',
  0x16: 'Hidden FAT16', 0x17: 'Hidden HPFS/NTFS', 0x1b: 'Hidden W95 FAT32', 0x1c: 'Hidden W95 FAT32 (LBA)', 0x1e: 'Hidden W95 FAT16 (LBA)',
  0x27: 'Windows recovery', 0x42: 'Windows dynamic', 0x82: 'Linux swap', 0x83: 'Linux', 0x85: 'Linux extended', 0x8e: 'Linux LVM',
  0xa5: 'FreeBSD', 0xa6: 'OpenBSD', 0xa8: 'Darwin UFS', 0xa9: 'NetBSD', 0xaf: 'HFS / HFS+', 0xee: 'GPT protective', 0xef: 'EFI (FAT-12/16/32)',
  0xfd: 'Linux raid autodetect',
};

const GPT_TYPES: Record<string, string> = {
  'c12a7328-f81f-11d2-ba4b-00a0c93ec93b': 'EFI System',
  '21686148-6449-6e6f-744e-656564454649': 'BIOS boot',
  '024dee41-33e7-11d3-9d69-0008c781f39f': 'MBR partition scheme',
  'e3c9e316-0b5c-4db8-817d-f92df00215ae': 'Microsoft reserved',
  'ebd0a0a2-b9e5-4433-87c0-68b6b72699c7': 'Microsoft basic data',
  'de94bba4-06d1-4d40-a16a-bfd50179d6ac': 'Windows recovery environment',
  '5808c8aa-7e8f-42e0-85d2-e1e90434cfb3': 'Windows LDM metadata',
  'af9b60a0-1431-4f62-bc68-3311714a69ad': 'Windows LDM data',
  '0fc63daf-8483-4772-8e79-3d69d8477de4': 'Linux filesystem',
  '0657fd6d-a4ab-43c4-84e5-0933c84b4f4f': 'Linux swap',
  'e6d6d379-f507-44c2-a23c-238f2a3df928': 'Linux LVM',
  'a19d880f-05fc-4d3b-a006-743f0f84911e': 'Linux RAID',
  '4f68bce3-e8cd-4db1-96e7-fbcaf984b709': 'Linux root (x86-64)',
  '44479540-f297-41b2-9af7-d131d5f0458a': 'Linux root (x86)',
  'b921b045-1df0-41c3-af44-4c6f280d3fae': 'Linux root (ARM64)',
  'bc13c2ff-59e6-4262-a352-b275fd6f7172': 'Linux extended boot',
  '933ac7e1-2eb4-4f13-b844-0e14e2aef915': 'Linux home',
  '3b8f8425-20e0-4f3b-907f-1a25a76f98e8': 'Linux server data',
  '48465300-0000-11aa-aa11-00306543ecac': 'Apple HFS/HFS+',
  '7c3457ef-0000-11aa-aa11-00306543ecac': 'Apple APFS',
  '516e7cb4-6ecf-11d6-8ff8-00022d09712b': 'FreeBSD data',
};

const ZERO_GUID = '00000000-0000-0000-0000-000000000000';

function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function u64(v: DataView, o: number): number {
  const lo = v.getUint32(o, true);
  const hi = v.getUint32(o + 4, true);
  if (hi >= 0x200000) return Number.MAX_SAFE_INTEGER; // beyond 2^53: certainly invalid here, keeps arithmetic safe
  return hi * 0x100000000 + lo;
}

function setU64(v: DataView, o: number, n: number): void {
  v.setUint32(o, n % 0x100000000, true);
  v.setUint32(o + 4, Math.floor(n / 0x100000000), true);
}

function hex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

/** GUID in its textual form: the first three fields are stored little-endian. */
export function formatGuid(b: Uint8Array): string {
  const le = (i: number, n: number) => hex(Uint8Array.from(b.subarray(i, i + n)).reverse());
  return `${le(0, 4)}-${le(4, 2)}-${le(6, 2)}-${hex(b.subarray(8, 10))}-${hex(b.subarray(10, 16))}`;
}

function pastEnd(what: string, start: number, size: number, diskSize: number): LifeboatError {
  return new LifeboatError(
    'corrupt',
    `${what} starts at byte ${start} and is ${size} bytes long, so it ends at byte ${start + size}, past the end of the disk (${diskSize} bytes). ` +
      'The partition table is damaged, or the source is not the whole drive (an image that was cut short?).',
  );
}

interface MbrEntry { status: number; type: number; lba: number; sectors: number }

function mbrEntries(sector: Uint8Array): MbrEntry[] {
  const v = dv(sector);
  const out: MbrEntry[] = [];
  for (let i = 0; i < 4; i++) {
    const o = 446 + i * 16;
    out.push({ status: sector[o]!, type: sector[o + 4]!, lba: v.getUint32(o + 8, true), sectors: v.getUint32(o + 12, true) });
  }
  return out;
}

const isExtended = (t: number) => t === 0x05 || t === 0x0f || t === 0x85;

/** True when sector 0 is a filesystem's boot sector (a "superfloppy" without a table), not an MBR. */
function looksLikeVolumeBootRecord(s: Uint8Array): boolean {
  const ascii = (o: number, n: number) => String.fromCharCode(...s.subarray(o, o + n));
  if (ascii(3, 8) === 'NTFS    ' || ascii(3, 8) === 'EXFAT   ') return true;
  if (ascii(54, 5) === 'FAT12' || ascii(54, 5) === 'FAT16' || ascii(82, 5) === 'FAT32') return true;
  return false;
}

interface GptHeader {
  myLba: number; alternateLba: number; firstUsable: number; lastUsable: number; diskGuid: string;
  entriesLba: number; entryCount: number; entrySize: number; entriesCrc: number; headerSize: number;
}

/** Parses and checks a GPT header sector; returns a reason string when it is not valid. */
function parseGptHeader(sec: Uint8Array, expectLba: number, sectorSize: number, diskSectors: number): GptHeader | string {
  if (String.fromCharCode(...sec.subarray(0, 8)) !== 'EFI PART') return 'no "EFI PART" signature';
  const v = dv(sec);
  const headerSize = v.getUint32(12, true);
  if (headerSize < 92 || headerSize > sectorSize) return `header size ${headerSize} is invalid`;
  const copy = Uint8Array.from(sec.subarray(0, headerSize)); // a copy even when sec is a Buffer
  dv(copy).setUint32(16, 0, true);
  if (crc32(copy) !== v.getUint32(16, true)) return 'header CRC mismatch';
  const h: GptHeader = {
    headerSize,
    myLba: u64(v, 24), alternateLba: u64(v, 32), firstUsable: u64(v, 40), lastUsable: u64(v, 48),
    diskGuid: formatGuid(sec.subarray(56, 72)), entriesLba: u64(v, 72), entryCount: v.getUint32(80, true),
    entrySize: v.getUint32(84, true), entriesCrc: v.getUint32(88, true),
  };
  if (h.myLba !== expectLba) return `header says it is at LBA ${h.myLba}, found at LBA ${expectLba}`;
  if (h.entrySize < 128 || h.entrySize % 8 !== 0 || h.entrySize > 4096) return `entry size ${h.entrySize} is invalid`;
  if (h.entryCount * h.entrySize > MAX_GPT_ENTRY_BYTES) return `entry array of ${h.entryCount} entries is implausibly large`;
  const entrySectors = Math.ceil((h.entryCount * h.entrySize) / sectorSize);
  if (h.entriesLba < 1 || h.entriesLba + entrySectors > diskSectors) return 'entry array lies outside the disk';
  // lastUsable beyond the disk is left to the partition check, which names the partition that does not fit.
  if (h.firstUsable > h.lastUsable + 1) return `usable range ${h.firstUsable}–${h.lastUsable} is empty`;
  return h;
}

async function readGptSide(src: BlockSource, lba: number, sectorSize: number): Promise<{ h: GptHeader; entries: Uint8Array } | string> {
  const diskSectors = Math.floor(src.size / sectorSize);
  if (lba < 1 || lba >= diskSectors) return 'header location is outside the disk';
  const h = parseGptHeader(await src.read(lba * sectorSize, sectorSize), lba, sectorSize, diskSectors);
  if (typeof h === 'string') return h;
  const entries = await src.read(h.entriesLba * sectorSize, h.entryCount * h.entrySize);
  if (crc32(entries) !== h.entriesCrc) return 'partition entry array CRC mismatch';
  return { h, entries };
}

function gptPartitions(h: GptHeader, entries: Uint8Array, sectorSize: number, diskSize: number): Partition[] {
  const out: Partition[] = [];
  for (let i = 0; i < h.entryCount; i++) {
    const e = entries.subarray(i * h.entrySize, (i + 1) * h.entrySize);
    const type = formatGuid(e.subarray(0, 16));
    if (type === ZERO_GUID) continue;
    const v = dv(e);
    const first = u64(v, 32);
    const last = u64(v, 40);
    const attrLo = v.getUint32(48, true);
    const attrHi = v.getUint32(52, true);
    let name = '';
    for (let k = 56; k + 1 < Math.min(e.length, 128); k += 2) {
      const c = v.getUint16(k, true);
      if (c === 0) break;
      name += String.fromCharCode(c);
    }
    const index = i + 1;
    if (last < first) throw new LifeboatError('corrupt', `GPT partition ${index} ends (LBA ${last}) before it starts (LBA ${first}). The partition table is damaged.`);
    const start = first * sectorSize;
    const size = (last - first + 1) * sectorSize;
    if (start + size > diskSize) throw pastEnd(`Partition ${index}${name ? ` ("${name}")` : ''}`, start, size, diskSize);
    out.push({
      index, role: 'gpt', start, size, type, typeName: GPT_TYPES[type] ?? `type ${type}`, guid: formatGuid(e.subarray(16, 32)),
      bootable: (attrLo & 4) !== 0, attributes: attrHi.toString(16).padStart(8, '0') + attrLo.toString(16).padStart(8, '0'),
      ...(name ? { name } : {}),
    });
  }
  return out;
}

async function readGpt(src: BlockSource, sectorSize: number, warnings: string[]): Promise<PartitionTable | undefined> {
  const diskSectors = Math.floor(src.size / sectorSize);
  if (diskSectors < 3) return undefined;
  const primary = await readGptSide(src, 1, sectorSize);
  const backupLba = typeof primary === 'string' ? diskSectors - 1 : primary.h.alternateLba;
  let backup = await readGptSide(src, backupLba, sectorSize);
  if (typeof backup === 'string' && backupLba !== diskSectors - 1) {
    // The header may point elsewhere (a drive copied onto a larger one); the usual place is the last sector.
    const atEnd = await readGptSide(src, diskSectors - 1, sectorSize);
    if (typeof atEnd !== 'string') backup = atEnd;
  }
  if (typeof primary === 'string' && typeof backup === 'string') return undefined;
  const used = typeof primary === 'string' ? (backup as { h: GptHeader; entries: Uint8Array }) : primary;
  if (typeof primary === 'string') warnings.push(`The primary GPT header is damaged (${primary}); the backup header at the end of the disk was used.`);
  else if (typeof backup === 'string') warnings.push(`The backup GPT header is missing or damaged (${backup}); the primary header was used.`);
  else if (backup.h.myLba !== diskSectors - 1) warnings.push(`The backup GPT header is at LBA ${backup.h.myLba}, not at the end of the disk (LBA ${diskSectors - 1}).`);
  const h = used.h;
  const primaryLba = typeof primary === 'string' ? h.alternateLba : 1;
  const backupHeaderLba = typeof backup === 'string' ? (typeof primary === 'string' ? h.myLba : primary.h.alternateLba) : backup.h.myLba;
  const entrySectors = Math.ceil((h.entryCount * h.entrySize) / sectorSize);
  const structures: ByteRange[] = [{ start: 0, end: sectorSize }];
  const addSide = (side: { h: GptHeader } | string) => {
    if (typeof side === 'string') return;
    structures.push({ start: side.h.myLba * sectorSize, end: (side.h.myLba + 1) * sectorSize });
    structures.push({ start: side.h.entriesLba * sectorSize, end: (side.h.entriesLba + entrySectors) * sectorSize });
  };
  addSide(primary);
  addSide(backup);
  return {
    kind: 'gpt',
    diskId: h.diskGuid,
    sectorSize,
    partitions: gptPartitions(h, used.entries, sectorSize, src.size),
    structures: mergeRanges(structures, src.size),
    gpt: {
      sectorSize,
      primaryHeaderLba: primaryLba,
      backupHeaderLba,
      primaryHeaderOffset: primaryLba * sectorSize,
      backupHeaderOffset: backupHeaderLba * sectorSize,
      firstUsableLba: h.firstUsable,
      lastUsableLba: h.lastUsable,
      entriesLba: h.entriesLba,
      entryCount: h.entryCount,
      entrySize: h.entrySize,
      primaryValid: typeof primary !== 'string',
      backupValid: typeof backup !== 'string',
      usedBackup: typeof primary === 'string',
    },
    warnings,
  };
}

async function readMbr(src: BlockSource, sector0: Uint8Array, warnings: string[]): Promise<PartitionTable> {
  const SS = 512;
  const v = dv(sector0);
  const partitions: Partition[] = [];
  const structures: ByteRange[] = [{ start: 0, end: SS }];
  const entries = mbrEntries(sector0);
  let extended: { start: number; size: number } | undefined;
  entries.forEach((e, i) => {
    if (e.type === 0 || e.sectors === 0) return;
    const index = i + 1;
    const start = e.lba * SS;
    const size = e.sectors * SS;
    if (start + size > src.size) throw pastEnd(`Partition ${index} (type 0x${e.type.toString(16).padStart(2, '0')})`, start, size, src.size);
    const ext = isExtended(e.type);
    if (ext && !extended) extended = { start, size };
    else if (ext) warnings.push(`Partition ${index} is a second extended partition; its logical partitions are not listed.`);
    partitions.push({ index, role: ext ? 'extended' : 'primary', start, size, type: `0x${e.type.toString(16).padStart(2, '0')}`, typeName: MBR_TYPES[e.type] ?? `type 0x${e.type.toString(16).padStart(2, '0')}`, bootable: e.status === 0x80 });
  });
  if (extended) {
    const ext = extended;
    const seen = new Set<number>();
    let ebrLba = ext.start / SS;
    let index = 5;
    for (let n = 0; n < MAX_LOGICAL; n++) {
      if (seen.has(ebrLba)) {
        warnings.push(`The chain of logical partitions loops back to sector ${ebrLba}; it was cut there.`);
        break;
      }
      seen.add(ebrLba);
      const off = ebrLba * SS;
      if (off < ext.start || off + SS > ext.start + ext.size) throw pastEnd(`The extended boot record of logical partition ${index}`, off, SS, Math.min(src.size, ext.start + ext.size));
      const ebr = await src.read(off, SS);
      structures.push({ start: off, end: off + SS });
      if (ebr[510] !== 0x55 || ebr[511] !== 0xaa) {
        if (n > 0) warnings.push(`The extended boot record at sector ${ebrLba} has no 55AA signature; logical partitions from ${index} on are not listed.`);
        break;
      }
      const [logical, next] = mbrEntries(ebr);
      if (logical && logical.type !== 0 && logical.sectors !== 0) {
        const start = off + logical.lba * SS;
        const size = logical.sectors * SS;
        if (start + size > src.size) throw pastEnd(`Partition ${index} (logical, type 0x${logical.type.toString(16).padStart(2, '0')})`, start, size, src.size);
        if (start < ext.start || start + size > ext.start + ext.size) {
          throw new LifeboatError('corrupt', `Logical partition ${index} (bytes ${start}–${start + size}) lies outside its extended partition (bytes ${ext.start}–${ext.start + ext.size}). The partition table is damaged.`);
        }
        partitions.push({ index, role: 'logical', start, size, type: `0x${logical.type.toString(16).padStart(2, '0')}`, typeName: MBR_TYPES[logical.type] ?? `type 0x${logical.type.toString(16).padStart(2, '0')}`, bootable: logical.status === 0x80 });
        index++;
      }
      if (!next || next.type === 0 || next.sectors === 0) break;
      ebrLba = ext.start / SS + next.lba;
      if (n === MAX_LOGICAL - 1) warnings.push(`More than ${MAX_LOGICAL} logical partitions; the rest are not listed.`);
    }
  }
  return {
    kind: 'mbr',
    diskId: v.getUint32(440, true).toString(16).padStart(8, '0'),
    sectorSize: SS,
    partitions,
    structures: mergeRanges(structures, src.size),
    warnings,
  };
}

/**
 * Reads the partition table of a whole drive. Throws a 'corrupt' LifeboatError naming the
 * partition when an entry points past the end of the disk; a table that is not there gives
 * kind 'none' (the whole drive is then one unknown area, or a filesystem without a table).
 */
export async function readPartitionTable(src: BlockSource): Promise<PartitionTable> {
  const warnings: string[] = [];
  const none = (why?: string): PartitionTable => ({ kind: 'none', sectorSize: 512, partitions: [], structures: [], warnings: why ? [...warnings, why] : warnings });
  if (src.size < 512) return none();
  const sector0 = await src.read(0, 512);
  const signed = sector0[510] === 0x55 && sector0[511] === 0xaa;
  const entries = mbrEntries(sector0);
  const protective = signed && entries.some((e) => e.type === 0xee);
  // GPT: a protective MBR, or (unusually) a GPT header with no MBR signature at all.
  if (protective || !signed) {
    for (const ss of [512, 4096]) {
      if (src.size < ss * 3) continue;
      const gpt = await readGpt(src, ss, warnings);
      if (gpt) return gpt;
    }
    if (protective) {
      throw new LifeboatError('corrupt', 'The disk has a GPT protective MBR but both GPT headers (at the start and at the end of the disk) are damaged. Repair the table (for example with gdisk) before imaging, or image the disk as a whole.');
    }
    return none();
  }
  if (looksLikeVolumeBootRecord(sector0) || entries.some((e) => e.status !== 0 && e.status !== 0x80)) {
    return none('Sector 0 is not a partition table (it looks like a filesystem boot sector).');
  }
  return readMbr(src, sector0, warnings);
}

// ---------------------------------------------------------------------------------------------
// GPT relocation for a restore onto a larger drive.

export interface DiskWrite {
  readonly offset: number;
  readonly data: Uint8Array;
}

/**
 * Given the start of a GPT disk (`head`: at least the protective MBR, primary header and entry
 * array — 34 sectors for the usual layout) and a new disk size, returns the writes that make the
 * disk valid at that size: the primary header with the new last usable LBA and alternate LBA
 * (CRC recomputed), the backup entry array and backup header at the new end, and the protective
 * MBR's 0xEE entry resized when it covered the whole old disk. `tail` (the old disk's last
 * sectors) is used when the primary side is damaged. The new size must not be smaller than the
 * end of the last partition.
 */
export function relocateGpt(head: Uint8Array, newSize: number, opts: { sectorSize?: number; tail?: Uint8Array; oldSize?: number } = {}): DiskWrite[] {
  const ss = opts.sectorSize ?? 512;
  const newSectors = Math.floor(newSize / ss);
  if (newSectors < 67) throw new LifeboatError('invalid-argument', `A disk of ${newSize} bytes is too small for a GPT.`);
  const huge = Number.MAX_SAFE_INTEGER;
  let hdr = parseGptHeader(head.subarray(ss, 2 * ss), 1, ss, huge);
  let headerBytes: Uint8Array | undefined = typeof hdr === 'string' ? undefined : head.subarray(ss, 2 * ss);
  let entries: Uint8Array | undefined;
  let fromTail = false;
  if (typeof hdr !== 'string') {
    const end = hdr.entriesLba * ss + hdr.entryCount * hdr.entrySize;
    const e = end <= head.length ? head.subarray(hdr.entriesLba * ss, end) : undefined;
    if (e && crc32(e) === hdr.entriesCrc) entries = e;
  }
  if (!entries && opts.tail && opts.oldSize !== undefined) {
    // Rebuild the primary from the backup at the end of the old disk.
    const oldSectors = Math.floor(opts.oldSize / ss);
    const tailStartLba = oldSectors - opts.tail.length / ss;
    const bh = parseGptHeader(opts.tail.subarray(opts.tail.length - ss), oldSectors - 1, ss, oldSectors);
    if (typeof bh !== 'string') {
      const eo = (bh.entriesLba - tailStartLba) * ss;
      const e = eo >= 0 ? opts.tail.subarray(eo, eo + bh.entryCount * bh.entrySize) : undefined;
      if (e && e.length === bh.entryCount * bh.entrySize && crc32(e) === bh.entriesCrc) {
        entries = e;
        fromTail = true;
        hdr = { ...bh, myLba: 1, alternateLba: bh.myLba, entriesLba: 2 };
        headerBytes = opts.tail.subarray(opts.tail.length - ss);
      }
    }
  }
  if (typeof hdr === 'string' || !entries || !headerBytes) {
    throw new LifeboatError('corrupt', 'The GPT of the restored disk is damaged on both sides; its backup header cannot be moved to the end of the new drive.');
  }
  const entryBytes = hdr.entryCount * hdr.entrySize;
  const entrySectors = Math.ceil(entryBytes / ss);
  const backupHeaderLba = newSectors - 1;
  const backupEntriesLba = backupHeaderLba - entrySectors;
  const lastUsable = backupEntriesLba - 1;
  // Never cut a partition off.
  const parts = gptPartitions(hdr, entries, ss, Number.MAX_SAFE_INTEGER);
  for (const p of parts) {
    if ((p.start + p.size) / ss - 1 > lastUsable) throw pastEnd(`Partition ${p.index}`, p.start, p.size, lastUsable * ss + ss);
  }
  const entryCopy = new Uint8Array(entrySectors * ss);
  entryCopy.set(entries);
  const makeHeader = (myLba: number, alternateLba: number, entriesLba: number): Uint8Array => {
    const sec = new Uint8Array(ss);
    sec.set(headerBytes.subarray(0, ss));
    const v = dv(sec);
    setU64(v, 24, myLba);
    setU64(v, 32, alternateLba);
    setU64(v, 48, lastUsable);
    setU64(v, 72, entriesLba);
    v.setUint32(88, crc32(entries), true);
    v.setUint32(16, 0, true);
    v.setUint32(16, crc32(sec.subarray(0, hdr.headerSize)), true);
    return sec;
  };
  const primaryEntriesLba = (hdr).myLba === 1 ? (hdr).entriesLba : 2;
  const writes: DiskWrite[] = [
    { offset: ss, data: makeHeader(1, backupHeaderLba, primaryEntriesLba) },
    { offset: backupEntriesLba * ss, data: entryCopy },
    { offset: backupHeaderLba * ss, data: makeHeader(backupHeaderLba, 1, backupEntriesLba) },
  ];
  if (fromTail) {
    writes.push({ offset: primaryEntriesLba * ss, data: entryCopy });
  }
  // Protective MBR: grow its 0xEE entry when it covered the whole old disk (or the 32-bit maximum).
  if (head.length >= 512 && head[510] === 0x55 && head[511] === 0xaa) {
    const mbr = Uint8Array.from(head.subarray(0, 512));
    const v = dv(mbr);
    let changed = false;
    for (let i = 0; i < 4; i++) {
      const o = 446 + i * 16;
      if (mbr[o + 4] !== 0xee || v.getUint32(o + 8, true) !== 1) continue;
      const want = Math.min(0xffffffff, newSectors - 1);
      if (v.getUint32(o + 12, true) !== want) {
        v.setUint32(o + 12, want, true);
        changed = true;
      }
    }
    if (changed) writes.unshift({ offset: 0, data: mbr });
  }
  return writes;
}

/** What relocateGptOn needs of a restore target. */
export interface RandomAccessDisk {
  readonly size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  write(offset: number, data: Uint8Array): Promise<void>;
}

/**
 * Moves the GPT backup of a disk that was written onto a larger target to the target's end.
 * Returns false (and writes nothing) when the disk has no GPT or the target is not larger.
 */
export async function relocateGptOn(target: RandomAccessDisk, originalSize: number): Promise<boolean> {
  if (target.size <= originalSize) return false;
  const headLen = Math.min(originalSize, 1024 * 1024 + 8192);
  const head = await target.read(0, headLen);
  for (const ss of [512, 4096]) {
    if (head.length < 2 * ss) continue;
    const tailLen = Math.min(originalSize, 1024 * 1024 + 8192);
    const tail = await target.read(originalSize - tailLen, tailLen);
    const sig = (b: Uint8Array) => String.fromCharCode(...b.subarray(0, 8)) === 'EFI PART';
    if (!sig(head.subarray(ss)) && !sig(tail.subarray(tail.length - ss))) continue;
    const writes = relocateGpt(head, target.size, { sectorSize: ss, tail, oldSize: originalSize });
    for (const w of writes) await target.write(w.offset, w.data);
    return true;
  }
  return false;
}
