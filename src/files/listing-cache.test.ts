import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Repository } from '../repo/repository.js';
import { backup, FOLDER_WINDOW, type BackupOptions } from './backup.js';
import { buildTree, newRepo, tmp } from './testing.js';
import { lifeboat } from '../cli/testing.js';
import { loadDir, sameEntry, type TreeEntry } from './tree.js';
import type { Hex } from '../repo/ids.js';

/** Counts the blobs the repository loads (listings, in a backup). */
function countLoads(repo: Repository): { n: number } {
  const c = { n: 0 };
  const load = repo.loadBlob.bind(repo);
  repo.loadBlob = (id) => {
    c.n++;
    return load(id);
  };
  return c;
}

/** Gives everything under `root` an atime after its mtime and ctime, which reading no longer moves (relatime). */
function freezeAtimes(root: string | Buffer): void {
  for (const name of fs.readdirSync(root, { encoding: 'buffer' })) {
    const p = Buffer.concat([Buffer.from(root), Buffer.from('/'), name]);
    if (p.length > 3000) continue; // the tree's deepest folders: too long for one path, never changed here
    const st = fs.lstatSync(p);
    if (st.isDirectory()) freezeAtimes(p);
    if (st.isFile() || st.isDirectory() || st.isSymbolicLink()) fs.lutimesSync(p, new Date(Date.now() + 3_600_000), st.mtime);
  }
}

/** Where two trees differ: '/'-joined paths and the fields that differ. */
async function differences(repo: Repository, a: Hex, b: Hex, at = ''): Promise<string[]> {
  if (a === b) return [];
  const [ea, eb] = [await loadDir(repo, a), await loadDir(repo, b)];
  const out: string[] = [];
  const byName = new Map(eb.map((e) => [e.name.toString('latin1'), e]));
  for (const x of ea) {
    const y = byName.get(x.name.toString('latin1'));
    const path = `${at}/${x.name.toString('utf8')}`;
    if (!y) out.push(`${path}: only in the first`);
    else if (x.subtree && y.subtree) {
      const { subtree: _s, ...xr } = x;
      const { subtree: _t, ...yr } = y;
      if (!sameEntry(xr, yr)) out.push(`${path}: folder entry differs`);
      out.push(...(await differences(repo, x.subtree, y.subtree, path)));
    } else if (!sameEntry(x, y)) out.push(`${path}: ${JSON.stringify(Object.keys(x).filter((k) => String(x[k as keyof TreeEntry]) !== String(y[k as keyof TreeEntry])))}`);
    byName.delete(x.name.toString('latin1'));
  }
  for (const k of byName.keys()) out.push(`${at}/${k}: only in the second`);
  return out;
}

/** The one listing-cache file a backup wrote under `cacheDir` (one repository, one set of paths). */
function cacheFile(cacheDir: string): string {
  const [repoDir] = fs.readdirSync(cacheDir);
  const [file] = fs.readdirSync(join(cacheDir, repoDir!));
  return join(cacheDir, repoDir!, file!);
}

function manyFolders(src: string): void {
  for (let i = 0; i < 200; i++) {
    fs.mkdirSync(join(src, 'many', String(i % 20), 'deeper'), { recursive: true });
    fs.writeFileSync(join(src, 'many', String(i % 20), i % 3 ? `f${i}` : `deeper/f${i}`), `file ${i}`);
  }
}

