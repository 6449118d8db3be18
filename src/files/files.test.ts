import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Repository } from '../repo/repository.js';
import { LocalStore } from '../store/local.js';
import { backup, nodeFileAccess, type BackupEvent, type FileAccess } from './backup.js';
import { restore } from './restore.js';
import { platform } from './platform/platform.js';

process.env['LIFEBOAT_INSECURE_FAST_KDF'] = '1';

export function tmp(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), 'lifeboat-files-'));
  t.after(() => execFileSync('rm', ['-rf', d])); // rm handles paths deeper than PATH_MAX
  return d;
}

export async function newRepo(dir: string): Promise<Repository> {
  const { repo } = await Repository.init(new LocalStore(join(dir, 'repo')), 'pw');
  return repo;
}

const B = (s: string) => Buffer.from(s);

/** Builds a tree with every case of the issue under `root` (Buffer paths: some names are not UTF-8). */
export function buildTree(root: string): void {
  const r = B(root);
  const p = (...parts: (string | Buffer)[]) => Buffer.concat([r, ...parts.flatMap((x) => [B('/'), typeof x === 'string' ? B(x) : x])]);
  fs.mkdirSync(p('docs', 'empty'), { recursive: true });
  fs.writeFileSync(p('docs', 'hello.txt'), 'hello world\n');
  const big = Buffer.alloc(3 * 1024 * 1024 + 12345);
  for (let i = 0; i + 4 <= big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
  fs.writeFileSync(p('docs', 'big.bin'), big);
  fs.writeFileSync(p('setuid'), '#!/bin/sh\n');
  fs.chmodSync(p('setuid'), 0o4755);
  fs.mkdirSync(p('sticky'));
  fs.chmodSync(p('sticky'), 0o1777);
  fs.writeFileSync(p('owned'), 'x');
  fs.chownSync(p('owned'), 1234, 5678);
  fs.symlinkSync('docs/hello.txt', p('link'));
  fs.symlinkSync('/nonexistent/dangling', p('dangling'));
  fs.writeFileSync(p('hard1'), 'linked content');
  fs.linkSync(p('hard1'), p('docs', 'hard2'));
  // sparse: 8 MiB with data at 1 MiB and at the end
  const fd = fs.openSync(p('sparse.img'), 'w');
  fs.writeSync(fd, Buffer.alloc(4096, 7), 0, 4096, 1024 * 1024);
  fs.writeSync(fd, Buffer.alloc(4096, 9), 0, 4096, 8 * 1024 * 1024 - 4096);
  fs.ftruncateSync(fd, 8 * 1024 * 1024);
  fs.closeSync(fd);
  execFileSync('setfattr', ['-n', 'user.comment', '-v', 'a note', join(root, 'docs', 'hello.txt')]);
  execFileSync('setfattr', ['-n', 'trusted.secret', '-v', '0x00ff10', join(root, 'docs', 'hello.txt')]);
  execFileSync('setfattr', ['-n', 'user.dir', '-v', 'on a folder', join(root, 'docs')]);
  execFileSync('mkfifo', [join(root, 'fifo')]);
  execFileSync('mknod', [join(root, 'null'), 'c', '1', '3']);
  fs.writeFileSync(p(Buffer.from([0x6e, 0xff, 0xfe, 0x2e, 0x74])), 'not utf-8 name');
  fs.writeFileSync(p('new\nline'), 'newline in name');
  fs.writeFileSync(p('L'.repeat(255)), 'long name');
  // a path deeper than 4 KiB: 20 levels of 250-byte names
  let deep = p('deep');
  fs.mkdirSync(deep);
  const parts: string[] = [];
  for (let i = 0; i < 20; i++) parts.push(`${String(i).padStart(2, '0')}${'d'.repeat(248)}`);
  // Built bottom-up by renames, so that every call uses a short path.
  let cur = join(root, 'deep-build');
  fs.mkdirSync(cur);
  fs.writeFileSync(join(cur, 'deepfile'), 'deep file');
  execFileSync('touch', ['-d', '2001-02-03 04:05:06.123456789', join(cur, 'deepfile')]);
  for (let i = parts.length - 1; i >= 0; i--) {
    const up = join(root, `deep-up-${i}`);
    fs.mkdirSync(up);
    fs.renameSync(cur, join(up, parts[i]!));
    cur = up;
  }
  fs.renameSync(join(cur, parts[0]!), join(root, 'deep', parts[0]!));
  fs.rmdirSync(cur);
  deep = Buffer.concat([deep, B('/' + parts.join('/'))]);
  assert.ok(deep.length > 4096);
  // nanosecond times, set last (after every change in each folder)
  execFileSync('touch', ['-h', '-d', '2020-01-02 03:04:05.123456789', join(root, 'docs', 'hello.txt')]);
  execFileSync('touch', ['-h', '-d', '1999-12-31 23:59:59.987654321', join(root, 'link')]);
  execFileSync('touch', ['-a', '-d', '2021-05-06 07:08:09.555555555', join(root, 'setuid')]);
  execFileSync('touch', ['-d', '2010-10-10 10:10:10.101010101', join(root, 'docs', 'empty')]);
}

/**
 * `find`-based listing of metadata, an independent checker (GNU find %-directives, ns times).
 * Symlink targets are left out: reading a link moves its atime, so they are compared separately.
 */
export function describe(root: string): string[] {
  const out = execFileSync('sh', ['-c', `cd "$1" && find . -mindepth 1 -printf '%P|%y|%m|%U|%G|%s|%T@|%A@|%n\\n' | LC_ALL=C sort`, 'sh', root], { maxBuffer: 1 << 26 });
  return out.toString('latin1').split('\n').filter((l) => l.length > 0).map((l) => {
    const f = l.split('|');
    // directories' sizes depend on the file system's allocation, atimes of folders on reads
    if (f[1] === 'd') { f[5] = '-'; f[7] = '-'; }
    return f.join('|');
  });
}

function blocks(p: string): number {
  return Number(execFileSync('stat', ['-c', '%b', p]).toString().trim());
}

function xattrs(p: string): string {
  return execFileSync('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', p]).toString().split('\n').filter((l) => !l.startsWith('#')).join('\n');
}

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

test('a second backup of an unchanged tree reads no file contents and adds only the snapshot', async (t) => {
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
  assert.equal(added.length, 1);
  assert.match(added[0]!, /snapshots\//);

  // Change one file: only it is read.
  fs.appendFileSync(join(src, 'many', '3', 'f3'), ' changed');
  opens = 0;
  const r3 = await backup(repo, { paths: [src], fs: counting });
  assert.equal(opens, 1);
  assert.equal(r3.summary.filesChanged, 1);
  assert.equal(r3.parent, r2.snapshotId);
});
