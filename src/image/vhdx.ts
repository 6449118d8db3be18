/**
 * Microsoft VHDX ([MS-VHDX] v20160714): reading fixed and dynamic VHDX files as a virtual disk,
 * and writing dynamic ones. All fields are little-endian; headers, region tables and the metadata
 * are protected by CRC-32C. Differencing disks and files with an unreplayed log are refused.
 */
import { randomBytes } from 'node:crypto';
import { LifeboatError } from '../util/errors.js';
import type { ByteRange } from './imager.js';
import { pushRange, readByBlocks, type BlockFormatWriter, type ByteSink, type FileAccess, type VirtualDisk } from './vhd.js';

// ------------------------------------------------------------------ CRC-32C (Castagnoli)

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32c(data: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = CRC32C_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** CRC-32C of a structure with its 4-byte checksum field (at `at`) counted as zero. */
function structureCrc(b: Buffer, at: number): number {
  const saved = b.readUInt32LE(at);
  b.writeUInt32LE(0, at);
  const c = crc32c(b);
  b.writeUInt32LE(saved, at);
  return c;
}

// ------------------------------------------------------------------ GUIDs

/** A GUID in its on-disk form: the first three fields little-endian, the last eight bytes as written. */
export function guidBytes(text: string): Buffer {
  const hex = text.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new Error(`bad GUID ${text}`);
  const b = Buffer.from(hex, 'hex');
  const out = Buffer.alloc(16);
  out.writeUInt32LE(b.readUInt32BE(0), 0);
  out.writeUInt16LE(b.readUInt16BE(4), 4);
  out.writeUInt16LE(b.readUInt16BE(6), 6);
  b.copy(out, 8, 8, 16);
  return out;
}

const BAT_REGION = guidBytes('2DC27766-F623-4200-9D64-115E9BFD4A08');
const METADATA_REGION = guidBytes('8B7CA206-4790-4B9A-B8FE-575F050F886E');
const FILE_PARAMETERS = guidBytes('CAA16737-FA36-4D43-B3B6-33F0AA44E76B');
const VIRTUAL_DISK_SIZE = guidBytes('2FA54224-CD1B-4876-B211-5DBED83BF4B8');
const PAGE_83_DATA = guidBytes('BECA12AB-B2E6-4523-93EF-C309E000C746');
const LOGICAL_SECTOR_SIZE = guidBytes('8141BF1D-A96F-4709-BA47-F233A8FAAB5F');
const PHYSICAL_SECTOR_SIZE = guidBytes('CDA348C7-445D-4471-9CC9-E9885251C556');
const PARENT_LOCATOR = guidBytes('A8D35F2D-B30B-454D-ABF7-D3D84834AB0C');

// ------------------------------------------------------------------ constants

const MiB = 1024 * 1024;
const KiB = 1024;
const FILE_SIGNATURE = Buffer.from('vhdxfile');
const HEADER_SIGNATURE = 0x64616568; // "head"
const REGION_SIGNATURE = 0x69676572; // "regi"
const METADATA_SIGNATURE = Buffer.from('metadata');
const HEADER_OFFSETS = [64 * KiB, 128 * KiB] as const;
const REGION_TABLE_OFFSETS = [192 * KiB, 256 * KiB] as const;
const HEADER_SIZE = 4 * KiB;
const REGION_TABLE_SIZE = 64 * KiB;
const METADATA_TABLE_SIZE = 64 * KiB;
const MAX_TABLE_ENTRIES = 2047;
/** The format's largest disk (64 TiB). */
export const VHDX_MAX_SIZE = 64 * 1024 ** 4;
/** Largest BAT read into memory (8 bytes per block). */
const MAX_VHDX_BAT_BYTES = 256 * MiB;

const PAYLOAD_NOT_PRESENT = 0;
const PAYLOAD_UNDEFINED = 1;
const PAYLOAD_ZERO = 2;
const PAYLOAD_UNMAPPED = 3;
const PAYLOAD_FULLY_PRESENT = 6;
const PAYLOAD_PARTIALLY_PRESENT = 7;

const META_IS_VIRTUAL_DISK = 2;
const META_IS_REQUIRED = 4;

/** Payload blocks described by one sector bitmap block. */
function chunkRatio(logicalSectorSize: number, blockSize: number): number {
  return (2 ** 23 * logicalSectorSize) / blockSize;
}

/** Index in the BAT of payload block `i` (a sector bitmap entry follows every `ratio` of them). */
function batIndex(i: number, ratio: number): number {
  return i + Math.floor(i / ratio);
}

// ------------------------------------------------------------------ reading

export async function looksLikeVhdx(file: FileAccess): Promise<boolean> {
  return file.size >= 8 && (await file.read(0, 8)).equals(FILE_SIGNATURE);
}

interface Region {
  readonly offset: number;
  readonly length: number;
}

/** Opens a fixed or dynamic VHDX as the disk it holds. */
export async function openVhdx(file: FileAccess): Promise<VirtualDisk> {
  const path = file.path;
  const damaged = (what: string) => new LifeboatError('corrupt', `The VHDX file ${path} is damaged: ${what}.`);
  if (file.size < 1 * MiB) throw damaged('it is shorter than its fixed header area (1 MiB)');
  if (!(await file.read(0, 8)).equals(FILE_SIGNATURE)) throw damaged('it does not start with the VHDX signature');

  // The current header is the valid one with the higher sequence number.
  let header: Buffer | undefined;
  let bestSeq = -1n;
  for (const at of HEADER_OFFSETS) {
    const h = await file.read(at, HEADER_SIZE);
    if (h.readUInt32LE(0) !== HEADER_SIGNATURE || h.readUInt32LE(4) !== structureCrc(h, 4)) continue;
    const seq = h.readBigUInt64LE(8);
    if (seq > bestSeq) {
      bestSeq = seq;
      header = h;
    }
  }
  if (!header) throw damaged('neither of its two headers is intact (signature or CRC-32C checksum wrong)');
  if (header.readUInt16LE(66) !== 1) throw new LifeboatError('corrupt', `${path} is a VHDX of version ${header.readUInt16LE(66)}, which Lifeboat does not know.`);
  if (!header.subarray(48, 64).equals(Buffer.alloc(16))) {
    throw new LifeboatError('corrupt', `The VHDX file ${path} was not closed cleanly: its log holds changes that were never applied. Attach it once in Windows (or run "qemu-img check -r all" on a copy) and import it again.`);
  }

  // Region table: the first intact copy.
  let regions: { bat?: Region; metadata?: Region } | undefined;
  for (const at of REGION_TABLE_OFFSETS) {
    const t = await file.read(at, REGION_TABLE_SIZE);
    if (t.readUInt32LE(0) !== REGION_SIGNATURE || t.readUInt32LE(4) !== structureCrc(t, 4)) continue;
    const count = t.readUInt32LE(8);
    if (count > MAX_TABLE_ENTRIES) continue;
    const found: { bat?: Region; metadata?: Region } = {};
    for (let i = 0; i < count; i++) {
      const e = t.subarray(16 + i * 32, 48 + i * 32);
      const guid = e.subarray(0, 16);
      const offset = Number(e.readBigUInt64LE(16));
      const length = e.readUInt32LE(24);
      const required = (e.readUInt32LE(28) & 1) === 1;
      const known = guid.equals(BAT_REGION) ? 'bat' : guid.equals(METADATA_REGION) ? 'metadata' : undefined;
      if (!known) {
        if (required) throw new LifeboatError('corrupt', `The VHDX file ${path} needs a feature (region ${guid.toString('hex')}) that Lifeboat does not know.`);
        continue;
      }
      if (offset < 1 * MiB || offset % MiB !== 0 || length === 0 || length % MiB !== 0) throw damaged(`its ${known} region has an impossible place or size`);
      if (offset + length > file.size) throw damaged(`its ${known} region lies past the end of the file (the file is truncated)`);
      found[known] = { offset, length };
    }
    regions = found;
    break;
  }
  if (!regions) throw damaged('neither copy of its region table is intact (signature or CRC-32C checksum wrong)');
  if (!regions.bat || !regions.metadata) throw damaged('its region table lacks the block table or the metadata region');
  const batRegion = regions.bat;
  const metaRegion = regions.metadata;

  // Metadata table and the items Lifeboat needs.
  if (metaRegion.length < METADATA_TABLE_SIZE) throw damaged('its metadata region is too small');
  const mt = await file.read(metaRegion.offset, METADATA_TABLE_SIZE);
  if (!mt.subarray(0, 8).equals(METADATA_SIGNATURE)) throw damaged('its metadata table has a wrong signature');
  const count = mt.readUInt16LE(10);
  if (count > MAX_TABLE_ENTRIES) throw damaged('its metadata table has too many entries');
  const items = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    const e = mt.subarray(32 + i * 32, 64 + i * 32);
    const guid = e.subarray(0, 16);
    const offset = e.readUInt32LE(16);
    const length = e.readUInt32LE(20);
    const flags = e.readUInt32LE(24);
    const known = [FILE_PARAMETERS, VIRTUAL_DISK_SIZE, LOGICAL_SECTOR_SIZE, PHYSICAL_SECTOR_SIZE, PAGE_83_DATA].some((g) => g.equals(guid));
    if (guid.equals(PARENT_LOCATOR)) {
      throw new LifeboatError('invalid-argument', `${path} is a differencing VHDX (it holds only changes to a parent disk); importing differencing disks is not supported. Merge it into its parent first.`);
    }
    if (!known) {
      if (flags & META_IS_REQUIRED) throw new LifeboatError('corrupt', `The VHDX file ${path} needs a feature (metadata item ${guid.toString('hex')}) that Lifeboat does not know.`);
      continue;
    }
    if (length > 64 * KiB || (length > 0 && (offset < METADATA_TABLE_SIZE || offset + length > metaRegion.length))) throw damaged('a metadata item lies outside the metadata region');
    items.set(guid.toString('hex'), await file.read(metaRegion.offset + offset, length));
  }
  const item = (g: Buffer, min: number, name: string): Buffer => {
    const v = items.get(g.toString('hex'));
    if (!v || v.length < min) throw damaged(`its ${name} is missing`);
    return v;
  };
  const params = item(FILE_PARAMETERS, 8, 'file parameters');
  const blockSize = params.readUInt32LE(0);
  const leaveBlocksAllocated = (params.readUInt32LE(4) & 1) === 1; // set in fixed VHDX files
  if (params.readUInt32LE(4) & 2) {
    throw new LifeboatError('invalid-argument', `${path} is a differencing VHDX (it has a parent disk); importing differencing disks is not supported. Merge it into its parent first.`);
  }
  if (blockSize < 1 * MiB || blockSize > 256 * MiB || (blockSize & (blockSize - 1)) !== 0) throw damaged(`its block size (${blockSize}) is impossible`);
  const sizeBig = item(VIRTUAL_DISK_SIZE, 8, 'virtual disk size').readBigUInt64LE(0);
  const logical = item(LOGICAL_SECTOR_SIZE, 4, 'logical sector size').readUInt32LE(0);
  if (logical !== 512 && logical !== 4096) throw damaged(`its logical sector size (${logical}) is impossible`);
  if (sizeBig === 0n || sizeBig > BigInt(VHDX_MAX_SIZE) || sizeBig % BigInt(logical) !== 0n) throw damaged(`its virtual disk size (${sizeBig}) is impossible`);
  const size = Number(sizeBig);

  // Block table: payload entries, with a sector bitmap entry after every chunkRatio of them.
  const ratio = chunkRatio(logical, blockSize);
  const blocks = Math.ceil(size / blockSize);
  const entries = batIndex(blocks - 1, ratio) + 1;
  if (entries * 8 > batRegion.length) throw damaged('its block table region is too small for the disk size');
  if (entries * 8 > MAX_VHDX_BAT_BYTES) throw damaged('its block table is too large');
  const bat = await file.read(batRegion.offset, entries * 8);
  /** File offset of each payload block's data, or -1 when it reads as zeros. */
  const where = new Float64Array(blocks);
  const allocated: ByteRange[] = [];
  for (let i = 0; i < blocks; i++) {
    const at = batIndex(i, ratio) * 8;
    const lo = bat.readUInt32LE(at);
    const hi = bat.readUInt32LE(at + 4);
    const state = lo & 7;
    const offset = (hi * 4096 + (lo >>> 20)) * MiB;
    const len = Math.min(blockSize, size - i * blockSize);
    switch (state) {
      case PAYLOAD_FULLY_PRESENT:
        if (offset < 1 * MiB || offset + len > file.size) throw damaged(`block ${i} of its block table points past the end of the file (the file is truncated)`);
        where[i] = offset;
        pushRange(allocated, i * blockSize, i * blockSize + len);
        break;
      case PAYLOAD_NOT_PRESENT:
      case PAYLOAD_UNDEFINED:
      case PAYLOAD_ZERO:
      case PAYLOAD_UNMAPPED:
        where[i] = -1;
        break;
      case PAYLOAD_PARTIALLY_PRESENT:
        throw damaged(`block ${i} is marked partially present, which only a differencing disk may use`);
      default:
        throw damaged(`block ${i} has an unknown state (${state})`);
    }
  }

  return {
    format: leaveBlocksAllocated ? 'vhdx-fixed' : 'vhdx-dynamic',
    size,
    allocated,
    read: (offset: number, length: number) =>
      readByBlocks(offset, length, size, blockSize, async (block, within, n, out, at) => {
        const from = where[block]!;
        if (from >= 0) (await file.read(from + within, n)).copy(out, at);
      }),
    close: () => file.close(),
  };
}

