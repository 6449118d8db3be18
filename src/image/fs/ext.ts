/**
 * ext2/ext3/ext4 allocation: superblock, group descriptors (32- and 64-byte, checksummed with
 * gdt_csum or metadata_csum), block bitmaps. A group marked BLOCK_UNINIT has no bitmap on disk; for
 * it, every metadata block that lives inside it (its own superblock backup and descriptor copies,
 * and the bitmaps and inode tables of any group — with flex_bg those of other groups sit there
 * too) is counted as used, a superset of what the kernel would compute.
 */
import { crc16Update, crc32cUpdate } from '../checksum.js';
import { bitmapRuns, mergeRanges, rangeBytes, type ByteRange } from '../ranges.js';
import type { BlockSource } from '../source.js';
import {
  FilesystemError, LIMITS, bufferFile, extentFile, le, partitionReader, pushExtent,
  type EntryType, type Extent, type FilesystemAnalysis, type FilesystemReader, type FilesystemType, type FsEntry, type FsFile, type ReadableFilesystemModule,
} from './types.js';

const MAGIC = 0xef53;
const COMPAT_HAS_JOURNAL = 0x4;
const INCOMPAT_RECOVER = 0x4;
const INCOMPAT_JOURNAL_DEV = 0x8;
const INCOMPAT_META_BG = 0x10;
const INCOMPAT_EXTENTS = 0x40;
const INCOMPAT_64BIT = 0x80;
const INCOMPAT_FLEX_BG = 0x200;
const INCOMPAT_CSUM_SEED = 0x2000;
const RO_SPARSE_SUPER = 0x1;
const RO_HUGE_FILE = 0x8;
const RO_GDT_CSUM = 0x10;
const RO_BIGALLOC = 0x200;
const RO_METADATA_CSUM = 0x400;
const BG_BLOCK_UNINIT = 0x2;

/** Bitmaps read per request: consecutive bitmap blocks (flex_bg packs them) are read together. */
const MAX_BATCH = 1024 * 1024;

interface Super {
  blocksCount: number; freeBlocks: number; firstDataBlock: number; blockSize: number; blocksPerGroup: number;
  inodesPerGroup: number; inodeSize: number; compat: number; incompat: number; roCompat: number; descSize: number;
  groups: number; reservedGdtBlocks: number; uuid: Uint8Array; label: string; csumSeed: number; raw: Uint8Array;
}

