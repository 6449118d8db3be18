/**
 * The dashboard in a real browser (Debian's chromium, headless, driven by playwright-core): the
 * wizard from nothing to a first backup whose progress reaches 100%, a restore of one file
 * (byte-identical), a download, and the history and space pages. Screenshots of each step go to
 * dist/artifacts/dashboard/ (LIFEBOAT_ARTIFACTS overrides).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { FakeClock } from '../util/clock.js';
import { chromium, type Page } from 'playwright-core';
import type { TestContext } from 'node:test';
import { http, startHome } from './testing.js';
import { openRepositoryAt } from '../jobs/open.js';
import { saveDir, type TreeEntry } from '../files/tree.js';
import type { Hex } from '../repo/ids.js';
import type { ListingView, Overview, SpaceView } from '../web/api.js';
import { makeExt4Disk } from '../image/testing.js';

const CHROMIUM = process.env['LIFEBOAT_CHROMIUM'] ?? '/usr/bin/chromium';
const ARTIFACTS = process.env['LIFEBOAT_ARTIFACTS'] ?? join('dist', 'artifacts', 'dashboard');

async function openPage(t: TestContext): Promise<Page> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/install-test-deps.sh (it installs Debian's chromium)`);
  mkdirSync(ARTIFACTS, { recursive: true });
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
  page.setDefaultTimeout(30_000);
  return page;
}

test('wizard -> first backup reaches 100% -> restore one file byte-identical -> download; history and space show the run', async (t) => {
  const { dashboard: d, source, drive, dir } = await startHome(t);
  // Enough data that the backup takes a moment and sends progress on the way.
  const noise = Buffer.alloc(24_000_000);
  for (let i = 0; i < noise.length; i += 4) noise.writeUInt32LE((i * 2246822519 + 7) >>> 0, i);
  writeFileSync(join(source, 'video.raw'), noise);
  const page = await openPage(t);
  const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  // Every percentage and file name the page shows, kept by the page itself (the bar is replaced as the run ends).
  await page.addInitScript({
    content: `window.seen = []; window.files = [];
      new MutationObserver(() => { for (const el of document.querySelectorAll('.percent')) window.seen.push(el.textContent); for (const el of document.querySelectorAll('.current')) window.files.push(el.textContent); })
        .observe(document, { subtree: true, childList: true, characterData: true });`,
  });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));

  await page.goto(d.url);
  assert.equal(new URL(page.url()).search, '', 'the token leaves the address bar');
  await page.waitForSelector('#step-1');
  assert.match(page.url(), /#\/setup$/, 'with no job yet, the page starts the wizard');
  await page.fill('#dest-other', drive);
  await page.fill('#pw1', 'correct horse');
  await page.fill('#pw2', 'correct horse battery');
  await page.fill('#folders', source);
  await page.selectOption('#freq', 'weekly');
  await page.selectOption('#day', 'sun');
  await page.fill('#time', '19:00');
  // The destination and the folder are on this machine's one disk: said in words, naming the folder.
  await page.waitForSelector(`#same-disk >> text=The backup would be on the same disk as ${source}: if that disk fails`);
  await shot('1-wizard');
  await page.click('#create');
  await page.waitForSelector('text=the two passwords differ');
  await page.fill('#pw2', 'correct horse');
  await page.click('#create');
  const key = await page.textContent('#recovery-key');
  assert.match(key ?? '', /\S{20,}/);
  assert.equal(await page.isDisabled('#start'), true, 'no first backup before the key is written down');
  await page.waitForSelector('#estimate-text');
  assert.match((await page.textContent('#estimate-text')) ?? '', /^About 27 MB in 3 files\. The first backup takes about \d+ seconds?;/);
  await shot('2-recovery-key');
  await page.check('#written');
  await page.click('#start');
  await page.waitForSelector('.card[data-job="My files"] progress');
  assert.match((await page.textContent('.card[data-job="My files"]')) ?? '', /Last backup: none yet/);
  await shot('3-progress');
  await page.waitForSelector('.card[data-job="My files"] >> text=Succeeded', { timeout: 60_000 });
  const seen = await page.evaluate<string[]>('window.seen');
  assert.ok(seen.some((s) => s.startsWith('100%')), `progress reached 100% (saw ${seen.slice(-3).join(' | ')})`);
  const files = await page.evaluate<string[]>('window.files');
  assert.ok(files.some((f) => f.startsWith(`Now: ${source}/`)), `progress named the file being backed up (saw ${files.slice(-3).join(' | ')})`);
  assert.match((await page.textContent('.card[data-job="My files"]')) ?? '', /Next backup: /);
  await shot('4-overview');

  await page.click('text=Restore files >> nth=1');
  await page.waitForSelector('#browser >> text=Documents/');
  await page.click('#browser >> text=Documents/');
  await page.waitForSelector(`#browser h3 >> text=${JSON.stringify(source)}`);
  assert.equal(await page.isVisible('#show-more'), false, 'a folder of three entries has no "Show more"');
  const target = join(dir, 'restored');
  mkdirSync(target);
  const download = page.waitForEvent('download');
  await page.click('tr:has-text("photo.raw") >> text=Download');
  const dl = await download;
  const got = await dl.path();
  assert.ok(readFileSync(got).equals(readFileSync(join(source, 'photo.raw'))), 'the download is byte-identical');
  await page.click('#browser >> text=letters/');
  await page.waitForSelector('tr:has-text("mum.txt")');
  await page.fill('#target', target);
  assert.equal(await page.isChecked('#to-folder'), true, 'typing a folder chooses it');
  await page.click('tr:has-text("mum.txt") >> button:has-text("Restore")');
  await page.waitForSelector('#restore-status >> text=Restored 1 file');
  await shot('5-restore');
  await page.fill('#search', 'mum');
  await page.click('form button[type=submit]');
  await page.waitForSelector(`#results >> text=${JSON.stringify(join(source, 'letters', 'mum.txt'))}`);
  assert.match((await page.textContent('#results')) ?? '', /letters\/mum\.txt\s*version of /);
  await page.fill('#search', 'nothing-like-this');
  await page.click('form button[type=submit]');
  await page.waitForSelector('#results >> text=Nothing called "nothing-like-this" in any version.');
  assert.ok(readFileSync(join(target, 'Documents', 'letters', 'mum.txt')).equals(readFileSync(join(source, 'letters', 'mum.txt'))), 'the restored file is byte-identical');
  // Back where it came from, keeping both the changed file and the backed-up one.
  writeFileSync(join(source, 'letters', 'mum.txt'), 'Dear Mum, edited\n');
  await page.check('#to-original');
  await page.check('#changed-keep-both');
  await page.click('tr:has-text("mum.txt") >> button:has-text("Restore")');
  await page.waitForSelector('#restore-status >> text=the backed-up version is beside it');
  await shot('5b-keep-both');
  const day = new Date(Date.now());
  const today = `${day.getFullYear()}-${String(day.getMonth() + 1).padStart(2, '0')}-${String(day.getDate()).padStart(2, '0')}`;
  assert.equal(readFileSync(join(source, 'letters', 'mum.txt'), 'utf8'), 'Dear Mum, edited\n');
  assert.equal(readFileSync(join(source, 'letters', `mum (restored ${today}).txt`), 'utf8'), 'Dear Mum,\n');

  await page.click('nav >> text=History');
  await page.waitForSelector('table >> text=Succeeded');
  assert.match((await page.textContent('main')) ?? '', /My files\s*Succeeded/);
  await shot('6-history');
  await page.click('nav >> text=Space');
  await page.waitForSelector('text=The backups hold 1 version.');
  assert.match((await page.textContent('#saved')) ?? '', /^Kept as full copies, these versions would take 27 MB; deduplication and compression make that \d/);
  await page.click('.free-preview');
  await page.waitForSelector('.free-result >> text=Nothing to remove');
  await shot('7-space');
  assert.deepEqual(errors, [], 'no script errors on the page');
  assert.equal(d.scheduler.state.runs().length, 1);
});

test('a folder of 100,000 entries opens in the restore browser in under a second, and pages through to its end', async (t) => {
  const { dashboard: d, auth, source, drive } = await startHome(t);
  const setup = await http(d.origin, 'POST', '/api/setup', auth, { name: 'Pictures', destination: drive, password: 'correct horse', what: 'folders', paths: [source], schedule: 'daily 19:00' });
  assert.equal(setup.status, 200, setup.body.toString());
  // The snapshot of a folder of 100,000 photos, written with the backup's own listing code (a real backup of 100,000 files takes minutes here).
  const repo = await openRepositoryAt(join(drive, 'Lifeboat'), 'correct horse');
  await repo.loadIndex();
  await repo.lock(false, 'test');
  const entry = (name: string, i: number): TreeEntry => ({ name: Buffer.from(name), type: 'file', mode: 0o644, uid: 1000, gid: 1000, mtime: 1_733_400_000_000_000_000n + BigInt(i) * 1_000_000_000n, atime: 1n, ctime: 1n, size: 1000 + i, inode: BigInt(i + 10), device: 2049n, nlink: 1, content: [] });
  const photos = await saveDir(repo, Array.from({ length: 100_000 }, (_, i) => entry(`IMG_${String(i).padStart(6, '0')}.jpg`, i)));
  const dir = (name: string, subtree: Hex): TreeEntry => ({ ...entry(name, 0), type: 'dir', mode: 0o755, size: 0, subtree });
  const root = await saveDir(repo, [dir('Documents', await saveDir(repo, [dir('Camera', photos)]))]);
  await repo.flush();
  // Three versions of it: the dashboard opens the folder anew for each, and the fastest of the three is what this machine, shared with other work, can do.
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push(await repo.saveSnapshot({ version: 1, kind: 'files', time: new Date(Date.now() - (3 - i) * 60_000).toISOString(), host: 'h', user: 'ann', paths: [source], tags: ['job:Pictures'], root }));
  await repo.unlockAll();
  await repo.close();

  const page = await openPage(t);
  await page.goto(`${d.url.replace(/#.*$/, '')}#/restore/Pictures`);
  const times: number[] = [];
  for (const id of ids) {
    await page.waitForSelector('#browser h3');
    await page.evaluate(`document.querySelector('#browser h3').dataset.old = '1'`);
    await page.selectOption('select[aria-label=Version]', id);
    await page.waitForSelector('#browser h3:not([data-old])');
    await page.click('#browser a >> text="Documents/"');
    await page.waitForSelector('#browser a >> text="Camera/"');
    // Timed inside the page, from the click to the 500th row on screen.
    times.push(
      await page.evaluate<number>(`new Promise((res) => {
        const link = [...document.querySelectorAll('#browser a')].find((a) => a.textContent === 'Camera/');
        const t0 = performance.now();
        new MutationObserver((_, o) => {
          if ([...document.querySelectorAll('#browser td')].some((td) => td.textContent === 'IMG_000499.jpg')) {
            o.disconnect();
            res(performance.now() - t0);
          }
        }).observe(document.getElementById('browser'), { childList: true, subtree: true });
        link.click();
      })`),
    );
  }
  const took = Math.min(...times);
  await page.waitForSelector('#item-count >> text=/100[,. ]?000 items/');
  assert.match((await page.textContent('#show-more')) ?? '', /Show more \(99[,. ]?500 left\)/);
  await page.screenshot({ path: join(ARTIFACTS, '8-big-folder.png') });
  t.diagnostic(`a folder of 100,000 entries opened in ${times.map(Math.round).join(', ')} ms (load ${loadavg()[0]!.toFixed(1)})`);
  assert.ok(took < 1000, `the folder of 100,000 entries took ${Math.round(took)} ms to open`);
  await page.click('#browser >> text=Show more');
  await page.waitForSelector('#browser tr:has-text("IMG_000999.jpg")');
  assert.equal(await page.locator('#browser tbody tr').count(), 1000);
  // The last page comes from the last part of the listing.
  const res = (await http(d.origin, 'GET', `/api/jobs/Pictures/snapshots/latest/list?path=${encodeURIComponent('/Documents/Camera')}&offset=99990`, auth)).json<ListingView>();
  assert.deepEqual([res.entries.map((e) => e.name).slice(-2), res.more, res.total], [['IMG_099998.jpg', 'IMG_099999.jpg'], false, 100_000]);
});

test('a file inside a system image restores from the browser into a folder, byte-identical', async (t) => {
  const { dashboard: d, auth, drive, dir } = await startHome(t);
  const disk = makeExt4Disk(dir); // a drive with one ext4 partition holding f0.bin … f11.bin
  const setup = await http(d.origin, 'POST', '/api/setup', auth, { name: 'System', destination: drive, password: 'correct horse', what: 'image', device: disk, schedule: 'weekly sun 19:00' });
  assert.equal(setup.status, 200, setup.body.toString());
  assert.equal((await http(d.origin, 'POST', '/api/jobs/System/run', auth, {})).status, 200);
  await d.scheduler.idle();
  assert.equal(d.scheduler.state.runs()[0]?.status, 'ok', d.scheduler.state.runs()[0]?.message);

  const page = await openPage(t);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${d.url.replace(/#.*$/, '')}#/restore/System`);
  await page.waitForSelector('#browser >> text=1/');
  assert.equal(await page.isDisabled('#to-original'), true, 'an image has no original place on this computer');
  assert.equal(await page.isChecked('#to-folder'), true);
  assert.equal(await page.isVisible('#image-note'), true);
  assert.equal(await page.isVisible('#changed-keep-both'), false, 'no choice about changed files for an image');
  assert.equal(await page.textContent('#browser h3'), 'The partitions of the drive');
  await page.click('#browser >> text=1/');
  await page.waitForSelector('#browser tr:has-text("f3.bin")');
  assert.equal(await page.textContent('#browser h3'), 'Partition 1: /');
  const target = join(dir, 'from-image');
  await page.fill('#target', target);
  await page.click('tr:has-text("f3.bin") >> button:has-text("Restore")');
  await page.waitForSelector('#restore-status >> text=Restored 1 file');
  await page.screenshot({ path: join(ARTIFACTS, '9-image-file.png'), fullPage: true });
  assert.ok(readFileSync(join(target, 'f3.bin')).equals(readFileSync(join(dir, 'tree', 'f3.bin'))), 'the file restored from the image is byte-identical');
  // Back to its "original place" is refused in words, and a path outside the partitions too.
  const snaps = (await http(d.origin, 'GET', '/api/jobs/System/snapshots', auth)).json<{ snapshots: { id: string }[] }>().snapshots;
  const base = `/api/jobs/System/snapshots/${snaps[0]!.id}/restore`;
  const orig = await http(d.origin, 'POST', base, auth, { path: '/1/f3.bin' });
  assert.equal(orig.status, 400);
  assert.match(orig.json<{ error: string }>().error, /Files from a system image go into a folder you choose/);
  assert.deepEqual(errors, []);
});

test('wizard: folders with a system image of the drive (Windows 7\'s "include a system image") make one job; a run takes both', async (t) => {
  const { dashboard: d, auth, drive, dir, source } = await startHome(t);
  const disk = makeExt4Disk(dir);
  const page = await openPage(t);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(d.url);
  await page.waitForSelector('#step-1');
  await page.fill('#dest-other', drive);
  await page.fill('#pw1', 'correct horse');
  await page.fill('#pw2', 'correct horse');
  await page.fill('#folders', source);
  assert.equal(await page.isChecked('#include-image'), false);
  await page.fill('#include-device', disk);
  assert.equal(await page.isChecked('#include-image'), true, 'typing a drive ticks the box');
  assert.equal(await page.isChecked('#what-folders'), true, 'the folders stay chosen');
  await page.screenshot({ path: join(ARTIFACTS, '10-wizard-with-image.png'), fullPage: true });
  await page.click('#create');
  await page.waitForSelector('#recovery-key');
  const job = (await http(d.origin, 'GET', '/api/overview', auth)).json<Overview>().jobs.find((j) => j.name === 'My files');
  assert.equal(job?.what, `The drive ${disk} (system image) and ${source}`);
  assert.equal((await http(d.origin, 'POST', '/api/jobs/My%20files/run', auth, {})).status, 200);
  await d.scheduler.idle();
  assert.equal(d.scheduler.state.runs()[0]?.status, 'ok', d.scheduler.state.runs()[0]?.message);
  const kinds = (await http(d.origin, 'GET', '/api/jobs/My%20files/snapshots', auth)).json<{ snapshots: { kind: string }[] }>().snapshots.map((s) => s.kind).sort();
  assert.deepEqual(kinds, ['files', 'image'], 'one run took the image and the folders');
  assert.deepEqual(errors, []);
});

test('the space page draws what each backup stores, run by run, from the run history', async (t) => {
  const clock = new FakeClock(Date.UTC(2026, 10, 1, 19));
  const { dashboard: d, auth, source, drive } = await startHome(t, { clock });
  for (const name of ['Documents', 'Pictures']) {
    const setup = await http(d.origin, 'POST', '/api/setup', auth, { name, destination: drive, password: 'correct horse', what: 'folders', paths: [source], schedule: 'daily 19:00' });
    assert.equal(setup.status, 200, setup.body.toString());
  }
  // Documents runs three times, 2 MB of new data before each later run; Pictures once.
  for (let i = 0; i < 3; i++) {
    if (i > 0) {
      const b = Buffer.alloc(2_000_000);
      for (let j = 0; j < b.length; j += 4) b.writeUInt32LE(((j + i * 7919) * 2654435761) >>> 0, j);
      writeFileSync(join(source, `new-${i}.raw`), b);
    }
    assert.equal((await http(d.origin, 'POST', '/api/jobs/Documents/run', auth, {})).status, 200);
    await d.scheduler.idle();
    clock.advance(86_400_000); // a day between backups
  }
  assert.equal((await http(d.origin, 'POST', '/api/jobs/Pictures/run', auth, {})).status, 200);
  await d.scheduler.idle();
  const space = (await http(d.origin, 'GET', '/api/space', auth)).json<SpaceView>();
  const docs = space.growth.find((g) => g.job === 'Documents')!.points.map((p) => p.stored);
  assert.equal(docs.length, 3);
  assert.ok(docs[1]! - docs[0]! > 1_900_000 && docs[2]! - docs[1]! > 1_900_000, `each run's new data adds to what is stored (${docs.join(', ')})`);

  const page = await openPage(t);
  await page.goto(`${d.url.replace(/#.*$/, '')}#/space`);
  await page.waitForSelector('#growth svg');
  assert.equal(await page.locator('#growth .series[data-job="Documents"] circle').count(), 3);
  assert.equal(await page.locator('#growth .series[data-job="Pictures"] circle').count(), 1);
  assert.match((await page.getAttribute('#growth svg', 'aria-label')) ?? '', /^Stored data of each backup over time: Documents \d+(\.\d)? MB, Pictures /);
  assert.match((await page.textContent('#growth .legend')) ?? '', /Documents: \d.*Pictures: /);
  await page.locator('#growth').screenshot({ path: join(ARTIFACTS, '10-space-growth.png') });
});
