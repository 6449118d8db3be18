/**
 * The image layer's SnapshotRepairer: an image snapshot whose chunks are partly lost becomes a new
 * image in which each lost chunk is absent (restored as zeros) and listed in the manifest's
 * `unreadable` ranges, so a restore says exactly which bytes of the drive could not be recovered.
 * A lost map page loses the chunks it described the same way, and so does a chunk stored as a
 * delta whose base is lost (repairSnapshots' `usable` says so). A lost manifest is unrecoverable.
 */
import { BlobType, type Repository } from '../repo/repository.js';
import { toHex, type Hex } from '../repo/ids.js';
import type { DamagedPlace, SnapshotRepairer } from '../repo/repair.js';
import { decodePage, encodePage, type ImageManifest } from './manifest.js';
import { loadManifest } from './imager.js';

function partitionOf(m: ImageManifest, offset: number): string {
  const p = m.partitions.find((x) => offset >= x.start && offset < x.start + x.size);
  return p ? `partition ${p.index}${p.filesystem ? ` (${p.filesystem})` : ''}` : 'outside the partitions';
}

export const imageRepairer: SnapshotRepairer = {
  async repair(repo: Repository, snapshot, usable) {
    if (!usable(Buffer.from(snapshot.root, 'hex'))) return undefined;
    let m: ImageManifest;
    try {
      m = await loadManifest(repo, snapshot.root);
    } catch {
      return undefined;
    }
    await repo.loadIndex();
    const chunkCount = Math.ceil(m.size / m.chunkSize);
    const pages: Hex[] = [];
    const lost: { start: number; length: number }[] = [];
    const damaged: DamagedPlace[] = [];
    for (let p = 0; p < m.pages.length; p++) {
      const first = p * m.chunksPerPage;
      const count = Math.min(m.chunksPerPage, chunkCount - first);
      const pid = Buffer.from(m.pages[p]!, 'hex');
      let ids: (Uint8Array | undefined)[];
      let changed = false;
      try {
        if (!usable(pid)) throw new Error('lost page');
        ids = decodePage(await repo.loadBlob(pid), first, count).ids;
      } catch {
        ids = new Array<Uint8Array | undefined>(count);
        changed = true;
        lost.push({ start: first * m.chunkSize, length: Math.min(count * m.chunkSize, m.size - first * m.chunkSize) });
        damaged.push({ where: `bytes ${first * m.chunkSize}–${Math.min((first + count) * m.chunkSize, m.size) - 1}`, message: `the map of this part of the drive (${partitionOf(m, first * m.chunkSize)}) is lost; it restores as zeros` });
      }
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i];
        if (!id || usable(id)) continue;
        ids[i] = undefined;
        changed = true;
        const start = (first + i) * m.chunkSize;
        const length = Math.min(m.chunkSize, m.size - start);
        const last = lost[lost.length - 1];
        if (last && last.start + last.length === start) last.length += length;
        else lost.push({ start, length });
      }
      pages.push(changed ? toHex((await repo.saveBlob(BlobType.tree, encodePage(first, ids))).id) : m.pages[p]!);
    }
    for (const r of lost) {
      if (!damaged.some((d) => d.where.startsWith(`bytes ${r.start}–`))) {
        damaged.push({ where: `bytes ${r.start}–${r.start + r.length - 1}`, message: `lost (${partitionOf(m, r.start)}); these bytes restore as zeros` });
      }
    }
    const fixed: ImageManifest = { ...m, pages, unreadable: [...m.unreadable, ...lost].sort((a, b) => a.start - b.start) };
    const root = toHex((await repo.saveBlob(BlobType.tree, Buffer.from(JSON.stringify(fixed)))).id);
    await repo.flush();
    return { root, damaged };
  },
};
