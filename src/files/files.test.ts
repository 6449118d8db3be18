import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { backup, nodeFileAccess, type BackupEvent, type FileAccess } from './backup.js';
import { restore } from './restore.js';
import { platform } from './platform/platform.js';
import { blocks, buildTree, describe, newRepo, tmp, xattrs } from './testing.js';

process.env['LIFEBOAT_INSECURE_FAST_KDF'] = '1';

test('every kind of file round-trips: contents, metadata, xattrs, sparse holes, hard links, odd names, deep paths', async (t) => {
  assert.ok(platform().exact, 'the native addon must be built for this test (npm ci)');
  const dir = tmp(t);
  const src = join(dir, 'src');
  fs.mkdirSync(src);
  buildTree(src);
  const expected = describe(src); // before anything reads the files (reads move atimes)
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  const events: BackupEvent[] = [];
  const r = await backup(repo, { paths: [src], onEvent: (e) => events.push(e) });
  assert.deepEqual(events.filter((e) => e.type === 'warning'), []);
  assert.equal(r.summary.unreadable, 0);
  assert.ok(r.summary.totalBytes > 3 * 1024 * 1024);
  assert.ok(r.summary.filesNew >= 10);

  const target = join(dir, 'target');
  const rr = await restore(repo, r.snapshot, { target, verify: true, onEvent: (e) => e.type === 'warning' && assert.fail(e.message) });
  assert.equal(rr.summary.errors, 0);
  assert.equal(rr.summary.verifyFailures, 0);
  assert.ok(rr.summary.verified >= 10);
  const out = join(target, 'src');
  assert.deepEqual(describe(out), expected);
  execFileSync('sh', ['-c', 'cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum > /tmp/lb-a.$$; cd "$2" && find . -type f -print0 | sort -z | xargs -0 sha256sum > /tmp/lb-b.$$; cmp /tmp/lb-a.$$ /tmp/lb-b.$$; s=$?; rm -f /tmp/lb-a.$$ /tmp/lb-b.$$; exit $s', 'sh', src, out]);
  assert.equal(blocks(join(out, 'sparse.img')), blocks(join(src, 'sparse.img')), 'sparse allocation');
  assert.ok(blocks(join(out, 'sparse.img')) < 100);
  assert.equal(xattrs(join(out, 'docs', 'hello.txt')), xattrs(join(src, 'docs', 'hello.txt')));
  assert.match(xattrs(join(out, 'docs', 'hello.txt')), /trusted\.secret=0x00ff10/);
  assert.equal(xattrs(join(out, 'docs')), xattrs(join(src, 'docs')));
  assert.equal(fs.statSync(join(out, 'hard1')).ino, fs.statSync(join(out, 'docs', 'hard2')).ino, 'hard link restored as a link');
  assert.equal(fs.lstatSync(join(out, 'null')).rdev, fs.lstatSync(join(src, 'null')).rdev);
  assert.ok(fs.lstatSync(join(out, 'fifo')).isFIFO());
  assert.equal(fs.readlinkSync(join(out, 'dangling')), '/nonexistent/dangling');
  assert.equal(fs.readlinkSync(join(out, 'link')), 'docs/hello.txt');

  // A second restore over the first (default if-changed) skips everything and changes nothing.
  const again = await restore(repo, r.snapshot, { target });
  assert.equal(again.summary.errors, 0);
  assert.equal(again.summary.bytesWritten, 0);
  assert.equal(again.summary.files, 0);
});

test('a second backup of an unchanged tree reads no file contents and adds only the snapshot (and its copy)', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  fs.mkdirSync(src);
  buildTree(src);
  for (let i = 0; i < 300; i++) {
    fs.mkdirSync(join(src, 'many', String(i % 30)), { recursive: true });
    fs.writeFileSync(join(src, 'many', String(i % 30), `f${i}`), `file ${i}`);
  }
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  await backup(repo, { paths: [src] });
  let opens = 0;
  const counting: FileAccess = { ...nodeFileAccess, open: (p, f) => { opens++; return nodeFileAccess.open(p, f); } };
  const listRepo = () => execFileSync('find', [join(dir, 'repo'), '-type', 'f']).toString().split('\n').filter(Boolean).sort();
  const before = listRepo();
  const r2 = await backup(repo, { paths: [src], fs: counting });
  assert.equal(opens, 0, 'no file was opened');
  assert.equal(r2.summary.bytesRead, 0);
  assert.equal(r2.summary.bytesAdded, 0);
  assert.equal(r2.summary.filesChanged + r2.summary.filesNew, 0);
  assert.equal(r2.summary.dirsChanged + r2.summary.dirsNew, 0);
  const added = listRepo().filter((f) => !before.includes(f));
  // The snapshot file, and the copy of its bytes (FORMAT.md §8): a small tree pack and its index file.
  assert.deepEqual(added.map((f) => f.slice(join(dir, 'repo').length + 1).split('/')[0]).sort(), ['data', 'index', 'snapshots']);

  // Change one file: only it is read.
  fs.appendFileSync(join(src, 'many', '3', 'f3'), ' changed');
  opens = 0;
  const r3 = await backup(repo, { paths: [src], fs: counting });
  assert.equal(opens, 1);
  assert.equal(r3.summary.filesChanged, 1);
  assert.equal(r3.parent, r2.snapshotId);
});