// ------------------------------------------------------------------ writing a dynamic VHDX

export const VHDX_BLOCK_SIZE = 2 * MiB;
const LOG_OFFSET = 1 * MiB;
const LOG_LENGTH = 1 * MiB;
const METADATA_OFFSET = 2 * MiB;
const METADATA_LENGTH = 1 * MiB;
const BAT_OFFSET = 3 * MiB;

function encodeHeader(seq: number, fileWrite: Buffer, dataWrite: Buffer): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  h.writeUInt32LE(HEADER_SIGNATURE, 0);
  h.writeBigUInt64LE(BigInt(seq), 8);
  fileWrite.copy(h, 16);
  dataWrite.copy(h, 32);
  // LogGuid (48..63) zero: the log is empty and nothing needs replaying.
  h.writeUInt16LE(0, 64); // log version
  h.writeUInt16LE(1, 66); // version
  h.writeUInt32LE(LOG_LENGTH, 68);
  h.writeBigUInt64LE(BigInt(LOG_OFFSET), 72);
  h.writeUInt32LE(crc32c(h), 4);
  return h;
}

function encodeRegionTable(batLength: number): Buffer {
  const t = Buffer.alloc(REGION_TABLE_SIZE);
  t.writeUInt32LE(REGION_SIGNATURE, 0);
  t.writeUInt32LE(2, 8);
  const entry = (i: number, guid: Buffer, offset: number, length: number) => {
    const o = 16 + i * 32;
    guid.copy(t, o);
    t.writeBigUInt64LE(BigInt(offset), o + 16);
    t.writeUInt32LE(length, o + 24);
    t.writeUInt32LE(1, o + 28); // required
  };
  entry(0, BAT_REGION, BAT_OFFSET, batLength);
  entry(1, METADATA_REGION, METADATA_OFFSET, METADATA_LENGTH);
  t.writeUInt32LE(crc32c(t), 4);
  return t;
}