test('listing cache: unchanged folders are kept without loading their listings, and every change still lands in the snapshot exactly as without the cache', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  fs.mkdirSync(src);
  buildTree(src);
  manyFolders(src);
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  const loads = countLoads(repo);
  const opts: BackupOptions = { paths: [src], cacheDir: join(dir, 'cache') };

  const r1 = await backup(repo, opts);
  loads.n = 0;
  const r2 = await backup(repo, opts);
  assert.equal(loads.n, 1, 'only the root listing of the parent is loaded');
  assert.equal(r2.snapshot.root, r1.snapshot.root);
  assert.equal(r2.summary.filesUnchanged, r1.summary.totalFiles);
  assert.equal(r2.summary.totalBytes, r1.summary.totalBytes);
  assert.equal(r2.summary.dirsChanged + r2.summary.dirsNew, 0);
  assert.equal(r2.summary.otherEntries, r1.summary.otherEntries);

  // Without the cache the same backup loads every listing (what the cache saves).
  loads.n = 0;
  const r2b = await backup(repo, { paths: [src] });
  assert.ok(loads.n > 40, `${loads.n} listings loaded`);
  assert.equal(r2b.snapshot.root, r1.snapshot.root);

  // Changes of every kind, deep and shallow: the cached backup must equal an uncached one.
  fs.appendFileSync(join(src, 'many', '3', 'f3'), ' changed');
  fs.chmodSync(join(src, 'many', '7', 'f7'), 0o600);
  fs.writeFileSync(join(src, 'many', '9', 'deeper', 'new'), 'new file');
  fs.rmSync(join(src, 'many', '11', 'f11'));
  fs.symlinkSync('somewhere', join(src, 'many', '12', 'link'));
  freezeAtimes(src); // reading must not move atimes between the two backups compared below
  const r3 = await backup(repo, { ...opts, parent: r2.snapshotId });
  const uncached = await backup(repo, { paths: [src], parent: r2.snapshotId });
  assert.deepEqual(await differences(repo, r3.snapshot.root, uncached.snapshot.root), [], 'the same listings as without the cache');
  assert.equal(r3.snapshot.root, uncached.snapshot.root);
  const counts = (x: typeof r3.summary) => [x.filesNew, x.filesChanged, x.filesUnchanged, x.dirsNew, x.dirsChanged, x.dirsUnchanged, x.otherEntries, x.totalFiles, x.totalBytes];
  assert.deepEqual(counts(r3.summary), counts(uncached.summary));
  assert.notEqual(r3.snapshot.root, r2.snapshot.root);

  // The cache now describes r3 only: with r3 as parent it is used, with r2 it is not.
  loads.n = 0;
  await backup(repo, { ...opts, parent: r3.snapshotId });
  assert.equal(loads.n, 1);
});

