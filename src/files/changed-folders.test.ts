import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { Hex } from '../repo/ids.js';
import type { Repository } from '../repo/repository.js';
import { backup, nodeFileAccess, type BackupResult, type FileAccess } from './backup.js';
import { newRepo, tmp } from './testing.js';
import { loadDir } from './tree.js';

/** The summary fields that describe the tree (not the work done). */
const TREE_FIELDS = ['totalFiles', 'totalBytes', 'otherEntries', 'filesNew', 'filesChanged', 'filesUnchanged', 'dirsNew', 'dirsChanged', 'dirsUnchanged', 'unreadable'] as const;

function treeSummary(r: BackupResult): Record<string, number> {
  return Object.fromEntries(TREE_FIELDS.map((k) => [k, r.summary[k]]));
}

/** 5 folders of 4 sub-folders of 10 files, and a few other entries. */
function buildTree(root: string): void {
  for (let a = 0; a < 5; a++) {
    for (let b = 0; b < 4; b++) {
      const d = join(root, `a${a}`, `b${b}`);
      fs.mkdirSync(d, { recursive: true });
      for (let c = 0; c < 10; c++) fs.writeFileSync(join(d, `f${c}.txt`), `file ${a} ${b} ${c}\n`);
    }
    fs.symlinkSync('b0/f0.txt', join(root, `a${a}`, 'link'));
  }
  fs.writeFileSync(join(root, 'top.txt'), 'top');
}

/**
 * Backs up `src` with only `named` (paths under it) looked at, from `parent`; then the same with
 * everything looked at, from the same parent. Both must give the same snapshot tree and totals.
 * Returns the changed-folders backup and its lstat calls.
 */
async function compare(repo: Repository, src: string, parent: Hex, named: readonly string[]): Promise<{ r: BackupResult; lstats: number }> {
  // Listing a folder moved or made since its last listing moves its atime (relatime): done first,
  // so that both backups see the same atimes.
  fs.readdirSync(src, { recursive: true });
  let lstats = 0;
  const counting: FileAccess = {
    ...nodeFileAccess,
    lstat: (p) => {
      lstats++;
      return nodeFileAccess.lstat(p);
    },
  };
  const r = await backup(repo, { paths: [src], parent, changedFolders: named.map((n) => join(src, n)), fs: counting });
  const full = await backup(repo, { paths: [src], parent });
  assert.ok(r.changedOnly, 'the changed folders were honoured');
  assert.equal(full.changedOnly, undefined);
  assert.equal(r.snapshot.root, full.snapshot.root, `the same tree as a full backup (named: ${named.join(', ')})`);
  assert.deepEqual(treeSummary(r), treeSummary(full), `the same totals as a full backup (named: ${named.join(', ')})`);
  return { r, lstats };
}

test('changed folders: only the named folders and those above them are looked at; the snapshot equals a full backup through nested changes, renames, deletions, a file replaced by a folder and new folders', async (t) => {
  const d = tmp(t);
  const src = join(d, 'src');
  buildTree(src);
  const repo = await newRepo(d);
  t.after(() => repo.close());
  const first = await backup(repo, { paths: [src] });
  assert.equal(first.summary.totalFiles, 201);
  let parent = first.snapshotId;
  const step = async (named: string[], change: () => void, maxLstats: number) => {
    change();
    const { r, lstats } = await compare(repo, src, parent, named);
    assert.ok(lstats <= maxLstats, `${lstats} lstat calls for ${named.join(', ') || 'nothing named'}`);
    parent = r.snapshotId;
    return r;
  };

  // Nothing named: the one backed-up folder is examined, nothing inside it.
  let r = await step([], () => undefined, 1);
  assert.equal(r.summary.filesUnchanged, 201);
  assert.equal(r.changedOnly!.carried, 1);

  // A file changed in a nested folder: the root's 6 entries, a3's 5 and b2's 10, nothing else.
  r = await step(['a3/b2'], () => fs.writeFileSync(join(src, 'a3', 'b2', 'f4.txt'), 'changed'), 1 + 6 + 5 + 10);
  assert.equal(r.summary.filesChanged, 1);
  assert.equal(r.changedOnly!.lookedAt, 4); // the snapshot's root, src, a3, a3/b2
  assert.equal(r.summary.bytesRead, 'changed'.length);

  // A folder renamed, as a watcher names it: its old and new parent, and the folder itself as new.
  r = await step(['a1', 'a1/moved'], () => fs.renameSync(join(src, 'a1', 'b1'), join(src, 'a1', 'moved')), 1 + 6 + 5 + 10);
  assert.equal(r.summary.totalFiles, 201);

  // A folder moved to another parent, and a folder deleted.
  r = await step(['a1', 'a2', 'a2/b1'], () => {
    fs.renameSync(join(src, 'a1', 'b2'), join(src, 'a2', 'b1-from-a1'));
    fs.rmSync(join(src, 'a2', 'b1'), { recursive: true });
  }, 100);
  assert.equal(r.summary.totalFiles, 191);

  // A whole top folder deleted; a file replaced by a folder holding files.
  r = await step(['', 'a3/b3'], () => {
    fs.rmSync(join(src, 'a4'), { recursive: true });
    fs.rmSync(join(src, 'a3', 'b3', 'f0.txt'));
    fs.mkdirSync(join(src, 'a3', 'b3', 'f0.txt'));
    fs.writeFileSync(join(src, 'a3', 'b3', 'f0.txt', 'inside'), 'inside');
  }, 100);
  assert.equal(r.summary.totalFiles, 191 - 40 - 1 + 1);

  // New folders, several deep, with only the top one named (inotify sees only the top of a folder made with mkdir -p).
  r = await step(['a0', 'a0/new'], () => {
    fs.mkdirSync(join(src, 'a0', 'new', 'deeper', 'deepest'), { recursive: true });
    fs.writeFileSync(join(src, 'a0', 'new', 'deeper', 'deepest', 'x'), 'x');
    fs.writeFileSync(join(src, 'a0', 'new', 'deeper', 'y'), 'y');
  }, 100);
  assert.equal(r.summary.filesNew, 2);
  assert.equal(r.summary.dirsNew, 3);

  // A folder replaced by a file; a symlink replaced by a folder.
  r = await step(['a0', 'a3'], () => {
    fs.rmSync(join(src, 'a0', 'b3'), { recursive: true });
    fs.writeFileSync(join(src, 'a0', 'b3'), 'now a file');
    fs.rmSync(join(src, 'a3', 'link'));
    fs.mkdirSync(join(src, 'a3', 'link'));
  }, 100);
  assert.equal(r.summary.otherEntries, 3);

  // Not named, but noticed all the same: a folder whose entries changed (its mtime moved) beside a named one.
  r = await step(['a2/b0'], () => {
    fs.writeFileSync(join(src, 'a2', 'b0', 'f1.txt'), 'named');
    fs.writeFileSync(join(src, 'a2', 'b2', 'unnamed.txt'), 'not named');
  }, 100);
  assert.equal(r.summary.filesNew, 1);
  assert.equal(r.summary.filesChanged, 1);

  // A name given that is gone, or outside the backed-up folder: nothing breaks.
  await step(['a2/b0/missing', '../elsewhere'], () => undefined, 100);
});

