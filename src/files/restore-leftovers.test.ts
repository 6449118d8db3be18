/**
 * Leftover restore temporaries (issue 3): a restore removes the `.lifeboat-restore-<16 hex>`
 * temporaries a killed run left in the folders it restores into — only names of exactly that
 * form, only non-folders, never through a symlink, and never a name the snapshot itself lists in
 * that folder. (The real SIGKILL case is src/cli/kill-restore.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { Snapshot } from '../repo/snapshot.js';
import { restore } from './restore.js';
import { isRestoreTemporary } from '../tree/restore.js';
import { saveDir } from './tree.js';
import { entry, newRepo, storedFile, tmp } from './testing.js';


const OWN = '.lifeboat-restore-0123456789abcdef'; // a temporary's exact form, but in the snapshot

test('isRestoreTemporary accepts exactly the names the restorer makes', () => {
  assert.ok(isRestoreTemporary(Buffer.from(OWN)));
  for (const n of ['.lifeboat-restore-x', '.lifeboat-restore-0123456789ABCDEF', '.lifeboat-restore-0123456789abcde', '.lifeboat-restore-0123456789abcdef0', 'x.lifeboat-restore-0123456789abcdef', '.lifeboat-restore-0123456789abcdef\n']) {
    assert.ok(!isRestoreTemporary(Buffer.from(n)), n);
  }
});

test('a restore removes leftover temporaries in the folders it restores into, and keeps files the snapshot names like one', async (t) => {
  const dir = tmp(t);
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  await repo.loadIndex();
  const file = (name: string, text: string) => storedFile(repo, name, text);
  const folder = await saveDir(repo, [
    await file(OWN, "the snapshot's own file"),
    await file('.lifeboat-restore-x', 'also the snapshot’s'),
    await file('a', 'a file'),
  ]);
  const excluded = await saveDir(repo, [await file('e', 'excluded')]);
  const root = await saveDir(repo, [
    await file('.lifeboat-restore-fedcba9876543210', 'top-level file named like a temporary'),
    entry('excluded', 'dir', { mode: 0o755, subtree: excluded }),
    entry('folder', 'dir', { mode: 0o755, subtree: folder }),
  ]);
  await repo.flush();
  const snapshot: Snapshot = { version: 1, kind: 'files', time: new Date().toISOString(), host: 'h', user: 'u', paths: ['/x'], tags: [], root };

  const target = join(dir, 'target');
  const first = await restore(repo, snapshot, { target });
  assert.equal(first.summary.errors, 0);
  assert.equal(first.summary.leftoversRemoved, 0);
  const read = (...p: string[]) => fs.readFileSync(join(target, ...p), 'utf8');
  assert.equal(read('folder', OWN), "the snapshot's own file");
  assert.equal(read('folder', '.lifeboat-restore-x'), 'also the snapshot’s');
  assert.equal(read('.lifeboat-restore-fedcba9876543210'), 'top-level file named like a temporary');

  // Debris of a killed run, and things that only look like it.
  const outside = join(dir, 'outside');
  fs.mkdirSync(outside);
  fs.writeFileSync(join(outside, 'victim'), 'untouched');
  fs.writeFileSync(join(target, '.lifeboat-restore-1111111111111111'), 'partial');
  fs.writeFileSync(join(target, 'folder', '.lifeboat-restore-2222222222222222'), 'partial');
  fs.symlinkSync(join(outside, 'victim'), join(target, 'folder', '.lifeboat-restore-3333333333333333'));
  fs.mkdirSync(join(target, 'folder', '.lifeboat-restore-4444444444444444')); // a folder: never ours
  fs.writeFileSync(join(target, 'folder', '.lifeboat-restore-4444444444444444', 'inside'), 'kept');
  fs.symlinkSync(outside, join(target, 'folder', '.lifeboat-restore-5555555555555555')); // a link to a folder: removed, not followed
  fs.writeFileSync(join(target, 'folder', '.lifeboat-restore-ABCDEF0123456789'), 'not our form');
  fs.writeFileSync(join(target, 'folder', '.lifeboat-restore-12345'), 'not our form');
  fs.writeFileSync(join(target, 'excluded', '.lifeboat-restore-6666666666666666'), 'not restored into');
  fs.mkdirSync(join(target, 'other'));
  fs.writeFileSync(join(target, 'other', '.lifeboat-restore-7777777777777777'), 'not in the snapshot');
  fs.writeFileSync(join(dir, '.lifeboat-restore-8888888888888888'), 'outside the target');
  // The snapshot's own files, changed on disk: restored again (through a temporary and a rename).
  fs.writeFileSync(join(target, 'folder', OWN), 'changed');

  const again = await restore(repo, snapshot, { target, excludes: ['/excluded'] });
  assert.equal(again.summary.errors, 0);
  assert.equal(again.summary.leftoversRemoved, 4);
  assert.deepEqual(fs.readdirSync(target).sort(), ['.lifeboat-restore-fedcba9876543210', 'excluded', 'folder', 'other']);
  assert.deepEqual(fs.readdirSync(join(target, 'folder')).sort(), [OWN, '.lifeboat-restore-12345', '.lifeboat-restore-4444444444444444', '.lifeboat-restore-ABCDEF0123456789', '.lifeboat-restore-x', 'a']);
  assert.equal(read('folder', OWN), "the snapshot's own file");
  assert.equal(read('folder', '.lifeboat-restore-x'), 'also the snapshot’s');
  assert.equal(read('.lifeboat-restore-fedcba9876543210'), 'top-level file named like a temporary');
  assert.equal(read('folder', '.lifeboat-restore-4444444444444444', 'inside'), 'kept');
  assert.equal(read('excluded', '.lifeboat-restore-6666666666666666'), 'not restored into');
  assert.equal(read('other', '.lifeboat-restore-7777777777777777'), 'not in the snapshot');
  assert.equal(fs.readFileSync(join(dir, '.lifeboat-restore-8888888888888888'), 'utf8'), 'outside the target');
  assert.deepEqual(fs.readdirSync(outside), ['victim']);
  assert.equal(fs.readFileSync(join(outside, 'victim'), 'utf8'), 'untouched');

  // With --include, the folders on the way to the included path are restored into as well.
  fs.writeFileSync(join(target, 'folder', '.lifeboat-restore-9999999999999999'), 'partial');
  const part = await restore(repo, snapshot, { target, includes: ['/folder/a'], overwrite: 'always' });
  assert.equal(part.summary.errors, 0);
  assert.equal(part.summary.leftoversRemoved, 1);
  assert.ok(!fs.existsSync(join(target, 'folder', '.lifeboat-restore-9999999999999999')));
  assert.equal(read('folder', OWN), "the snapshot's own file");
});
