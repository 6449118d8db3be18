// The CLI on a repository in S3 (a real Ceph radosgw that scripts/run-tests.mjs starts), through a
// proxy that counts the requests: every command works with --repo s3:…, a restore is byte-identical,
// and what a command costs in requests is measured.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { sh } from '../image/testing.js';
import { countingProxy, emptyS3, freshS3Url, testS3 } from '../store/s3-testing.js';
import { assertSameTree, lifeboat, tempDir } from './testing.js';

test('every command on an S3 repository: backup, restore byte-identical, check --read-data, prune, images; requests counted', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const proxy = await countingProxy();
  t.after(() => proxy.close());
  const url = freshS3Url(proxy.endpoint);
  t.after(() => emptyS3(url.replace(proxy.endpoint, testS3().endpoint)));
  const env = { ...testS3().env, LIFEBOAT_PASSWORD: 'pw', XDG_CACHE_HOME: join(d.path, 'cache') };
  const run = async (args: string[]): Promise<string> => {
    const r = await lifeboat(['--repo', url, ...args], env);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const costs: Record<string, number> = {};
  const counted = async (what: string, args: string[]): Promise<string> => {
    proxy.reset();
    const out = await run(args);
    costs[what] = proxy.total();
    return out;
  };

  const src = join(d.path, 'src');
  mkdirSync(join(src, 'docs', 'deep'), { recursive: true });
  writeFileSync(join(src, 'big.bin'), randomBytes(3 * 1024 * 1024 + 7));
  for (let i = 0; i < 40; i++) writeFileSync(join(src, 'docs', `note-${i}.txt`), `note ${i}\n`.repeat(i + 1));
  writeFileSync(join(src, 'docs', 'deep', 'empty'), '');
  symlinkSync('../big.bin', join(src, 'docs', 'link'));

  const missing = await lifeboat(['--repo', url, 'snapshots'], env);
  assert.equal(missing.code, 10, missing.stderr);
  assert.match(missing.stderr, /There is no Lifeboat repository at S3 bucket lifeboat-tests\/t-\w+ at http:\/\/127\.0\.0\.1:\d+\./);

  assert.match(await run(['init']), /Created a Lifeboat repository at S3 bucket/);
  await counted('first backup', ['backup', src]);
  await counted('no-change backup', ['backup', src]);
  assert.match(await counted('snapshots', ['snapshots']), /files/);
  assert.match(await counted('ls', ['ls', '--recursive', 'latest']), /note-39\.txt/);
  assert.match(await counted('find', ['find', 'note-7.txt']), /note-7\.txt/);
  await counted('restore', ['restore', 'latest', '--target', join(d.path, 'out')]);
  assertSameTree(src, join(d.path, 'out', 'src'));
  assert.match(await counted('check --read-data', ['check', '--read-data']), /No errors were found/);

  // Drive images: an ext4 filesystem in a file comes back bit for bit.
  const disk = join(d.path, 'disk.img');
  sh(`truncate -s 8M ${disk} && mkfs.ext4 -q -F -b 4096 -d ${src} ${disk}`);
  const image = JSON.parse(await run(['image', 'create', '--json', disk])) as { id: string };
  await run(['image', 'restore', image.id, '--target', join(d.path, 'disk2.img')]);
  assert.ok(readFileSync(disk).equals(readFileSync(join(d.path, 'disk2.img'))), 'the restored image is identical');

  // Forget the first backup and the image; prune keeps what the remaining snapshot needs.
  writeFileSync(join(src, 'docs', 'note-0.txt'), 'changed\n');
  await run(['backup', src]);
  await run(['forget', '--keep-last', '1']);
  await run(['prune']);
  assert.match(await run(['check', '--read-data']), /No errors were found/);
  await run(['restore', 'latest', '--target', join(d.path, 'out2')]);
  assertSameTree(src, join(d.path, 'out2', 'src'));

  t.diagnostic(`requests per command: ${JSON.stringify(costs)}`);
});
