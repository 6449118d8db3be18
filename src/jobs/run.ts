/**
 * One run of a scheduled job, start to end: check that the destination is connected, read the
 * password file, open the repository, back up (folders, a drive image, or a drive image and then folders), then apply the job's
 * retention; or bring a mirror up to date. A continuous job (schedule "continuous") goes on until it
 * is cancelled: its snapshots (or mirror updates) are reported through onUpdate as they happen.
 * Turned into an outcome the scheduler records: never throws for an expected failure.
 * When another process holds the repository (a prune elsewhere), the run waits and tries again, so
 * two jobs on one repository take turns and both succeed.
 */
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Repository } from '../repo/repository.js';
import { systemClock } from '../util/clock.js';
import { LifeboatError } from '../util/errors.js';
import type { JobEvent } from './events.js';
import { backupFiles, type BackupFilesOptions } from './files.js';
import { CONTINUOUS_RETENTION, protectContinuously } from './continuous.js';
import { mirrorOnce, mirrorWatch, type MirrorResult } from './mirror.js';
import { createImageSnapshot } from './image.js';
import { forgetSnapshots, pruneRepository } from './maintenance.js';
import { copySnapshots } from './copy.js';
import { checkDestination, openJobRepository } from './open.js';
import { defaultCacheDir, ownFolders } from './paths.js';
import type { Job, RunFigures, RunStatus } from './state.js';

export interface RunOutcome {
  readonly status: Exclude<RunStatus, 'running'>;
  readonly message?: string;
  readonly snapshot?: string;
  readonly figures: RunFigures;
}

export interface RunJobOptions {
  readonly signal?: AbortSignal;
  readonly onEvent?: (e: JobEvent) => void;
  /** How long to wait between tries when another process holds the repository, and for how long in all. */
  readonly lockRetryMs?: number;
  readonly lockWaitMs?: number;
  /** How long a continuous job waits after changes stop (default 10 s; tests shorten it). */
  readonly settleMs?: number;
  /** A continuous job's work so far, after each snapshot or mirror update: its figures, and the snapshot. */
  readonly onUpdate?: (figures: RunFigures, snapshot?: string) => void;
}

/** Whether `job` runs all the time, following changes, rather than at slots. */
export function isContinuous(job: Pick<Job, 'schedule'>): boolean {
  return job.schedule === 'continuous';
}

/** Unused space prune leaves in packs after a job's retention, in percent (the CLI's default too). */
export const RETENTION_MAX_UNUSED = 10;

/** The tag every snapshot of a job carries, so its retention touches only its own snapshots. */
export function jobTag(job: Pick<Job, 'name'>): string {
  return `job:${job.name}`;
}

/** Calls `fn` again while it fails because another process holds the repository, up to the wait limit. */
async function takingTurns<T>(fn: () => Promise<T>, o: RunJobOptions): Promise<T> {
  const retry = o.lockRetryMs ?? 30_000;
  let tries = Math.max(1, Math.ceil((o.lockWaitMs ?? 2 * 3600_000) / retry));
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof LifeboatError && e.code === 'locked') || --tries <= 0) throw e;
      o.onEvent?.({ type: 'phase', phase: 'Waiting: the backup drive is in use by another Lifeboat task' });
      await sleep(retry, undefined, o.signal ? { signal: o.signal } : {});
    }
  }
}

async function withRepository<T>(job: Job, o: RunJobOptions, fn: (repo: Repository) => Promise<T>): Promise<T> {
  return takingTurns(async () => {
    checkDestination(job.repository);
    const repo = await openJobRepository(job.name, job.repository, job.passwordFile, job.server, { onWarning: (message) => o.onEvent?.({ type: 'warning', message }) });
    repo.onWarning = (message) => o.onEvent?.({ type: 'warning', message });
    try {
      return await fn(repo);
    } finally {
      await repo.close();
    }
  }, o);
}

interface StepResult {
  readonly snapshot?: string;
  readonly figures: RunFigures;
  readonly warnings: number;
  /** A job of two parts (a system image and folders) where one failed: what failed and what was saved, in words. */
  readonly failed?: string;
  /** What a job of two parts saved, in words. */
  readonly saved?: string;
}

