import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { FakeClock } from '../util/clock.js';
import { tmp } from '../files/testing.js';
import parcel from '@parcel/watcher';
import { Settle, watchLoop, type ChangeBatch } from './watch.js';
import { mirrorWatch, type MirrorResult } from './mirror.js';

test('settle: due a settle time after the last change, but never later than max-delay after the first', () => {
  const clock = new FakeClock();
  const s = new Settle(10_000, 300_000);
  assert.equal(s.due(), undefined, 'nothing pending: no timer at all');
  const t0 = clock.now();
  s.changed(clock.now());
  assert.equal(s.due(), t0 + 10_000);
  clock.advance(4_000);
  s.changed(clock.now());
  assert.equal(s.due(), t0 + 14_000, 'a new change moves the time on');
  // A file rewritten every second never settles: it is still handled max-delay after the first change.
  for (let i = 0; i < 400; i++) {
    clock.advance(1_000);
    s.changed(clock.now());
    if (clock.now() >= s.due()!) break;
  }
  assert.equal(s.due(), t0 + 300_000);
  assert.equal(clock.now(), t0 + 300_000);
  s.take();
  assert.equal(s.due(), undefined);
  clock.advance(1_000);
  s.changed(clock.now());
  assert.equal(s.due(), clock.now() + 10_000, 'after a run, the wait starts again');
});

/** Waits (test-side) until `cond` holds. */
async function until(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const read = (p: string): string | undefined => (fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : undefined);

test('mirror --watch follows an editor saving by rename, 2,000 files at once, mkdir -p, and the watched folder removed and re-created; idle is idle', async (t) => {
  const d = tmp(t);
  const src = join(d, 'src');
  const dst = join(d, 'dst');
  fs.mkdirSync(join(src, 'docs'), { recursive: true });
  fs.writeFileSync(join(src, 'docs', 'letter.txt'), 'draft 1');
  const runs: { r: MirrorResult; full: boolean; folders: readonly string[] }[] = [];
  const ac = new AbortController();
  const loop = mirrorWatch(src, dst, { settleMs: 150, maxDelayMs: 2_000, retryMs: 300, signal: ac.signal, onRun: (r, b) => runs.push({ r, full: b.full, folders: b.folders }) });
  const stopped = loop.catch((e: unknown) => e);
  t.after(async () => {
    ac.abort();
    await stopped;
  });
  await until('the first, full run', () => runs.length === 1);
  assert.equal(runs[0]!.full, true);
  assert.equal(read(join(dst, 'docs', 'letter.txt')), 'draft 1');

  // An editor's save: a temporary written, then renamed over the file.
  fs.writeFileSync(join(src, 'docs', '.letter.txt.swp'), 'draft 2');
  fs.renameSync(join(src, 'docs', '.letter.txt.swp'), join(src, 'docs', 'letter.txt'));
  await until('the saved letter', () => runs.length > 1 && read(join(dst, 'docs', 'letter.txt')) === 'draft 2');
  const saved = runs.at(-1)!;
  assert.equal(saved.full, false);
  assert.deepEqual(saved.folders, [join(fs.realpathSync(src), 'docs')], 'only the folder that changed is looked at');
  assert.ok(!fs.existsSync(join(dst, 'docs', '.letter.txt.swp')));
  const versions = join(dst, '.lifeboat-versions');
  assert.equal(read(join(versions, fs.readdirSync(versions)[0]!, 'docs', 'letter.txt')), 'draft 1');

  // 2,000 files at once (a git checkout): a few runs, not thousands.
  const before = runs.length;
  fs.mkdirSync(join(src, 'repo'));
  for (let i = 0; i < 2000; i++) fs.writeFileSync(join(src, 'repo', `f${i}.c`), `int x${i};`);
  await until('2,000 files', () => fs.existsSync(join(dst, 'repo')) && fs.readdirSync(join(dst, 'repo')).length === 2000);
  assert.ok(runs.length - before <= 4, `${runs.length - before} runs for one burst`);

  // mkdir -p, then a file deep inside (the inotify backend alone would not see it).
  fs.mkdirSync(join(src, 'n1', 'n2', 'n3'), { recursive: true });
  fs.writeFileSync(join(src, 'n1', 'n2', 'n3', 'q'), 'q');
  await until('n1/n2/n3/q', () => read(join(dst, 'n1', 'n2', 'n3', 'q')) === 'q');
  await new Promise((r) => setTimeout(r, 300));
  fs.writeFileSync(join(src, 'n1', 'n2', 'n3', 'r'), 'r');
  await until('n1/n2/n3/r, written later', () => read(join(dst, 'n1', 'n2', 'n3', 'r')) === 'r');

  // Idle: no run without a change (once the run that copied r has reported).
  await new Promise((r) => setTimeout(r, 500));
  const idle = runs.length;
  await new Promise((r) => setTimeout(r, 800));
  assert.equal(runs.length, idle, 'nothing runs while nothing changes');

  // The watched folder removed (the mirror keeps its copy), then re-created with new content.
  const removed = runs.length;
  fs.rmSync(src, { recursive: true });
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(read(join(dst, 'docs', 'letter.txt')), 'draft 2', 'a vanished source is not mirrored as deleted');
  fs.mkdirSync(join(src, 'docs'), { recursive: true });
  fs.writeFileSync(join(src, 'docs', 'letter.txt'), 'draft 3');
  await until('the re-created folder', () => runs.slice(removed).some((r) => r.full) && read(join(dst, 'docs', 'letter.txt')) === 'draft 3');
  await until('files gone from the re-created folder moved into the versions', () => !fs.existsSync(join(dst, 'repo')));
  fs.writeFileSync(join(src, 'docs', 'after.txt'), 'followed again');
  await until('a change after it came back', () => read(join(dst, 'docs', 'after.txt')) === 'followed again');

  ac.abort();
  assert.equal(((await stopped) as Error).name, 'AbortError');
});

test('a watcher error (an overflow: events were dropped) leads to a full rescan and a fresh subscription', async (t) => {
  const d = tmp(t);
  fs.mkdirSync(join(d, 'w'));
  const batches: ChangeBatch[] = [];
  let report: parcel.SubscribeCallback | undefined;
  let subscriptions = 0;
  const ac = new AbortController();
  const loop = watchLoop([join(d, 'w')], async (b) => void batches.push(b), {
    settleMs: 50,
    signal: ac.signal,
    subscribe: async (dir, fn, opts) => {
      subscriptions++;
      report = fn;
      return parcel.subscribe(dir, fn, opts);
    },
  }).catch((e: unknown) => e);
  t.after(async () => {
    ac.abort();
    await loop;
  });
  await until('the first batch', () => batches.length === 1);
  fs.writeFileSync(join(d, 'w', 'a'), 'a');
  await until('a partial batch', () => batches.length === 2);
  assert.deepEqual(batches[1], { full: false, folders: [join(d, 'w')] });
  report!(new Error('Events were dropped'), []);
  await until('a full batch', () => batches.length === 3);
  assert.equal(batches[2]!.full, true);
  assert.equal(subscriptions, 2, 'subscribed again');
  fs.writeFileSync(join(d, 'w', 'b'), 'b');
  await until('followed after it', () => batches.length === 4);
  assert.equal(batches[3]!.full, false);
});
