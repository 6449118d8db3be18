/**
 * Microsoft VHD (Virtual Hard Disk Image Format Specification, 2006): reading fixed and dynamic
 * VHD files as a virtual disk, and writing dynamic ones. All fields are big-endian.
 *
 * Also holds the small interfaces the container formats share (file access, virtual disk, block
 * writer). Every size or offset read from a file is checked against the file's size and fixed
 * caps before it is used, so a damaged or hostile file gives a clear error, never a huge
 * allocation or a read past its end.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs, constants as C } from 'node:fs';
import { LifeboatError, errnoCode } from '../util/errors.js';
import type { ByteRange, ImageReader } from './imager.js';
import { systemClock } from '../util/clock.js';

// ------------------------------------------------------------------ shared interfaces

/** Exact reads of a container file; reading past its end is a "damaged file" error. */
export interface FileAccess {
  readonly path: string;
  readonly size: number;
  read(offset: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

/** A disk stored inside a container file (raw, VHD, VHDX), read as the disk it holds. */
export interface VirtualDisk extends ImageReader {
  /** 'raw', 'vhd-fixed', 'vhd-dynamic', 'vhdx-fixed', 'vhdx-dynamic'. */
  readonly format: string;
  /** Ranges of the disk the file stores; everything else reads as zeros and costs nothing. */
  readonly allocated: readonly ByteRange[];
  close(): Promise<void>;
}

/** Where an exported file's bytes go (positional writes; untouched ranges stay holes). */
export interface ByteSink {
  write(offset: number, data: Uint8Array): Promise<void>;
}

/**
 * A container writer fed the disk block by block, in order, every block exactly once; `undefined`
 * is a block of zeros. Blocks are `blockSize` bytes; the last one is zero-padded.
 */
export interface BlockFormatWriter {
  readonly blockSize: number;
  writeBlock(index: number, data: Buffer | undefined): Promise<void>;
  finish(): Promise<void>;
}

/** A growable in-memory file, both a ByteSink and a FileAccess (for tests and small conversions). */
export class MemoryFile implements ByteSink, FileAccess {
  buf = Buffer.alloc(0);
  constructor(readonly path = 'mem.vhd') {}
  get size(): number {
    return this.buf.length;
  }
  async write(offset: number, data: Uint8Array): Promise<void> {
    if (offset + data.length > this.buf.length) this.buf = Buffer.concat([this.buf, Buffer.alloc(offset + data.length - this.buf.length)]);
    this.buf.set(data, offset);
  }
  async read(offset: number, length: number): Promise<Buffer> {
    if (offset + length > this.buf.length) throw new LifeboatError('corrupt', `${this.path} ends early; it is truncated or damaged.`);
    return Buffer.from(this.buf.subarray(offset, offset + length));
  }
  async close(): Promise<void> {}
}

const MAX_SAFE_FILE = 2 ** 52;

export async function openFileAccess(path: string): Promise<FileAccess> {
  let h: fs.FileHandle;
  try {
    h = await fs.open(path, C.O_RDONLY);
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'ENOENT') throw new LifeboatError('not-found', `${path} does not exist. Check the path.`);
    if (code === 'EACCES' || code === 'EPERM') throw new LifeboatError('io', `Lifeboat is not allowed to read ${path}. Check its permissions.`);
    throw new LifeboatError('io', `Cannot open ${path} (${code ?? String(e)}).`);
  }
  const st = await h.stat();
  if (!st.isFile()) {
    await h.close();
    throw new LifeboatError('invalid-argument', `${path} is not a disk image file.`);
  }
  const size = st.size;
  return {
    path,
    size,
    async read(offset: number, length: number): Promise<Buffer> {
      if (!Number.isSafeInteger(offset) || offset < 0 || length < 0 || offset + length > size || offset + length > MAX_SAFE_FILE) {
        throw new LifeboatError('corrupt', `${path} ends before byte ${offset + length} that its own tables point to; the file is truncated or damaged.`);
      }
      const buf = Buffer.alloc(length);
      let got = 0;
      while (got < length) {
        let n: number;
        try {
          n = (await h.read(buf, got, length - got, offset + got)).bytesRead;
        } catch (e) {
          throw new LifeboatError('io', `Reading ${path} failed at byte ${offset + got} (${errnoCode(e) ?? String(e)}). The drive holding it may be failing.`);
        }
        if (n === 0) throw new LifeboatError('corrupt', `${path} became shorter while it was read; it is truncated or being changed.`);
        got += n;
      }
      return buf;
    },
    close: () => h.close(),
  };
}

/** Appends [start, end) to a sorted list of ranges, merging with the last one when they touch. */
export function pushRange(out: ByteRange[], start: number, end: number): void {
  const last = out[out.length - 1];
  if (last && last.end >= start) out[out.length - 1] = { start: last.start, end: Math.max(last.end, end) };
  else out.push({ start, end });
}

// ------------------------------------------------------------------ VHD structures

export const VHD_FOOTER_SIZE = 512;
const FOOTER_COOKIE = Buffer.from('conectix');
const DYNAMIC_COOKIE = Buffer.from('cxsparse');
export const VHD_BLOCK_SIZE = 2 * 1024 * 1024;
/** The largest disk the VHD format holds (the specification's 2040 GiB). */
export const VHD_MAX_SIZE = 2040 * 1024 ** 3;
const DISK_FIXED = 2;
const DISK_DYNAMIC = 3;
const DISK_DIFFERENCING = 4;
const NO_OFFSET = 0xffffffffffffffffn;
const UNALLOCATED = 0xffffffff;
/** Largest BAT read into memory (4 bytes per block: 2 TiB of 2 MiB blocks needs 4 MiB). */
const MAX_VHD_BAT_BYTES = 64 * 1024 * 1024;
const VHD_EPOCH_MS = Date.UTC(2000, 0, 1);

/** One's complement of the byte sum, with the checksum field itself counted as zero. */
export function vhdChecksum(b: Uint8Array, checksumOffset: number): number {
  let sum = 0;
  for (let i = 0; i < b.length; i++) if (i < checksumOffset || i >= checksumOffset + 4) sum += b[i]!;
  return ~sum >>> 0;
}

/** CHS geometry for a size, the specification's algorithm (appendix "CHS calculation"). */
export function vhdGeometry(size: number): { cylinders: number; heads: number; sectorsPerTrack: number } {
  let totalSectors = Math.floor(size / 512);
  if (totalSectors > 65535 * 16 * 255) totalSectors = 65535 * 16 * 255;
  let sectorsPerTrack: number;
  let heads: number;
  let cylinderTimesHeads: number;
  if (totalSectors >= 65535 * 16 * 63) {
    sectorsPerTrack = 255;
    heads = 16;
    cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
  } else {
    sectorsPerTrack = 17;
    cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
    heads = Math.floor((cylinderTimesHeads + 1023) / 1024);
    if (heads < 4) heads = 4;
    if (cylinderTimesHeads >= heads * 1024 || heads > 16) {
      sectorsPerTrack = 31;
      heads = 16;
      cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
    }
    if (cylinderTimesHeads >= heads * 1024) {
      sectorsPerTrack = 63;
      heads = 16;
      cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
    }
  }
  return { cylinders: Math.floor(cylinderTimesHeads / heads), heads, sectorsPerTrack };
}

export interface VhdFooter {
  readonly dataOffset: bigint;
  readonly currentSize: number;
  readonly diskType: number;
}

export function encodeVhdFooter(size: number, diskType: number, dataOffset: bigint, uniqueId: Uint8Array, time: Date): Buffer {
  const b = Buffer.alloc(VHD_FOOTER_SIZE);
  FOOTER_COOKIE.copy(b, 0);
  b.writeUInt32BE(0x00000002, 8); // features: reserved bit, always set
  b.writeUInt32BE(0x00010000, 12); // file format version 1.0
  b.writeBigUInt64BE(dataOffset, 16);
  b.writeUInt32BE(Math.max(0, Math.floor((time.getTime() - VHD_EPOCH_MS) / 1000)) >>> 0, 24);
  // Creator "win " (as Hyper-V writes): readers take the disk size from current size rather than
  // from the CHS geometry, which cannot express most sizes exactly. qemu decides by this field and
  // would otherwise cut the disk down to the geometry (hiding, say, a GPT's backup header); it
  // honours current size only for "win ", "qem2", "d2v ", "CTXS" and "tap\0".
  b.write('win ', 28, 'latin1');
  b.writeUInt32BE(0x00010000, 32); // creator version
  b.write('Wi2k', 36, 'latin1'); // creator host OS
  b.writeBigUInt64BE(BigInt(size), 40); // original size
  b.writeBigUInt64BE(BigInt(size), 48); // current size
  const g = vhdGeometry(size);
  b.writeUInt16BE(g.cylinders, 56);
  b[58] = g.heads;
  b[59] = g.sectorsPerTrack;
  b.writeUInt32BE(diskType, 60);
  Buffer.from(uniqueId).copy(b, 68, 0, 16);
  b.writeUInt32BE(vhdChecksum(b, 64), 64);
  return b;
}

function parseFooter(b: Buffer, path: string): VhdFooter | undefined {
  if (b.length < VHD_FOOTER_SIZE || !b.subarray(0, 8).equals(FOOTER_COOKIE)) return undefined;
  if (b.readUInt32BE(64) !== vhdChecksum(b.subarray(0, VHD_FOOTER_SIZE), 64)) {
    throw new LifeboatError('corrupt', `The VHD footer of ${path} is damaged (its checksum does not match).`);
  }
  const size = b.readBigUInt64BE(48);
  if (size === 0n || size > BigInt(VHD_MAX_SIZE) || size % 512n !== 0n) {
    throw new LifeboatError('corrupt', `The VHD footer of ${path} gives an impossible disk size (${size} bytes).`);
  }
  return { dataOffset: b.readBigUInt64BE(16), currentSize: Number(size), diskType: b.readUInt32BE(60) };
}

/** True when the file ends (or, for a dynamic VHD, begins) with a VHD footer. */
export async function looksLikeVhd(file: FileAccess): Promise<boolean> {
  if (file.size < VHD_FOOTER_SIZE) return false;
  const tail = await file.read(file.size - VHD_FOOTER_SIZE, 8);
  if (tail.equals(FOOTER_COOKIE)) return true;
  return (await file.read(0, 8)).equals(FOOTER_COOKIE);
}

/** Opens a fixed or dynamic VHD as the disk it holds. Differencing disks are refused. */
export async function openVhd(file: FileAccess, warn: (message: string) => void = () => undefined): Promise<VirtualDisk> {
  const path = file.path;
  if (file.size < VHD_FOOTER_SIZE) throw new LifeboatError('corrupt', `${path} is too short to be a VHD file.`);
  let footer = parseFooter(await file.read(file.size - VHD_FOOTER_SIZE, VHD_FOOTER_SIZE), path);
  let footerAtEnd = true;
  if (!footer) {
    // A dynamic VHD keeps a copy of its footer at the start; the end may have been cut off.
    footer = parseFooter(await file.read(0, VHD_FOOTER_SIZE), path);
    footerAtEnd = false;
    if (!footer) throw new LifeboatError('corrupt', `${path} has no VHD footer; it is not a VHD file or it is damaged.`);
    if (footer.diskType === DISK_DYNAMIC) warn(`${path} has lost the footer at its end (the file looks truncated); using the copy at its start`);
  }
  if (footer.diskType === DISK_DIFFERENCING) {
    throw new LifeboatError('invalid-argument', `${path} is a differencing VHD (it holds only changes to a parent disk); importing differencing disks is not supported. Merge it into its parent first (for example with Hyper-V's "Edit Disk").`);
  }
  if (footer.diskType === DISK_FIXED) {
    if (!footerAtEnd) throw new LifeboatError('corrupt', `${path} is a fixed VHD without its footer at the end; it is damaged.`);
    if (footer.currentSize > file.size - VHD_FOOTER_SIZE) {
      throw new LifeboatError('corrupt', `${path} is a fixed VHD of ${footer.currentSize} bytes, but the file holds only ${file.size - VHD_FOOTER_SIZE}; it is truncated.`);
    }
    const size = footer.currentSize;
    return {
      format: 'vhd-fixed',
      size,
      allocated: [{ start: 0, end: size }],
      read: (offset, length) => file.read(offset, Math.max(0, Math.min(length, size - offset))).then((b) => (b.length === length ? b : Buffer.concat([b, Buffer.alloc(length - b.length)]))),
      close: () => file.close(),
    };
  }
  if (footer.diskType !== DISK_DYNAMIC) throw new LifeboatError('corrupt', `${path} has an unknown VHD disk type (${footer.diskType}).`);
  return openDynamicVhd(file, footer);
}

async function openDynamicVhd(file: FileAccess, footer: VhdFooter): Promise<VirtualDisk> {
  const path = file.path;
  const bad = (what: string) => new LifeboatError('corrupt', `The dynamic VHD header of ${path} is damaged (${what}).`);
  if (footer.dataOffset === NO_OFFSET || footer.dataOffset + 1024n > BigInt(file.size)) throw bad('it points outside the file');
  const h = await file.read(Number(footer.dataOffset), 1024);
  if (!h.subarray(0, 8).equals(DYNAMIC_COOKIE)) throw bad('wrong signature');
  if (h.readUInt32BE(36) !== vhdChecksum(h, 36)) throw bad('checksum mismatch');
  const tableOffset = h.readBigUInt64BE(16);
  const maxEntries = h.readUInt32BE(28);
  const blockSize = h.readUInt32BE(32);
  if (blockSize < 4096 || blockSize > 256 * 1024 * 1024 || (blockSize & (blockSize - 1)) !== 0) throw bad(`block size ${blockSize}`);
  const size = footer.currentSize;
  const blocks = Math.ceil(size / blockSize);
  if (maxEntries < blocks) throw bad('its block table is too short for the disk size');
  if (blocks * 4 > MAX_VHD_BAT_BYTES) throw bad('its block table is too large');
  if (tableOffset + BigInt(blocks * 4) > BigInt(file.size)) throw bad('its block table lies past the end of the file');
  const bat = await file.read(Number(tableOffset), blocks * 4);
  const bitmapSize = Math.ceil(blockSize / 512 / 8 / 512) * 512;
  const allocated: ByteRange[] = [];
  for (let i = 0; i < blocks; i++) {
    const sector = bat.readUInt32BE(i * 4);
    if (sector === UNALLOCATED) continue;
    const end = Math.min(blockSize, size - i * blockSize);
    if (sector * 512 + bitmapSize + end > file.size) {
      throw new LifeboatError('corrupt', `Block ${i} of the VHD ${path} points past the end of the file; the file is truncated or damaged.`);
    }
    pushRange(allocated, i * blockSize, i * blockSize + end);
  }

  // Sectors whose bitmap bit is clear were never written and read as zeros. Cache one bitmap.
  let cachedBlock = -1;
  let cachedBitmap: Buffer = Buffer.alloc(0);
  const bitmapOf = async (block: number, sector: number): Promise<Buffer> => {
    if (block !== cachedBlock) {
      cachedBitmap = await file.read(sector * 512, bitmapSize);
      cachedBlock = block;
    }
    return cachedBitmap;
  };

  return {
    format: 'vhd-dynamic',
    size,
    allocated,
    read: (offset: number, length: number) =>
      readByBlocks(offset, length, size, blockSize, async (block, within, n, out, at) => {
        const sector = bat.readUInt32BE(block * 4);
        if (sector === UNALLOCATED) return;
        const data = await file.read(sector * 512 + bitmapSize + within, n);
        const bitmap = await bitmapOf(block, sector);
        // Copy sector runs whose bitmap bit is set (most significant bit first).
        for (let s = Math.floor(within / 512); s * 512 < within + n; s++) {
          if (((bitmap[s >> 3]! >> (7 - (s & 7))) & 1) === 0) continue;
          const a = Math.max(within, s * 512);
          const b = Math.min(within + n, (s + 1) * 512);
          data.copy(out, at + (a - within), a - within, b - within);
        }
      }),
    close: () => file.close(),
  };
}

// ------------------------------------------------------------------ writing a dynamic VHD

/**
 * Layout: footer copy (512) ‖ dynamic header (1024) ‖ BAT (4 bytes per 2 MiB block, padded to a
 * sector) ‖ blocks, each a 512-byte sector bitmap (all ones) and 2 MiB of data, placed so the data
 * starts 4 KiB-aligned ‖ footer. Blocks of zeros are not allocated.
 */
export class VhdWriter implements BlockFormatWriter {
  readonly blockSize = VHD_BLOCK_SIZE;
  private readonly blocks: number;
  private readonly bat: Buffer;
  private next: number;
  private readonly uniqueId = randomBytes(16);
  private readonly time = new Date(systemClock.now());
  private static readonly BITMAP = Buffer.alloc(512, 0xff);

