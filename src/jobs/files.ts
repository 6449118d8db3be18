/**
 * File backup use cases: back up folders into a new snapshot, restore a snapshot (or parts of it)
 * into a folder or back where it came from. Each locks the repository itself; a backup first
 * refuses sources that would save nothing (all missing), so it leaves no trace in the repository,
 * then indexes what an interrupted run uploaded, so it is reused rather than uploaded again.
 */
import type { Hex } from '../repo/ids.js';
import type { Repository } from '../repo/repository.js';
import { indexUnindexedPacks } from '../repo/repair.js';
import type { Snapshot } from '../repo/snapshot.js';
import { LifeboatError } from '../util/errors.js';
import { reusingLargeBlocks } from '../util/memory.js';
import { backup, checkSources, type BackupOptions, type BackupResult } from '../files/backup.js';
import type { OverwriteMode, RestoreEvent, RestoreOptions, RestoreSummary } from '../files/restore.js';
import { snapshotPath } from '../files/browse.js';
import { platform } from '../files/platform/platform.js';
import type { JobOptions } from './events.js';

/** One warning when this platform cannot keep every kind of metadata (owners, attributes). */
export function platformWarning(o: JobOptions): void {
  const p = platform();
  if (!p.exact && p.missing) o.onEvent?.({ type: 'warning', message: p.missing });
}

export type BackupFilesOptions = JobOptions & Omit<BackupOptions, 'signal' | 'onEvent' | 'fs' | 'platform'>;

/** Backs up `paths` into a new snapshot; progress has phase 'backup', bytes of the sources as unit. */
export async function backupFiles(repo: Repository, o: BackupFilesOptions): Promise<BackupResult> {
  await checkSources(o.paths, o.ownFolders); // a backup of nothing is refused before it writes a lock
  await repo.lock(false, 'backup');
  await indexUnindexedPacks(repo); // reuse what an interrupted run uploaded
  platformWarning(o);
  const { onEvent: emit, ...rest } = o;
  return backup(repo, {
    ...rest,
    ...(emit
      ? {
          onEvent: (e) => {
            if (e.type === 'warning') emit({ type: 'warning', kind: e.kind, path: e.path, message: e.message });
            else if (e.type === 'excluded') emit({ type: 'notice', path: e.path, message: `Leaving out ${e.path}: ${e.reason}.` });
            else emit({ type: 'progress', phase: 'backup', done: e.bytesDone, ...(e.bytesTotal !== undefined ? { total: e.bytesTotal } : {}), files: e.files, stored: e.bytesAdded, ...(e.current !== undefined ? { current: e.current } : {}) });
          },
        }
      : {}),
  });
}

/** A file snapshot by id, prefix or "latest"; a drive image is refused with a plain word. */
export async function findFilesSnapshot(repo: Repository, ref: string): Promise<{ id: Hex; snapshot: Snapshot }> {
  const s = await repo.findSnapshot(ref, (x) => x.kind === 'files');
  if (s.snapshot.kind !== 'files') throw new LifeboatError('usage', `Snapshot ${s.id.slice(0, 8)} is a drive image; use "lifeboat image" commands for it.`);
  return s;
}

export interface RestoreFilesOptions extends JobOptions, Pick<RestoreOptions, 'excludes' | 'verify' | 'numericOwner' | 'devices' | 'scanTotal'> {
  /** A folder to restore into; without it, each backed-up folder goes back where it came from. */
  readonly target?: string;
  /** Paths to restore, as backed up (/home/ann/Documents/x) or as the snapshot shows them (/Documents/x). */
  readonly includes?: readonly string[];
  /** Default: 'if-changed' into a target, 'never' back to the original place. */
  readonly overwrite?: OverwriteMode;
  /**
   * Asked after a restore to the original place without an explicit `overwrite`, when files
   * changed since the backup were kept: true restores the backed-up versions over them.
   */
  readonly replaceChanged?: (count: number) => Promise<boolean>;
}

export interface RestoreFilesResult {
  readonly id: Hex;
  readonly snapshot: Snapshot;
  /** The folders restored into. */
  readonly targets: readonly string[];
  /** The sums over every target; keptChanged counts what is still left as it was. */
  readonly summary: RestoreSummary;
}

/** Restores file snapshot `ref`; progress has phase 'restore'. */
export async function restoreFiles(repo: Repository, ref: string, o: RestoreFilesOptions): Promise<RestoreFilesResult> {
  const { originalPlaces, restore } = await import('../files/restore.js'); // a backup does not load the restore
  await repo.lock(false, 'restore', { reading: true });
  await repo.loadIndex();
  const { id, snapshot } = await findFilesSnapshot(repo, ref);
  const includes = (o.includes ?? []).map((p) => snapshotPath(snapshot, p));
  const places = o.target !== undefined ? [{ target: o.target, includes }] : originalPlaces(snapshot, includes);
  if (places.length === 0) throw new LifeboatError('usage', `None of the paths to restore is in snapshot ${id.slice(0, 8)}; "lifeboat ls ${id.slice(0, 8)}" shows what it holds.`);
  platformWarning(o);
  const emit = o.onEvent;
  const onEvent = emit
    ? (e: RestoreEvent) => emit(e.type === 'warning' ? e : { type: 'progress', phase: 'restore', done: e.bytesDone, ...(e.totalBytes !== undefined ? { total: e.totalBytes } : {}), files: e.files })
    : undefined;
  // Blocks are reused from before the restore starts its workers (util/memory.ts).
  const restoreAll = (overwrite: OverwriteMode): Promise<RestoreSummary[]> => reusingLargeBlocks(async () => {
    const out: RestoreSummary[] = [];
    for (const place of places) {
      const r = await restore(repo, snapshot, {
        target: place.target,
        includes: place.includes,
        ...(o.excludes ? { excludes: o.excludes } : {}),
        overwrite,
        verify: o.verify === true,
        numericOwner: o.numericOwner === true,
        devices: o.devices === true,
        scanTotal: o.scanTotal === true,
        ...(o.signal ? { signal: o.signal } : {}),
        ...(onEvent ? { onEvent } : {}),
      });
      out.push(r.summary);
    }
    return out;
  });
  const original = o.target === undefined;
  let summaries = await restoreAll(o.overwrite ?? (original ? 'never' : 'if-changed'));
  const kept = summaries.reduce((n, s) => n + s.keptChanged, 0);
  if (original && o.overwrite === undefined && kept > 0 && o.replaceChanged && (await o.replaceChanged(kept))) {
    const again = await restoreAll('if-changed');
    summaries = summaries.map((s, i) => ({ ...s, replaced: s.replaced + again[i]!.replaced, skipped: s.skipped - s.keptChanged, keptChanged: 0, errors: s.errors + again[i]!.errors, bytesWritten: s.bytesWritten + again[i]!.bytesWritten, files: s.files + again[i]!.files }));
  }
  const summary = summaries.reduce((a, b) => {
    const sum = { ...a };
    for (const k of Object.keys(b) as (keyof RestoreSummary)[]) sum[k] = a[k] + b[k];
    return sum;
  });
  return { id, snapshot, targets: places.map((p) => p.target), summary };
}
