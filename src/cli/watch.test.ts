/** `lifeboat watch` and `lifeboat mirror --watch` through the real CLI: started, followed, stopped with Ctrl-C. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { BIN, lifeboat, tempDir } from './testing.js';

/** Starts a long-running command; `lines` collects its stdout lines as they come. */
function start(args: readonly string[], env: Record<string, string>) {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, LIFEBOAT_INSECURE_FAST_KDF: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => lines.push(...d.split('\n').filter((l) => l !== '')));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  return { child, lines, exited, stderr: () => stderr };
}

async function until(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('lifeboat watch: a snapshot on start and after a change, Ctrl-C stops it (130); a missing folder is refused at once', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw', XDG_CACHE_HOME: join(d.path, 'cache') };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const docs = join(d.path, 'docs');
  fs.mkdirSync(docs);
  fs.writeFileSync(join(docs, 'a.txt'), 'a');
  const w = start(['watch', '--settle', '200ms', docs], env);
  t.after(() => w.child.kill('SIGKILL'));
  await until('the first snapshot', () => w.lines.length === 1);
  assert.match(w.lines[0]!, /snapshot [0-9a-f]{8} \(1 new, 0 changed files/);
  fs.writeFileSync(join(docs, 'b.txt'), 'b');
  await until('the second snapshot', () => w.lines.length === 2);
  assert.match(w.lines[1]!, /1 new, 0 changed files/);
  w.child.kill('SIGINT');
  assert.equal(await w.exited, 130, w.stderr());
  const snaps = await lifeboat(['snapshots', '--json'], env);
  assert.equal((JSON.parse(snaps.stdout) as unknown[]).length, 2);

  const missing = await lifeboat(['watch', join(d.path, 'nope')], env);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /nope is not a folder that exists/);
  const bad = await lifeboat(['watch', '--settle', 'soon', docs], env);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--settle needs a time such as 10s/);
});

test('lifeboat mirror --watch: mirrors, follows a change, stops with Ctrl-C and leaves the mirror unlocked', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const src = join(d.path, 'src');
  const dst = join(d.path, 'dst');
  fs.mkdirSync(src);
  fs.writeFileSync(join(src, 'a.txt'), 'a');
  const w = start(['mirror', '--watch', '--settle', '200ms', src, dst], {});
  t.after(() => w.child.kill('SIGKILL'));
  await until('the first run', () => w.lines.length === 1);
  assert.match(w.lines[0]!, /mirror up to date \(1 copied\)/);
  fs.writeFileSync(join(src, 'a.txt'), 'changed');
  await until('the change', () => w.lines.length === 2);
  assert.equal(fs.readFileSync(join(dst, 'a.txt'), 'utf8'), 'changed');
  w.child.kill('SIGINT');
  assert.equal(await w.exited, 130, w.stderr());
  assert.ok(!fs.existsSync(join(dst, '.lifeboat-mirror', 'lock')));
  const inside = await lifeboat(['mirror', '--watch', src, join(src, 'm')]);
  assert.equal(inside.code, 2, 'a wrong DST is said at once, not retried');
  const again = await lifeboat(['mirror', src, dst]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /0 copied .* 1 unchanged/);
});
