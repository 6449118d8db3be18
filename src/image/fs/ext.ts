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
import { FilesystemError, le, partitionReader, type FilesystemAnalysis, type FilesystemModule, type FilesystemType } from './types.js';

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

function parseSuper(sb: Uint8Array, partitionSize: number): Super {
  const v = le(sb);
  const bad = (why: string) => new FilesystemError('ext', why);
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
  if (incompat & INCOMPAT_JOURNAL_DEV) throw new FilesystemError('ext', 'this is an external journal device', { unsupported: true });
  if (incompat & INCOMPAT_META_BG) throw new FilesystemError('ext', 'meta_bg', { unsupported: true });
  if (roCompat & RO_BIGALLOC) throw new FilesystemError('ext', 'bigalloc', { unsupported: true });
  // Journal not replayed: the on-disk bitmaps may be behind what committed transactions allocated.
  if (incompat & INCOMPAT_RECOVER) throw new FilesystemError('ext', 'its journal has not been replayed (mounted, or not cleanly unmounted)', { unsupported: true });
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

export const ext: FilesystemModule = {
  name: 'ext',
  async detect(source, offset, size) {
    if (size < 2048) return false;
    const sb = await source.read(offset + 1024, 1024);
    return le(sb).getUint16(0x38, true) === MAGIC;
  },
  analyze,
};
