import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { BlobType } from '../repo/repository.js';
import { asId, toHex, type Hex } from '../repo/ids.js';
import type { Snapshot } from '../repo/snapshot.js';
import { backup, nodeFileAccess, type BackupEvent, type FileAccess } from './backup.js';
import { restore, type RestoreEvent } from './restore.js';
import { encodeEntry, fileTreeReferences, loadDir, saveDir, type TreeEntry } from './tree.js';
import { SnapshotTree } from './snapshot-tree.js';
import { walk } from '../tree/tree.js';
import { newRepo, tmp } from './testing.js';
import { portablePlatform } from './platform/platform.js';

process.env['LIFEBOAT_INSECURE_FAST_KDF'] = '1';

function entry(name: Buffer | string, type: TreeEntry['type'], extra: Partial<TreeEntry> = {}): TreeEntry {
  return { name: Buffer.from(name), type, mode: 0o644, uid: 0, gid: 0, mtime: 0n, atime: 0n, ctime: 0n, size: 0, inode: 1n, device: 1n, nlink: 1, ...extra };
}

function listAll(dir: string): string[] {
  return execFileSync('find', [dir]).toString().split('\n').filter(Boolean).sort();
}

test('a hostile snapshot cannot write outside the target', async (t) => {
  const dir = tmp(t);
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  await repo.loadIndex();
  const outside = join(dir, 'outside');
  fs.mkdirSync(outside);
  const payload = toHex((await repo.saveBlob(BlobType.data, Buffer.from('pwned'))).id);
  const file = (name: Buffer | string) => entry(name, 'file', { size: 5, content: [payload] });
  const empty = await saveDir(repo, []);
  const inner = await saveDir(repo, [file('x')]);
  // Names sorted as bytes, as a writer would — the restorer must not rely on that either.
  const root = await saveDir(repo, [
    file(''),
    entry('.', 'dir', { subtree: inner }),
    entry('..', 'dir', { subtree: inner }),
    file('../escape'),
    file('/etc/passwd-lifeboat'),
    file(Buffer.from('nul\0byte')),
    file('a/b'),
    entry('esc', 'symlink', { target: Buffer.from(outside) }),
    entry('esc', 'dir', { subtree: inner }), // the same name twice: the second is refused
    entry('pre', 'dir', { subtree: inner }), // the target already holds pre -> outside
    file('prefile'), // the target already holds prefile -> outside/victim
    entry('zz', 'dir', { subtree: empty }),
  ]);
  await repo.flush();
  const target = join(dir, 'target');
  fs.mkdirSync(target);
  fs.symlinkSync(outside, join(target, 'pre'));
  fs.writeFileSync(join(outside, 'victim'), 'original');
  fs.symlinkSync(join(outside, 'victim'), join(target, 'prefile'));
  const snapshot: Snapshot = { version: 1, kind: 'files', time: new Date().toISOString(), host: 'h', user: 'u', paths: ['/x'], tags: [], root };
  const warnings: string[] = [];
  for (const overwrite of ['always', 'if-changed', 'never'] as const) {
    const r = await restore(repo, snapshot, { target, overwrite, onEvent: (e: RestoreEvent) => e.type === 'warning' && warnings.push(e.message) });
    assert.ok(r.summary.errors >= 7, `${overwrite}: ${r.summary.errors} errors`);
  }
  assert.deepEqual(listAll(outside), [outside, join(outside, 'victim')]);
  assert.equal(fs.readFileSync(join(outside, 'victim'), 'utf8'), 'original');
  assert.ok(!fs.existsSync(join(dir, 'escape')));
  assert.ok(!fs.existsSync('/etc/passwd-lifeboat'));
  assert.ok(fs.lstatSync(join(target, 'pre')).isDirectory(), 'the symlink was replaced by a real folder');
  assert.equal(fs.readFileSync(join(target, 'pre', 'x'), 'utf8'), 'pwned');
  assert.ok(fs.lstatSync(join(target, 'prefile')).isFile());
  assert.ok(fs.lstatSync(join(target, 'esc')).isSymbolicLink(), 'the first "esc" (a symlink) is restored as a link, never descended');
  assert.ok(warnings.some((w) => /unsafe/.test(w)));
  assert.ok(warnings.some((w) => /twice/.test(w)));
  assert.deepEqual(fs.readdirSync(target).sort(), ['esc', 'pre', 'prefile', 'zz']);
});