test('listing cache: a folder with a warning is never cached (the warning comes back every time); a damaged cache file is ignored', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  manyFolders(src);
  const sock = join(src, 'many', '5', 'a.sock');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(sock, resolve));
  t.after(() => server.close());
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  const loads = countLoads(repo);
  const cacheDir = join(dir, 'cache');
  const warnings = () => {
    const w: string[] = [];
    return { w, onEvent: (e: { type: string; path?: string }) => e.type === 'warning' && w.push(e.path!) };
  };

  await backup(repo, { paths: [src], cacheDir });
  for (let i = 0; i < 2; i++) {
    const ev = warnings();
    loads.n = 0;
    await backup(repo, { paths: [src], cacheDir, onEvent: ev.onEvent });
    assert.deepEqual(ev.w, [sock], 'the socket is reported again');
    // The socket's folder and its ancestors (many, src) are loaded; the others come from the cache.
    assert.equal(loads.n, 4, `${loads.n} listings loaded`);
  }

  // Damage the cache file: it is ignored (every listing is loaded) and the backup is still right.
  const path = cacheFile(cacheDir);
  const text = fs.readFileSync(path, 'latin1');
  fs.writeFileSync(path, text.replace(/"folders":\[\["([0-9a-f])/, (_m, c: string) => `"folders":[["${c === 'a' ? 'b' : 'a'}`), 'latin1');
  loads.n = 0;
  const r = await backup(repo, { paths: [src], cacheDir });
  assert.ok(loads.n > 40, `${loads.n} listings loaded`);
  assert.equal(r.summary.dirsChanged + r.summary.dirsNew, 0);
});

test('listing cache: the next backup in the same process takes the cache from memory while its file is the one written, and reads the file again once it changed', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  manyFolders(src);
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  const loads = countLoads(repo);
  const cacheDir = join(dir, 'cache');
  await backup(repo, { paths: [src], cacheDir });
  const path = cacheFile(cacheDir);
  // Garbled in place with its size, inode and time (to the µs) kept: not read, so the cache still serves.
  const before = fs.statSync(path, { bigint: true });
  fs.writeFileSync(path, Buffer.alloc(Number(before.size), 0x20));
  fs.utimesSync(path, Number(before.atimeNs) / 1e9, Number(before.mtimeNs) / 1e9);
  loads.n = 0;
  await backup(repo, { paths: [src], cacheDir });
  assert.equal(loads.n, 1, `${loads.n} listings loaded: the cache came from memory`);

  // Garbled with a new time: read, found unusable, ignored (every listing loaded).
  const st = fs.statSync(path);
  fs.writeFileSync(path, Buffer.alloc(st.size, 0x20));
  fs.utimesSync(path, st.atime, new Date(st.mtimeMs + 5000));
  loads.n = 0;
  const r = await backup(repo, { paths: [src], cacheDir });
  assert.ok(loads.n > 40, `${loads.n} listings loaded`);
  assert.equal(r.summary.dirsChanged + r.summary.dirsNew, 0);
});

test('CLI: backup keeps the listing cache in XDG_CACHE_HOME/lifeboat; --no-cache leaves it alone', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  manyFolders(src);
  const cacheHome = join(dir, 'cache-home');
  const env = { LIFEBOAT_REPO: join(dir, 'repo'), LIFEBOAT_PASSWORD: 'pw', XDG_CACHE_HOME: cacheHome };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const files = () => (fs.existsSync(join(cacheHome, 'lifeboat')) ? fs.readdirSync(join(cacheHome, 'lifeboat'), { recursive: true }).map(String).filter((f) => f.endsWith('.json')) : []);

  const noCache = await lifeboat(['backup', src, '--no-cache'], env);
  assert.equal(noCache.code, 0, noCache.stderr);
  assert.deepEqual(files(), []);
  const first = await lifeboat(['backup', src], env);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(files().length, 1);
  const written = fs.statSync(join(cacheHome, 'lifeboat', files()[0]!)).mtimeMs;
  const skipped = await lifeboat(['backup', src, '--no-cache'], env);
  assert.equal(skipped.code, 0, skipped.stderr);
  assert.equal(fs.statSync(join(cacheHome, 'lifeboat', files()[0]!)).mtimeMs, written, '--no-cache left the cache file alone');
});

test('a folder new to the backup is walked a window of entries at a time, and gives the same listing and listing-cache digest as walked whole', { timeout: 120_000 }, async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  fs.mkdirSync(src);
  // Short-named files enough for a listing of several 1 MiB parts, with sub-folders, a symlink, an
  // excluded name and empty files among them, over many windows.
  for (let i = 0; i < 6000; i++) fs.writeFileSync(join(src, `f${String(i).padStart(5, '0')}`), i % 997 === 0 ? '' : `content ${i % 50}\n`);
  for (const d of ['a-dir', 'm-dir', 'z-dir']) {
    fs.mkdirSync(join(src, d));
    fs.writeFileSync(join(src, d, 'inside'), d);
  }
  fs.symlinkSync('f00001', join(src, 'link'));
  fs.writeFileSync(join(src, 'skip.tmp'), 'left out');
  freezeAtimes(src); // the two backups compared read the same atimes
  fs.lutimesSync(src, new Date(Date.now() + 3_600_000), fs.lstatSync(src).mtime);
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  const opts: BackupOptions = { paths: [src], excludes: ['*.tmp'], cacheDir: join(dir, 'cache') };
  const saved = FOLDER_WINDOW.entries;
  t.after(() => (FOLDER_WINDOW.entries = saved));
  FOLDER_WINDOW.entries = Infinity; // the whole folder at once
  const whole = await backup(repo, { paths: opts.paths, excludes: ['*.tmp'], parent: null });
  FOLDER_WINDOW.entries = 7;
  const windowed = await backup(repo, { ...opts, parent: null });
  assert.deepEqual(await differences(repo, windowed.snapshot.root, whole.snapshot.root), []);
  assert.equal(windowed.snapshot.root, whole.snapshot.root, 'the same listings, byte for byte');
  assert.equal(windowed.summary.filesNew, 6003);
  // The folder's listing is in parts, built across windows.
  const [top] = await loadDir(repo, windowed.snapshot.root);
  let parts: readonly Hex[] = [];
  assert.equal((await loadDir(repo, top!.subtree!, (p) => (parts = p))).length, 6004);
  assert.ok(parts.length >= 2, `${parts.length} parts`);
  // The digest recorded window by window is the one the next backup computes whole: it loads
  // only the parent's root listing.
  FOLDER_WINDOW.entries = saved;
  const loads = countLoads(repo);
  const next = await backup(repo, { ...opts, parent: windowed.snapshotId });
  assert.equal(loads.n, 1);
  assert.equal(next.snapshot.root, whole.snapshot.root);
  assert.equal(next.summary.filesUnchanged, 6003);
});
