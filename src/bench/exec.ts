/**
 * Running the tools: under GNU time (wall, user, sys, peak RSS) with optional stdin/stdout files,
 * plain helper runs that must succeed, and the apparent size of a folder.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface Cmd {
  readonly cmd: string;
  readonly args: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** stdin comes from this file (otherwise /dev/null). */
  readonly stdinFile?: string;
  /** stdout goes to this file (otherwise it is captured). */
  readonly stdoutFile?: string;
}

export interface Measured {
  readonly ok: boolean;
  readonly exitCode: number;
  /** Seconds. */
  readonly wall: number;
  readonly user: number;
  readonly sys: number;
  /** Peak resident set size of the largest process, KiB (GNU time %M). */
  readonly rssKiB: number;
  readonly stdout: string;
  readonly stderr: string;
  /** First meaningful line of stderr when the command failed. */
  readonly error?: string;
}

const CAPTURE_LIMIT = 8 * 1024 * 1024;
const timeFile = path.join(os.tmpdir(), `lifeboat-bench-time-${process.pid}`);

export function firstErrorLine(stderr: string, exitCode: number): string {
  const lines = stderr
    .split(/\r?\n|\r/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('Command exited with non-zero status') && !l.startsWith('Command terminated by signal'));
  const line = lines.find((l) => /error|fatal|unknown|not |cannot|failed|invalid/i.test(l)) ?? lines[0];
  return (line ?? `exit code ${exitCode}`).slice(0, 160);
}

/** Runs `c` under `/usr/bin/time -f '%e %U %S %M'`. Never throws for a failing command. */
export async function timed(c: Cmd): Promise<Measured> {
  fs.rmSync(timeFile, { force: true });
  const stdinFd = fs.openSync(c.stdinFile ?? '/dev/null', 'r');
  const stdoutFd = c.stdoutFile ? fs.openSync(c.stdoutFile, 'w') : undefined;
  const child = spawn('/usr/bin/time', ['-f', '%e %U %S %M', '-o', timeFile, c.cmd, ...c.args], {
    cwd: c.cwd,
    env: c.env ?? process.env,
    stdio: [stdinFd, stdoutFd ?? 'pipe', 'pipe'],
  });
  fs.closeSync(stdinFd);
  if (stdoutFd !== undefined) fs.closeSync(stdoutFd);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    if (stdout.length < CAPTURE_LIMIT) stdout += d.toString('utf8');
  });
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < CAPTURE_LIMIT) stderr += d.toString('utf8');
  });
  const exitCode = await new Promise<number>((resolve) => {
    child.on('error', () => resolve(127));
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
  let wall = NaN;
  let user = NaN;
  let sys = NaN;
  let rssKiB = NaN;
  try {
    const lines = fs.readFileSync(timeFile, 'utf8').trim().split('\n');
    const m = /^([\d.]+) ([\d.]+) ([\d.]+) (\d+)$/.exec(lines[lines.length - 1] ?? '');
    if (m) {
      wall = Number(m[1]);
      user = Number(m[2]);
      sys = Number(m[3]);
      rssKiB = Number(m[4]);
    }
  } catch {
    // no time file: the command could not be started
  }
  const ok = exitCode === 0;
  return { ok, exitCode, wall, user, sys, rssKiB, stdout, stderr, ...(ok ? {} : { error: firstErrorLine(stderr, exitCode) }) };
}

/** Runs a helper command that must succeed; returns its stdout. */
export function must(cmd: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, env: opts.env ?? process.env, cwd: opts.cwd, input: opts.input });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}): ${(r.stderr || r.stdout || '').trim().split('\n').slice(-3).join(' | ')}`);
  }
  return r.stdout;
}

/** Like `must` but returns undefined instead of throwing. */
export function tryRun(cmd: string, args: readonly string[], env?: NodeJS.ProcessEnv): string | undefined {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: env ?? process.env });
  return r.status === 0 ? `${r.stdout}${r.stderr}` : undefined;
}

/** Calls `visit` with the path of every regular file under `dir`, in name order (a folder that cannot be read is skipped). */
export function eachFile(dir: string, visit: (file: string) => void): void {
  const walk = (d: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) visit(p);
    }
  };
  walk(dir);
}

/** Apparent size of every regular file under `dir` (what `du -sb` counts, less the folders). */
export function apparentBytes(dir: string): number {
  return usage(dir).bytes;
}

/** The apparent size of the files at or under `dir`, and how many there are (a repository's objects). */
export function usage(dir: string): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  eachFile(dir, (f) => {
    bytes += fs.statSync(f).size;
    files++;
  });
  return { bytes, files };
}

/**
 * Reads every file at or under each path once, so that the run after it finds them in the page
 * cache whatever ran before: borg drops the files it backs up from the cache and Lifeboat the
 * packs it writes (posix_fadvise DONTNEED), which left the tool after borg reading the whole
 * source from disk, and Lifeboat's restores reading its repository from disk while restic's sat in
 * the cache. It first writes out what earlier runs left unwritten (`sync`): a no-change backup
 * right after another tool's initial backup waited in its own fsyncs for that tool's 1.9 GiB
 * (media: 1.44 s against 0.59 s run alone, session 18). Returns the bytes read.
 */
export function warmCache(...paths: string[]): number {
  spawnSync('sync', { stdio: 'ignore' });
  const buf = Buffer.allocUnsafe(1024 * 1024);
  let total = 0;
  const read = (f: string): void => {
    const fd = fs.openSync(f, 'r');
    try {
      for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) total += n;
    } finally {
      fs.closeSync(fd);
    }
  };
  for (const p of paths) {
    if (fs.statSync(p).isDirectory()) eachFile(p, read);
    else read(p);
  }
  return total;
}

export function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}