test('an entry encodes to fixed bytes and decodes back, with non-UTF-8 names base64', async (t) => {
  const dir = tmp(t);
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  await repo.loadIndex();
  const e = entry(Buffer.from([0x66, 0xff]), 'file', { mtime: -1500000000n, xattrs: [['user.a', Buffer.from([0, 1])]], holes: [0, 4096], content: [asId('ab'.repeat(32))], user: 'ann' });
  assert.equal(encodeEntry(e), '{"nameB64":"Zv8=","type":"file","mode":420,"uid":0,"gid":0,"user":"ann","mtime":"-1500000000","atime":"0","ctime":"0","size":0,"inode":"1","device":"1","nlink":1,"xattrs":{"user.a":"AAE="},"holes":[0,4096],"content":["' + 'ab'.repeat(32) + '"]}');
  const id = await saveDir(repo, [e]);
  await repo.flush();
  assert.deepEqual(await loadDir(repo, id), [e]);
  // A listing of 20,000 entries is split into parts and read back whole.
  const many = Array.from({ length: 20000 }, (_, i) => entry(`file-${String(i).padStart(6, '0')}-${'x'.repeat(40)}`, 'file', { content: [asId('cd'.repeat(32))] }));
  const big = await saveDir(repo, many);
  await repo.flush();
  const raw = JSON.parse(Buffer.from(await repo.loadBlob(Buffer.from(big, 'hex'))).toString()) as { parts?: string[] };
  assert.ok(raw.parts && raw.parts.length > 1);
  assert.deepEqual((await loadDir(repo, big)).map((x) => x.name.toString()), many.map((x) => x.name.toString()));
  // Each full part is saved before the next entries are encoded: the last entry is read only
  // after earlier parts are stored (a huge folder's listing is never held encoded whole).
  let blobsSaved = 0;
  const counting = { saveBlob: (type: BlobType, data: Uint8Array) => (blobsSaved++, repo.saveBlob(type, data)) };
  let savedBeforeLast = -1;
  const last = many[many.length - 1]!;
  const watched = Object.defineProperty<TreeEntry>({ ...last }, 'name', { enumerable: true, get: () => ((savedBeforeLast = blobsSaved), last.name) });
  assert.equal(await saveDir(counting, [...many.slice(0, -1), watched]), big);
  assert.ok(savedBeforeLast >= raw.parts.length - 1, `parts saved before the last entry was encoded: ${savedBeforeLast}`);
});

test('a file that vanishes before it is read is reported, recorded, and the backup completes', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  fs.mkdirSync(src);
  fs.writeFileSync(join(src, 'keep'), 'kept');
  fs.writeFileSync(join(src, 'gone'), 'vanishes');
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  const vanishing: FileAccess = {
    ...nodeFileAccess,
    open: async (p, f) => {
      if (p.toString().endsWith('/gone')) fs.unlinkSync(p); // removed between lstat and open
      return nodeFileAccess.open(p, f);
    },
  };
  const warnings: BackupEvent[] = [];
  const r = await backup(repo, { paths: [src, join(dir, 'no-such-path')], fs: vanishing, onEvent: (e) => e.type === 'warning' && warnings.push(e) });
  assert.equal(r.summary.unreadable, 2);
  assert.deepEqual(r.snapshot.incomplete, { count: 2, paths: [join(dir, 'no-such-path'), join(src, 'gone')] });
  assert.equal(warnings.length, 2);
  const target = join(dir, 't');
  await restore(repo, r.snapshot, { target });
  assert.deepEqual(fs.readdirSync(join(target, 'src')), ['keep']);

  // A file that changes while it is read is saved, reported and recorded.
  fs.writeFileSync(join(src, 'growing'), 'a'.repeat(100));
  const growing: FileAccess = {
    ...nodeFileAccess,
    open: async (p, f) => {
      const fh = await nodeFileAccess.open(p, f);
      if (p.toString().endsWith('/growing')) fs.appendFileSync(p, 'more');
      return fh;
    },
  };
  const changed: BackupEvent[] = [];
  const r2 = await backup(repo, { paths: [src], fs: growing, onEvent: (e) => e.type === 'warning' && changed.push(e) });
  assert.equal(r2.summary.changedWhileRead, 1);
  assert.deepEqual(r2.changed, [join(src, 'growing')]);
  assert.ok(changed.some((e) => e.type === 'warning' && e.kind === 'changed'));
});

