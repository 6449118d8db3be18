/**
 * The scheduler's memory, in one SQLite file in Lifeboat's data folder (jobs/paths.ts stateDbPath):
 * the jobs, every run with its figures, and the warnings and phases of each run. Several processes
 * may open it at once (`lifeboat serve` and `lifeboat job run`): a run is claimed inside a
 * transaction, so one job never runs twice at once even across processes.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ForgetPolicy } from '../repo/forget.js';
import type { PartitionChoice } from '../image/layout.js';
import { LifeboatError } from '../util/errors.js';

/**
 * How an unattended run reaches a repository on a Lifeboat server (a `lifeboat:` location): the
 * token, in a file only its owner can read (mode 0600) kept beside the job's password file, and
 * the server's certificate fingerprint trusted when the job was added (https only).
 */
export interface ServerAccess {
  readonly tokenFile: string;
  readonly fingerprint?: string;
}

/**
 * What a job protects: folders (with exclude patterns); a drive as a system image (all its
 * partitions or some), and with it, optionally, folders, as Windows 7's "include a system image"
 * did (each run takes the image, then a file snapshot of the folders); the snapshots of another
 * repository, copied into the job's (`lifeboat copy`); or a folder kept mirrored into the job's
 * destination (no repository: files/mirror.ts).
 */
export type JobWhat =
  | { readonly kind: 'files'; readonly paths: readonly string[]; readonly excludes: readonly string[] }
  | { readonly kind: 'image'; readonly device: string; readonly partitions?: PartitionChoice; readonly paths?: readonly string[]; readonly excludes?: readonly string[] }
  | { readonly kind: 'copy'; readonly from: string; readonly fromPasswordFile: string; readonly fromServer?: ServerAccess }
  | { readonly kind: 'mirror'; readonly source: string; readonly keepDays?: number };

/** "partitions 1, 2 of the drive /dev/sda", "the drive /dev/sda without partition 3", "the drive /dev/sda". */
function driveText(device: string, c: PartitionChoice | undefined): string {
  const list = (ns: readonly number[]) => `partition${ns.length === 1 ? '' : 's'} ${ns.join(', ')}`;
  if (c && 'only' in c) return `${list(c.only)} of the drive ${device}`;
  if (c) return `the drive ${device} without ${list(c.exclude)}`;
  return `the drive ${device}`;
}

/** What a job protects, in words: "/home/ann/Documents, /home/ann/Pictures", "the drive /dev/sda (system image)", "the snapshots of REPO (copies)", "a mirror of /home/ann/Pictures". */
export function describeWhat(what: JobWhat): string {
  if (what.kind === 'image') return `${driveText(what.device, what.partitions)} (system image)${what.paths?.length ? ` and ${what.paths.join(', ')}` : ''}`;
  if (what.kind === 'copy') return `the snapshots of ${what.from} (copies)`;
  if (what.kind === 'mirror') return `a mirror of ${what.source}`;
  return what.paths.join(', ');
}

export interface JobDefinition {
  readonly name: string;
  readonly what: JobWhat;
  /** The repository location (a folder path, an s3: or a lifeboat: URL); for a mirror, the folder mirrored into. */
  readonly repository: string;
  /** A file only its owner can read (mode 0600) that holds the repository password; empty for a mirror. */
  readonly passwordFile: string;
  /** For a repository on a Lifeboat server. */
  readonly server?: ServerAccess;
  /** As `parseSchedule` reads it: "daily 19:00", "weekly sun 19:00", "every 6h", a cron expression, "continuous". */
  readonly schedule: string;
  /** Applied to this job's snapshots after each successful run (then unused data is pruned). */
  readonly retention?: ForgetPolicy;
}

export interface Job extends JobDefinition {
  readonly id: number;
  /** When the job was set up (ms since 1970): the first slot is counted from here. */
  readonly created: number;
}

export type RunStatus = 'running' | 'ok' | 'warnings' | 'failed' | 'cancelled';
export type RunTrigger = 'schedule' | 'catch-up' | 'manual';

/** What a run did, as far as it got. */
export interface RunFigures {
  readonly files?: number;
  readonly totalBytes?: number;
  readonly bytesRead?: number;
  readonly bytesAdded?: number;
  readonly seconds?: number;
  readonly snapshotsRemoved?: number;
  readonly bytesFreed?: number;
}

export interface RunRecord {
  readonly id: number;
  readonly jobId: number;
  readonly job: string;
  readonly trigger: RunTrigger;
  readonly started: number;
  readonly finished?: number;
  readonly status: RunStatus;
  readonly message?: string;
  readonly snapshot?: string;
  readonly figures: RunFigures;
  readonly warnings: number;
}

