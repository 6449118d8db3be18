/** Test helpers for the rescue program: run it with piped answers, and a repository holding one drive image. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { BIN, lifeboat } from './testing.js';
import { makeExt4Disk, sh } from '../image/testing.js';

export const RESCUE_BIN = resolve(BIN, '..', 'lifeboat-rescue.js');

export function rescue(args: readonly string[], answers: readonly string[], program: readonly string[] = [process.execPath, RESCUE_BIN], cwd?: string, env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((res, rej) => {
    const child = spawn(program[0]!, [...program.slice(1), ...args], { stdio: ['pipe', 'pipe', 'pipe'], ...(cwd ? { cwd } : {}), env: { ...process.env, LIFEBOAT_INSECURE_FAST_KDF: '1', ...env } });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', rej);
    child.on('close', (code) => res({ code, out }));
    child.stdin.end(answers.map((a) => a + '\n').join(''));
  });
}

/** A repository holding one image of a 64 MiB MBR/ext4 disk; returns its recovery key and the image id. */
export async function imageRepository(dir: string): Promise<{ repo: string; disk: string; recoveryKey: string; id: string }> {
  const disk = makeExt4Disk(dir);
  const repo = join(dir, 'backup-drive', 'lifeboat');
  sh(`mkdir -p ${join(dir, 'backup-drive')}`);
  const env = { LIFEBOAT_REPO: repo, LIFEBOAT_PASSWORD: 'the password' };
  const init = await lifeboat(['init', '--json'], env);
  assert.equal(init.code, 0, init.stderr);
  const created = await lifeboat(['image', 'create', disk, '--json'], env);
  assert.equal(created.code, 0, created.stderr);
  return { repo, disk, recoveryKey: (JSON.parse(init.stdout) as { recoveryKey: string }).recoveryKey, id: (JSON.parse(created.stdout) as { id: string }).id };
}

