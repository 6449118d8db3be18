import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { lifeboat, tempDir } from './testing.js';
import { progressLine } from './progress.js';

interface ProgressLine {
  type: 'progress';
  what: string;
  done: number;
  total: number | null;
  etaSeconds: number | null;
}

function progressEvents(stderr: string, what: string): ProgressLine[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as ProgressLine)
    .filter((e) => e.type === 'progress' && e.what === what);
}

/** The invariants of every operation's progress: a time left only with a total, never past it, complete at the end. */
function assertHonest(events: ProgressLine[], total: number): void {
  assert.ok(events.length > 0, 'progress events');
  for (const e of events) {
    if (e.total === null) assert.equal(e.etaSeconds, null, 'no time left without a total');
    else {
      assert.equal(e.total, total, 'the only total is the real one');
      assert.ok(e.done <= e.total);
    }
  }
  const last = events[events.length - 1]!;
  assert.equal(last.done, total);
  assert.equal(last.total, total);
}

test('CLI progress: backup, restore and check --read-data report a real total, reached at the end (LIFEBOAT_PROGRESS_JSON=1 with --json)', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw', LIFEBOAT_PROGRESS_JSON: '1' };
  const src = join(d.path, 'src');
  fs.mkdirSync(join(src, 'sub'), { recursive: true });
  for (let i = 0; i < 6; i++) fs.writeFileSync(join(src, i % 2 ? 'sub' : '.', `f${i}`), randomBytes(700_000 + i));
  const bytes = 6 * 700_000 + 15;
  assert.equal((await lifeboat(['init'], env)).code, 0);

  const b = await lifeboat(['backup', src, '--json'], env);
  assert.equal(b.code, 0, b.stderr);
  assertHonest(progressEvents(b.stderr, 'backup'), bytes);

  const r = await lifeboat(['restore', 'latest', '--target', join(d.path, 'out'), '--json'], env);
  assert.equal(r.code, 0, r.stderr);
  assertHonest(progressEvents(r.stderr, 'restore'), bytes);

  const c = await lifeboat(['check', '--read-data', '--json'], env);
  assert.equal(c.code, 0, c.stderr);
  const packs = fs.readdirSync(join(d.path, 'repo', 'data'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
  const packBytes = packs.reduce((s, e) => s + fs.statSync(join(e.parentPath, e.name)).size, 0);
  assertHonest(progressEvents(c.stderr, 'reading packs'), packBytes);

  // Piped and without the variable: no progress at all.
  const quiet = await lifeboat(['backup', src, '--json'], { ...env, LIFEBOAT_PROGRESS_JSON: undefined });
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.deepEqual(progressEvents(quiet.stderr, 'backup'), []);
});

test('CLI progress line: no percentage without a total, 100% only when all is done', () => {
  assert.equal(progressLine('backup', { done: 5e6, total: undefined, rate: 1e6, eta: undefined }, { files: 3 }), 'backup: 5.00 MB, 3 files, 1.00 MB/s');
  assert.match(progressLine('backup', { done: 9996, total: 10000, rate: 1000, eta: 0.4 }), /^backup: 99\.9% /);
  assert.equal(progressLine('restore', { done: 10000, total: 10000, rate: 1000, eta: 0 }), 'restore: 100.0% 10.0 kB of 10.0 kB, 1.00 kB/s', 'no time left once all is done');
  assert.match(progressLine('backup', { done: 2500, total: 10000, rate: 10, eta: 750 }), /^backup: 25\.0% .*, about 13 min left$/);
});