  constructor(
    private readonly out: ByteSink,
    readonly size: number,
  ) {
    if (size <= 0 || size % 512 !== 0) throw new LifeboatError('invalid-argument', `A VHD must hold a whole number of 512-byte sectors, but this disk has ${size} bytes; export it as raw or VHDX instead.`);
    if (size > VHD_MAX_SIZE) throw new LifeboatError('invalid-argument', `This disk (${size} bytes) is larger than a VHD can hold (2040 GiB); export it as VHDX instead.`);
    this.blocks = Math.ceil(size / this.blockSize);
    this.bat = Buffer.alloc(Math.ceil((this.blocks * 4) / 512) * 512, 0xff);
    const batEnd = 1536 + this.bat.length;
    this.next = Math.ceil((batEnd + 512) / 4096) * 4096 - 512;
  }

  async writeBlock(index: number, data: Buffer | undefined): Promise<void> {
    if (!data) return;
    this.bat.writeUInt32BE(this.next / 512, index * 4);
    await this.out.write(this.next, VhdWriter.BITMAP);
    await this.out.write(this.next + 512, data);
    this.next += 512 + this.blockSize;
  }

  async finish(): Promise<void> {
    const footer = encodeVhdFooter(this.size, DISK_DYNAMIC, 512n, this.uniqueId, this.time);
    await this.out.write(this.next, footer);
    const h = Buffer.alloc(1024);
    DYNAMIC_COOKIE.copy(h, 0);
    h.writeBigUInt64BE(NO_OFFSET, 8);
    h.writeBigUInt64BE(1536n, 16); // table offset
    h.writeUInt32BE(0x00010000, 24); // header version
    h.writeUInt32BE(this.blocks, 28);
    h.writeUInt32BE(this.blockSize, 32);
    h.writeUInt32BE(vhdChecksum(h, 36), 36);
    await this.out.write(1536, this.bat);
    await this.out.write(512, h);
    await this.out.write(0, footer);
  }
}

/**
 * Reads [offset, offset+length) of a block-structured virtual disk (VHD, VHDX): `fill` copies the
 * `n` bytes at `within` of block `block` into `out` at `at`, or leaves them as zeros.
 */
export async function readByBlocks(
  offset: number,
  length: number,
  size: number,
  blockSize: number,
  fill: (block: number, within: number, n: number, out: Buffer, at: number) => Promise<void>,
): Promise<Uint8Array> {
  const out = Buffer.alloc(length);
  const end = Math.min(size, offset + length);
  for (let pos = offset; pos < end; ) {
    const block = Math.floor(pos / blockSize);
    const within = pos - block * blockSize;
    const n = Math.min(blockSize - within, end - pos);
    await fill(block, within, n, out, pos - offset);
    pos += n;
  }
  return out;
}
