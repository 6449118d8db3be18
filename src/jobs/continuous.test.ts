import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { applyPolicyToGroup, type ForgetCandidate } from '../repo/forget.js';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { lifeboatOwnFolders, type BackupResult } from '../files/backup.js';
import { newRepo, tmp } from '../files/testing.js';
import { randomBytes } from 'node:crypto';
import { FaultStore } from '../store/fault.js';
import { LocalStore } from '../store/local.js';
import { Repository } from '../repo/repository.js';
import parcel from '@parcel/watcher';
import type { ChangeBatch } from './watch.js';
import { backupFiles, restoreFiles } from './files.js';
import { CONTINUOUS_RETENTION, protectContinuously } from './continuous.js';

test('continuous retention thins like Time Machine: all for a day, hourly for a week, daily for a month, weekly before', () => {
  const now = Date.UTC(2026, 11, 5, 12, 0, 0);
  const hour = 3_600_000;
  const snaps: ForgetCandidate[] = [];
  // A snapshot every 10 minutes for 90 days.
  for (let t = now, i = 0; t > now - 90 * 24 * hour; t -= 10 * 60_000, i++) {
    snaps.push({ id: String(i).padStart(8, '0'), kind: 'files', time: new Date(t).toISOString(), host: 'h', paths: ['/home/ann'], tags: [] });
  }
  snaps.push({ id: 'pinned00', kind: 'files', time: new Date(now - 80 * 24 * hour + 60_000).toISOString(), host: 'h', paths: ['/home/ann'], tags: [], pinned: true });
  const { keep } = applyPolicyToGroup(snaps, CONTINUOUS_RETENTION);
  const kept = keep.map((k) => Date.parse(k.snapshot.time));
  const age = (t: number) => now - t;
  const inRange = (lo: number, hi: number) => kept.filter((t) => age(t) >= lo && age(t) < hi);
  assert.equal(inRange(0, 24 * hour).length, 144, 'every snapshot of the last 24 hours');
  const hourly = inRange(24 * hour + 1, 7 * 24 * hour);
  assert.ok(hourly.length >= 143 && hourly.length <= 145, `one an hour for the week (${hourly.length})`);
  assert.equal(new Set(hourly.map((t) => Math.floor(t / hour))).size, hourly.length, 'at most one per hour');
  const daily = inRange(7 * 24 * hour + hour, 29 * 24 * hour);
  assert.equal(new Set(daily.map((t) => Math.floor(t / (24 * hour)))).size, daily.length, 'at most one per day');
  assert.ok(daily.length >= 21 && daily.length <= 23, `one a day for the month (${daily.length})`);
  const weekly = inRange(32 * 24 * hour, 90 * 24 * hour);
  assert.ok(weekly.length >= 8 && weekly.length <= 10, `one a week before (${weekly.length}, the pinned one among them)`);
  assert.ok(keep.some((k) => k.snapshot.id === 'pinned00'), 'pins are kept');
  assert.ok(keep.length < 340, `${keep.length} of ${snaps.length} kept`);
});

