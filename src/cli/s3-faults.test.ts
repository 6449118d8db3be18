// Faults on a real radosgw (issue 20): the S3 server killed and restarted in the middle of a backup,
// and a multipart upload cut short by a killed writer. The radosgw killed here is the test's own
// (store/s3-testing.ts ownRadosgw), beside the one the other S3 tests use.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { S3Client, ListMultipartUploadsCommand, ListPartsCommand, type MultipartUpload } from '@aws-sdk/client-s3';
import { parseS3Url as parseUrl } from '../store/s3.js';
import { countingProxy, emptyS3, freshS3Url, ownRadosgw, testS3, testS3Store } from '../store/s3-testing.js';
import { startServer } from '../server/testing.js';
import { FAULT_KINDS, faultProxy } from '../store/fault-proxy-testing.js';
import { assertSameTree, lifeboat, tempDir } from './testing.js';

const MiB = 1024 * 1024;

interface BackupJson {
  readonly summary: { readonly bytesAdded: number };
}

/** One plain sentence: a single line, no stack trace. */
function assertPlainSentence(stderr: string): void {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${stderr}`);
  assert.doesNotMatch(stderr, /\n\s+at |TypeError|ReferenceError/, stderr);
}

/**
 * Unfinished multipart uploads in the test radosgw: `uploads` lists those under a repository URL,
 * `killWriterMidUpload` leaves one there (a writer putting a 40 MiB pack in 5 MiB parts, one at a
 * time, SIGKILLed after its first part).
 */
function killedWriters(t: TestContext): { uploads: (of: string) => Promise<MultipartUpload[]>; killWriterMidUpload: (repoUrl: string) => Promise<void> } {
  const s3 = testS3();
  const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: s3.credentials });
  t.after(() => client.destroy());
  const uploads = async (of: string): Promise<MultipartUpload[]> => {
    const { bucket, prefix } = parseUrl(of);
    return (await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }))).Uploads ?? [];
  };
  const killWriterMidUpload = async (repoUrl: string): Promise<void> => {
    const name = `data/ab/ab${'0'.repeat(62)}`;
    const script = `import('${new URL('../store/s3-testing.js', import.meta.url).href}').then(async (m) => { await m.testS3Store(${JSON.stringify(repoUrl)}, { partSize: 5 * 1024 * 1024, partsInFlight: 1 }).put(${JSON.stringify(name)}, new Uint8Array(40 * 1024 * 1024)); })`;
    const child = spawn(process.execPath, ['-e', script], { env: { ...process.env, ...s3.env }, stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    const { bucket } = parseUrl(repoUrl);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const u = (await uploads(repoUrl))[0];
      if (u && ((await client.send(new ListPartsCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }))).Parts ?? []).length > 0) break;
      assert.ok(Date.now() < deadline && child.exitCode === null, 'the writer started its upload');
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGKILL');
    await exited;
  };
  return { uploads, killWriterMidUpload };
}

test('radosgw killed and restarted during a backup: the backup completes through retries, the repository checks clean, the next backup reuses what was uploaded', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const rgw = await ownRadosgw();
  t.after(() => rgw.close());
  const url = freshS3Url(rgw.endpoint);
  const sameObjects = url.replace(rgw.endpoint, testS3().endpoint); // the main radosgw sees the same objects
  t.after(() => emptyS3(sameObjects));
  const env = { ...testS3().env, LIFEBOAT_PASSWORD: 'pw', XDG_CACHE_HOME: join(d.path, 'cache') };
  const src = join(d.path, 'src');
  mkdirSync(src);
  const files = 16;
  for (let i = 0; i < files; i++) writeFileSync(join(src, `f${i}.bin`), randomBytes(6 * MiB));
  assert.equal((await lifeboat(['--repo', url, 'init'], env)).code, 0);

  const watcher = testS3Store(sameObjects);
  t.after(() => watcher.close());
  const packs = async (): Promise<number> => {
    let n = 0;
    for await (const o of watcher.list('data/')) if (o.size > 0) n++;
    return n;
  };
  const backup = lifeboat(['--repo', url, 'backup', '--json', src], env);
  let finished = false;
  void backup.then(() => (finished = true));
  // Wait for the first packs to land, then kill radosgw mid-upload and bring it back 3 s later.
  const deadline = Date.now() + 60_000;
  while ((await packs()) < 2 && !finished && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(!finished, 'the backup was still running when radosgw was killed');
  const before = await packs();
  await rgw.kill();
  await new Promise((r) => setTimeout(r, 3000));
  assert.ok(!finished, 'the backup waited for radosgw instead of finishing or failing');
  await rgw.start();
  const r = await backup;
  t.diagnostic(`packs uploaded before the kill: ${before} (of about ${Math.ceil((files * 6) / 8)})`);
  assert.equal(r.code, 0, r.stderr);
  const first = JSON.parse(r.stdout) as BackupJson;
  assert.ok(first.summary.bytesAdded < files * 6 * MiB * 1.1, `nothing was stored twice: ${first.summary.bytesAdded}`);

  const check = await lifeboat(['--repo', url, 'check', '--read-data'], env);
  assert.equal(check.code, 0, check.stderr);
  assert.match(check.stdout, /No errors were found/);
  const again = await lifeboat(['--repo', url, 'backup', '--json', src], env);
  assert.equal(again.code, 0, again.stderr);
  assert.ok((JSON.parse(again.stdout) as BackupJson).summary.bytesAdded < 64 * 1024, 'the next backup reuses every uploaded pack');
  const restored = await lifeboat(['--repo', url, 'restore', 'latest', '--target', join(d.path, 'out')], env);
  assert.equal(restored.code, 0, restored.stderr);
  assertSameTree(src, join(d.path, 'out', 'src'));

  // radosgw down for good: the backup gives up with one plain sentence (exit 1) instead of hanging.
  writeFileSync(join(src, 'new.bin'), randomBytes(MiB));
  await rgw.kill();
  const started = Date.now();
  const down = await lifeboat(['--repo', url, 'backup', src], env);
  t.diagnostic(`with radosgw down the backup gave up after ${((Date.now() - started) / 1000).toFixed(1)} s`);
  assert.equal(down.code, 1, down.stderr);
  assertPlainSentence(down.stderr);
  assert.match(down.stderr, /Nothing answers at http:\/\/127\.0\.0\.1:\d+|connection .* failed/);
  await rgw.start();
  const after = await lifeboat(['--repo', url, 'check'], env);
  assert.equal(after.code, 0, after.stderr);
});

test('a multipart upload cut short by a killed writer leaves its parts on S3; prune aborts it, and leaves other repositories\' uploads alone', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const s3 = testS3();
  const url = freshS3Url();
  const other = freshS3Url();
  t.after(() => emptyS3(url));
  const env = { ...s3.env, LIFEBOAT_PASSWORD: 'pw', XDG_CACHE_HOME: join(d.path, 'cache') };
  const src = join(d.path, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'a.txt'), 'hello\n');
  assert.equal((await lifeboat(['--repo', url, 'init'], env)).code, 0);
  assert.equal((await lifeboat(['--repo', url, 'backup', src], env)).code, 0);

  const { uploads, killWriterMidUpload } = killedWriters(t);
  await killWriterMidUpload(url);
  await killWriterMidUpload(other);
  t.after(async () => {
    const o = testS3Store(other);
    await o.removeLeftovers();
    await o.close();
  });
  assert.equal((await uploads(url)).length, 1, 'the killed upload stays on the server, parts and all');

  const pruned = await lifeboat(['--repo', url, 'prune'], env);
  assert.equal(pruned.code, 0, pruned.stderr);
  assert.match(pruned.stdout, /Removed 1 unfinished upload\(s\) or temporary file\(s\) that interrupted backups left behind/);
  assert.equal((await uploads(url)).length, 0, 'prune aborted the unfinished upload');
  assert.equal((await uploads(other)).length, 1, "another repository's upload in the same bucket is not touched");
  const check = await lifeboat(['--repo', url, 'check', '--read-data'], env);
  assert.equal(check.code, 0, check.stderr);
});

test('prune through a Lifeboat server with S3 behind it aborts the unfinished uploads of its repository (not another\'s); append and read tokens may not (403)', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const s3 = testS3();
  const data = freshS3Url();
  t.after(() => emptyS3(`${data}/home`));
  // An s3: data location keeps the server's tokens in Lifeboat's data folder.
  const serverEnv = { ...s3.env, XDG_DATA_HOME: join(d.path, 'server-data') };
  const token = async (name: string, role: string): Promise<string> => {
    const r = await lifeboat(['server', 'token', 'add', name, '--role', role, '--data', data], serverEnv);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  const admin = await token('admin', 'admin');
  const laptop = await token('laptop', 'append');
  const viewer = await token('viewer', 'read');
  const server = await startServer(data, { env: serverEnv });
  t.after(() => server.stop());
  const env = (tok: string): Record<string, string> => ({ LIFEBOAT_REPO: `lifeboat:${server.origin}/home`, LIFEBOAT_PASSWORD: 'pw', LIFEBOAT_TOKEN: tok, XDG_CACHE_HOME: join(d.path, 'cache'), XDG_DATA_HOME: join(d.path, 'data') });
  const src = join(d.path, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'a.bin'), randomBytes(300_000));
  assert.equal((await lifeboat(['init'], env(admin))).code, 0);
  const b = await lifeboat(['backup', src], env(laptop));
  assert.equal(b.code, 0, b.stderr);

  const { uploads, killWriterMidUpload } = killedWriters(t);
  const home = `${data}/home`;
  const other = `${data}/other`;
  await killWriterMidUpload(home);
  await killWriterMidUpload(other);
  t.after(async () => {
    const o = testS3Store(other);
    await o.removeLeftovers();
    await o.close();
  });
  for (const tok of [laptop, viewer]) {
    const r = await fetch(`${server.origin}/v1/home/leftovers`, { method: 'POST', headers: { authorization: `Bearer ${tok}` } });
    assert.equal(r.status, 403);
    assert.match(((await r.json()) as { message: string }).message, /^The Lifeboat server refused this computer's token: it may only/);
  }
  assert.equal((await uploads(home)).length, 1, 'the refused requests aborted nothing');

  const pruned = await lifeboat(['prune'], env(admin));
  assert.equal(pruned.code, 0, pruned.stderr);
  assert.match(pruned.stdout, /Removed 1 unfinished upload\(s\) or temporary file\(s\) that interrupted backups left behind/);
  assert.equal((await uploads(home)).length, 0, 'prune aborted the unfinished upload through the server');
  assert.equal((await uploads(other)).length, 1, "another repository's upload in the same bucket is not touched");
  const check = await lifeboat(['check', '--read-data'], env(laptop));
  assert.equal(check.code, 0, check.stdout + check.stderr);
});

test('a backup whose bucket fills up midway (QuotaExceeded) indexes the packs it finished; once there is room, the next backup adds only what was missing', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const proxy = await countingProxy();
  t.after(() => proxy.close());
  const url = freshS3Url(proxy.endpoint);
  const direct = url.replace(proxy.endpoint, testS3().endpoint);
  t.after(() => emptyS3(direct));
  const env = { ...testS3().env, LIFEBOAT_PASSWORD: 'pw', XDG_CACHE_HOME: join(d.path, 'cache') };
  const src = join(d.path, 'src');
  mkdirSync(src);
  const total = 5 * 6 * MiB;
  for (let i = 0; i < 5; i++) writeFileSync(join(src, `f${i}.bin`), randomBytes(6 * MiB));
  assert.equal((await lifeboat(['--repo', url, 'init'], env)).code, 0);

  // The bucket's quota is used up after two packs: every later pack is refused for good.
  let packPuts = 0;
  proxy.failWith((_, r) => (r.method === 'PUT' && r.url.includes('/data/') && ++packPuts > 2 ? { status: 403, code: 'QuotaExceeded' } : undefined));
  const failed = await lifeboat(['--repo', url, 'backup', src], env);
  proxy.failWith(undefined);
  assert.equal(failed.code, 1, failed.stderr);
  assertPlainSentence(failed.stderr);
  assert.match(failed.stderr, /quota is used up/);

  const watcher = testS3Store(direct);
  t.after(() => watcher.close());
  let stored = 0;
  for await (const o of watcher.list('data/')) stored += o.size;
  let indexes = 0;
  for await (const _ of watcher.list('index/')) indexes++;
  assert.ok(stored > 0, 'packs were stored before the quota ran out');
  assert.ok(indexes > 0, 'the failed backup indexed the packs it finished');
  const check = await lifeboat(['--repo', url, 'check', '--read-data'], env);
  assert.equal(check.code, 0, check.stdout + check.stderr);

  proxy.reset();
  const again = await lifeboat(['--repo', url, 'backup', '--json', src], env);
  assert.equal(again.code, 0, again.stderr);
  const added = (JSON.parse(again.stdout) as BackupJson).summary.bytesAdded;
  t.diagnostic(`${stored} bytes of packs stored before the quota ran out, ${added} added by the next backup, of ${total}; its requests: ${JSON.stringify(Object.fromEntries(proxy.counts))}`);
  assert.ok(stored + added < total * 1.02 + 64 * 1024, `the next backup added only what was missing: ${stored} + ${added} for ${total}`);
  const restored = await lifeboat(['--repo', url, 'restore', 'latest', '--target', join(d.path, 'out')], env);
  assert.equal(restored.code, 0, restored.stderr);
  assertSameTree(src, join(d.path, 'out', 'src'));
});

test('between the client and radosgw, a proxy that delays, fails (500, 503 SlowDown), resets and truncates one request in four (seeded, bounded): the backup and the restore complete through retries, the repository checks clean', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const proxy = await faultProxy({ target: testS3().endpoint, seed: 9, rate: 0.25, maxFaults: 40, errors: 's3' });
  t.after(() => proxy.close());
  const url = freshS3Url(proxy.origin);
  const direct = url.replace(proxy.origin, testS3().endpoint);
  t.after(() => emptyS3(direct));
  const env = { ...testS3().env, LIFEBOAT_PASSWORD: 'pw', XDG_CACHE_HOME: join(d.path, 'cache') };
  const src = join(d.path, 'src');
  mkdirSync(join(src, 'notes'), { recursive: true });
  for (let i = 0; i < 3; i++) writeFileSync(join(src, `big-${i}.bin`), randomBytes(4 * MiB));
  for (let i = 0; i < 30; i++) writeFileSync(join(src, 'notes', `n${i}.txt`), `note ${i}\n`.repeat(50 + i));
  assert.equal((await lifeboat(['--repo', direct, 'init'], env)).code, 0);

  const b = await lifeboat(['--repo', url, 'backup', src], env);
  assert.equal(b.code, 0, b.stderr);
  const r = await lifeboat(['--repo', url, 'restore', 'latest', '--target', join(d.path, 'out')], env);
  assert.equal(r.code, 0, r.stderr);
  assertSameTree(src, join(d.path, 'out', 'src'));
  t.diagnostic(`${proxy.requests()} requests through the proxy, faults injected: ${JSON.stringify(Object.fromEntries(proxy.injected))}`);
  for (const k of FAULT_KINDS) assert.ok((proxy.injected.get(k) ?? 0) > 0, `a ${k} was injected`);
  const check = await lifeboat(['--repo', direct, 'check', '--read-data'], env);
  assert.equal(check.code, 0, check.stdout + check.stderr);
});