test('without the native addon the portable fallback still backs up and restores (with warnings)', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  fs.mkdirSync(src);
  fs.writeFileSync(join(src, 'a.txt'), 'portable');
  execFileSync('mkfifo', [join(src, 'fifo')]);
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  const plat = portablePlatform();
  assert.equal(plat.exact, false);
  const r = await backup(repo, { paths: [src], platform: plat });
  const warnings: string[] = [];
  const rr = await restore(repo, r.snapshot, { target: join(dir, 't'), platform: plat, onEvent: (e) => e.type === 'warning' && warnings.push(e.message) });
  assert.equal(fs.readFileSync(join(dir, 't', 'src', 'a.txt'), 'utf8'), 'portable');
  assert.equal(rr.summary.errors, 1);
  assert.match(warnings[0]!, /FIFO/);
});

test('a folder deleted during a backup gets one warning, not one per file inside, and the summary counts it once', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  for (const sub of ['listed', 'examined']) {
    fs.mkdirSync(join(src, sub, 'deeper'), { recursive: true });
    for (let i = 0; i < 300; i++) fs.writeFileSync(join(src, sub, i % 3 ? '' : 'deeper', `f${i}.txt`), `file ${i}`);
  }
  fs.writeFileSync(join(src, 'keep.txt'), 'kept');
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  let examined = 0;
  const deleting: FileAccess = {
    ...nodeFileAccess,
    // "listed" goes as soon as its names are read: every lstat inside fails.
    readdir: async (p) => {
      const names = await nodeFileAccess.readdir(p);
      if (p.toString() === join(src, 'listed')) fs.rmSync(p.toString(), { recursive: true });
      return names;
    },
    // "examined" goes after its entries were looked at, before any file in it is read.
    lstat: async (p) => {
      const st = await nodeFileAccess.lstat(p);
      if (p.toString().startsWith(join(src, 'examined') + '/') && ++examined === 200) fs.rmSync(join(src, 'examined'), { recursive: true });
      return st;
    },
  };
  const warnings: Extract<BackupEvent, { type: 'warning' }>[] = [];
  const r = await backup(repo, { paths: [src], fs: deleting, onEvent: (e) => e.type === 'warning' && warnings.push(e) });
  assert.deepEqual(warnings.map((w) => [w.kind, w.path]).sort(), [['vanished', join(src, 'examined')], ['vanished', join(src, 'listed')]], JSON.stringify(warnings.slice(0, 5)));
  assert.match(warnings[0]!.message, /was deleted or moved during the backup/);
  assert.equal(r.summary.vanished, 2);
  assert.equal(r.summary.unreadable, 2);
  const target = join(dir, 't');
  await restore(repo, r.snapshot, { target });
  assert.equal(fs.readFileSync(join(target, 'src', 'keep.txt'), 'utf8'), 'kept');
});