function parseSuper(sb: Uint8Array, partitionSize: number, reading = false): Super {
  const v = le(sb);
  const bad = (why: string) => new FilesystemError('ext', why, { reading });
  if (v.getUint16(0x38, true) !== MAGIC) throw bad('no ext superblock magic');
  const logBlock = v.getUint32(0x18, true);
  if (logBlock > 6) throw bad(`block size 2^${10 + logBlock} is invalid`);
  const blockSize = 1024 << logBlock;
  const incompat = v.getUint32(0x60, true);
  const roCompat = v.getUint32(0x64, true);
  const is64 = (incompat & INCOMPAT_64BIT) !== 0;
  const blocksCount = v.getUint32(0x04, true) + (is64 ? v.getUint32(0x150, true) * 0x100000000 : 0);
  const freeBlocks = v.getUint32(0x0c, true) + (is64 ? v.getUint32(0x158, true) * 0x100000000 : 0);
  const firstDataBlock = v.getUint32(0x14, true);
  const blocksPerGroup = v.getUint32(0x20, true);
  const inodesPerGroup = v.getUint32(0x28, true);
  const rev = v.getUint32(0x4c, true);
  const inodeSize = rev === 0 ? 128 : v.getUint16(0x58, true);
  const descSize = is64 ? v.getUint16(0xfe, true) : 32;
  if (blocksCount < 8 || blocksCount * blockSize > partitionSize) throw bad(`${blocksCount} blocks of ${blockSize} bytes do not fit the partition of ${partitionSize} bytes`);
  if (freeBlocks > blocksCount) throw bad('more free blocks than blocks');
  if (firstDataBlock !== (blockSize === 1024 ? 1 : 0)) throw bad(`first data block ${firstDataBlock} is invalid for ${blockSize}-byte blocks`);
  if (blocksPerGroup < 256 || blocksPerGroup > blockSize * 8 || blocksPerGroup % 8 !== 0) throw bad(`${blocksPerGroup} blocks per group is invalid`);
  if (inodeSize < 128 || inodeSize > blockSize || (inodeSize & (inodeSize - 1)) !== 0) throw bad(`inode size ${inodeSize} is invalid`);
  if (inodesPerGroup === 0 || inodesPerGroup > blockSize * 8) throw bad(`${inodesPerGroup} inodes per group is invalid`);
  if (descSize < 32 || descSize > 1024 || (is64 && descSize < 64) || (descSize & (descSize - 1)) !== 0) throw bad(`group descriptor size ${descSize} is invalid`);
  if (incompat & INCOMPAT_JOURNAL_DEV) throw new FilesystemError('ext', 'this is an external journal device', { unsupported: true, reading });
  if (incompat & INCOMPAT_META_BG) throw new FilesystemError('ext', 'meta_bg', { unsupported: true, reading });
  if (roCompat & RO_BIGALLOC && !reading) throw new FilesystemError('ext', 'bigalloc', { unsupported: true });
  // Journal not replayed: the on-disk bitmaps may be behind what committed transactions allocated.
  // (Browsing reads what is on disk, as debugfs does.)
  if (incompat & INCOMPAT_RECOVER && !reading) throw new FilesystemError('ext', 'its journal has not been replayed (mounted, or not cleanly unmounted)', { unsupported: true });
  const uuid = sb.subarray(0x68, 0x78);
  if (roCompat & RO_METADATA_CSUM) {
    const want = v.getUint32(0x3fc, true);
    if (crc32cUpdate(0xffffffff, sb.subarray(0, 0x3fc)) !== want) throw bad('superblock checksum mismatch');
  }
  let label = '';
  for (let i = 0x78; i < 0x88 && sb[i] !== 0; i++) label += String.fromCharCode(sb[i]!);
  return {
    blocksCount, freeBlocks, firstDataBlock, blockSize, blocksPerGroup, inodesPerGroup, inodeSize, compat: v.getUint32(0x5c, true), incompat, roCompat, descSize,
    groups: Math.ceil((blocksCount - firstDataBlock) / blocksPerGroup), reservedGdtBlocks: v.getUint16(0xce, true), uuid,
    label: Buffer.from(label, 'latin1').toString('utf8'),
    csumSeed: incompat & INCOMPAT_CSUM_SEED ? v.getUint32(0x270, true) : crc32cUpdate(0xffffffff, uuid),
    raw: sb,
  };
}

function hasSuperBackup(s: Super, g: number): boolean {
  if (g <= 1 || !(s.roCompat & RO_SPARSE_SUPER)) return true;
  for (const base of [3, 5, 7]) {
    let p = base;
    while (p < g) p *= base;
    if (p === g) return true;
  }
  return false;
}

function descChecksum(s: Super, g: number, d: Uint8Array): number | undefined {
  const groupLe = new Uint8Array(4);
  le(groupLe).setUint32(0, g, true);
  if (s.roCompat & RO_METADATA_CSUM) {
    let c = crc32cUpdate(s.csumSeed, groupLe);
    c = crc32cUpdate(c, d.subarray(0, 0x1e));
    c = crc32cUpdate(c, new Uint8Array(2));
    if (s.descSize > 0x20) c = crc32cUpdate(c, d.subarray(0x20, s.descSize));
    return c & 0xffff;
  }
  if (s.roCompat & RO_GDT_CSUM) {
    let c = crc16Update(0xffff, s.uuid);
    c = crc16Update(c, groupLe);
    c = crc16Update(c, d.subarray(0, 0x1e));
    if (s.incompat & INCOMPAT_64BIT && s.descSize > 0x20) c = crc16Update(c, d.subarray(0x20, s.descSize));
    return c;
  }
  return undefined;
}

function typeOf(s: Super): FilesystemType {
  if (s.incompat & (INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG) || s.roCompat & (RO_HUGE_FILE | RO_GDT_CSUM | RO_METADATA_CSUM)) return 'ext4';
  return s.compat & COMPAT_HAS_JOURNAL ? 'ext3' : 'ext2';
}

