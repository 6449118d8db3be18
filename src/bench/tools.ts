/**
 * The tools under test, as command builders. Each file-backup tool gets its own repository per
 * run; the benchmark runs the same operation for every tool in turn.
 */
import * as path from 'node:path';
import { lifeboatCommandLine } from '../util/command-line.js';
import type { Cmd } from './exec.js';

export const PASSWORD = 'lifeboat-bench-password';

export type FileToolName = 'lifeboat' | 'restic' | 'borg';

export interface FileTool {
  readonly name: FileToolName;
  init(repo: string): Cmd;
  backup(repo: string, source: string, label: string): Cmd;
  /** Restores the latest backup into `target` (the source path appears under it, however the tool lays it out). */
  restore(repo: string, target: string, label: string): Cmd;
  /** Gets one file (`rel` under the backed-up folder `src`) back; `out` is the file or folder that receives it. */
  restoreOne(repo: string, src: string, rel: string, out: { file: string; dir: string }, label: string): Cmd;
  /** Where restoreOne put the file. */
  restoredOnePath(src: string, rel: string, out: { file: string; dir: string }): string;
  check(repo: string): Cmd;
}

export interface ToolEnv {
  /** The repository root (where bin/lifeboat.js is). */
  readonly lifeboatRoot: string;
  /** Scratch folder for the tools' caches and key folders. */
  readonly cacheDir: string;
  /** More environment for every command (an S3 repository's credentials, a server's token). */
  readonly extraEnv?: NodeJS.ProcessEnv;
}

/** How to run Lifeboat as its `lifeboat` command runs (util/command-line.ts). */
export function lifeboatCommand(root: string): { cmd: string; args: string[] } {
  const [cmd, ...args] = lifeboatCommandLine(path.join(root, 'bin', 'lifeboat.js'));
  return { cmd: cmd!, args };
}

/** Lifeboat's environment: the repository, the password, and its cache and data folders in the bench's work folder. */
export function lifeboatEnv(t: ToolEnv, repo: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    LIFEBOAT_REPO: repo,
    LIFEBOAT_PASSWORD: PASSWORD,
    XDG_CACHE_HOME: path.join(t.cacheDir, 'lifeboat'),
    XDG_DATA_HOME: path.join(t.cacheDir, 'lifeboat-data'),
    ...t.extraEnv,
  };
}

export function fileTools(t: ToolEnv): FileTool[] {
  const lbCmd = lifeboatCommand(t.lifeboatRoot);
  const lbEnv = (repo: string): NodeJS.ProcessEnv => lifeboatEnv(t, repo);
  const lb = (repo: string, ...args: string[]): Cmd => ({ cmd: lbCmd.cmd, args: [...lbCmd.args, ...args], env: lbEnv(repo) });
  const lifeboat: FileTool = {
    name: 'lifeboat',
    init: (repo) => lb(repo, 'init'),
    backup: (repo, source) => lb(repo, 'backup', source, '--json'),
    restore: (repo, target) => lb(repo, 'restore', 'latest', '--target', target),
    // A snapshot's root lists each backed-up folder by its last name.
    restoreOne: (repo, src, rel, out) => ({ ...lb(repo, 'dump', 'latest', `/${path.basename(src)}/${rel}`), stdoutFile: out.file }),
    restoredOnePath: (_src, _rel, out) => out.file,
    check: (repo) => lb(repo, 'check', '--read-data'),
  };

  const resticEnv = (repo: string): NodeJS.ProcessEnv => ({
    ...process.env,
    RESTIC_REPOSITORY: repo,
    RESTIC_PASSWORD: PASSWORD,
    RESTIC_CACHE_DIR: path.join(t.cacheDir, 'restic'),
    ...t.extraEnv,
  });
  const rs = (repo: string, ...args: string[]): Cmd => ({ cmd: 'restic', args, env: resticEnv(repo) });
  const restic: FileTool = {
    name: 'restic',
    init: (repo) => rs(repo, 'init'),
    backup: (repo, source) => rs(repo, 'backup', '--json', source),
    restore: (repo, target) => rs(repo, 'restore', 'latest', '--target', target),
    restoreOne: (repo, src, rel, out) => ({ ...rs(repo, 'dump', 'latest', path.join(src, rel)), stdoutFile: out.file }),
    restoredOnePath: (_src, _rel, out) => out.file,
    check: (repo) => rs(repo, 'check', '--read-data'),
  };

  const borgEnv = (repo: string): NodeJS.ProcessEnv => ({
    ...process.env,
    BORG_REPO: repo,
    BORG_PASSPHRASE: PASSWORD,
    BORG_BASE_DIR: path.join(t.cacheDir, 'borg'),
    BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
    ...t.extraEnv,
  });
  const bg = (repo: string, ...args: string[]): Cmd => ({ cmd: 'borg', args, env: borgEnv(repo) });
  const borg: FileTool = {
    name: 'borg',
    init: (repo) => bg(repo, 'init', '--encryption', 'repokey'),
    backup: (repo, source, label) => bg(repo, 'create', '--compression', 'zstd,3', '--json', `::${label}`, source),
    restore: (repo, target, label) => ({ ...bg(repo, 'extract', `::${label}`), cwd: target }),
    restoreOne: (repo, src, rel, out, label) => ({ ...bg(repo, 'extract', `::${label}`, path.join(src, rel).replace(/^\/+/, '')), cwd: out.dir }),
    restoredOnePath: (src, rel, out) => path.join(out.dir, path.join(src, rel).replace(/^\/+/, '')),
    check: (repo) => bg(repo, 'check', '--verify-data'),
  };
  return [lifeboat, restic, borg];
}

export type ImageToolName = 'lifeboat' | 'partclone|zstd' | 'restic --stdin';

export function lifeboatImageCreate(t: ToolEnv, repo: string, disk: string): Cmd {
  const lb = lifeboatCommand(t.lifeboatRoot);
  return {
    cmd: lb.cmd,
    args: [...lb.args, 'image', 'create', disk, '--json'],
    env: lifeboatEnv(t, repo),
  };
}

export function lifeboatInit(t: ToolEnv, repo: string): Cmd {
  return fileTools(t)[0]!.init(repo);
}

export function resticInit(t: ToolEnv, repo: string): Cmd {
  return fileTools(t)[1]!.init(repo);
}

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** Every partition through partclone into `zstd -3 -T0`, one .zst file per partition; logs beside them. */
export function partcloneZstd(parts: readonly { file: string; fs: string }[], outDir: string): Cmd {
  const script = parts
    .map((p, i) => `partclone.${p.fs} -c -s ${q(p.file)} 2>${q(path.join(outDir, `part${i + 1}.log`))} | zstd -3 -T0 -q -f -o ${q(path.join(outDir, `part${i + 1}.zst`))}`)
    .join(' && ');
  return { cmd: 'bash', args: ['-c', `set -eo pipefail; ${script}`] };
}

export function resticStdin(t: ToolEnv, repo: string, disk: string): Cmd {
  return { ...fileTools(t)[1]!.backup(repo, '', ''), args: ['backup', '--json', '--stdin', '--stdin-filename', path.basename(disk)], stdinFile: disk };
}
