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
import { chromium } from 'playwright-core';
import { startHome } from './testing.js';

const CHROMIUM = process.env['LIFEBOAT_CHROMIUM'] ?? '/usr/bin/chromium';
const ARTIFACTS = process.env['LIFEBOAT_ARTIFACTS'] ?? join('dist', 'artifacts', 'dashboard');

test('wizard -> first backup reaches 100% -> restore one file byte-identical -> download; history and space show the run', async (t) => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/install-test-deps.sh (it installs Debian's chromium)`);
  const { dashboard: d, source, drive, dir } = await startHome(t);
  // Enough data that the backup takes a moment and sends progress on the way.
  const noise = Buffer.alloc(24_000_000);
  for (let i = 0; i < noise.length; i += 4) noise.writeUInt32LE((i * 2246822519 + 7) >>> 0, i);
  writeFileSync(join(source, 'video.raw'), noise);
  mkdirSync(ARTIFACTS, { recursive: true });
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
  page.setDefaultTimeout(30_000);
  const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  // Every percentage the page shows, kept by the page itself (the bar is replaced as the run ends).
  await page.addInitScript({
    content: `window.seen = [];
      new MutationObserver(() => { for (const el of document.querySelectorAll('.percent')) window.seen.push(el.textContent); })
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
  assert.match((await page.textContent('.card[data-job="My files"]')) ?? '', /Next backup: /);
  await shot('4-overview');

  await page.click('text=Restore files >> nth=1');
  await page.waitForSelector('#browser >> text=Documents/');
  await page.click('#browser >> text=Documents/');
  await page.waitForSelector(`#browser h3 >> text=${JSON.stringify(source)}`);
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