/** A copy job: the snapshots of the job's source repository copied into its repository (copy.ts); a source snapshot that cannot be copied is a warning. */
async function copyStep(dest: Repository, job: Job, from: Extract<Job['what'], { kind: 'copy' }>, o: RunJobOptions): Promise<StepResult> {
  checkDestination(from.from);
  const onWarning = (message: string): void => o.onEvent?.({ type: 'warning', message });
  const source = await openJobRepository(job.name, from.from, from.fromPasswordFile, from.fromServer, { onWarning });
  try {
    const started = systemClock.now();
    const r = await copySnapshots(source, dest, { ...(o.signal ? { signal: o.signal } : {}), ...(o.onEvent ? { onEvent: o.onEvent } : {}) });
    const last = r.snapshots.filter((s) => !s.alreadyThere).at(-1);
    return { ...(last ? { snapshot: last.copy } : {}), figures: { bytesRead: r.bytesSent, bytesAdded: r.bytesWritten, seconds: (systemClock.now() - started) / 1000 }, warnings: r.failed.length };
  } finally {
    await source.close();
  }
}

type ImageWhat = Extract<Job['what'], { kind: 'image' }>;

/** The system image of an image job (the partitions it names). */
async function imageStep(repo: Repository, job: Job, what: ImageWhat, o: RunJobOptions): Promise<StepResult> {
  let warnings = 0;
  const r = await createImageSnapshot(repo, what.device, {
    tags: [jobTag(job)],
    ...(what.partitions ? { partitions: what.partitions } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
    onEvent: (e) => {
      if (e.type === 'warning') warnings++;
      o.onEvent?.(e);
    },
  });
  const s = r.snapshot.summary ?? {};
  return { snapshot: r.id, figures: { totalBytes: s['totalBytes'] ?? 0, bytesRead: s['bytesRead'] ?? 0, bytesAdded: s['bytesAdded'] ?? 0, seconds: s['seconds'] ?? 0 }, warnings };
}

/** A file snapshot of folders: a files job's, or the folders an image job includes. */
async function filesStep(repo: Repository, job: Job, what: FilesWhat, o: RunJobOptions): Promise<StepResult> {
  let warnings = 0;
  const r = await backupFiles(repo, {
    ...filesOptions(job, what, o),
    scanTotal: true,
    onEvent: (e) => {
      if (e.type === 'warning') warnings++;
      o.onEvent?.(e);
    },
  });
  const s = r.summary;
  return { snapshot: r.snapshotId, figures: { files: s.totalFiles, totalBytes: s.totalBytes, bytesRead: s.bytesRead, bytesAdded: s.bytesAdded, seconds: s.durationSeconds }, warnings };
}

/**
 * A system image and folders: the image first, then the folders, each whatever became of the
 * other. The figures add up; the snapshot recorded is the folders' (the image's is in the words).
 */
async function imageAndFilesStep(repo: Repository, job: Job, what: ImageWhat & { paths: readonly string[] }, o: RunJobOptions): Promise<StepResult> {
  const parts = [
    { name: 'system image', run: () => imageStep(repo, job, what, o) },
    { name: 'folders', run: () => filesStep(repo, job, { kind: 'files', paths: what.paths, excludes: what.excludes ?? [] }, o) },
  ];
  const done: { name: string; r: StepResult }[] = [];
  const failed: { name: string; message: string }[] = [];
  for (const p of parts) {
    try {
      done.push({ name: p.name, r: await p.run() });
    } catch (e) {
      // Cancelled, or the repository busy (the run waits and starts again): not a failure of this part.
      if (isAbort(e) || (e instanceof LifeboatError && e.code === 'locked')) throw e;
      failed.push({ name: p.name, message: messageOf(e) });
      o.onEvent?.({ type: 'warning', message: `The ${p.name} could not be saved: ${messageOf(e)}` });
    }
  }
  const savedText = done.map((d) => `the ${d.name} (${d.r.snapshot?.slice(0, 8) ?? 'nothing new'})`).join(' and ');
  const failedText = failed.map((f) => `The ${f.name} failed: ${f.message.replace(/\.?$/, '.')}`).join(' ');
  if (done.length === 0) throw new LifeboatError('io', failedText);
  const sum = (k: keyof RunFigures) => done.reduce((n, d) => n + (d.r.figures[k] ?? 0), 0);
  const files = done.find((d) => d.name === 'folders')?.r.figures.files;
  return {
    snapshot: done[done.length - 1]!.r.snapshot!,
    figures: { ...(files !== undefined ? { files } : {}), totalBytes: sum('totalBytes'), bytesRead: sum('bytesRead'), bytesAdded: sum('bytesAdded'), seconds: sum('seconds') },
    warnings: done.reduce((n, d) => n + d.r.warnings, 0),
    saved: `Saved ${savedText}.`,
    ...(failed.length > 0 ? { failed: `${failedText} Saved ${savedText}.` } : {}),
  };
}

async function backupStep(repo: Repository, job: Job, what: Exclude<Job['what'], { kind: 'mirror' }>, o: RunJobOptions): Promise<StepResult> {
  if (what.kind === 'copy') return copyStep(repo, job, what, o);
  if (what.kind === 'image') return what.paths?.length ? imageAndFilesStep(repo, job, { ...what, paths: what.paths }, o) : imageStep(repo, job, what, o);
  return filesStep(repo, job, what, o);
}

type FilesWhat = Extract<Job['what'], { kind: 'files' }>;

/** The backup options of a files job, scheduled or continuous. */
function filesOptions(job: Job, what: Pick<FilesWhat, 'paths' | 'excludes'>, o: RunJobOptions): BackupFilesOptions {
  return {
    paths: what.paths,
    excludes: what.excludes,
    ownFolders: ownFolders(job.repository),
    excludeCaches: true,
    tags: [jobTag(job)],
    host: hostname(),
    cacheDir: defaultCacheDir(),
    ...(o.signal ? { signal: o.signal } : {}),
    ...(o.onEvent ? { onEvent: o.onEvent } : {}),
  };
}

/** Continuous protection until cancelled: a snapshot a few seconds after changes, thinned by the job's retention (Time Machine's by default). */
async function continuousStep(repo: Repository, job: Job, what: FilesWhat, o: RunJobOptions): Promise<never> {
  let sums = { bytesRead: 0, bytesAdded: 0, snapshotsRemoved: 0 };
  return protectContinuously(repo, {
    ...filesOptions(job, what, o),
    retention: job.retention && Object.keys(job.retention).length > 0 ? job.retention : CONTINUOUS_RETENTION,
    ...(o.settleMs !== undefined ? { settleMs: o.settleMs } : {}),
    onSnapshot: (r, _batch, thinned) => {
      const s = r.summary;
      sums = { bytesRead: sums.bytesRead + s.bytesRead, bytesAdded: sums.bytesAdded + s.bytesAdded, snapshotsRemoved: sums.snapshotsRemoved + thinned };
      o.onUpdate?.({ files: s.totalFiles, totalBytes: s.totalBytes, seconds: s.durationSeconds, ...sums }, r.snapshotId);
    },
  });
}

/** A mirror job: DST brought up to date once, or (continuous) followed until cancelled. */
async function mirrorStep(job: Job, what: Extract<Job['what'], { kind: 'mirror' }>, o: RunJobOptions): Promise<RunOutcome> {
  let warnings = 0;
  const figures = (r: MirrorResult): RunFigures => ({ files: r.summary.copied, bytesRead: r.summary.bytesCopied, seconds: r.summary.durationSeconds });
  const opts = {
    ...(what.keepDays !== undefined ? { keepDays: what.keepDays } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
    onEvent: (e: JobEvent) => {
      if (e.type === 'warning') warnings++;
      o.onEvent?.(e);
    },
  };
  if (isContinuous(job)) return mirrorWatch(what.source, job.repository, { ...opts, ...(o.settleMs !== undefined ? { settleMs: o.settleMs } : {}), onRun: (r) => o.onUpdate?.(figures(r)) });
  const r = await mirrorOnce(what.source, job.repository, opts);
  const message = warnings > 0 ? `${warnings} warning${warnings === 1 ? '' : 's'}: some files could not be mirrored (see the list).` : undefined;
  return { status: warnings > 0 ? 'warnings' : 'ok', ...(message ? { message } : {}), figures: figures(r) };
}

/** Forgets the job's old snapshots by its retention rules, then prunes what they alone used. */
async function retentionStep(repo: Repository, job: Job, o: RunJobOptions): Promise<RunFigures> {
  if (!job.retention || Object.keys(job.retention).length === 0) return {};
  o.onEvent?.({ type: 'phase', phase: 'Removing old backups by the job\'s rules' });
  const f = await takingTurns(() => forgetSnapshots(repo, { policy: job.retention!, tags: [jobTag(job)] }), o);
  if (f.removed.length === 0) return { snapshotsRemoved: 0 };
  const p = await takingTurns(() => pruneRepository(repo, { maxUnusedPercent: RETENTION_MAX_UNUSED, ...(o.signal ? { signal: o.signal } : {}), ...(o.onEvent ? { onEvent: o.onEvent } : {}) }), o);
  return { snapshotsRemoved: f.removed.length, bytesFreed: p.bytes.freed };
}

/** Runs `job` once. Expected failures (drive not connected, wrong password, no space, cancelled) become the outcome's plain message. */
export async function runJob(job: Job, o: RunJobOptions = {}): Promise<RunOutcome> {
  try {
    const what = job.what;
    if (what.kind === 'mirror') return await mirrorStep(job, what, o);
    if (isContinuous(job)) {
      if (what.kind !== 'files') return { status: 'failed', message: 'Only folders can be protected continuously; give a system image job a schedule.', figures: {} };
      return await withRepository(job, o, (repo) => continuousStep(repo, job, what, o));
    }
    return await withRepository(job, o, async (repo) => {
      const b = await backupStep(repo, job, what, o);
      // One part of two failed: the run failed (what is saved stays), and old backups are kept.
      if (b.failed) return { status: 'failed', message: b.failed, ...(b.snapshot ? { snapshot: b.snapshot } : {}), figures: b.figures };
      let figures = b.figures;
      let message: string | undefined;
      try {
        figures = { ...figures, ...(await retentionStep(repo, job, o)) };
      } catch (e) {
        if (isAbort(e)) throw e;
        // The backup itself is saved: report the tidying failure without failing the run.
        message = `The backup was saved, but removing old backups failed: ${messageOf(e)}`;
        o.onEvent?.({ type: 'warning', message });
        return { status: 'warnings', message, ...(b.snapshot ? { snapshot: b.snapshot } : {}), figures };
      }
      if (b.warnings > 0) message = `${b.warnings} warning${b.warnings === 1 ? '' : 's'}: ${job.what.kind === 'copy' ? 'some snapshots could not be copied' : 'some files could not be read'} (see the list).`;
      if (b.saved) message = message ? `${b.saved} ${message}` : b.saved;
      return { status: b.warnings > 0 ? 'warnings' : 'ok', ...(message ? { message } : {}), ...(b.snapshot ? { snapshot: b.snapshot } : {}), figures };
    });
  } catch (e) {
    if (isAbort(e)) return { status: 'cancelled', message: 'Cancelled. Nothing is lost; the next run continues where this one stopped.', figures: {} };
    return { status: 'failed', message: messageOf(e), figures: {} };
  }
}

function isAbort(e: unknown): boolean {
  return (e instanceof Error && e.name === 'AbortError') || (e instanceof LifeboatError && e.code === 'interrupted');
}

function messageOf(e: unknown): string {
  if (e instanceof LifeboatError) return e.message;
  return `Unexpected error (this is a bug; please report it): ${e instanceof Error ? e.message : String(e)}`;
}
