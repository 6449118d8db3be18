/**
 * The filesystem modules, in the order they are tried, and the one call the imager needs:
 * which filesystem a partition holds and which of its bytes are in use. Each module also opens
 * its filesystem read-only for browsing (image ls, image restore-files).
 */
import type { BlockSource } from '../source.js';
import { ext } from './ext.js';
import { fat } from './fat.js';
import { ntfs } from './ntfs.js';
import { FilesystemError, type FilesystemAnalysis, type FilesystemModule, type ReadableFilesystemModule } from './types.js';

export { ext, fat, ntfs };
export * from './types.js';

/** NTFS before FAT: both have a jump instruction and 55AA; the OEM name tells them apart. */
export const filesystems: readonly ReadableFilesystemModule[] = [ext, ntfs, fat];

export type PartitionAnalysis =
  | { readonly kind: 'analyzed'; readonly module: FilesystemModule; readonly analysis: FilesystemAnalysis }
  | { readonly kind: 'untrusted'; readonly module: FilesystemModule; readonly error: FilesystemError }
  | { readonly kind: 'unknown' };

/**
 * Detects and analyses the filesystem of one partition. 'untrusted' means the filesystem was
 * recognised but its metadata cannot be relied on: read every byte of the partition and warn.
 * Other errors (I/O failures) propagate.
 */
export async function analyzePartition(source: BlockSource, offset: number, size: number): Promise<PartitionAnalysis> {
  for (const module of filesystems) {
    if (!(await module.detect(source, offset, size))) continue;
    try {
      return { kind: 'analyzed', module, analysis: await module.analyze(source, offset, size) };
    } catch (e) {
      if (e instanceof FilesystemError) return { kind: 'untrusted', module, error: e };
      throw e;
    }
  }
  return { kind: 'unknown' };
}
