/**
 * image — disk images (DESIGN.md layer 5).
 *
 * Owns: reading drives and image files (source.ts, with the OS-specific facts — device size,
 * mounts, partitions of a drive — confined to platform/), partition tables (partition.ts: MBR with
 * extended/logical partitions, GPT with both headers, relocation of the GPT backup onto a larger
 * drive), one module per filesystem under fs/ (ext2/3/4, FAT12/16/32, NTFS) that yields its used
 * byte ranges, the imager and restorer (imager.ts, layout.ts, target.ts, manifest.ts) and export
 * and import of VHD/VHDX/raw.
 *
 * May import: util, chunking, repo, store. The parsing half (source, platform, partition, fs,
 * ranges, checksum) imports only util, so it can read a drive, an image file, a buffer, or an
 * image stored in the repository through the same BlockSource.
 *
 * Invariant: never leave out a byte that is not certainly free (partitions the user leaves out,
 * layout.ts PartitionChoice, are the one exception: recorded as such, and restored empty). Filesystem metadata is untrusted
 * input: every count and offset is bounded before use, and anything damaged, inconsistent or
 * unsupported becomes a FilesystemError, which the caller turns into "read the whole partition"
 * with a warning. Product code never runs external tools; tests use them as independent checkers.
 */
export type { BlockSource, FileSource, OpenSourceOptions } from './source.js';
export { memorySource, openSource, sliceSource, sourceOverReadAt } from './source.js';
export type { MountedFilesystem, Platform } from './platform/index.js';
export { currentPlatform, portablePlatform } from './platform/index.js';
export type { DiskWrite, GptInfo, Partition, PartitionTable, RandomAccessDisk, TableKind } from './partition.js';
export { formatGuid, readPartitionTable, relocateGpt, relocateGptOn } from './partition.js';
export type { FilesystemAnalysis, FilesystemInfo, FilesystemModule, FilesystemType, PartitionAnalysis } from './fs/index.js';
export { analyzePartition, ext, fat, filesystems, FilesystemError, isFilesystemError, ntfs } from './fs/index.js';
export type { ByteRange } from './ranges.js';
export { invertRanges, mergeRanges, rangeBytes } from './ranges.js';
export { filesystemProbes, mountedOn, mountWarnings, partitionTableReader, relocateGptOnWriter } from './probes.js';
