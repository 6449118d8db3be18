/**
 * The "only the changed folders" backup of continuous protection (BackupOptions.changedFolders):
 * the watcher names the folders in which something changed; the backup looks at those and at the
 * folders above them, and carries every other folder from the parent snapshot by its listing id,
 * without a stat of anything inside it.
 *
 * A folder reached (an entry of a folder looked at) but not named is carried only when its inode,
 * mtime and ctime are the parent's: a folder created, moved in, replaced, or with entries added,
 * removed or renamed is looked at even when the watcher did not say so, and its sub-folders are
 * judged the same way. What this cannot see (a file rewritten in place in a folder the watcher did
 * not name) is caught by the full rescans the watcher asks for on start and every few hours.
 *
 * The snapshot's totals (files, bytes, folders, other entries) are the parent's, less what the
 * parent had in the folders looked at and in the folders gone since, plus what was found: exact
 * when the parent's were. The parent's unreadable paths in folders not looked at stay listed.
 */
import { dirname } from 'node:path';
import type { Hex } from '../repo/ids.js';
import type { Snapshot } from '../repo/snapshot.js';
import { loadDir, type TreeEntry, type TreeSource } from './tree.js';

/** Thrown when the parent cannot be relied on (a listing unreadable): the backup looks at everything instead. */
export class FullScanNeeded extends Error {}

/** The counters of a snapshot's summary that describe the whole tree. */
interface Totals {
  files: number;
  bytes: number;
  dirs: number;
  other: number;
}

const zero = (): Totals => ({ files: 0, bytes: 0, dirs: 0, other: 0 });

function add(to: Totals, entries: Iterable<TreeEntry>, sign: 1 | -1): void {
  for (const e of entries) {
    if (e.type === 'file') {
      to.files += sign;
      to.bytes += sign * e.size;
    } else if (e.type === 'dir') to.dirs += sign;
    else to.other += sign;
  }
}

/** The summary fields a parent must have for its totals to be carried. */
const TOTAL_FIELDS = ['totalFiles', 'totalBytes', 'otherEntries', 'dirsNew', 'dirsChanged', 'dirsUnchanged'] as const;

/** The summary counters of a tree, which this module corrects at the end (backup.ts's BackupSummary extends it). */
export interface TreeSummary {
  totalFiles: number;
  totalBytes: number;
  otherEntries: number;
  filesNew: number;
  filesChanged: number;
  filesUnchanged: number;
  dirsNew: number;
  dirsChanged: number;
  dirsUnchanged: number;
  unreadable: number;
}

export class ChangedFolders {
  /** The named folders and every folder above them up to a backed-up path (latin1 keys of their paths). */
  private readonly needed = new Set<string>();
  /** Folders (path keys) whose parent listing was carried or looked at in this backup. */
  private readonly reached = new Set<string>();
  /** Folders looked at, as shown (to keep the parent's unreadable paths elsewhere). */
  private readonly looked = new Set<string>();
  /** What the parent had that this backup did not carry: the listings looked at and the folders gone. */
  private readonly replaced = zero();
  private readonly memo = new Map<Hex, Promise<Totals>>();
  /** Folders carried as they were, and folders looked at (for tests and the measurements). */
  carriedFolders = 0;
  lookedAt = 0;

  private constructor(private readonly repo: TreeSource, private readonly parent: Snapshot, private readonly totals: Totals) {}

  private readonly roots: string[] = [];

  /**
   * The carrying for a backup of `roots` (absolute paths) with `parent` (which must be a snapshot of
   * the same paths taken with the same options), or undefined when the parent's totals are unknown.
   * Named folders outside the roots are ignored.
   */
  static create(repo: TreeSource, parent: Snapshot, roots: readonly string[], folders: readonly string[]): ChangedFolders | undefined {
    const sum = parent.summary ?? {};
    if (!TOTAL_FIELDS.every((k) => typeof sum[k] === 'number')) return undefined;
    const c = new ChangedFolders(repo, parent, { files: sum['totalFiles']!, bytes: sum['totalBytes']!, other: sum['otherEntries']!, dirs: sum['dirsNew']! + sum['dirsChanged']! + sum['dirsUnchanged']! });
    const under = (f: string, r: string) => f === r || f.startsWith(r.endsWith('/') ? r : r + '/');
    c.roots.push(...roots);
    for (const f of folders) {
      const root = roots.find((r) => under(f, r));
      if (root === undefined) continue;
      for (let p = f; ; p = dirname(p)) {
        const key = Buffer.from(p).toString('latin1');
        if (c.needed.has(key)) break;
        c.needed.add(key);
        if (p === root) break;
      }
    }
    return c;
  }