async function analyze(source: BlockSource, offset: number, size: number): Promise<FilesystemAnalysis> {
  const read = partitionReader(source, 'ext', offset, size);
  if (size < 2048) throw new FilesystemError('ext', 'partition too small');
  const s = parseSuper(await read(1024, 1024), size);
  const bs = s.blockSize;
  const bad = (why: string) => new FilesystemError(typeOf(s), why);
  const is64 = (s.incompat & INCOMPAT_64BIT) !== 0;
  const csums = (s.roCompat & (RO_METADATA_CSUM | RO_GDT_CSUM)) !== 0;

  // Group descriptor table: right after the superblock's block.
  const gdtBlocks = Math.ceil((s.groups * s.descSize) / bs);
  const gdt = await read((s.firstDataBlock + 1) * bs, gdtBlocks * bs);
  const itableBlocks = Math.ceil((s.inodesPerGroup * s.inodeSize) / bs);
  const inFs = (blk: number, n: number) => blk >= s.firstDataBlock && blk + n <= s.blocksCount;

  interface Group { bitmap: number; uninit: boolean; blocks: number }
  const groups: Group[] = [];
  const metadata: ByteRange[] = [];
  let descFree = 0;
  for (let g = 0; g < s.groups; g++) {
    const d = gdt.subarray(g * s.descSize, (g + 1) * s.descSize);
    const v = le(d);
    const hi = (o: number) => (is64 ? v.getUint32(o, true) * 0x100000000 : 0);
    const blockBitmap = v.getUint32(0x0, true) + hi(0x20);
    const inodeBitmap = v.getUint32(0x4, true) + hi(0x24);
    const inodeTable = v.getUint32(0x8, true) + hi(0x28);
    const flags = v.getUint16(0x12, true);
    descFree += v.getUint16(0xc, true) + (is64 ? v.getUint16(0x2c, true) * 0x10000 : 0);
    const want = descChecksum(s, g, d);
    if (want !== undefined && want !== v.getUint16(0x1e, true)) throw bad(`group descriptor ${g} checksum mismatch`);
    if (!inFs(blockBitmap, 1) || !inFs(inodeBitmap, 1) || !inFs(inodeTable, itableBlocks)) throw bad(`group ${g} places its bitmaps or inode table outside the filesystem`);
    const start = s.firstDataBlock + g * s.blocksPerGroup;
    groups.push({ bitmap: blockBitmap, uninit: csums && (flags & BG_BLOCK_UNINIT) !== 0, blocks: Math.min(s.blocksPerGroup, s.blocksCount - start) });
    // Metadata of every group is used wherever it lives; this is what makes BLOCK_UNINIT groups safe.
    metadata.push({ start: blockBitmap * bs, end: (blockBitmap + 1) * bs }, { start: inodeBitmap * bs, end: (inodeBitmap + 1) * bs }, { start: inodeTable * bs, end: (inodeTable + itableBlocks) * bs });
    if (hasSuperBackup(s, g)) {
      // Superblock (or its backup) plus the descriptor table and the blocks reserved for its growth.
      const n = 1 + gdtBlocks + s.reservedGdtBlocks;
      metadata.push({ start: start * bs, end: Math.min(s.blocksCount, start + n) * bs });
    }
  }

  const used: ByteRange[] = [{ start: 0, end: Math.max(2048, (s.firstDataBlock + 1) * bs) }]; // boot area and superblock, always
  let usedBlocks = s.firstDataBlock; // block 0 of a 1 KiB-block filesystem belongs to no group
  // Read bitmaps, batching consecutive ones.
  let g = 0;
  while (g < groups.length) {
    const first = groups[g]!;
    if (first.uninit) {
      g++;
      continue;
    }
    let n = 1;
    while (g + n < groups.length && !groups[g + n]!.uninit && groups[g + n]!.bitmap === first.bitmap + n && (n + 1) * bs <= MAX_BATCH) n++;
    const bitmaps = await read(first.bitmap * bs, n * bs);
    for (let k = 0; k < n; k++) {
      const gi = g + k;
      const grp = groups[gi]!;
      const groupStart = s.firstDataBlock + gi * s.blocksPerGroup;
      usedBlocks += bitmapRuns(bitmaps.subarray(k * bs, (k + 1) * bs), grp.blocks, groupStart, bs, 0, used);
    }
    g += n;
  }
  // Uninitialised groups contribute only their metadata, counted after merging.
  const all = mergeRanges([...used, ...metadata], size);
  const bitmapUsedBytes = usedBlocks * bs;
  const usedBytes = Math.max(bitmapUsedBytes, rangeBytes(mergeRanges(all, s.blocksCount * bs)));
  const used64 = Math.round(usedBytes / bs);
  const sbUsed = s.blocksCount - s.freeBlocks;
  const slack = Math.max(64, Math.floor(s.blocksCount / 50));
  if (Math.abs(used64 - sbUsed) > slack) throw bad(`the block bitmaps mark ${used64} blocks used but the superblock says ${sbUsed}`);
  if (Math.abs(s.blocksCount - used64 - descFree) > slack) throw bad(`the block bitmaps mark ${s.blocksCount - used64} blocks free but the group descriptors say ${descFree}`);
  const warnings: string[] = [];
  if (used64 !== sbUsed) warnings.push(`the bitmaps mark ${used64} blocks used, the superblock's free count says ${sbUsed}`);
  // Whatever of the partition lies beyond the filesystem is not the filesystem's to call free.
  const fsEnd = s.blocksCount * bs;
  const withTail = fsEnd < size ? mergeRanges([...all, { start: fsEnd, end: size }], size) : all;
  const uuidHex = Buffer.from(s.uuid).toString('hex');
  return {
    info: {
      type: typeOf(s),
      ...(s.label ? { label: s.label } : {}),
      uuid: `${uuidHex.slice(0, 8)}-${uuidHex.slice(8, 12)}-${uuidHex.slice(12, 16)}-${uuidHex.slice(16, 20)}-${uuidHex.slice(20)}`,
      blockSize: bs,
      totalBytes: fsEnd,
      usedBytes,
      warnings,
    },
    used: withTail,
  };
}

