/**
 * An interrupted restore (issue 3): `lifeboat restore` into an existing folder is SIGKILLed while
 * it writes a file under its temporary name (.lifeboat-restore-<16 hex>), which stays behind.
 * Running the same restore again completes, gives exactly the source tree, and leaves no
 * temporary anywhere — while a file of the snapshot named exactly like one is restored intact.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, assertSameTree, lifeboat, tempDir } from './testing.js';

const TEMPORARY = /^\.lifeboat-restore-[0-9a-f]{16}$/;
const OWN = '.lifeboat-restore-0123456789abcdef';

/** Paths (relative to `dir`) of every name under it of a temporary's form. */
function temporariesUnder(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (TEMPORARY.test(e.name)) out.push(p);
    if (e.isDirectory()) out.push(...temporariesUnder(dir, p));
  }
  return out.sort();
}

/**
 * Runs `lifeboat restore` and SIGKILLs it as soon as a temporary with data in it shows up in
 * `watch`; resolves with whether it was killed that way.
 */
function restoreKilledMidFile(args: string[], env: Record<string, string>, watch: string): Promise<boolean> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [BIN, 'restore', ...args], { env: { ...process.env, LIFEBOAT_INSECURE_FAST_KDF: '1', ...env }, stdio: 'ignore' });
    let killed = false;
    const timer = setInterval(() => {
      let names: string[] = [];
      try {
        names = readdirSync(watch);
      } catch {
        return;
      }
      for (const n of names) {
        if (!TEMPORARY.test(n) || n === OWN) continue;
        try {
          if (statSync(join(watch, n)).size === 0) continue;
        } catch {
          continue; // renamed into place meanwhile
        }
        killed = child.kill('SIGKILL');
        clearInterval(timer);
        return;
      }
    }, 1);
    child.on('error', rej);
    child.on('exit', (_code, signal) => {
      clearInterval(timer);
      res(killed && signal === 'SIGKILL');
    });
  });
}

test('a restore killed with SIGKILL leaves temporaries; running it again completes, equals the source and leaves none', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const src = join(d.path, 'src');
  mkdirSync(join(src, 'sub'), { recursive: true });
  for (let i = 0; i < 8; i++) writeFileSync(join(src, i % 2 ? 'sub' : '', `big${i}.bin`), randomBytes(12 * 1024 * 1024));
  for (let i = 0; i < 40; i++) writeFileSync(join(src, i % 2 ? 'sub' : '', `small${i}.txt`), randomBytes(300 + i * 500));
  writeFileSync(join(src, OWN), 'a file of the snapshot that is named like a temporary');
  writeFileSync(join(src, 'sub', OWN), 'another one');
  const b = await lifeboat(['backup', '--json', src], env);
  assert.equal(b.code, 0, b.stderr);
  const id = (JSON.parse(b.stdout) as { snapshot: string }).snapshot;

  // Restoring into a folder that exists (an earlier restore's, say): files go through temporaries.
  const target = join(d.path, 'target');
  const restored = join(target, 'src');
  let left: string[] = [];
  for (let attempt = 0; attempt < 5 && left.length === 0; attempt++) {
    rmSync(target, { recursive: true, force: true });
    mkdirSync(restored, { recursive: true });
    const killed = await restoreKilledMidFile([id, '--target', target], env, restored);
    left = temporariesUnder(target).filter((p) => !p.endsWith(OWN));
    if (!killed) left = [];
  }
  assert.ok(left.length > 0, 'a killed restore left at least one temporary behind');

  const again = await lifeboat(['restore', id, '--target', target], env);
  assert.equal(again.code, 0, `${again.stdout}${again.stderr}`);
  assert.match(again.stdout, /Removed \d+ temporary file\(s\) left by an interrupted restore/);
  assertSameTree(src, restored);
  assert.deepEqual(temporariesUnder(target), [`src/${OWN}`, `src/sub/${OWN}`]);

  // A completed restore into the same target leaves none either, and keeps the snapshot's own.
  const third = await lifeboat(['restore', id, '--target', target, '--overwrite', 'always', '--json'], env);
  assert.equal(third.code, 0, third.stderr);
  assert.equal((JSON.parse(third.stdout) as { summary: { leftoversRemoved: number } }).summary.leftoversRemoved, 0);
  assertSameTree(src, restored);
  assert.deepEqual(temporariesUnder(target), [`src/${OWN}`, `src/sub/${OWN}`]);
});