test('changed folders: without a parent id, with a parent of other paths or with an unreadable listing, everything is looked at; unreadable files of folders not looked at stay listed', async (t) => {
  const d = tmp(t);
  const src = join(d, 'src');
  buildTree(src);
  const repo = await newRepo(d);
  t.after(() => repo.close());
  const bad = join(src, 'a1', 'b1', 'f3.txt');
  const failing: FileAccess = {
    ...nodeFileAccess,
    open: (p, f) => (p.toString() === bad ? Promise.reject(Object.assign(new Error('EACCES'), { code: 'EACCES' })) : nodeFileAccess.open(p, f)),
  };
  const first = await backup(repo, { paths: [src], fs: failing });
  assert.deepEqual(first.incomplete, [bad]);

  const named = [join(src, 'a2')];
  const noParent = await backup(repo, { paths: [src], changedFolders: named });
  assert.equal(noParent.changedOnly, undefined, 'the latest snapshot is not taken on trust');
  const other = await backup(repo, { paths: [join(src, 'a0')] });
  const otherPaths = await backup(repo, { paths: [src], parent: other.snapshotId, changedFolders: named });
  assert.equal(otherPaths.changedOnly, undefined, 'a parent of other paths');

  const carried = await backup(repo, { paths: [src], parent: first.snapshotId, changedFolders: named });
  assert.ok(carried.changedOnly);
  assert.deepEqual(carried.incomplete, [bad], 'still listed as not saved');
  assert.equal(carried.summary.unreadable, 1);
  assert.deepEqual(carried.snapshot.incomplete, { count: 1, paths: [bad] });
  const looked = await backup(repo, { paths: [src], parent: first.snapshotId, changedFolders: [join(src, 'a1', 'b1')] });
  assert.deepEqual(looked.incomplete, [], 'tried again when its folder is looked at');

  // The parent's listing of a folder to look at is unreadable: the backup looks at everything, and is right.
  const root = await loadDir(repo, looked.snapshot.root);
  const srcEntries = await loadDir(repo, root[0]!.subtree!);
  const a2Listing = srcEntries.find((e) => e.name.toString() === 'a2')!.subtree!;
  const original = repo.loadBlob.bind(repo);
  repo.loadBlob = async (id) => {
    if (Buffer.from(id).toString('hex') === a2Listing) throw new Error('damaged');
    return original(id);
  };
  t.after(() => (repo.loadBlob = original));
  fs.writeFileSync(join(src, 'a2', 'b1', 'f1.txt'), 'changed');
  const fallback = await backup(repo, { paths: [src], parent: looked.snapshotId, changedFolders: [join(src, 'a2', 'b1')] });
  assert.equal(fallback.changedOnly, undefined);
  const full = await backup(repo, { paths: [src], parent: looked.snapshotId });
  assert.equal(fallback.snapshot.root, full.snapshot.root);
});

test('changed folders: the listing cache is kept up to date, so the next full rescan loads no listing of a folder that did not change', async (t) => {
  const d = tmp(t);
  const src = join(d, 'src');
  buildTree(src);
  const repo = await newRepo(d);
  t.after(() => repo.close());
  const cacheDir = join(d, 'cache');
  let r = await backup(repo, { paths: [src], cacheDir });
  for (const folder of ['a1/b1', 'a3/b0', 'a1/b1']) {
    fs.writeFileSync(join(src, folder, 'f0.txt'), `changed in ${folder} at ${r.snapshotId}`);
    r = await backup(repo, { paths: [src], cacheDir, parent: r.snapshotId, changedFolders: [join(src, folder)] });
    assert.ok(r.changedOnly);
  }
  let loads = 0;
  const original = repo.loadBlob.bind(repo);
  repo.loadBlob = async (id) => {
    loads++;
    return original(id);
  };
  t.after(() => (repo.loadBlob = original));
  const full = await backup(repo, { paths: [src], cacheDir });
  assert.equal(full.parent, r.snapshotId);
  assert.equal(full.snapshot.root, r.snapshot.root);
  assert.equal(loads, 1, 'only the snapshot root listing is loaded');
});
