/**
 * Opening an image snapshot without restoring it: its manifest, its partitions, and a partition's
 * filesystem read through the repository (snapshot-source.ts fetches only the chunks it needs).
 * image-tree.ts shows them as one tree; tree/restore.ts copies files out of it.
 */
import { LifeboatError } from '../util/errors.js';
import type { Hex } from '../repo/ids.js';
import type { Repository } from '../repo/repository.js';
import type { Snapshot } from '../repo/snapshot.js';
import { loadManifest } from './imager.js';
import { partitionText, type ImageManifest, type ImagePartition } from './manifest.js';
import { snapshotSource, type BlobLoader, type SnapshotSource } from './snapshot-source.js';
import { filesystems } from './fs/index.js';
import type { FilesystemReader } from './fs/types.js';

export interface OpenedImage {
  readonly id: Hex;
  readonly snapshot: Snapshot;
  readonly manifest: ImageManifest;
  readonly source: SnapshotSource;
}

export async function openImageSnapshot(repo: Repository, ref: string): Promise<OpenedImage> {
  const { id, snapshot } = await repo.findSnapshot(ref, (s) => s.kind === 'image');
  if (snapshot.kind !== 'image') throw new LifeboatError('invalid-argument', `Snapshot ${id.slice(0, 8)} is a file backup, not a system image; use "lifeboat ls".`);
  const manifest = await loadManifest(repo, snapshot.root);
  return { id, snapshot, manifest, source: snapshotSource(plannedLoader(repo), manifest) };
}

/**
 * Chunks of a browsed image through the restore planner with a read-ahead (Repository.readAhead):
 * the chunks a read asks for at once, and the ones after them the source offers to prefetch, come
 * with one request per pack span and stay sealed until asked for (at most 8 MiB of them), so
 * copying a folder of small files out of an image costs a request per few hundred KiB of image,
 * not one per chunk.
 */
export function plannedLoader(repo: Repository): BlobLoader {
  const ahead = repo.readAhead({ budget: 32 * 1024 * 1024, keep: 8 * 1024 * 1024 });
  return { loadBlob: (id) => ahead.load(id), prefetch: (ids) => ahead.prefetch(ids, true) };
}

/** "2", "2:", "2:/docs/a.txt" → partition 2 and the path ('/' when none). */
export function parseLocation(arg: string): { partition: number; path: string } {
  const m = /^(\d+)(?::(.*))?$/s.exec(arg);
  if (!m) throw new LifeboatError('usage', `"${arg}" is not PARTITION[:PATH], for example 1:/home/me/notes.txt.`);
  return { partition: Number(m[1]), path: m[2] || '/' };
}

/** The partitions of an image; a drive without a partition table is partition 0 (the whole drive). */
export function imagePartitions(m: ImageManifest): ImagePartition[] {
  if (m.partitions.length > 0) return [...m.partitions];
  return [{ index: 0, start: 0, size: m.size, type: '', typeName: 'whole drive', usedBytes: m.bytesUsed, method: 'all' }];
}

export async function openPartition(img: OpenedImage, index: number): Promise<{ partition: ImagePartition; fs: FilesystemReader }> {
  const parts = imagePartitions(img.manifest);
  const partition = parts.find((p) => p.index === index);
  if (!partition) throw new LifeboatError('not-found', `This image has no partition ${index}; it has ${parts.map((p) => p.index).join(', ') || 'none'}. See "lifeboat image ls ${img.id.slice(0, 8)}".`);
  if (partition.method === 'excluded') {
    throw new LifeboatError('not-found', `${partitionText(partition)} was left out of this image, so it holds no files here; restore its files from a file backup.`);
  }
  if (partition.start + partition.size > img.source.size) throw new LifeboatError('corrupt', `Partition ${index} reaches past the end of the image; the image manifest is damaged.`);
  for (const module of filesystems) {
    if (!(await module.detect(img.source, partition.start, partition.size))) continue;
    return { partition, fs: await module.open(img.source, partition.start, partition.size) };
  }
  throw new LifeboatError('invalid-argument', `Partition ${index} (${partition.typeName}) holds no filesystem Lifeboat can read files from (ext2/3/4, FAT or NTFS).`);
}
