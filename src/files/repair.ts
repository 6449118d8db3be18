/**
 * The files layer's SnapshotRepairer (docs/FORMAT.md §10, "Damaged entries"): rewrites a files
 * snapshot's trees so that they need only intact blobs. A file with a lost data block (or a lost
 * content list) keeps its entry, marked `"damaged":true`, with no content and size 0; a folder
 * whose listing is lost keeps its entry, marked damaged, with an empty listing. Everything else is
 * kept as it was; unchanged folders keep their listing ids. Each damaged place is reported by its
 * path in the snapshot ("/name/sub/file", the first component being the backed-up path's name).
 */
import { LifeboatError } from '../util/errors.js';
import { fromHex, type Hex } from '../repo/ids.js';
import type { DamagedPlace, SnapshotRepairer } from '../repo/repair.js';
import type { Repository } from '../repo/repository.js';
import { fileContent, loadDir, saveDir, type TreeEntry, type TreeSource } from './tree.js';

function shown(name: Buffer): string {
  return name.toString('utf8');
}

function bytes(n: number): string {
  return n === 1 ? '1 byte' : `${n} bytes`;
}

export async function repairFilesTree(repo: Repository, root: Hex, usable: (id: Uint8Array) => boolean): Promise<{ root: Hex; damaged: DamagedPlace[] } | undefined> {
  // Reads only what `usable` allows, so a blob known to be damaged is never trusted.
  const src: TreeSource = {
    loadBlob: (id) => (usable(id) ? repo.loadBlob(id) : Promise.reject(new LifeboatError('corrupt', 'the block is missing or damaged'))),
  };
  const damaged: DamagedPlace[] = [];
  let empty: Hex | undefined;

  const fixDir = async (id: Hex, path: string): Promise<Hex | undefined> => {
    let entries: TreeEntry[];
    try {
      entries = await loadDir(src, id);
    } catch {
      return undefined;
    }
    let changed = false;
    const out: TreeEntry[] = [];
    for (const e of entries) {
      const p = `${path}/${shown(e.name)}`;
      if (e.type === 'dir' && e.subtree !== undefined) {
        const sub = await fixDir(e.subtree, p);
        if (sub === undefined) {
          empty ??= await saveDir(repo, []);
          damaged.push({ where: `${p}/`, message: 'the folder listing is lost, so its contents are missing' });
          out.push({ ...e, subtree: empty, damaged: true });
          changed = true;
        } else {
          if (sub !== e.subtree) changed = true;
          out.push(sub === e.subtree ? e : { ...e, subtree: sub });
        }
        continue;
      }
      if (e.type === 'file' && (e.content !== undefined || e.contentParts !== undefined)) {
        let ids: Hex[] | undefined;
        try {
          ids = await fileContent(src, e);
        } catch {
          ids = undefined;
        }
        const lost = ids?.filter((x) => !usable(fromHex(x))).length;
        if (ids === undefined || lost! > 0) {
          damaged.push({ where: p, message: ids === undefined ? `its list of data blocks is lost (${bytes(e.size)})` : `${lost} of ${ids.length} data blocks lost (${bytes(e.size)})` });
          const { content: _c, contentParts: _p, holes: _h, ...rest } = e;
          out.push({ ...rest, size: 0, content: [], damaged: true });
          changed = true;
          continue;
        }
      }
      out.push(e);
    }
    return changed ? saveDir(repo, out) : id;
  };

  const fixed = await fixDir(root, '');
  return fixed === undefined ? undefined : { root: fixed, damaged };
}

export const filesRepairer: SnapshotRepairer = {
  repair: (repo, snapshot, usable) => repairFilesTree(repo, snapshot.root, usable),
};