// ------------------------------------------------------------------ read-only browsing

const INCOMPAT_FILETYPE = 0x2;
const FL_EXTENTS = 0x80000;
const FL_INLINE_DATA = 0x10000000;
const ROOT_INODE = 2;
const EXTENT_MAGIC = 0xf30a;
/** Extent tree nodes and indirect blocks read for one file: far more than any real file needs. */
const MAX_MAP_BLOCKS = 1 << 20;
// Hashed (htree) folders are read as linear ones: their index blocks are empty entries spanning
// the whole block, so every leaf entry is found by a scan, as e2fsck reads them.

async function open(source: BlockSource, offset: number, size: number): Promise<FilesystemReader> {
  const read = partitionReader(source, 'ext', offset, size, true);
  if (size < 2048) throw new FilesystemError('ext', 'partition too small', { reading: true });
  const s = parseSuper(await read(1024, 1024), size, true);
  const type = typeOf(s);
  const bs = s.blockSize;
  const dmg = (why: string) => new FilesystemError(type, why, { reading: true });
  const is64 = (s.incompat & INCOMPAT_64BIT) !== 0;
  const gdtBlocks = Math.ceil((s.groups * s.descSize) / bs);
  const gdt = await read((s.firstDataBlock + 1) * bs, gdtBlocks * bs);
  const itableBlocks = Math.ceil((s.inodesPerGroup * s.inodeSize) / bs);
  const inodeCount = s.inodesPerGroup * s.groups;
  const hasFiletype = (s.incompat & INCOMPAT_FILETYPE) !== 0;

  const inodeTable = (g: number): number => {
    const v = le(gdt.subarray(g * s.descSize, (g + 1) * s.descSize));
    const t = v.getUint32(0x8, true) + (is64 ? v.getUint32(0x28, true) * 0x100000000 : 0);
    if (t < s.firstDataBlock || t + itableBlocks > s.blocksCount) throw dmg(`group ${g} places its inode table outside the filesystem`);
    return t;
  };
  const readInode = async (n: number): Promise<Uint8Array> => {
    if (!Number.isSafeInteger(n) || n < 1 || n > inodeCount) throw dmg(`inode ${n} does not exist`);
    const g = Math.floor((n - 1) / s.inodesPerGroup);
    const i = (n - 1) % s.inodesPerGroup;
    return read(inodeTable(g) * bs + i * s.inodeSize, s.inodeSize);
  };

  const fileSize = (raw: Uint8Array) => {
    const v = le(raw);
    return v.getUint32(0x4, true) + v.getUint32(0x6c, true) * 0x100000000;
  };
  const time = (raw: Uint8Array, at: number, extraAt: number): number => {
    const v = le(raw);
    const sec = v.getInt32(at, true);
    const extraIsize = raw.length > 128 ? v.getUint16(0x80, true) : 0;
    const extra = 0x80 + extraIsize >= extraAt + 4 && extraAt + 4 <= raw.length ? v.getUint32(extraAt, true) : 0;
    return (sec + (extra & 3) * 0x100000000) * 1000 + (extra >>> 2) / 1e6;
  };
  const entryOf = (raw: Uint8Array, n: number, nameBytes: Buffer): FsEntry => {
    const v = le(raw);
    const mode = v.getUint16(0, true);
    const fmt = mode & 0xf000;
    const t: EntryType = fmt === 0x4000 ? 'dir' : fmt === 0x8000 ? 'file' : fmt === 0xa000 ? 'symlink' : 'other';
    const nlink = v.getUint16(0x1a, true);
    const base = { name: nameBytes.toString('utf8'), nameBytes, ref: n };
    if (fmt === 0 || nlink === 0) return { ...base, type: 'other', size: 0, mode: 0, damaged: `inode ${n} is not in use` };
    return {
      ...base,
      type: t,
      size: fileSize(raw),
      mode: mode & 0o7777,
      uid: v.getUint16(0x2, true) | (v.getUint16(0x78, true) << 16),
      gid: v.getUint16(0x18, true) | (v.getUint16(0x7a, true) << 16),
      atime: time(raw, 0x8, 0x8c),
      ctime: time(raw, 0xc, 0x84),
      mtime: time(raw, 0x10, 0x88),
      nlink,
    };
  };

  /** The value of the in-inode extended attribute system.data (the rest of inline data). */
  const inlineXattr = (raw: Uint8Array): Uint8Array => {
    if (raw.length <= 128) return new Uint8Array(0);
    const v = le(raw);
    const start = 0x80 + v.getUint16(0x80, true);
    if (start + 4 > raw.length || v.getUint32(start, true) !== 0xea020000) return new Uint8Array(0);
    const first = start + 4;
    let o = first;
    while (o + 16 <= raw.length && v.getUint32(o, true) !== 0) {
      const nameLen = raw[o]!;
      const index = raw[o + 1]!;
      const valueOffs = v.getUint16(o + 2, true);
      const valueSize = v.getUint32(o + 8, true);
      if (o + 16 + nameLen > raw.length) break;
      if (index === 7 && nameLen === 4 && Buffer.from(raw.subarray(o + 16, o + 20)).toString('latin1') === 'data') {
        if (first + valueOffs + valueSize > raw.length) throw dmg('inline data runs past its inode');
        return raw.subarray(first + valueOffs, first + valueOffs + valueSize);
      }
      o += (16 + nameLen + 3) & ~3;
    }
    return new Uint8Array(0);
  };

  const inFs = (blk: number, n: number) => blk >= s.firstDataBlock && blk + n <= s.blocksCount;

  /** The file's extents in bytes, sorted; unwritten extents read as zeros. */
  const mapBlocks = async (raw: Uint8Array, n: number, size: number): Promise<Extent[]> => {
    const v = le(raw);
    const flags = v.getUint32(0x20, true);
    const nblocks = Math.ceil(size / bs);
    const blocks: { l: number; n: number; p: number | undefined }[] = [];
    let visited = 0;
    // A mapping block reached twice is damage (and would multiply the work at every level).
    const seen = new Set<number>();
    const once = (blk: number) => {
      if (seen.has(blk)) throw dmg(`inode ${n}: mapping block ${blk} is referenced twice`);
      seen.add(blk);
    };
    if (flags & FL_EXTENTS) {
      const node = async (buf: Uint8Array, expectDepth: number | undefined): Promise<void> => {
        const nv = le(buf);
        if (nv.getUint16(0, true) !== EXTENT_MAGIC) throw dmg(`inode ${n}: extent tree node without its signature`);
        const entries = nv.getUint16(2, true);
        const depth = nv.getUint16(6, true);
        if (12 + entries * 12 > buf.length || depth > 5 || (expectDepth !== undefined && depth !== expectDepth)) throw dmg(`inode ${n}: extent tree node is invalid`);
        if (++visited > MAX_MAP_BLOCKS) throw dmg(`inode ${n}: extent tree too large`);
        for (let k = 0; k < entries; k++) {
          const o = 12 + k * 12;
          if (depth === 0) {
            const lblk = nv.getUint32(o, true);
            let len = nv.getUint16(o + 4, true);
            const uninit = len > 32768;
            if (uninit) len -= 32768;
            const start = nv.getUint16(o + 6, true) * 0x100000000 + nv.getUint32(o + 8, true);
            if (len === 0) continue;
            if (!inFs(start, len)) throw dmg(`inode ${n}: extent at block ${start} (${len} blocks) lies outside the filesystem`);
            if (lblk >= nblocks) continue; // preallocated past the end
            if (blocks.length >= LIMITS.extents) throw dmg(`inode ${n}: too many extents`);
            blocks.push({ l: lblk, n: Math.min(len, nblocks - lblk), p: uninit ? undefined : start });
          } else {
            const child = nv.getUint16(o + 8, true) * 0x100000000 + nv.getUint32(o + 4, true);
            if (!inFs(child, 1)) throw dmg(`inode ${n}: extent tree points outside the filesystem`);
            once(child);
            await node(await read(child * bs, bs), depth - 1);
          }
        }
      };
      await node(raw.subarray(0x28, 0x28 + 60), undefined);
    } else {
      const per = bs / 4;
      const add = (l: number, p: number) => {
        if (!inFs(p, 1)) throw dmg(`inode ${n}: block ${p} lies outside the filesystem`);
        if (blocks.length >= LIMITS.extents * 16) throw dmg(`inode ${n}: too many blocks`);
        const last = blocks[blocks.length - 1];
        if (last && last.p !== undefined && last.l + last.n === l && last.p + last.n === p) last.n++;
        else blocks.push({ l, n: 1, p });
      };
      const indirect = async (ptr: number, level: number, base: number): Promise<void> => {
        if (base >= nblocks) return;
        if (!inFs(ptr, 1)) throw dmg(`inode ${n}: indirect block ${ptr} lies outside the filesystem`);
        if (++visited > MAX_MAP_BLOCKS) throw dmg(`inode ${n}: too many indirect blocks`);
        once(ptr);
        const blk = le(await read(ptr * bs, bs));
        const span = per ** (level - 1);
        for (let k = 0; k < per; k++) {
          const lb = base + k * span;
          if (lb >= nblocks) break;
          const p = blk.getUint32(k * 4, true);
          if (p === 0) continue;
          if (level === 1) add(lb, p);
          else await indirect(p, level - 1, lb);
        }
      };
      for (let k = 0; k < 12 && k < nblocks; k++) {
        const p = v.getUint32(0x28 + k * 4, true);
        if (p) add(k, p);
      }
      const i1 = v.getUint32(0x28 + 48, true);
      const i2 = v.getUint32(0x28 + 52, true);
      const i3 = v.getUint32(0x28 + 56, true);
      if (i1) await indirect(i1, 1, 12);
      if (i2) await indirect(i2, 2, 12 + per);
      if (i3) await indirect(i3, 3, 12 + per + per * per);
    }
    blocks.sort((a, b) => a.l - b.l);
    const out: Extent[] = [];
    let end = 0;
    for (const b of blocks) {
      if (b.l < end) throw dmg(`inode ${n}: extents overlap`);
      pushExtent(out, b.l * bs, b.n * bs, b.p === undefined ? undefined : b.p * bs);
      end = b.l + b.n;
    }
    return out;
  };

  const openInode = async (raw: Uint8Array, n: number): Promise<FsFile> => {
    const size = fileSize(raw);
    const flags = le(raw).getUint32(0x20, true);
    if (flags & FL_INLINE_DATA) {
      const inline = Buffer.concat([raw.subarray(0x28, 0x28 + 60), inlineXattr(raw)]);
      if (size > inline.length) throw dmg(`inode ${n}: inline data shorter than the file`);
      return bufferFile(inline.subarray(0, size));
    }
    if (size > 2 ** 32 * bs) throw dmg(`inode ${n}: size ${size} is more than ext can address`);
    return extentFile(await mapBlocks(raw, n, size), size, read);
  };

  const isFastSymlink = (raw: Uint8Array): boolean => {
    const v = le(raw);
    const flags = v.getUint32(0x20, true);
    if (flags & (FL_EXTENTS | FL_INLINE_DATA)) return false;
    const blocks512 = v.getUint32(0x1c, true);
    const acl = v.getUint32(0x68, true);
    return fileSize(raw) < 60 && blocks512 - (acl ? bs / 512 : 0) === 0;
  };

  const parseDirBlock = (blk: Uint8Array, n: number, out: { ino: number; name: Buffer }[]) => {
    const v = le(blk);
    let o = 0;
    while (o + 8 <= blk.length) {
      const ino = v.getUint32(o, true);
      let rec = v.getUint16(o + 4, true);
      if (rec === 0 && blk.length === 65536 && o === 0) rec = 65536;
      const nl = hasFiletype ? blk[o + 6]! : v.getUint16(o + 6, true);
      if (rec < 8 || rec % 4 !== 0 || o + rec > blk.length) throw dmg(`folder inode ${n}: entry at ${o} has an invalid length ${rec}`);
      if (ino !== 0 && nl > 0) {
        if (8 + nl > rec) throw dmg(`folder inode ${n}: name of entry at ${o} runs past it`);
        const name = Buffer.from(blk.subarray(o + 8, o + 8 + nl));
        const dot = (name.length === 1 && name[0] === 0x2e) || (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e);
        if (!dot) {
          if (out.length >= LIMITS.dirEntries) throw dmg(`folder inode ${n} has too many entries`);
          out.push({ ino, name });
        }
      }
      o += rec;
    }
  };

  const reader: FilesystemReader = {
    type,
    ...(s.label ? { label: s.label } : {}),
    async root() {
      const raw = await readInode(ROOT_INODE);
      const e = entryOf(raw, ROOT_INODE, Buffer.from('/'));
      if (e.type !== 'dir') throw dmg('the root folder is not a folder');
      return e;
    },
    async list(dir) {
      const raw = await readInode(dir.ref);
      if ((le(raw).getUint16(0, true) & 0xf000) !== 0x4000) throw dmg(`inode ${dir.ref} is not a folder`);
      const names: { ino: number; name: Buffer }[] = [];
      const flags = le(raw).getUint32(0x20, true);
      if (flags & FL_INLINE_DATA) {
        // Inline folder: the parent's inode number, then entries; more entries in system.data.
        parseDirBlock(raw.subarray(0x28 + 4, 0x28 + 60), dir.ref, names);
        const more = inlineXattr(raw);
        if (more.length > 0) parseDirBlock(more, dir.ref, names);
      } else {
        const f = await openInode(raw, dir.ref);
        if (f.size > LIMITS.dirBytes) throw dmg(`folder inode ${dir.ref} is ${f.size} bytes long`);
        for (let o = 0; o < f.size; o += bs) parseDirBlock(await f.read(o, bs), dir.ref, names);
      }
      const out: FsEntry[] = [];
      for (const { ino, name } of names) {
        try {
          out.push(entryOf(await readInode(ino), ino, name));
        } catch (e) {
          if (!(e instanceof FilesystemError)) throw e;
          out.push({ name: name.toString('utf8'), nameBytes: name, ref: ino, type: 'other', size: 0, mode: 0, damaged: e.reason });
        }
      }
      return out;
    },
    async open(file, stream) {
      if (stream !== undefined) throw dmg('ext files have no named streams');
      const raw = await readInode(file.ref);
      if ((le(raw).getUint16(0, true) & 0xf000) === 0x4000) throw dmg(`inode ${file.ref} is a folder`);
      return openInode(raw, file.ref);
    },
    async readlink(link) {
      const raw = await readInode(link.ref);
      const size = fileSize(raw);
      if (size > 4096) throw dmg(`symlink inode ${link.ref} is ${size} bytes long`);
      if (isFastSymlink(raw)) return Buffer.from(raw.subarray(0x28, 0x28 + size));
      const f = await openInode(raw, link.ref);
      return Buffer.from(await f.read(0, size));
    },
  };
  return reader;
}

export const ext: ReadableFilesystemModule = {
  name: 'ext',
  async detect(source, offset, size) {
    if (size < 2048) return false;
    const sb = await source.read(offset + 1024, 1024);
    return le(sb).getUint16(0x38, true) === MAGIC;
  },
  analyze,
  open,
};