function encodeMetadata(size: number, blockSize: number): Buffer {
  const items: [Buffer, Buffer, number][] = [];
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v, 0);
    return b;
  };
  const params = Buffer.alloc(8);
  params.writeUInt32LE(blockSize, 0); // flags 0: blocks may be unallocated, no parent
  const vsize = Buffer.alloc(8);
  vsize.writeBigUInt64LE(BigInt(size), 0);
  items.push([FILE_PARAMETERS, params, META_IS_REQUIRED]);
  items.push([VIRTUAL_DISK_SIZE, vsize, META_IS_VIRTUAL_DISK | META_IS_REQUIRED]);
  items.push([PAGE_83_DATA, randomBytes(16), META_IS_VIRTUAL_DISK | META_IS_REQUIRED]);
  items.push([LOGICAL_SECTOR_SIZE, u32(512), META_IS_VIRTUAL_DISK | META_IS_REQUIRED]);
  items.push([PHYSICAL_SECTOR_SIZE, u32(4096), META_IS_VIRTUAL_DISK | META_IS_REQUIRED]);
  const m = Buffer.alloc(METADATA_TABLE_SIZE + 64);
  METADATA_SIGNATURE.copy(m, 0);
  m.writeUInt16LE(items.length, 10);
  let data = METADATA_TABLE_SIZE;
  items.forEach(([guid, value, flags], i) => {
    const o = 32 + i * 32;
    guid.copy(m, o);
    m.writeUInt32LE(data, o + 16);
    m.writeUInt32LE(value.length, o + 20);
    m.writeUInt32LE(flags, o + 24);
    value.copy(m, data);
    data += value.length;
  });
  return m;
}

