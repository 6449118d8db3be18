/**
 * "latest" with a path: a repository that holds file backups and drive images opens, for a path of
 * a backed-up folder, the latest file backup, even when a drive image was made after it; for a
 * partition's path (2:/…), the latest image.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { lifeboat, tempDir } from './testing.js';

test('dump, ls and diff of "latest" with a folder path open the latest file backup when a drive image is newer; a partition path opens the image', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const tree = join(d.path, 'home');
  mkdirSync(join(tree, 'docs'), { recursive: true });
  writeFileSync(join(tree, 'docs', 'note.txt'), 'kept safe\n');
  assert.equal((await lifeboat(['backup', tree], env)).code, 0);
  const disk = join(d.path, 'disk.img');
  writeFileSync(disk, randomBytes(1024 * 1024));
  assert.equal((await lifeboat(['image', 'create', disk], env)).code, 0);
  const snaps = JSON.parse((await lifeboat(['snapshots', '--json'], env)).stdout) as { kind: string }[];
  assert.equal(snaps[snaps.length - 1]!.kind, 'image', 'the image is the latest snapshot');

  const dump = await lifeboat(['dump', 'latest', `/${basename(tree)}/docs/note.txt`], env);
  assert.equal(dump.code, 0, dump.stderr);
  assert.equal(dump.stdout, 'kept safe\n');
  const ls = await lifeboat(['ls', 'latest', join(tree, 'docs')], env);
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, /note\.txt/);
  const diff = await lifeboat(['diff', 'latest', tree], env);
  assert.equal(diff.code, 0, diff.stderr);
  assert.match(diff.stdout + diff.stderr, /^0 change/m);

  // A partition's path goes to the image: this one has no partition table, so no partition 1.
  const part = await lifeboat(['ls', 'latest', '1:/'], env);
  assert.notEqual(part.code, 0);
  assert.match(part.stderr, /image/);
});
