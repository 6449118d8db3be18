/**
 * The machine: installs the tools the benchmark compares against (from Debian, when missing) and
 * describes the machine and tool versions for the results.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { tryRun } from './exec.js';

/** Program → Debian package that provides it. */
const NEEDED: readonly (readonly [string, string])[] = [
  ['restic', 'restic'],
  ['borg', 'borgbackup'],
  ['partclone.ext4', 'partclone'],
  ['zstd', 'zstd'],
  ['/usr/bin/time', 'time'],
  ['mkfs.ext4', 'e2fsprogs'],
  ['debugfs', 'e2fsprogs'],
  ['mkfs.vfat', 'dosfstools'],
  ['mcopy', 'mtools'],
  ['sfdisk', 'fdisk'],
];

function has(program: string): boolean {
  if (program.startsWith('/')) return fs.existsSync(program);
  return spawnSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' }).status === 0;
}

function aptInstall(pkgs: string[], log: (s: string) => void): boolean {
  log(`apt-get install -y ${pkgs.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // apt's output goes to our stderr so that --json keeps stdout clean.
  return spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...pkgs], { stdio: ['ignore', 2, 2], env }).status === 0;
}

/** Installs whatever is missing; throws with a plain sentence if that fails. */
export function ensureTools(log: (s: string) => void): void {
  const missing = [...new Set(NEEDED.filter(([p]) => !has(p)).map(([, pkg]) => pkg))];
  if (missing.length === 0) return;
  log(`missing tools; installing Debian packages: ${missing.join(', ')}`);
  if (!aptInstall(missing, log)) {
    log('apt-get install failed; running apt-get update and trying again');
    spawnSync('apt-get', ['update'], { stdio: ['ignore', 2, 2] });
    if (!aptInstall(missing, log)) throw new Error(`could not install ${missing.join(', ')} with apt-get; install them and run the benchmark again`);
  }
  const still = NEEDED.filter(([p]) => !has(p)).map(([p]) => p);
  if (still.length) throw new Error(`still missing after apt-get install: ${still.join(', ')}`);
}

function firstLine(s: string | undefined): string {
  return (s ?? 'not found').trim().split('\n')[0]!.trim();
}

export interface MachineDescription {
  host: string;
  cpu: string;
  cores: number;
  memoryBytes: number;
  kernel: string;
  os: string;
  node: string;
  lifeboatCommit: string;
  versions: Record<string, string>;
}

export function describeMachine(repoRoot: string): MachineDescription {
  const cpuinfo = fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '';
  const cpu = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  const osRelease = fs.existsSync('/etc/os-release') ? fs.readFileSync('/etc/os-release', 'utf8') : '';
  const partclone = tryRun('partclone.ext4', ['-v']);
  return {
    host: os.hostname(),
    cpu: cpu.trim(),
    cores: os.cpus().length,
    memoryBytes: os.totalmem(),
    kernel: `${os.release()} ${os.version()}`,
    os: /PRETTY_NAME="?([^"\n]*)"?/.exec(osRelease)?.[1] ?? os.platform(),
    node: process.version,
    lifeboatCommit: firstLine(tryRun('git', ['-C', repoRoot, 'rev-parse', '--short', 'HEAD'])),
    versions: {
      restic: firstLine(tryRun('restic', ['version'])),
      borg: firstLine(tryRun('borg', ['--version'])),
      partclone: firstLine(partclone?.split('\n').find((l) => /partclone/i.test(l))),
      zstd: firstLine(tryRun('zstd', ['--version'])),
      e2fsprogs: firstLine(tryRun('mke2fs', ['-V'])),
    },
  };
}
