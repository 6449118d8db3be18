/**
 * Setting up a scheduled job from the dashboard's first-run wizard: where (a drive or folder),
 * a password, what (folders or a drive), when. Creates the repository (or opens the one already
 * there), keeps the password in a private file, and adds the job. Also the destinations to offer:
 * the drives and mounted filesystems with their free space, and whether one is the same physical
 * disk as the data (a backup there is lost with the disk).
 */
import { existsSync, readdirSync, statSync, statfsSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { ForgetPolicy } from '../repo/forget.js';
import { LifeboatError } from '../util/errors.js';
import { scanTotal } from '../files/scan.js';
import { backup, findParent, sameSizeAndTime } from '../files/backup.js';
import { Repository } from '../repo/repository.js';
import { MemoryStore } from '../store/memory.js';
import type { Snapshot } from '../repo/snapshot.js';
import { walk } from '../tree/tree.js';
import { treeOf } from './browse.js';
import { PathMatcher } from '../files/pattern.js';
import { planImageCreate } from './image.js';
import { createRepositoryAt, openRepositoryAt, passwordFileFor, writePasswordFile } from './open.js';
import { dataDir, isUrl } from './paths.js';
import { currentPlatform, type Platform } from '../image/platform/index.js';
import { parseSchedule, scheduleSpec } from './schedule.js';
import type { Job, JobState, JobWhat } from './state.js';

export interface Destination {
  readonly path: string;
  /** The drive's name as people know it ("Passport"), or "Your home folder". */
  readonly label: string;
  readonly free: number;
  readonly size: number;
  /** The destination is on the same disk as the home folder: it does not survive that disk. */
  readonly sameDiskAsHome: boolean;
}

async function describe(path: string, label: string, homeDisks: readonly string[], platform: Platform): Promise<Destination | undefined> {
  try {
    const fs = statfsSync(path);
    return { path, label, free: fs.bavail * fs.bsize, size: fs.blocks * fs.bsize, sameDiskAsHome: shareDisk(await platform.disksOf(path), homeDisks) };
  } catch {
    return undefined;
  }
}

const shareDisk = (a: readonly string[], b: readonly string[]) => a.some((d) => b.includes(d));

/**
 * The sources of a job (its folders, or the drive it images) that are on the same physical disk
 * as `destination`: a backup there is lost with that disk. Asked of the platform (image/platform),
 * which knows partitions and volumes where the operating system tells; elsewhere one filesystem
 * stands for one disk.
 */
export async function sameDiskSources(destination: string, what: JobWhat, platform: Platform = currentPlatform()): Promise<string[]> {
  const dest = await platform.disksOf(resolve(destination));
  if (dest.length === 0) return [];
  const sources = what.kind === 'image' ? [what.device, ...(what.paths ?? [])] : what.kind === 'files' ? what.paths : what.kind === 'mirror' ? [what.source] : isUrl(what.from) ? [] : [what.from];
  const out: string[] = [];
  for (const s of sources) if (shareDisk(await platform.disksOf(resolve(s)), dest)) out.push(s);
  return out;
}

/** The drives a backup could go to: removable and other mounted drives first, the home folder last. */
export async function listDestinations(platform: Platform = currentPlatform()): Promise<Destination[]> {
  const home = homedir();
  const homeDisks = await platform.disksOf(home);
  let user = '';
  try {
    user = userInfo().username;
  } catch {
    /* no user database */
  }
  const out: Destination[] = [];
  for (const base of [join('/media', user), join('/run/media', user), '/media', '/mnt', '/Volumes']) {
    let names: string[];
    try {
      names = readdirSync(base);
    } catch {
      continue;
    }
    for (const n of names) {
      const p = join(base, n);
      if (out.some((d) => d.path === p) || !statSync(p, { throwIfNoEntry: false })?.isDirectory()) continue;
      const d = await describe(p, n, homeDisks, platform);
      if (d && d.size > 0) out.push(d);
    }
  }
  const h = await describe(home, 'Your home folder', homeDisks, platform);
  if (h) out.push(h);
  return out;
}

export interface SetupRequest {
  readonly name: string;
  /** A drive or folder: the repository is its folder "Lifeboat" (or the folder itself when it already is a repository). */
  readonly destination: string;
  readonly password: string;
  readonly what: JobWhat;
  readonly schedule: string;
  readonly retention?: ForgetPolicy;
}

export interface SetupResult {
  readonly job: Job;
  /** Shown once: the key that opens the repository without the password. Absent when an existing repository was reused. */
  readonly recoveryKey?: string;
}

/** What the wizard keeps unless told otherwise: a week of days, a month of weeks, a year of months. */
export const DEFAULT_RETENTION: ForgetPolicy = { daily: 7, weekly: 4, monthly: 12 };

export async function setUpJob(state: JobState, req: SetupRequest, now: number): Promise<SetupResult> {
  const schedule = scheduleSpec(parseSchedule(req.schedule));
  if (req.what.kind === 'mirror') throw new LifeboatError('usage', 'A mirror needs no repository or password; set it up as a mirror (setUpMirrorJob).');
  if (req.what.kind === 'image' && schedule === 'continuous') throw new LifeboatError('usage', 'A system image cannot be taken continuously; give it a schedule such as "weekly sun 19:00".');
  if (req.password.length < 8) throw new LifeboatError('usage', 'Choose a password of at least 8 characters.');
  const dest = resolve(req.destination);
  if (!existsSync(dest)) throw new LifeboatError('usage', `The folder ${dest} does not exist. If it is on an external drive, connect the drive first.`);
  if (req.what.kind === 'files' && req.what.paths.length === 0) throw new LifeboatError('usage', 'Choose at least one folder to protect.');
  if (req.what.kind === 'files' || req.what.kind === 'image') {
    for (const p of req.what.paths ?? []) if (!existsSync(p)) throw new LifeboatError('usage', `${p} does not exist. Check the folder.`);
  }
  if (state.job(req.name)) throw new LifeboatError('conflict', `There is already a backup named "${req.name}". Choose another name.`);
  const isRepo = existsSync(join(dest, 'config')) && existsSync(join(dest, 'keys'));
  const location = isRepo ? dest : join(dest, 'Lifeboat');
  let recoveryKey: string | undefined;
  if (existsSync(join(location, 'config'))) {
    const repo = await openRepositoryAt(location, req.password); // a wrong password is told here
    await repo.close();
  } else {
    const created = await createRepositoryAt(location, req.password);
    recoveryKey = created.recoveryKey;
    await created.repo.close();
  }
  const passwordFile = passwordFileFor(dataDir(), location);
  writePasswordFile(passwordFile, req.password);
  const job = state.addJob({ name: req.name, what: req.what, repository: location, passwordFile, schedule, retention: req.retention ?? DEFAULT_RETENTION }, now);
  return { job, ...(recoveryKey !== undefined ? { recoveryKey } : {}) };
}

export interface MirrorRequest {
  readonly name: string;
  readonly source: string;
  /** The folder kept a copy of the source (made when missing, inside a folder that exists). */
  readonly destination: string;
  /** As parseSchedule reads it; "continuous" follows changes while the scheduler runs. */
  readonly schedule: string;
  readonly keepDays?: number;
}

/** Adds a mirror job: no repository, no password; the mirror itself checks SRC and DST on each run. */
export function setUpMirrorJob(state: JobState, req: MirrorRequest, now: number): Job {
  const schedule = scheduleSpec(parseSchedule(req.schedule));
  const source = resolve(req.source);
  const destination = resolve(req.destination);
  if (!existsSync(source) || !statSync(source).isDirectory()) throw new LifeboatError('usage', `${source} is not a folder that exists. Check the path.`);
  if (!existsSync(dirname(destination))) throw new LifeboatError('usage', `The folder ${dirname(destination)} does not exist. If it is on an external drive, connect the drive first.`);
  const inside = (a: string, b: string) => a === b || a.startsWith(b.endsWith('/') ? b : b + '/');
  if (inside(source, destination) || inside(destination, source)) throw new LifeboatError('usage', 'The mirror and the folder it copies must not be inside one another; choose a folder elsewhere (another drive is best).');
  if (req.keepDays !== undefined && (!Number.isInteger(req.keepDays) || req.keepDays < 0)) throw new LifeboatError('usage', `Versions are kept for a whole number of days (0 or more), not ${req.keepDays}.`);
  return state.addJob({ name: req.name, what: { kind: 'mirror', source, ...(req.keepDays !== undefined ? { keepDays: req.keepDays } : {}) }, repository: destination, passwordFile: '', schedule }, now);
}

export interface Estimate {
  readonly files: number;
  readonly bytes: number;
  /** About how long the backup takes (the first one, without a previous snapshot). */
  readonly seconds: number;
  /** False when the count stopped at its time limit: the real size is larger. */
  readonly complete: boolean;
  /** Free space on the destination, and whether the data (compressed or not) may not fit. */
  readonly free?: number;
  readonly mayNotFit?: boolean;
  /** With a previous snapshot of the same paths and host: its id, and the files and bytes changed since (those are read). */
  readonly parent?: string;
  readonly changedFiles?: number;
  readonly bytesToRead?: number;
  /**
   * Where the speeds come from: earlier backups in this repository; else a trial run (a few
   * seconds of backing up these paths into memory); fixed defaults when that handled too little.
   */
  readonly speeds?: { readonly bytesPerSecond: number; readonly filesPerSecond: number; readonly from: 'earlier backups' | 'a trial run' | 'defaults' };
}

/** A first backup on a typical computer: about 60 MB/s and 1,500 small files a second (measured on a 2-core machine, rounded down). */
const FIRST_BACKUP_BYTES_PER_S = 60e6;
const FIRST_BACKUP_FILES_PER_S = 1500;
/** Unchanged files a backup passes per second (an lstat and a listing-cache lookup each: ~19,000/s measured on a 2-core machine, rounded down). */
const UNCHANGED_FILES_PER_S = 15_000;
/** Earlier backups whose speeds are averaged (the latest of this host, of each kind). */
const SPEED_SAMPLES = 5;
/** How long the trial run backs up, when no earlier backup measured this machine. */
const TRIAL_MS = 2_000;

export interface EstimateBackupOptions {
  readonly excludes?: readonly string[];
  readonly excludeLargerThan?: number | undefined;
  readonly oneFileSystem?: boolean | undefined;
  /** The repository the backup goes to: its last snapshot of these paths and its earlier speeds are used. Nothing is written to it. */
  readonly repo?: Repository | undefined;
  readonly host?: string | undefined;
  /** Free space is looked up here (a local repository folder). */
  readonly location?: string | undefined;
  readonly limitMs?: number;
  /** Without earlier backups to learn from: how long the trial run may take (0: none, use the defaults). */
  readonly trialMs?: number;
}

/**
 * The speeds of the latest backups of `host` in the repository: from those that read most of their
 * files (a first backup, or after big changes), bytes read and files handled per second; from
 * those that found most files unchanged, unchanged files per second (an lstat and a cache lookup
 * each, far quicker than reading). Either may be missing.
 */
function measuredSpeeds(all: readonly { snapshot: Snapshot }[], host: string): { full?: NonNullable<Estimate['speeds']>; unchangedPerSecond?: number } {
  const full = { seconds: 0, bytes: 0, files: 0, n: 0 };
  const quick = { seconds: 0, files: 0, n: 0 };
  for (let i = all.length - 1; i >= 0 && (full.n < SPEED_SAMPLES || quick.n < SPEED_SAMPLES); i--) {
    const s = all[i]!.snapshot;
    const d = s.summary?.['durationSeconds'];
    if (s.kind !== 'files' || s.host !== host || d === undefined || d <= 0) continue;
    const files = s.summary?.['totalFiles'] ?? 0;
    const unchanged = s.summary?.['filesUnchanged'] ?? 0;
    if (unchanged >= files / 2) {
      if (quick.n++ < SPEED_SAMPLES) {
        quick.seconds += d;
        quick.files += unchanged;
      }
    } else if (full.n++ < SPEED_SAMPLES) {
      full.seconds += d;
      full.bytes += s.summary?.['bytesRead'] ?? 0;
      full.files += files;
    }
  }
  return {
    ...(full.bytes > 0 ? { full: { bytesPerSecond: full.bytes / full.seconds, filesPerSecond: Math.max(full.files / full.seconds, 1), from: 'earlier backups' as const } } : {}),
    ...(quick.files > 0 ? { unchangedPerSecond: quick.files / quick.seconds } : {}),
  };
}

/**
 * This machine's pace on these paths, when no earlier backup measured it: the defaults' speeds
 * scaled by how long a real backup (the same code, in worker threads as usual) of the first files
 * of the tree took against what the defaults predict for them. The trial writes into a repository
 * in memory that keeps no pack contents, and stops after `ms`; the time until its first progress
 * report (starting workers) is left out. Undefined when it handled too little to tell.
 */
async function trialSpeeds(abs: readonly string[], o: EstimateBackupOptions, ms: number): Promise<Estimate['speeds']> {
  const repo = Repository.scratch(new MemoryStore({ dropPacks: true }));
  const marks: { at: number; files: number; bytes: number }[] = [];
  const start = performance.now();
  try {
    await backup(repo, {
      paths: abs,
      ...(o.excludes ? { excludes: o.excludes } : {}),
      ...(o.excludeLargerThan !== undefined ? { excludeLargerThan: o.excludeLargerThan } : {}),
      ...(o.oneFileSystem ? { oneFileSystem: true } : {}),
      parent: null,
      signal: AbortSignal.timeout(ms),
      onEvent: (e) => {
        if (e.type === 'progress') marks.push({ at: (performance.now() - start) / 1000, files: e.files, bytes: e.bytesRead });
      },
    });
  } catch {
    // Stopped at its time limit (the usual end), or failed: what it handled until then counts.
  } finally {
    await repo.close().catch(() => undefined);
  }
  const first = marks.length > 2 ? marks[0]! : { at: 0, files: 0, bytes: 0 };
  const last = marks.at(-1);
  if (!last) return undefined;
  const predicted = (last.bytes - first.bytes) / FIRST_BACKUP_BYTES_PER_S + (last.files - first.files) / FIRST_BACKUP_FILES_PER_S;
  const took = last.at - first.at;
  if (predicted < 0.05 || took <= 0) return undefined;
  const scale = predicted / took;
  return { bytesPerSecond: FIRST_BACKUP_BYTES_PER_S * scale, filesPerSecond: FIRST_BACKUP_FILES_PER_S * scale, from: 'a trial run' };
}

/**
 * What a backup of `paths` would read and about how long it takes, from a quick count (giving up
 * after `limitMs`). With a repository holding a snapshot of the same paths and host, files whose
 * size and mtime match that snapshot's listing are not counted as read (the backup's own change
 * rule), and the speeds are those of the earlier backups there; else those of a short trial run
 * (trialSpeeds); else fixed defaults.
 */
export async function estimateBackup(paths: readonly string[], o: EstimateBackupOptions = {}): Promise<Estimate> {
  const abs = [...new Set(paths.map((p) => resolve(p)))].sort();
  const host = o.host ?? Repository.hostname();
  const all = o.repo ? await o.repo.listSnapshots(() => undefined) : [];
  const parent = o.repo ? await findParent(o.repo, host, abs) : undefined;
  const before = new Map<string, { size: number; mtime?: bigint | undefined }>();
  if (parent && o.repo) {
    try {
      const t = await treeOf(o.repo, parent.id, parent.snapshot);
      for await (const f of walk(t.tree, await t.tree.root())) {
        if (f.node.type === 'file') before.set(t.shownPath(f.path), { size: f.node.size, mtime: f.node.mtimeNs });
      }
    } catch {
      before.clear(); // an unreadable listing: the previous snapshot's figures scale the time instead
    }
  }
  let changedFiles = 0;
  let bytesToRead = 0;
  let complete = true;
  let t = { files: 0, bytes: 0 };
  try {
    t = await scanTotal(abs, {
      excludes: new PathMatcher([...(o.excludes ?? [])]),
      excludeLargerThan: o.excludeLargerThan,
      oneFileSystem: o.oneFileSystem,
      signal: AbortSignal.timeout(o.limitMs ?? 15_000),
      onFile: (path, size, mtimeNs) => {
        const prev = before.get(path.toString('utf8'));
        if (prev !== undefined && sameSizeAndTime(prev, size, mtimeNs)) return;
        changedFiles++;
        bytesToRead += size;
      },
    });
  } catch {
    complete = false;
  }
  const measured = measuredSpeeds(all, host);
  const unchanged = parent ? t.files - changedFiles : 0;
  const toRead = parent ? changedFiles : t.files;
  const speeds = measured.full ??
    (o.trialMs !== 0 && toRead > 0 ? await trialSpeeds(abs, o, o.trialMs ?? TRIAL_MS) : undefined) ??
    { bytesPerSecond: FIRST_BACKUP_BYTES_PER_S, filesPerSecond: FIRST_BACKUP_FILES_PER_S, from: 'defaults' as const };
  const read = parent ? bytesToRead : t.bytes;
  // Speeds measured on earlier runs each cover the whole of those runs (reading and walking), so
  // the slower part bounds the time; the defaults (also when a trial scaled them) add up. Files
  // unchanged since the parent cost only a look each.
  const parts = [read / speeds.bytesPerSecond, toRead / speeds.filesPerSecond];
  const work = speeds.from === 'earlier backups' ? Math.max(...parts) : parts[0]! + parts[1]!;
  const seconds = Math.round(work + unchanged / (measured.unchangedPerSecond ?? UNCHANGED_FILES_PER_S));
  return {
    files: t.files,
    bytes: t.bytes,
    seconds,
    complete,
    ...(o.location !== undefined ? freeOn(o.location, read) : {}),
    ...(parent ? { parent: parent.id, changedFiles, bytesToRead } : { changedFiles: t.files, bytesToRead: t.bytes }),
    speeds,
  };
}

/** Counts what a job would back up (giving up after `limitMs`) and guesses how long the first backup takes. */
export async function estimateJob(job: Job, limitMs = 15_000): Promise<Estimate> {
  if (job.what.kind === 'copy') return { files: 0, bytes: 0, seconds: 0, complete: false }; // what is new in the source is known only when copying
  if (job.what.kind === 'image') {
    const p = await planImageCreate(job.what.device, job.what.partitions ? { partitions: job.what.partitions } : {});
    const image = { files: 0, bytes: p.bytesToRead, seconds: p.estimatedSeconds, complete: true };
    if (!job.what.paths?.length) return { ...image, ...freeOn(job.repository, p.bytesToRead) };
    // And the folders it includes: their estimate, with the image's bytes and time added.
    const f = await estimateBackup(job.what.paths, { excludes: job.what.excludes ?? [], location: job.repository, limitMs });
    const bytesToRead = (f.bytesToRead ?? f.bytes) + p.bytesToRead;
    return { ...f, bytes: f.bytes + p.bytesToRead, seconds: f.seconds + p.estimatedSeconds, bytesToRead, ...freeOn(job.repository, bytesToRead) };
  }
  const [paths, excludes] = job.what.kind === 'files' ? [job.what.paths, job.what.excludes] : [[job.what.source], []];
  return estimateBackup(paths, { excludes, location: job.repository, limitMs });
}

function freeOn(location: string, bytes: number): { free?: number; mayNotFit?: boolean } {
  try {
    const fs = statfsSync(location);
    const free = fs.bavail * fs.bsize;
    return { free, mayNotFit: bytes > free };
  } catch {
    return {};
  }
}
