import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { backup } from './backup.js';
import { PathMatcher } from './pattern.js';
import { MetadataPrefetch } from './prefetch.js';
import { restore } from './restore.js';
import { buildTree, describe, newRepo, tmp } from './testing.js';

const settle = async (p: MetadataPrefetch): Promise<void> => {
  let last = -1;
  while (p.count !== last) {
    last = p.count;
    await new Promise((r) => setTimeout(r, 30));
  }
};

function allPaths(root: string, skip?: string): string[] {
  const out = [root];
  for (const name of fs.readdirSync(root)) {
    const p = join(root, name);
    if (p === skip) {
      out.push(p); // the excluded folder itself is never examined, its contents neither
      continue;
    }
    if (fs.lstatSync(p).isDirectory()) out.push(...allPaths(p, skip));
    else out.push(p);
  }
  return out;
}

test('read-ahead answers are the lstat answers, given once, in the walk order; excluded folders are not entered', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  for (let d = 0; d < 5; d++) {
    fs.mkdirSync(join(src, `d${d}`, 'sub'), { recursive: true });
    for (let f = 0; f < 20; f++) fs.writeFileSync(join(src, `d${d}`, `f${f}`), `${d}/${f}`);
    fs.symlinkSync('f0', join(src, `d${d}`, 'link'));
  }
  fs.mkdirSync(join(src, 'skip', 'deep'), { recursive: true });
  fs.writeFileSync(join(src, 'skip', 'deep', 'x'), 'x');

  const p = new MetadataPrefetch([src], { excludes: new PathMatcher([join(src, 'skip')]), oneFileSystem: false });
  t.after(() => p.stop());
  await settle(p);
  const paths = allPaths(src, join(src, 'skip'));
  assert.equal(p.count, paths.length - 1, 'every entry except the excluded folder was examined');
  assert.equal(p.takeStat(Buffer.from(join(src, 'skip', 'deep'))), undefined);
  for (const path of paths.filter((x) => x !== join(src, 'skip'))) {
    const got = p.takeStat(Buffer.from(path));
    assert.ok(got, path);
    const st = fs.lstatSync(path, { bigint: true });
    for (const k of ['mode', 'dev', 'ino', 'nlink', 'uid', 'gid', 'rdev', 'size', 'atimeNs', 'mtimeNs', 'ctimeNs'] as const) {
      if (k === 'atimeNs' && st.isDirectory()) continue; // listing a folder moves its atime
      assert.equal(got[k], st[k], `${path} ${k}`);
    }
    assert.equal(got.isDirectory(), st.isDirectory());
    assert.equal(got.isFile(), st.isFile());
    assert.equal(got.isSymbolicLink(), st.isSymbolicLink());
    assert.equal(p.takeStat(Buffer.from(path)), undefined, 'each answer is given once');
  }
  assert.deepEqual(p.takeListing(Buffer.from(join(src, 'd3')))?.map(String), fs.readdirSync(join(src, 'd3')).sort());
});

test('read-ahead stops at its budget and when stopped', async (t) => {
  const dir = tmp(t);
  for (let d = 0; d < 40; d++) {
    fs.mkdirSync(join(dir, 'src', `d${d}`), { recursive: true });
    for (let f = 0; f < 10; f++) fs.writeFileSync(join(dir, 'src', `d${d}`, `f${f}`), '');
  }
  const p = new MetadataPrefetch([join(dir, 'src')], { excludes: new PathMatcher([]), oneFileSystem: false, budget: 100 });
  await settle(p);
  assert.ok(p.count >= 100 && p.count < 100 + 11, `${p.count} entries read ahead`);
  const q = new MetadataPrefetch([join(dir, 'src')], { excludes: new PathMatcher([]), oneFileSystem: false });
  q.stop();
  await settle(q);
  assert.equal(q.count, 1, 'only the root, examined before the first slice');
});

test('a backup fed by read-ahead saves the same tree, and a second one reuses every listing', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  fs.mkdirSync(src);
  buildTree(src);
  const expected = describe(src);
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  const p1 = new MetadataPrefetch([src], { excludes: new PathMatcher([]), oneFileSystem: false });
  await settle(p1);
  const first = await backup(repo, { paths: [src], prefetch: p1 });
  assert.equal(first.summary.unreadable, 0);

  const p2 = new MetadataPrefetch([src], { excludes: new PathMatcher([]), oneFileSystem: false });
  await settle(p2);
  const second = await backup(repo, { paths: [src], prefetch: p2 });
  assert.equal(second.snapshot.root, first.snapshot.root, 'nothing changed: the same root listing');
  assert.equal(second.summary.treeBlobsAdded, 0);
  assert.equal(second.summary.bytesRead, 0);
  assert.equal(second.summary.dirsChanged + second.summary.dirsNew, 0);

  const target = join(dir, 'target');
  await restore(repo, second.snapshot, { target });
  assert.deepEqual(describe(join(target, 'src')), expected);
});