/** Waits (test-side) until `cond` holds. */
async function until(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('watch: a change is in a snapshot within settle + 5 s; an editor save by rename; 2,000 files give a few snapshots; the repository inside the watched folder is not followed; thinning touches only these paths', async (t) => {
  const d = tmp(t);
  const home = join(d, 'home');
  fs.mkdirSync(join(home, 'docs'), { recursive: true });
  fs.writeFileSync(join(home, 'docs', 'letter.txt'), 'draft 1');
  const repo = await newRepo(home); // the repository lies inside the watched folder, as with "watch ~"
  t.after(() => repo.close());
  const other = join(d, 'other');
  fs.mkdirSync(other);
  fs.writeFileSync(join(other, 'x'), 'x');
  const otherSnap = await backupFiles(repo, { paths: [other] });
  await repo.unlockAll();

  const snaps: { r: BackupResult; thinned: number; at: number }[] = [];
  const ac = new AbortController();
  const loop = protectContinuously(repo, {
    paths: [home],
    ownFolders: lifeboatOwnFolders({ repository: join(home, 'repo') }),
    cacheDir: join(d, 'cache'),
    settleMs: 200,
    maxDelayMs: 3_000,
    retention: { last: 2 },
    signal: ac.signal,
    onSnapshot: (r, _b, thinned) => snaps.push({ r, thinned, at: Date.now() }),
  });
  const stopped = loop.catch((e: unknown) => e);
  t.after(async () => {
    ac.abort();
    await stopped;
  });
  await until('the first snapshot', () => snaps.length === 1);
  assert.equal(snaps[0]!.r.summary.filesNew, 1);

  // An editor's save; then nothing more for a while: exactly one more snapshot, well within settle + 5 s.
  const saved = Date.now();
  fs.writeFileSync(join(home, 'docs', '.letter.txt.swp'), 'draft 2');
  fs.renameSync(join(home, 'docs', '.letter.txt.swp'), join(home, 'docs', 'letter.txt'));
  await until('the saved letter in a snapshot', () => snaps.length === 2);
  assert.ok(snaps[1]!.at - saved < 200 + 5_000, `in a snapshot after ${snaps[1]!.at - saved} ms`);
  assert.equal(snaps[1]!.r.summary.filesChanged, 1);
  assert.equal(snaps[0]!.r.changedOnly, undefined, 'the first snapshot looks at everything');
  assert.equal(snaps[1]!.r.changedOnly?.lookedAt, 3, 'after a change, only the named folder and those above it are looked at');
  await new Promise((r) => setTimeout(r, 1_000));
  assert.equal(snaps.length, 2, 'writing the repository (inside the watched folder) does not start another snapshot');

  const burst = snaps.length;
  fs.mkdirSync(join(home, 'src'));
  for (let i = 0; i < 2000; i++) fs.writeFileSync(join(home, 'src', `f${i}.c`), `int x${i};`);
  await until('2,000 files in a snapshot', () => snaps.some((s) => s.r.summary.totalFiles === 2001));
  assert.ok(snaps.length - burst <= 4, `${snaps.length - burst} snapshots for one burst of 2,000 files`);

  // Thinning keeps the last 2 of this job's snapshots and never touches another folder's.
  const ids = (await repo.listSnapshots()).map((s) => s.id);
  assert.ok(ids.includes(otherSnap.snapshotId));
  assert.equal(ids.length, 3);
  assert.ok(snaps.reduce((n, s) => n + s.thinned, 0) >= 1);

  const restored = join(d, 'restored');
  await restoreFiles(repo, snaps.at(-1)!.r.snapshotId, { target: restored });
  await repo.unlockAll();
  assert.equal(fs.readFileSync(join(restored, 'home', 'docs', 'letter.txt'), 'utf8'), 'draft 2');
  assert.ok(!fs.existsSync(join(restored, 'home', 'repo')), 'the repository is not in its own snapshots');
  ac.abort();
  assert.equal(((await stopped) as Error).name, 'AbortError');
});

/** A continuous loop over `home` that retries a failed snapshot after 300 ms; stopped when the test ends. */
function retryingLoop(t: TestContext, repo: Repository, home: string): { snaps: BackupResult[]; warnings: string[] } {
  const snaps: BackupResult[] = [];
  const warnings: string[] = [];
  const ac = new AbortController();
  const loop = protectContinuously(repo, {
    paths: [home],
    settleMs: 100,
    retryMs: 300,
    retention: null,
    signal: ac.signal,
    onEvent: (e) => (e.type === 'warning' ? warnings.push(e.message) : undefined),
    onSnapshot: (r) => snaps.push(r),
  }).catch((e: unknown) => e);
  t.after(async () => {
    ac.abort();
    await loop;
  });
  return { snaps, warnings };
}

test('watch: with the repository\'s drive unplugged, a snapshot fails with a warning and is taken when it is back, with nothing lost', async (t) => {
  const d = tmp(t);
  const home = join(d, 'home');
  fs.mkdirSync(home);
  fs.writeFileSync(join(home, 'a.txt'), 'a');
  const drive = join(d, 'usb');
  fs.mkdirSync(drive);
  const repo = await newRepo(drive);
  t.after(() => repo.close());
  const { snaps, warnings } = retryingLoop(t, repo, home);
  await until('the first snapshot', () => snaps.length === 1);
  fs.renameSync(drive, join(d, 'usb-away')); // unplugged
  fs.writeFileSync(join(home, 'b.txt'), 'written while the drive was away');
  await until('a warning that the snapshot failed', () => warnings.some((w) => /Trying again/.test(w)));
  assert.equal(snaps.length, 1);
  fs.renameSync(join(d, 'usb-away'), drive); // plugged in again
  await until('the snapshot, once the drive is back', () => snaps.length === 2, 10_000);
  assert.equal(snaps[1]!.summary.filesNew, 1);
  const restored = join(d, 'restored');
  await restoreFiles(repo, snaps[1]!.snapshotId, { target: restored });
  await repo.unlockAll();
  assert.equal(fs.readFileSync(join(restored, 'home', 'b.txt'), 'utf8'), 'written while the drive was away');
});

test('watch: a snapshot that fails mid-write (the drive full) is taken again once there is room, by the same process, with nothing lost', async (t) => {
  const d = tmp(t);
  const home = join(d, 'home');
  fs.mkdirSync(home);
  fs.writeFileSync(join(home, 'a.txt'), 'a');
  await (await newRepo(d)).close();
  const store = new FaultStore(new LocalStore(join(d, 'repo')));
  const repo = await Repository.open(store, 'pw');
  t.after(() => repo.close());
  const { snaps, warnings } = retryingLoop(t, repo, home);
  await until('the first snapshot', () => snaps.length === 1);
  store.noSpaceAfterBytes = store.bytesStored + 100_000; // room for a little, not for what comes
  const big = randomBytes(3 << 20);
  fs.writeFileSync(join(home, 'big.bin'), big);
  await until('a warning that the snapshot failed', () => warnings.some((w) => /full/i.test(w)));
  assert.equal(snaps.length, 1);
  store.noSpaceAfterBytes = undefined; // room again
  await until('the snapshot, once there is room', () => snaps.length === 2, 10_000);
  assert.equal(snaps[1]!.summary.filesNew, 1);
  const restored = join(d, 'restored');
  await restoreFiles(repo, snaps[1]!.snapshotId, { target: restored });
  await repo.unlockAll();
  assert.ok(fs.readFileSync(join(restored, 'home', 'big.bin')).equals(big));
});

test('watch: a change the watcher did not report is saved by the full rescan every few hours, and by the one after an overflow', async (t) => {
  const d = tmp(t);
  const home = join(d, 'home');
  fs.mkdirSync(join(home, 'docs'), { recursive: true });
  fs.mkdirSync(join(home, 'quiet'));
  fs.writeFileSync(join(home, 'docs', 'a.txt'), 'a1');
  fs.writeFileSync(join(home, 'quiet', 'q.txt'), 'q1');
  const repo = await newRepo(d);
  t.after(() => repo.close());
  const snaps: { r: BackupResult; batch: ChangeBatch }[] = [];
  let report: parcel.SubscribeCallback | undefined;
  const ac = new AbortController();
  const started = Date.now();
  const loop = protectContinuously(repo, {
    paths: [home],
    settleMs: 100,
    fullEveryMs: 6_000,
    retention: null,
    signal: ac.signal,
    onSnapshot: (r, batch) => snaps.push({ r, batch }),
    // A watcher that misses what happens in quiet/ (as one may miss a file written through mmap).
    subscribe: async (dir, fn, opts) => {
      report = fn;
      return parcel.subscribe(dir, (err, events) => fn(err, events.filter((e) => !e.path.includes('/quiet/'))), opts);
    },
  }).catch((e: unknown) => e);
  t.after(async () => {
    ac.abort();
    await loop;
  });
  await until('the first snapshot', () => snaps.length === 1);
  fs.writeFileSync(join(home, 'quiet', 'q.txt'), 'q2'); // rewritten in place: its folder's mtime stays
  fs.writeFileSync(join(home, 'docs', 'a.txt'), 'a2');
  await until('a snapshot of docs', () => snaps.length === 2);
  assert.ok(Date.now() - started < 6_000, 'before the full rescan (the machine is too slow for this test)');
  assert.deepEqual(snaps[1]!.batch, { full: false, folders: [join(home, 'docs')] });
  assert.equal(snaps[1]!.r.summary.filesChanged, 1, 'only docs/a.txt: the watcher did not say, and quiet/ was carried');

  await until('the full rescan', () => snaps.length === 3, 15_000);
  assert.equal(snaps[2]!.batch.full, true);
  assert.equal(snaps[2]!.r.changedOnly, undefined);
  assert.equal(snaps[2]!.r.summary.filesChanged, 1, 'quiet/q.txt, found');

  fs.writeFileSync(join(home, 'quiet', 'q.txt'), 'q3');
  report!(new Error('Events were dropped'), []);
  await until('the rescan after an overflow', () => snaps.length === 4);
  assert.equal(snaps[3]!.batch.full, true);
  assert.equal(snaps[3]!.r.summary.filesChanged, 1);
  const restored = join(d, 'restored');
  await restoreFiles(repo, snaps[3]!.r.snapshotId, { target: restored });
  await repo.unlockAll();
  assert.equal(fs.readFileSync(join(restored, 'home', 'quiet', 'q.txt'), 'utf8'), 'q3');
});