  /**
   * The listing id a folder keeps without being looked at: its parent's, when the folder was not
   * named and its inode, mtime and ctime are as before; undefined when it must be looked at.
   */
  carried(logical: Buffer, st: { ino: bigint; mtimeNs: bigint; ctimeNs: bigint }, prev: TreeEntry | undefined): Hex | undefined {
    if (prev?.type !== 'dir' || prev.subtree === undefined || prev.inode !== st.ino || prev.mtime !== st.mtimeNs || prev.ctime !== st.ctimeNs) return undefined;
    const key = logical.toString('latin1');
    if (this.needed.has(key)) return undefined;
    this.reached.add(key);
    this.carriedFolders++;
    return prev.subtree;
  }

  /**
   * A folder is looked at, with `prev` its parent listing (loaded from `prevId`). A listing that
   * could not be loaded leaves the totals unknown: the backup starts again, looking at everything.
   */
  lookAt(logical: Buffer, shown: string, prevId: Hex | undefined, prev: ReadonlyMap<string, TreeEntry> | undefined): void {
    if (prevId !== undefined && prev === undefined) throw new FullScanNeeded();
    this.lookedAt++;
    this.looked.add(shown);
    if (!prev) return;
    this.reached.add(logical.toString('latin1'));
    add(this.replaced, prev.values(), 1);
  }

  /**
   * After a folder was looked at: its parent's sub-folders that were neither carried nor looked at
   * (deleted, moved away, replaced by a file) are gone, with everything in them. `pathOf` gives the
   * path of an entry (in the snapshot's root listing, a backed-up path).
   */
  async gone(prev: ReadonlyMap<string, TreeEntry> | undefined, pathOf: (name: Buffer) => Buffer | undefined): Promise<void> {
    for (const e of prev?.values() ?? []) {
      const path = e.type === 'dir' && e.subtree !== undefined ? pathOf(e.name) : undefined;
      if (e.subtree === undefined || (path !== undefined && this.reached.has(path.toString('latin1')))) continue;
      const t = await this.treeTotals(e.subtree);
      this.replaced.files += t.files;
      this.replaced.bytes += t.bytes;
      this.replaced.dirs += t.dirs;
      this.replaced.other += t.other;
    }
  }

  /** Everything under a listing of the parent (what it holds, not counting the folder itself). */
  private treeTotals(id: Hex): Promise<Totals> {
    let p = this.memo.get(id);
    if (!p) {
      p = (async () => {
        let entries: TreeEntry[];
        try {
          entries = await loadDir(this.repo, id);
        } catch {
          throw new FullScanNeeded();
        }
        const t = zero();
        add(t, entries, 1);
        for (const e of entries) {
          if (e.type !== 'dir' || e.subtree === undefined) continue;
          const sub = await this.treeTotals(e.subtree);
          t.files += sub.files;
          t.bytes += sub.bytes;
          t.dirs += sub.dirs;
          t.other += sub.other;
        }
        return t;
      })();
      this.memo.set(id, p);
    }
    return p;
  }

  /**
   * Completes the summary (which counts what was looked at) with what was carried, and returns the
   * parent's unreadable paths in folders not looked at, to keep listing them.
   */
  finish(s: TreeSummary): string[] {
    const dirs = s.dirsNew + s.dirsChanged + s.dirsUnchanged + this.totals.dirs - this.replaced.dirs;
    s.totalFiles += this.totals.files - this.replaced.files;
    s.totalBytes += this.totals.bytes - this.replaced.bytes;
    s.otherEntries += this.totals.other - this.replaced.other;
    s.filesUnchanged = s.totalFiles - s.filesNew - s.filesChanged;
    s.dirsUnchanged = dirs - s.dirsNew - s.dirsChanged;
    const inc = this.parent.incomplete;
    if (!inc) return [];
    const kept = inc.paths.filter((p) => !this.looked.has(dirname(p)) && !this.roots.includes(p));
    s.unreadable += kept.length + Math.max(0, inc.count - inc.paths.length);
    return kept;
  }
}
