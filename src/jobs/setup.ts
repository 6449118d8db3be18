/**
 * Setting up a scheduled job from the dashboard's first-run wizard: where (a drive or folder),
 * a password, what (folders or a drive), when. Creates the repository (or opens the one already
 * there), keeps the password in a private file, and adds the job. Also the destinations to offer:
 * the drives and mounted filesystems with their free space, and whether one is the same disk as
 * the data (a backup there is lost with the disk).
 */
import { existsSync, readdirSync, statSync, statfsSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { ForgetPolicy } from '../repo/forget.js';
import { LifeboatError } from '../util/errors.js';
import { scanTotal } from '../files/scan.js';
import { PathMatcher } from '../files/pattern.js';
import { planImageCreate } from './image.js';
import { createRepositoryAt, openRepositoryAt, passwordFileFor, writePasswordFile } from './open.js';
import { dataDir } from './paths.js';
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

function describe(path: string, label: string, homeDev: number): Destination | undefined {
  try {
    const fs = statfsSync(path);
    return { path, label, free: fs.bavail * fs.bsize, size: fs.blocks * fs.bsize, sameDiskAsHome: statSync(path).dev === homeDev };
  } catch {
    return undefined;
  }
}

/** The drives a backup could go to: removable and other mounted drives first, the home folder last. */
export function listDestinations(): Destination[] {
  const home = homedir();
  const homeDev = statSync(home).dev;
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
      const d = describe(p, n, homeDev);
      if (d && d.size > 0) out.push(d);
    }
  }
  const h = describe(home, 'Your home folder', homeDev);
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
  if (req.what.kind === 'files') {
    if (req.what.paths.length === 0) throw new LifeboatError('usage', 'Choose at least one folder to protect.');
    for (const p of req.what.paths) if (!existsSync(p)) throw new LifeboatError('usage', `${p} does not exist. Check the folder.`);
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
  /** About how long the first backup takes. */
  readonly seconds: number;
  /** False when the count stopped at its time limit: the real size is larger. */
  readonly complete: boolean;
  /** Free space on the destination, and whether the data (compressed or not) may not fit. */
  readonly free?: number;
  readonly mayNotFit?: boolean;
}

/** A first backup on a typical computer: about 60 MB/s and 1,500 small files a second (measured on a 2-core machine, rounded down). */
const FIRST_BACKUP_BYTES_PER_S = 60e6;
const FIRST_BACKUP_FILES_PER_S = 1500;

/** Counts what a job would back up (giving up after `limitMs`) and guesses how long the first backup takes. */
export async function estimateJob(job: Job, limitMs = 15_000): Promise<Estimate> {
  let files = 0;
  let bytes = 0;
  let complete = true;
  if (job.what.kind === 'copy') return { files: 0, bytes: 0, seconds: 0, complete: false }; // what is new in the source is known only when copying
  if (job.what.kind !== 'image') {
    const signal = AbortSignal.timeout(limitMs);
    const [paths, excludes] = job.what.kind === 'files' ? [job.what.paths, job.what.excludes] : [[job.what.source], []];
    try {
      const t = await scanTotal(paths, { excludes: new PathMatcher([...excludes]), signal });
      files = t.files;
      bytes = t.bytes;
    } catch {
      complete = false;
    }
  } else {
    const p = await planImageCreate(job.what.device);
    bytes = p.bytesToRead;
    return { files: 0, bytes, seconds: p.estimatedSeconds, complete, ...freeOn(job.repository, bytes) };
  }
  const seconds = Math.round(bytes / FIRST_BACKUP_BYTES_PER_S + files / FIRST_BACKUP_FILES_PER_S);
  return { files, bytes, seconds, complete, ...freeOn(job.repository, bytes) };
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