export interface RunEventRecord {
  readonly time: number;
  /** A warning to read, a notice (a folder left out by rule), or a phase the run went through. */
  readonly type: 'warning' | 'notice' | 'phase';
  readonly message: string;
  readonly path?: string;
}

/** Warnings kept per run: a backup of a broken disk could report millions. */
export const MAX_EVENTS_PER_RUN = 1000;

const SCHEMA = [
  `CREATE TABLE jobs (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, definition TEXT NOT NULL, created INTEGER NOT NULL)`,
  `CREATE TABLE runs (id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE, trigger TEXT NOT NULL,
     started INTEGER NOT NULL, finished INTEGER, status TEXT NOT NULL, message TEXT, snapshot TEXT, figures TEXT NOT NULL DEFAULT '{}',
     warnings INTEGER NOT NULL DEFAULT 0, pid INTEGER NOT NULL)`,
  `CREATE INDEX runs_job ON runs (job_id, started)`,
  `CREATE TABLE events (run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, time INTEGER NOT NULL, type TEXT NOT NULL, message TEXT NOT NULL, path TEXT)`,
  `CREATE INDEX events_run ON events (run_id)`,
];

interface RunRow {
  id: number;
  job_id: number;
  name: string;
  trigger: RunTrigger;
  started: number;
  finished: number | null;
  status: RunStatus;
  message: string | null;
  snapshot: string | null;
  figures: string;
  warnings: number;
  pid: number;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function runOf(r: RunRow): RunRecord {
  return {
    id: r.id,
    jobId: r.job_id,
    job: r.name,
    trigger: r.trigger,
    started: r.started,
    ...(r.finished !== null ? { finished: r.finished } : {}),
    status: r.status,
    ...(r.message !== null ? { message: r.message } : {}),
    ...(r.snapshot !== null ? { snapshot: r.snapshot } : {}),
    figures: JSON.parse(r.figures) as RunFigures,
    warnings: r.warnings,
  };
}

const RUN_SELECT = `SELECT runs.*, jobs.name FROM runs JOIN jobs ON jobs.id = runs.job_id`;

export class JobState {
  private constructor(private readonly db: Database.Database) {}

  /** Opens (creating when needed) the job database at `path` (':memory:' for a throw-away one). */
  static open(path: string): JobState {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    let db: Database.Database;
    try {
      db = new Database(path, { timeout: 10_000 });
    } catch (e) {
      throw new LifeboatError('io', `Cannot open Lifeboat's job list ${path}: ${e instanceof Error ? e.message : String(e)}.`);
    }
    db.pragma('journal_mode = WAL');
    db.pragma('foreign_keys = ON');
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > 1) throw new LifeboatError('unsupported-version', `Lifeboat's job list ${path} was written by a newer version of Lifeboat; update Lifeboat.`);
    if (version === 0) {
      db.transaction(() => {
        for (const s of SCHEMA) db.exec(s);
        db.pragma('user_version = 1');
      })();
    }
    return new JobState(db);
  }

  close(): void {
    this.db.close();
  }

  addJob(def: JobDefinition, now: number): Job {
    if (!/^[\p{L}\p{N}][\p{L}\p{N} ._-]{0,63}$/u.test(def.name)) {
      throw new LifeboatError('usage', `"${def.name}" cannot name a job: use letters, digits, spaces, dots, dashes or underscores (at most 64), starting with a letter or digit.`);
    }
    if (this.job(def.name)) throw new LifeboatError('conflict', `There is already a job named "${def.name}". Choose another name, or remove that job first.`);
    const { name, ...rest } = def;
    const r = this.db.prepare('INSERT INTO jobs (name, definition, created) VALUES (?, ?, ?)').run(name, JSON.stringify(rest), now);
    return { ...def, id: Number(r.lastInsertRowid), created: now };
  }

  removeJob(name: string): boolean {
    return this.db.prepare('DELETE FROM jobs WHERE name = ?').run(name).changes > 0;
  }

  jobs(): Job[] {
    const rows = this.db.prepare('SELECT * FROM jobs ORDER BY id').all() as { id: number; name: string; definition: string; created: number }[];
    return rows.map((r) => ({ ...(JSON.parse(r.definition) as Omit<JobDefinition, 'name'>), name: r.name, id: r.id, created: r.created }));
  }

  job(name: string): Job | undefined {
    return this.jobs().find((j) => j.name === name);
  }

