import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { listAll, rejectsWithCode, storeConformanceSuite } from './conformance.js';
import { isLifeboatError } from '../util/errors.js';
import { isTransient, StoreError } from './store.js';
import { parseS3Url, S3Store, openS3Store } from './s3.js';
import { countingProxy, emptyS3, freshS3Url, testS3, testS3Store } from './s3-testing.js';

storeConformanceSuite('S3 on radosgw', async () => {
  const url = freshS3Url();
  // Small parts, so the 9 MiB object of the suite goes up in two parts, in parallel.
  return { store: testS3Store(url, { partSize: 5 * 1024 * 1024 }), cleanup: () => emptyS3(url) };
});

test('S3 URLs: the parts are read; malformed ones are refused with the form to use', () => {
  assert.deepEqual(parseS3Url('s3:http://127.0.0.1:7480/bucket'), { endpoint: 'http://127.0.0.1:7480', bucket: 'bucket', prefix: '' });
  assert.deepEqual(parseS3Url('s3:https://s3.example.com/my-bucket/a/b/'), { endpoint: 'https://s3.example.com', bucket: 'my-bucket', prefix: 'a/b/' });
  for (const bad of ['s3:', 's3:ftp://h/b', 's3:http://h', 's3:http://h/', 's3:http://h/B', 's3:http://u:p@h/b', 's3:http://h/b/../x', 's3:http://h/b/with space', 's3:http://h/b?x=1']) {
    assert.throws(() => parseS3Url(bad), (e: Error) => /s3:http\(s\):\/\/HOST\[:PORT\]\/BUCKET\[\/PREFIX\]/.test(e.message), bad);
  }
});

test('S3: a large object goes up in parts; the requests are counted', async () => {
  const url = freshS3Url();
  const counts = new Map<string, number>();
  const s = testS3Store(url, { partSize: 5 * 1024 * 1024, onRequest: (c) => counts.set(c, (counts.get(c) ?? 0) + 1) });
  try {
    const d = randomBytes(12 * 1024 * 1024 + 5);
    await s.put('data/big', d);
    assert.equal(counts.get('UploadPartCommand'), 3);
    assert.equal(counts.get('CompleteMultipartUploadCommand'), 1);
    assert.ok(Buffer.from(await s.get('data/big')).equals(d));
    await rejectsWithCode(s.put('data/big', d, { ifAbsent: true }), 'conflict');
  } finally {
    await s.close();
    await emptyS3(url);
  }
});

test('S3: a put given the SHA-256 of its bytes is signed with it: the right one stores them, a wrong one is refused and stores nothing', async () => {
  const url = freshS3Url();
  const s = testS3Store(url);
  try {
    const d = randomBytes(3 * 1024 * 1024);
    const hash = createHash('sha256').update(d).digest('hex');
    await s.put('data/right', d, { sha256: hash });
    assert.ok(Buffer.from(await s.get('data/right')).equals(d));
    await assert.rejects(s.put('data/wrong', d, { sha256: hash.replace(/^./, (c) => (c === '0' ? '1' : '0')) }), (e: Error) => isLifeboatError(e) && !isTransient(e));
    assert.equal(await s.stat('data/wrong'), undefined);
  } finally {
    await s.close();
    await emptyS3(url);
  }
});

test('S3: throttling (503 SlowDown) and server errors (500) are retried with backoff until the call succeeds', async () => {
  // Requests 1, 2 and 4 are refused: the put needs three tries, the get two.
  const proxy = await countingProxy({ fail: (n) => (n === 1 ? 503 : n === 2 || n === 4 ? 500 : undefined) });
  const url = freshS3Url(proxy.endpoint);
  const retries: string[] = [];
  const s = openS3Store(url, { credentials: testS3().credentials, retry: { baseDelayMs: 5, onRetry: (r) => retries.push(`${r.doing} ${r.attempt}: ${(r.error as Error).message}`) } });
  try {
    const d = randomBytes(1000);
    await s.put('data/x', d);
    assert.ok(Buffer.from(await s.get('data/x')).equals(d));
    assert.equal(retries.length, 3, retries.join('\n'));
    assert.match(retries[0]!, /^save 1: .*503 SlowDown/);
    assert.match(retries[2]!, /^read 1: .*500 InternalError/);
    assert.equal(proxy.total(), 5);
  } finally {
    await s.close();
    await proxy.close();
    await emptyS3(url.replace(proxy.endpoint, testS3().endpoint));
  }
});

