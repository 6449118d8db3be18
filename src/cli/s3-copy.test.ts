// The README's "second copy" on a real radosgw (scripts/run-tests.mjs starts it): a repository on
// a drive copied to S3 (made with --copy-parameters-from), restored byte-identical from S3, checked
// clean; the nightly run after nothing new sends nothing, and its requests are counted.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { countingProxy, emptyS3, freshS3Url, testS3 } from '../store/s3-testing.js';
import { assertSameTree, lifeboat, tempDir } from './testing.js';

test('copy a folder repository to S3 nightly: restores byte-identical from S3, checks clean, the second night sends nothing', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const proxy = await countingProxy();
  t.after(() => proxy.close());
  const url = freshS3Url(proxy.endpoint);
  t.after(() => emptyS3(url.replace(proxy.endpoint, testS3().endpoint)));
  const drive = join(d.path, 'drive');
  const env = { ...testS3().env, LIFEBOAT_PASSWORD: 'offsite', LIFEBOAT_FROM_PASSWORD: 'usb', XDG_CACHE_HOME: join(d.path, 'cache') };
  const ok = async (args: string[], withEnv: Record<string, string> = env): Promise<string> => {
    const r = await lifeboat(args, withEnv);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const usb = { LIFEBOAT_REPO: drive, LIFEBOAT_PASSWORD: 'usb' };
  await ok(['init'], usb);
  const tree = join(d.path, 'tree');
  mkdirSync(tree);
  writeFileSync(join(tree, 'big.bin'), randomBytes(2 * 1024 * 1024 + 5));
  for (let i = 0; i < 20; i++) writeFileSync(join(tree, `note-${i}.txt`), `note ${i}\n`);
  await ok(['backup', tree], usb);

  await ok(['--repo', url, 'init', '--copy-parameters-from', drive]);
  const first = JSON.parse(await ok(['--repo', url, 'copy', '--json', '--from', drive])) as { snapshots: { copy: string }[]; blobsSent: number };
  assert.equal(first.snapshots.length, 1);
  assert.ok(first.blobsSent > 0);
  proxy.reset();
  const second = JSON.parse(await ok(['--repo', url, 'copy', '--json', '--from', drive])) as { blobsSent: number };
  const requests = proxy.total();
  assert.equal(second.blobsSent, 0);
  t.diagnostic(`requests of a nightly copy with nothing new: ${requests}`);
  assert.ok(requests < 40, `a copy with nothing new made ${requests} requests`);

  const out = join(d.path, 'out');
  await ok(['--repo', url, 'restore', first.snapshots[0]!.copy, '--target', out]);
  assertSameTree(tree, join(out, 'tree'));
  const check = await lifeboat(['--repo', url, 'check', '--read-data'], env);
  assert.equal(check.code, 0, check.stdout + check.stderr);
});
