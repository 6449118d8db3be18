/**
 * Restore with overwrite 'keep-both': a file changed since the backup stays, the backed-up one is
 * restored beside it under a name nothing has ("x (restored 2026-12-05).odt"), and nothing that
 * exists is ever replaced — also for a long name, a symlink in the way, and a file where the
 * backup has a folder.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { Snapshot } from '../repo/snapshot.js';
import { FakeClock } from '../util/clock.js';
import { restore } from './restore.js';
import { saveDir } from './tree.js';
import { entry, newRepo, storedFile, tmp } from './testing.js';


test('keep-both restores the backed-up copy beside a changed file, under a new name, never over anything', async (t) => {
  const dir = tmp(t);
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  await repo.loadIndex();
  const file = (name: string, text: string) => storedFile(repo, name, text);
  const long = `${'é'.repeat(120)}.odt`; // 244 bytes: the mark does not fit beside the whole stem
  const sub = await saveDir(repo, [await file('inside.txt', 'inside')]);
  const root = await saveDir(repo, [await file('letter.odt', 'backed up'), await file('same.txt', 'same'), entry('folder', 'dir', { mode: 0o755, subtree: sub }), await file('link', 'a file'), await file(long, 'long')].sort((a, b) => Buffer.compare(a.name, b.name)));
  await repo.flush();
  const snapshot: Snapshot = { version: 1, kind: 'files', time: new Date(Date.now()).toISOString(), host: 'h', user: 'u', paths: ['/x'], tags: [], root };
  const target = join(dir, 'target');
  const clock = new FakeClock(new Date(2026, 11, 5, 12).getTime());
  assert.equal((await restore(repo, snapshot, { target })).summary.errors, 0);

  const at = (...p: string[]) => join(target, ...p);
  fs.writeFileSync(at('letter.odt'), 'changed since');
  fs.writeFileSync(at('letter (restored 2026-12-05).odt'), 'a name already taken');
  fs.rmSync(at('folder'), { recursive: true });
  fs.writeFileSync(at('folder'), 'a file where the backup has a folder');
  fs.rmSync(at('link'));
  fs.symlinkSync(join(dir, 'outside'), at('link'));
  fs.writeFileSync(at(long), 'changed too');
  const before = fs.statSync(at('same.txt')).mtimeMs;

  const r = await restore(repo, snapshot, { target, overwrite: 'keep-both', clock });
  assert.equal(r.summary.errors, 0);
  const read = (...p: string[]) => fs.readFileSync(at(...p), 'utf8');
  assert.equal(read('letter.odt'), 'changed since');
  assert.equal(read('letter (restored 2026-12-05).odt'), 'a name already taken');
  assert.equal(read('letter (restored 2026-12-05 2).odt'), 'backed up');
  assert.equal(read('folder'), 'a file where the backup has a folder');
  assert.equal(read('folder (restored 2026-12-05)', 'inside.txt'), 'inside');
  assert.equal(fs.readlinkSync(at('link')), join(dir, 'outside'), 'the symlink in the way is left alone, not followed');
  assert.equal(fs.existsSync(join(dir, 'outside')), false);
  assert.equal(read('link (restored 2026-12-05)'), 'a file');
  assert.equal(fs.statSync(at('same.txt')).mtimeMs, before, 'an unchanged file is not restored again');
  const besideLong = fs.readdirSync(target).find((n) => n.endsWith(' (restored 2026-12-05).odt') && n.startsWith('é'))!;
  assert.ok(Buffer.byteLength(besideLong) <= 255 && !besideLong.includes('\ufffd'), `${besideLong}: at most 255 bytes, cut between characters`);
  assert.equal(read(besideLong), 'long');
  assert.equal(read(long), 'changed too');
  assert.equal(r.summary.keptBoth, 3, 'letter, link and the long name (a folder restored beside counts its files as restored)');
});