test('a file that grew or shrank while it was read restores cleanly as it was read, and keeps the "changed while read" mark', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  fs.mkdirSync(src);
  const start = randomBytes(3 << 20);
  fs.writeFileSync(join(src, 'growing.log'), start);
  fs.writeFileSync(join(src, 'shrinking.db'), randomBytes(3 << 20));
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  const more = randomBytes(2 << 20);
  const changing: FileAccess = {
    ...nodeFileAccess,
    open: async (p, f) => {
      const fh = await nodeFileAccess.open(p, f);
      if (p.toString().endsWith('/growing.log')) fs.appendFileSync(p, more); // grows after its lstat, before it is read
      if (p.toString().endsWith('/shrinking.db')) fs.truncateSync(p, 1 << 20);
      return fh;
    },
  };
  const r = await backup(repo, { paths: [src], fs: changing });
  assert.equal(r.summary.changedWhileRead, 2);
  const entries = await loadDir(repo, (await loadDir(repo, r.snapshot.root))[0]!.subtree!);
  const grown = entries.find((e) => e.name.toString() === 'growing.log')!;
  assert.equal(grown.size, (3 << 20) + (2 << 20), 'the size stored is what was read');
  assert.equal(grown.changed, true);
  assert.equal(entries.find((e) => e.name.toString() === 'shrinking.db')!.size, 1 << 20);
  const warnings: string[] = [];
  const rr = await restore(repo, r.snapshot, { target: join(dir, 't'), onEvent: (e) => e.type === 'warning' && warnings.push(e.message) });
  assert.equal(rr.summary.errors, 0, warnings.join('\n'));
  assert.ok(fs.readFileSync(join(dir, 't', 'src', 'growing.log')).equals(Buffer.concat([start, more])));
  assert.equal(fs.statSync(join(dir, 't', 'src', 'shrinking.db')).size, 1 << 20);
  assert.equal(warnings.filter((w) => /changed while it was backed up; it was restored as it was read/.test(w)).length, 2);
  // The next backup reads them again rather than trusting a copy that may be inconsistent.
  const again = await backup(repo, { paths: [src] });
  assert.equal(again.summary.filesChanged, 2);
  assert.ok(!(await loadDir(repo, (await loadDir(repo, again.snapshot.root))[0]!.subtree!)).some((e) => e.changed));
});

test('a snapshot that names one folder twice at each of 40 levels (2^40 paths) is refused by restore, walk and check, in bounded work', async (t) => {
  const dir = tmp(t);
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  await repo.loadIndex();
  const payload = toHex((await repo.saveBlob(BlobType.data, Buffer.from('x'))).id);
  let level = await saveDir(repo, [entry('f', 'file', { size: 1, content: [payload] })]);
  for (let i = 0; i < 40; i++) level = await saveDir(repo, [entry('a', 'dir', { subtree: level }), entry('b', 'dir', { subtree: level })]);
  // And a file whose content names a folder listing as its data (type confusion).
  const confused = await saveDir(repo, [entry('confused', 'file', { size: 60, content: [level] }), entry('fine', 'file', { size: 1, content: [payload] })]);
  await repo.flush();
  const snap = (root: Hex): Snapshot => ({ version: 1, kind: 'files', time: '2026-12-05T00:00:00Z', host: 'h', user: 'u', paths: ['/x'], tags: [], root });
  const started = Date.now();
  const target = join(dir, 't');
  await assert.rejects(restore(repo, snap(level), { target }), /repeats the same folders so often that going through it would never end/);
  assert.ok(Number(execFileSync('sh', ['-c', `find '${target}' | wc -l`]).toString()) < 25_000, 'the restore stopped early');
  const tree = new SnapshotTree(repo, snap(level));
  await assert.rejects(async () => {
    for await (const _ of walk(tree, await tree.root())) void _;
  }, /would never end/);
  const once = () => {
    const seen = new Set<string>();
    return (id: Uint8Array) => !seen.has(toHex(id)) && !!seen.add(toHex(id)); // as check and prune visit
  };
  await assert.rejects(fileTreeReferences(repo, level, once()), /would never end/);
  assert.ok(Date.now() - started < 60_000, 'bounded time');

  await assert.rejects(fileTreeReferences(repo, confused, once()), /confused names a folder listing as its data/);
  const warnings: string[] = [];
  const r = await restore(repo, snap(confused), { target: join(dir, 'c'), onEvent: (e) => e.type === 'warning' && warnings.push(e.message) });
  assert.equal(r.summary.errors, 1);
  assert.match(warnings.join('\n'), /confused: could not restore it \(the snapshot names a folder listing as its data/);
  assert.equal(fs.readFileSync(join(dir, 'c', 'fine'), 'utf8'), 'x');
  assert.ok(!fs.existsSync(join(dir, 'c', 'confused')));
});
