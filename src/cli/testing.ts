/** Test helpers for driving the real CLI as a child process (used by every layer's CLI tests). */
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'lifeboat.js');

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function lifeboat(args: readonly string[], env: Record<string, string | undefined> = {}, input?: string, cwd?: string): Promise<CliResult> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, LIFEBOAT_INSECURE_FAST_KDF: '1', ...env },
      ...(cwd !== undefined ? { cwd } : {}),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', rej);
    child.on('close', (code) => res({ code, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

/** Runs a lifeboat command and SIGKILLs it after `ms`; resolves with how it ended. */
export function killedAfter(ms: number, args: readonly string[], env: Record<string, string>): Promise<{ killed: boolean; code: number | null }> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, LIFEBOAT_INSECURE_FAST_KDF: '1', ...env }, stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('error', rej);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      res({ killed: signal === 'SIGKILL', code });
    });
  });
}

export function tempDir(prefix = 'lifeboat-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** Asserts that `got` holds exactly the files of `want` (names and bytes), recursively. */
export function assertSameTree(want: string, got: string): void {
  const w = readdirSync(want).sort();
  assert.deepEqual(readdirSync(got).sort(), w, `entries of ${got}`);
  for (const n of w) {
    const a = join(want, n);
    const b = join(got, n);
    if (statSync(a).isDirectory()) assertSameTree(a, b);
    else assert.ok(readFileSync(a).equals(readFileSync(b)), `${b} differs from ${a}`);
  }
}