  /** The job named `name`, or a plain error listing the jobs there are. */
  findJob(name: string): Job {
    const j = this.job(name);
    if (j) return j;
    const names = this.jobs().map((x) => `"${x.name}"`);
    throw new LifeboatError('not-found', `There is no job named "${name}". ${names.length ? `The jobs are ${names.join(', ')}.` : 'There are no jobs yet; add one with "lifeboat job add".'}`);
  }

  /**
   * Starts a run of `job` unless one is running (in this process or a live other one): returns
   * the new run, or undefined. A run left 'running' by a process that is gone is closed as failed.
   */
  claimRun(job: Job, trigger: RunTrigger, now: number): RunRecord | undefined {
    return this.db.transaction((): RunRecord | undefined => {
      const open = this.db.prepare(`${RUN_SELECT} WHERE runs.job_id = ? AND runs.status = 'running'`).all(job.id) as RunRow[];
      for (const r of open) {
        if (r.pid === process.pid || processAlive(r.pid)) return undefined;
        this.finishRun(r.id, 'failed', 'Lifeboat stopped while this run was going on (the computer was turned off or Lifeboat was closed). The next run continues where it stopped.', {}, now);
      }
      const res = this.db.prepare(`INSERT INTO runs (job_id, trigger, started, status, pid) VALUES (?, ?, ?, 'running', ?)`).run(job.id, trigger, now, process.pid);
      return this.run(Number(res.lastInsertRowid));
    }).immediate();
  }

  finishRun(id: number, status: Exclude<RunStatus, 'running'>, message: string | undefined, figures: RunFigures, now: number, snapshot?: string): void {
    // A continuous run keeps the last snapshot it recorded (updateRun).
    this.db.prepare('UPDATE runs SET status = ?, message = ?, figures = ?, finished = ?, snapshot = coalesce(?, snapshot) WHERE id = ?').run(status, message ?? null, JSON.stringify(figures), now, snapshot ?? null, id);
  }

  /** What a run that goes on (a continuous job) has done so far: its latest snapshot and figures. */
  updateRun(id: number, figures: RunFigures, snapshot?: string): void {
    this.db.prepare('UPDATE runs SET figures = ?, snapshot = coalesce(?, snapshot) WHERE id = ?').run(JSON.stringify(figures), snapshot ?? null, id);
  }

  /** Records a warning or phase of a run; warnings beyond MAX_EVENTS_PER_RUN are counted, not kept. */
  addEvent(runId: number, e: RunEventRecord): void {
    if (e.type === 'warning') this.db.prepare('UPDATE runs SET warnings = warnings + 1 WHERE id = ?').run(runId);
    const n = (this.db.prepare('SELECT count(*) AS n FROM events WHERE run_id = ?').get(runId) as { n: number }).n;
    if (n < MAX_EVENTS_PER_RUN) this.db.prepare('INSERT INTO events (run_id, time, type, message, path) VALUES (?, ?, ?, ?, ?)').run(runId, e.time, e.type, e.message, e.path ?? null);
  }

  events(runId: number): RunEventRecord[] {
    const rows = this.db.prepare('SELECT time, type, message, path FROM events WHERE run_id = ? ORDER BY rowid').all(runId) as { time: number; type: RunEventRecord['type']; message: string; path: string | null }[];
    return rows.map((r) => ({ time: r.time, type: r.type, message: r.message, ...(r.path !== null ? { path: r.path } : {}) }));
  }

  run(id: number): RunRecord | undefined {
    const r = this.db.prepare(`${RUN_SELECT} WHERE runs.id = ?`).get(id) as RunRow | undefined;
    return r ? runOf(r) : undefined;
  }

  /** Runs, newest first: of one job, or of all. */
  runs(o: { jobId?: number; limit?: number; before?: number } = {}): RunRecord[] {
    const where = [o.jobId !== undefined ? 'runs.job_id = @jobId' : '', o.before !== undefined ? 'runs.id < @before' : ''].filter(Boolean);
    const sql = `${RUN_SELECT} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY runs.id DESC LIMIT @limit`;
    const params = { limit: o.limit ?? 100, ...(o.jobId !== undefined ? { jobId: o.jobId } : {}), ...(o.before !== undefined ? { before: o.before } : {}) };
    return (this.db.prepare(sql).all(params) as RunRow[]).map(runOf);
  }

  lastRun(jobId: number): RunRecord | undefined {
    return this.runs({ jobId, limit: 1 })[0];
  }

  lastSuccess(jobId: number): RunRecord | undefined {
    const r = this.db.prepare(`${RUN_SELECT} WHERE runs.job_id = ? AND runs.status IN ('ok', 'warnings') ORDER BY runs.id DESC LIMIT 1`).get(jobId) as RunRow | undefined;
    return r ? runOf(r) : undefined;
  }
}
