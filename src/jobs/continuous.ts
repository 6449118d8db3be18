/**
 * Continuous protection: folders watched (jobs/watch.ts) and a snapshot taken a few seconds after
 * changes settle, thinned like Time Machine so that leaving it on costs little: every snapshot of
 * the last 24 hours, one an hour for a week, one a day for a month, one a week before that
 * (CONTINUOUS_RETENTION, expressed with the forget rules; pinned snapshots are always kept).
 *
 * Each snapshot is an incremental backup (jobs/files.ts backupFiles) from the one before. After a
 * batch of changes it looks only at the folders the watcher named (and those above them), carrying
 * every other folder from the previous snapshot without a stat (files/changed-folders.ts); the
 * first snapshot, and those after a watcher overflow or error and every few hours, look at
 * everything. The repository is locked only while a snapshot is taken or thinned, so a prune from
 * elsewhere can run while nothing changes.
 */
import type { ForgetPolicy, RetentionDuration } from '../repo/forget.js';
import { Repository } from '../repo/repository.js';
import type { BackupResult } from '../files/backup.js';
import { LifeboatError } from '../util/errors.js';
import { backupFiles, type BackupFilesOptions } from './files.js';
import { forgetSnapshots } from './maintenance.js';
import { watchLoop, type ChangeBatch, type WatchLoopOptions } from './watch.js';

const days = (n: number): RetentionDuration => ({ years: 0, months: 0, days: n, hours: 0 });

/** The default retention of a continuous job. "Within" counts back from the newest snapshot. */
export const CONTINUOUS_RETENTION: ForgetPolicy = {
  within: days(1),
  withinHourly: days(7),
  withinDaily: { years: 0, months: 1, days: 0, hours: 0 },
  weekly: -1,
};

export interface ContinuousOptions extends BackupFilesOptions, Omit<WatchLoopOptions, 'signal' | 'onEvent' | 'ignore'> {
  /** The snapshots of these paths kept after each one; CONTINUOUS_RETENTION by default, null keeps them all. */
  readonly retention?: ForgetPolicy | null;
  /** After each snapshot, with the changes that led to it and the snapshots removed by thinning. */
  readonly onSnapshot?: (r: BackupResult, batch: ChangeBatch, thinned: number) => void;
}

/**
 * Watches `o.paths` and takes a snapshot of them on start and a settle time after each burst of
 * changes, thinning older ones; runs until the signal is aborted. A failed snapshot (the
 * repository's drive unplugged) is tried again a minute later with nothing lost.
 */
export async function protectContinuously(repo: Repository, o: ContinuousOptions): Promise<never> {
  const { retention = CONTINUOUS_RETENTION, onSnapshot, settleMs, maxDelayMs, fullEveryMs, retryMs, clock, subscribe, ...backup } = o;
  const ignore = (o.ownFolders ?? []).map((f) => f.path);
  /** This loop's last snapshot: the next one carries from it what did not change. */
  let last: BackupResult | undefined;
  return watchLoop(
    o.paths,
    async (batch) => {
      // An unplugged drive leaves an empty folder (its mount point) where the repository was: found
      // here, instead of a snapshot started into nowhere.
      await Repository.readConfig(repo.store).catch((e: unknown) => {
        const why = e instanceof LifeboatError && e.code === 'no-repository' ? '' : ` (${e instanceof Error ? e.message : String(e)})`;
        throw new LifeboatError('io', `The repository at ${repo.store.location} cannot be reached${why}; is its drive connected?`);
      });
      let r: BackupResult;
      try {
        r = await backupFiles(repo, !batch.full && last ? { ...backup, parent: last.snapshotId, changedFolders: batch.folders } : backup);
        last = r;
      } catch (e) {
        await repo.recoverWriting(); // the retry must not fail on this attempt's write error
        throw e;
      } finally {
        await repo.unlockAll();
      }
      let thinned = 0;
      if (retention) {
        try {
          const f = await forgetSnapshots(repo, { policy: retention, hosts: [r.snapshot.host], paths: r.snapshot.paths });
          thinned = f.removed.length;
        } catch (e) {
          // Another process holds the repository (a backup, a prune): thinned after the next snapshot.
          if (!(e instanceof LifeboatError && e.code === 'locked')) throw e;
        } finally {
          await repo.unlockAll();
        }
      }
      onSnapshot?.(r, batch, thinned);
    },
    {
      ignore,
      ...(settleMs !== undefined ? { settleMs } : {}),
      ...(maxDelayMs !== undefined ? { maxDelayMs } : {}),
      ...(fullEveryMs !== undefined ? { fullEveryMs } : {}),
      ...(retryMs !== undefined ? { retryMs } : {}),
      ...(clock ? { clock } : {}),
      ...(subscribe ? { subscribe } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.onEvent ? { onEvent: o.onEvent } : {}),
    },
  );
}