/**
 * Layout: file identifier (64 KiB) ‖ header 1 ‖ header 2 ‖ region table ×2, padded to 1 MiB ‖
 * an empty log (1 MiB) ‖ metadata (1 MiB) ‖ BAT (padded to 1 MiB) ‖ 2 MiB payload blocks. Blocks
 * of zeros are marked PAYLOAD_BLOCK_ZERO and take no space; sector bitmap entries are
 * SB_BLOCK_NOT_PRESENT (there is no parent).
 */
export class VhdxWriter implements BlockFormatWriter {
  readonly blockSize = VHDX_BLOCK_SIZE;
  private readonly ratio: number;
  private readonly bat: Buffer;
  private next: number;

  constructor(
    private readonly out: ByteSink,
    readonly size: number,
  ) {
    if (size <= 0 || size % 512 !== 0) throw new LifeboatError('invalid-argument', `A VHDX must hold a whole number of 512-byte sectors, but this disk has ${size} bytes; export it as raw instead.`);
    if (size > VHDX_MAX_SIZE) throw new LifeboatError('invalid-argument', `This disk (${size} bytes) is larger than a VHDX can hold (64 TiB); export it as raw instead.`);
    this.ratio = chunkRatio(512, this.blockSize);
    const blocks = Math.ceil(size / this.blockSize);
    const entries = batIndex(blocks - 1, this.ratio) + 1;
    this.bat = Buffer.alloc(Math.ceil((entries * 8) / MiB) * MiB);
    for (let i = 0; i < blocks; i++) this.bat.writeUInt32LE(PAYLOAD_ZERO, batIndex(i, this.ratio) * 8);
    this.next = BAT_OFFSET + this.bat.length;
  }