test('S3 answers that radosgw never gives map to plain, correctly flagged failures', () => {
  const s = new S3Store(parseS3Url('s3:https://s3.example.com/photos'));
  const sdkError = (name: string, status: number): unknown => Object.assign(new Error(`${name} from the server`), { name, $metadata: { httpStatusCode: status } });
  const region = s.storeError(sdkError('AuthorizationHeaderMalformed', 400), 'read', 'config');
  assert.ok(!isTransient(region) && region.code === 'usage' && /in another region than [\w-]+: set AWS_REGION/.test(region.message), region.message);
  for (const [name, status] of [['SlowDown', 503], ['ServiceUnavailable', 503], ['TooManyRequests', 429], ['InternalError', 500], ['RequestTimeout', 400], ['ConditionalRequestConflict', 409]] as const) {
    const e = s.storeError(sdkError(name, status), 'save', 'data/ab/x');
    assert.ok(isTransient(e), `${name} is transient`);
    assert.match(e.message, /^Lifeboat could not save data\/ab\/x in S3 bucket photos at https:\/\/s3\.example\.com: the server answered/);
  }
  const quota = s.storeError(sdkError('QuotaExceeded', 403), 'save', 'data/ab/x');
  assert.ok(!isTransient(quota) && quota.code === 'no-space', quota.message);
  const denied = s.storeError(sdkError('AccessDenied', 403), 'delete', 'locks/l');
  assert.ok(!isTransient(denied) && /does not allow these credentials to delete locks\/l/.test(denied.message), denied.message);
});

test('S3 failures are one plain sentence: wrong credentials, missing bucket, nothing listening, a stalled server', async () => {
  const { endpoint } = testS3();
  const wrong = new S3Store(parseS3Url(`s3:${endpoint}/lifeboat-tests/x`), { credentials: { accessKeyId: testS3().credentials.accessKeyId, secretAccessKey: 'wrong-secret-0000000000000000000000000000' } });
  const refusedCredentials = (e: unknown): boolean => e instanceof StoreError && !e.transient && e.code === 'usage' && /refused the credentials \(SignatureDoesNotMatch\)/.test(e.message) && !e.message.includes('\n');
  await assert.rejects(wrong.get('config'), refusedCredentials);
  await assert.rejects(wrong.stat('config'), refusedCredentials, 'a HEAD, whose answer has no body, says the same');
  await wrong.close();

  const missing = testS3Store(`s3:${endpoint}/no-such-bucket-${randomBytes(4).toString('hex')}`);
  await assert.rejects(missing.get('config'), (e: unknown) => isLifeboatError(e) && !isTransient(e) && e.code === 'not-found' && /There is no bucket "no-such-bucket-\w+" at http/.test(e.message));
  assert.equal(await missing.stat('config'), undefined);
  assert.deepEqual(await listAll(missing, ''), []);
  await missing.close();

  // A port nobody listens on: at once a permanent failure naming the address (most likely a wrong
  // URL); a server that answered before and then refuses is restarting: that is worth retries.
  const closed = await new Promise<number>((res) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => res(port));
    });
  });
  const refused = openS3Store(`s3:http://127.0.0.1:${closed}/bucket`, { credentials: testS3().credentials });
  const started = Date.now();
  await assert.rejects(refused.get('config'), (e: unknown) => e instanceof StoreError && !isTransient(e) && /^Nothing answers at http:\/\/127\.0\.0\.1:\d+ \(connection refused\): check the address/.test(e.message) && !/tried/.test(e.message));
  assert.ok(Date.now() - started < 3000, 'no retries for an address that never answered');
  await refused.close();
  const proxy = await countingProxy();
  const restarting = testS3Store(`s3:${proxy.endpoint}/lifeboat-tests/x`);
  assert.equal(await restarting.stat('config'), undefined);
  await proxy.close();
  await assert.rejects(restarting.stat('config'), (e: unknown) => isTransient(e) && /connection refused|failed or stalled/.test((e as Error).message));
  await restarting.close();

  // A server that accepts and never answers: the idle timeout ends the request as transient.
  const held: Socket[] = [];
  const stalled: Server = createServer((c) => held.push(c));
  await new Promise<void>((r) => stalled.listen(0, '127.0.0.1', r));
  const port = (stalled.address() as { port: number }).port;
  const stuck = new S3Store(parseS3Url(`s3:http://127.0.0.1:${port}/bucket`), { credentials: testS3().credentials, idleTimeoutMs: 300 });
  const stalledAt = Date.now();
  await assert.rejects(stuck.stat('config'), (e: unknown) => isTransient(e) && /failed or stalled/.test((e as Error).message));
  assert.ok(Date.now() - stalledAt < 5000);
  await stuck.close();
  for (const c of held) c.destroy();
  stalled.close();
});
