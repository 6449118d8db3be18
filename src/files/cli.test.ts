import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { lifeboat } from '../cli/testing.js';
import { tmp } from './testing.js';

test('CLI: init → backup → snapshots → ls → find → diff → dump → restore, with exit codes and JSON', async (t) => {
  const dir = tmp(t);
  const env = { LIFEBOAT_REPO: join(dir, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  const src = join(dir, 'Documents');
  fs.mkdirSync(join(src, 'thesis'), { recursive: true });
  fs.writeFileSync(join(src, 'thesis', 'thesis.tex'), 'version 1\n');
  fs.writeFileSync(join(src, 'notes.txt'), 'notes\n');
  fs.writeFileSync(join(src, 'skip.tmp'), 'temporary\n');
  assert.equal((await lifeboat(['init'], env)).code, 0);

  const b1 = await lifeboat(['backup', src, '--exclude', '*.tmp', '--tag', 'first', '--time', '2026-11-01T10:00:00Z', '--json'], env);
  assert.equal(b1.code, 0, b1.stderr);
  const j1 = JSON.parse(b1.stdout) as { snapshot: string; summary: { filesNew: number; totalBytes: number } };
  assert.equal(j1.summary.filesNew, 2);
  fs.writeFileSync(join(src, 'thesis', 'thesis.tex'), 'version 2, longer\n');
  const b2 = await lifeboat(['backup', src, '--exclude', '*.tmp', '--time', '2026-11-02T10:00:00Z'], env);
  assert.equal(b2.code, 0, b2.stderr);
  assert.match(b2.stdout, /1 changed, 1 unchanged/);

  // A missing source: the snapshot is written, records it, exit code 3.
  const b3 = await lifeboat(['backup', src, join(dir, 'missing'), '--exclude', '*.tmp', '--json'], env);
  assert.equal(b3.code, 3, b3.stderr);
  assert.match(b3.stderr, /does not exist/);

  const snaps = JSON.parse((await lifeboat(['snapshots', '--json'], env)).stdout) as { id: string; kind: string; tags: string[]; incomplete?: { count: number }; summary: { totalBytes: number } }[];
  assert.equal(snaps.length, 3);
  assert.deepEqual(snaps[0]!.tags, ['first']);
  assert.equal(snaps[2]!.incomplete?.count, 1);
  assert.ok(snaps[0]!.summary.totalBytes > 0);
  const human = await lifeboat(['snapshots'], env);
  assert.match(human.stdout, /files/);

  const ls = JSON.parse((await lifeboat(['ls', snaps[0]!.id.slice(0, 6), '/Documents', '--json'], env)).stdout) as { path: string }[];
  assert.deepEqual(ls.map((x) => x.path), ['/Documents/notes.txt', '/Documents/thesis']);
  const lsLong = await lifeboat(['ls', 'latest', '/Documents/thesis', '--long'], env);
  assert.match(lsLong.stdout, /^-rw-r--r-- .* \/Documents\/thesis\/thesis.tex$/m);

  const found = JSON.parse((await lifeboat(['find', 'thesis.tex', '--json'], env)).stdout) as { snapshot: string; size: number }[];
  assert.equal(found.length, 3);
  assert.deepEqual(found.map((f) => f.size), [10, 18, 18]);
  assert.equal((await lifeboat(['find', 'nothing-like-this'], env)).code, 1);

  const diff = await lifeboat(['diff', snaps[0]!.id, snaps[1]!.id], env);
  assert.equal(diff.code, 0, diff.stderr);
  assert.match(diff.stdout, /^M {2}\/Documents\/thesis\/thesis.tex$/m);

  const dump = await lifeboat(['dump', snaps[0]!.id, '/Documents/thesis/thesis.tex'], env);
  assert.equal(dump.code, 0);
  assert.equal(dump.stdout, 'version 1\n');
  assert.equal((await lifeboat(['dump', 'latest', '/Documents/nope'], env)).code, 1);

  // --include restores exactly the named path.
  const target = join(dir, 'out');
  const r = await lifeboat(['restore', snaps[0]!.id, '--target', target, '--include', '/Documents/thesis/thesis.tex', '--verify', '--json'], env);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(execFileSync('find', [target, '-mindepth', '1']).toString().split('\n').filter(Boolean).sort(), [join(target, 'Documents'), join(target, 'Documents', 'thesis'), join(target, 'Documents', 'thesis', 'thesis.tex')]);
  assert.equal(fs.readFileSync(join(target, 'Documents', 'thesis', 'thesis.tex'), 'utf8'), 'version 1\n');
  // A full restore of the latest over it, then check passes with the file trees followed.
  const full = await lifeboat(['restore', 'latest', '--target', target, '--overwrite', 'always'], env);
  assert.equal(full.code, 0, full.stderr);
  assert.equal(fs.readFileSync(join(target, 'Documents', 'thesis', 'thesis.tex'), 'utf8'), 'version 2, longer\n');
  assert.ok(!fs.existsSync(join(target, 'Documents', 'skip.tmp')));
  const check = await lifeboat(['check', '--read-data', '--json'], env);
  assert.equal(check.code, 0, check.stdout);
  assert.equal((await lifeboat(['restore', 'latest', '--target', target, '--overwrite', 'sometimes'], env)).code, 2);
});
