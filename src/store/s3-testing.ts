/**
 * Test helpers for the S3 store: the radosgw that scripts/run-tests.mjs starts for files named
 * s3*.test.ts (LIFEBOAT_TEST_S3_* variables), and fresh, empty repository locations in it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { countingProxy as startProxy, type CountingProxy, type Failure } from './counting-proxy.js';
import { S3Store, parseS3Url, type S3StoreOptions } from './s3.js';

export interface TestS3 {
  readonly endpoint: string;
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string };
  /** The variables a child process (the CLI) reads its credentials from. */
  readonly env: Record<string, string>;
}

/** The test radosgw; throws a clear message when the tests were not started through run-tests.mjs. */
export function testS3(): TestS3 {
  const endpoint = process.env['LIFEBOAT_TEST_S3_ENDPOINT'];
  const accessKeyId = process.env['LIFEBOAT_TEST_S3_ACCESS_KEY_ID'];
  const secretAccessKey = process.env['LIFEBOAT_TEST_S3_SECRET_ACCESS_KEY'];
  if (!endpoint || !accessKeyId || !secretAccessKey) {
    const why = process.env['LIFEBOAT_TEST_S3_UNAVAILABLE'];
    throw new Error(why ? `The S3 tests need radosgw, which could not be started: ${why} (bash scripts/install-test-deps.sh installs Ceph).` : 'The S3 tests need the radosgw that "node scripts/run-tests.mjs s3" starts (LIFEBOAT_TEST_S3_* variables are not set).');
  }
  return {
    endpoint,
    credentials: { accessKeyId, secretAccessKey },
    env: { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey, AWS_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true' },
  };
}

/** A repository URL of a new, empty prefix in the tests' bucket (made on first use). */
export function freshS3Url(endpoint = testS3().endpoint, bucket = 'lifeboat-tests'): string {
  return `s3:${endpoint}/${bucket}/t-${randomBytes(6).toString('hex')}`;
}

/** An S3Store on `url` with the test credentials. */
export function testS3Store(url: string, options: S3StoreOptions = {}): S3Store {
  return new S3Store(parseS3Url(url), { credentials: testS3().credentials, ...options });
}

/** Deletes every object under `url`'s prefix. */
export async function emptyS3(url: string): Promise<void> {
  const s = testS3Store(url);
  try {
    const names: string[] = [];
    for await (const o of s.list('')) names.push(o.name);
    for (let i = 0; i < names.length; i += 32) await Promise.all(names.slice(i, i + 32).map((n) => s.delete(n)));
  } finally {
    await s.close();
  }
}

/** A counting proxy (store/counting-proxy.ts) in front of the test radosgw. */
export function countingProxy(options: { fail?: Failure } = {}): Promise<CountingProxy> {
  return startProxy(testS3().endpoint, options);
}

/**
 * A radosgw of the test's own on the tests' Ceph cluster (the objects are shared with the main
 * one), on its own port: a fault test kills and restarts it without disturbing the other S3 tests.
 * It starts in about a second.
 */
export interface OwnRadosgw {
  readonly endpoint: string;
  /** SIGKILLs it (as a crash would); its port then refuses connections. */
  kill(): Promise<void>;
  /** Starts it again on the same port and waits until it answers. */
  start(): Promise<void>;
  /** Kills it and removes its files. */
  close(): Promise<void>;
}

export async function ownRadosgw(): Promise<OwnRadosgw> {
  testS3();
  const cephDir = process.env['LIFEBOAT_TEST_S3_CEPH_DIR'];
  if (!cephDir) throw new Error('LIFEBOAT_TEST_S3_CEPH_DIR is not set: start the tests through scripts/run-tests.mjs.');
  const port = await new Promise<number>((res, rej) => {
    const s = createNetServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => res(p));
    });
  });
  const dir = mkdtempSync(join(tmpdir(), 'lifeboat-own-rgw-'));
  const endpoint = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  const answers = (): Promise<boolean> =>
    new Promise((res) => {
      const r = get(`${endpoint}/`, (a) => {
        a.resume();
        a.on('end', () => res(a.statusCode === 200));
      });
      r.on('error', () => res(false));
      r.setTimeout(1000, () => r.destroy());
    });
  const kill = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  };
  const start = async (): Promise<void> => {
    const args = ['-f', '-c', join(cephDir, 'ceph.conf'), '-n', 'client.rgw.a', `--rgw_frontends=beast endpoint=127.0.0.1:${port} tcp_nodelay=1`, `--pid_file=${join(dir, 'rgw.pid')}`, `--admin_socket=${join(dir, 'rgw.asok')}`, `--log_file=${join(dir, 'rgw.log')}`];
    const c = spawn('radosgw', args, { stdio: 'ignore' });
    child = c;
    for (let i = 0; i < 150; i++) {
      if (c.exitCode !== null) throw new Error(`radosgw exited with ${c.exitCode} (log: ${join(dir, 'rgw.log')})`);
      if (await answers()) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`radosgw did not answer at ${endpoint} within 30 s`);
  };
  await start();
  return {
    endpoint,
    kill,
    start,
    close: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