  async writeBlock(index: number, data: Buffer | undefined): Promise<void> {
    if (!data) return;
    const at = batIndex(index, this.ratio) * 8;
    const mb = this.next / MiB;
    this.bat.writeUInt32LE((PAYLOAD_FULLY_PRESENT | ((mb % 4096) << 20)) >>> 0, at);
    this.bat.writeUInt32LE(Math.floor(mb / 4096), at + 4);
    await this.out.write(this.next, data);
    this.next += this.blockSize;
  }

  async finish(): Promise<void> {
    await this.out.write(BAT_OFFSET, this.bat);
    await this.out.write(METADATA_OFFSET, encodeMetadata(this.size, this.blockSize));
    const ident = Buffer.alloc(64 * KiB);
    FILE_SIGNATURE.copy(ident, 0);
    ident.write('Lifeboat', 8, 'utf16le');
    const regions = encodeRegionTable(this.bat.length);
    const fileWrite = randomBytes(16);
    const dataWrite = randomBytes(16);
    await this.out.write(REGION_TABLE_OFFSETS[0], regions);
    await this.out.write(REGION_TABLE_OFFSETS[1], regions);
    await this.out.write(HEADER_OFFSETS[0], encodeHeader(1, fileWrite, dataWrite));
    await this.out.write(HEADER_OFFSETS[1], encodeHeader(2, fileWrite, dataWrite));
    await this.out.write(0, ident);
    // The log region (1–2 MiB) stays a hole of zeros; the file already ends after the last block,
    // or at the end of the BAT when nothing was allocated.
  }

  /** Bytes the file must have at least (the end of the BAT region when no block is allocated). */
  get fileEnd(): number {
    return this.next;
  }
}
