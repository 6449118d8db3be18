/**
 * Faults between a client and a Lifeboat server (issue 20): a seeded, bounded proxy
 * (store/fault-proxy-testing.ts) delays, fails (500, 503), resets and truncates about one request in four
 * of every command a computer runs against the server. Each command completes through retries or
 * fails with one plain sentence; the repository checks clean; the next backup sends only what was
 * missing; a restore through the faults is byte-identical.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { assertSameTree, lifeboat, tempDir, type CliResult } from '../cli/testing.js';
import { FAULT_KINDS, faultProxy } from '../store/fault-proxy-testing.js';
import { bytesUnder } from '../util/testing.js';
import { startServer } from './testing.js';

const MiB = 1024 * 1024;

/** Exit 0, or exit 1 with one plain line (no stack trace). */
function doneOrPlainFailure(r: CliResult, what: string): void {
  if (r.code === 0) return;
  assert.equal(r.code, 1, `${what}: ${r.stderr}`);
  assert.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at |TypeError|ReferenceError|unexpected error/, r.stderr);
}

/**
 * A folder-backed `lifeboat server` with an admin and an append ("laptop") token, stopped and
 * removed after the test, and the environments of its two clients: the admin straight to the
 * server, the laptop through `proxyOrigin` (a fault proxy in front of it).
 */
async function serverWithTokens(t: { after: (fn: () => unknown) => void }): Promise<{
  d: ReturnType<typeof tempDir>;
  data: string;
  server: Awaited<ReturnType<typeof startServer>>;
  clients: (proxyOrigin: string) => { direct: NodeJS.ProcessEnv; faulty: NodeJS.ProcessEnv };
}> {
  const d = tempDir();
  t.after(d.cleanup);
  const data = join(d.path, 'server');
  mkdirSync(data);
  const token = async (name: string, role: string): Promise<string> => (await lifeboat(['server', 'token', 'add', name, '--role', role, '--data', data])).stdout.trim();
  const admin = await token('admin', 'admin');
  const laptop = await token('laptop', 'append');
  const server = await startServer(data);
  t.after(() => server.stop());
  const base = { LIFEBOAT_PASSWORD: 'pw', XDG_CACHE_HOME: join(d.path, 'cache'), XDG_DATA_HOME: join(d.path, 'data') };
  const clients = (proxyOrigin: string) => ({
    direct: { ...base, LIFEBOAT_REPO: `lifeboat:${server.origin}/home`, LIFEBOAT_TOKEN: admin },
    faulty: { ...base, LIFEBOAT_REPO: `lifeboat:${proxyOrigin}/home`, LIFEBOAT_TOKEN: laptop },
  });
  return { d, data, server, clients };
}

test('through a proxy that delays, fails (500, 503), resets and truncates one request in four (seeded, bounded), a computer backs up, browses and restores; the repository checks clean and the next backup reuses what was sent', { timeout: 300_000 }, async (t) => {
  const { d, data, server, clients } = await serverWithTokens(t);
  const proxy = await faultProxy({ target: server.origin, seed: 20, rate: 0.25, maxFaults: 60 });
  t.after(() => proxy.close());
  const { direct, faulty } = clients(proxy.origin);
  assert.equal((await lifeboat(['init'], direct)).code, 0);

  const src = join(d.path, 'src');
  mkdirSync(join(src, 'notes'), { recursive: true });
  let total = 0;
  for (let i = 0; i < 3; i++) {
    const b = randomBytes(4 * MiB);
    writeFileSync(join(src, `big-${i}.bin`), b);
    total += b.length;
  }
  for (let i = 0; i < 30; i++) writeFileSync(join(src, 'notes', `n${i}.txt`), `note ${i}\n`.repeat(50 + i));

  const first = await lifeboat(['backup', '--json', src], faulty);
  doneOrPlainFailure(first, 'backup through faults');
  const firstAdded = first.code === 0 ? (JSON.parse(first.stdout) as { summary: { bytesAdded: number } }).summary.bytesAdded : 0;
  for (const args of [['snapshots'], ['ls', 'latest'], ['find', 'n7.txt'], ['check']]) doneOrPlainFailure(await lifeboat(args, faulty), args.join(' '));
  const restored = await lifeboat(['restore', 'latest', '--target', join(d.path, 'out')], faulty);
  if (first.code === 0) {
    assert.equal(restored.code, 0, `a restore through the faults completes: ${restored.stderr}`);
    assertSameTree(src, join(d.path, 'out', 'src'));
  }
  t.diagnostic(`first backup: exit ${first.code}; ${proxy.requests()} requests through the proxy, faults injected: ${JSON.stringify(Object.fromEntries(proxy.injected))}`);
  for (const k of FAULT_KINDS) assert.ok((proxy.injected.get(k) ?? 0) > 0, `a ${k} was injected`);

  const check = await lifeboat(['check', '--read-data'], direct);
  assert.equal(check.code, 0, check.stdout + check.stderr);
  const stored = bytesUnder(join(data, 'home', 'data'));
  proxy.enabled = false; // the next backup, measured without faults
  const again = await lifeboat(['backup', '--json', src], faulty);
  assert.equal(again.code, 0, again.stderr);
  const added = (JSON.parse(again.stdout) as { summary: { bytesAdded: number } }).summary.bytesAdded;
  t.diagnostic(`added by the first backup: ${firstAdded} (packs stored: ${stored}), by the next: ${added} (files: ${total} bytes and 30 notes)`);
  if (first.code === 0) assert.ok(added < 64 * 1024, `the next backup reuses everything the first one sent (${added} bytes added)`);
  assert.ok(stored + added < total * 1.05 + 256 * 1024, `nothing that reached the server is sent again: ${stored} stored before, ${added} added`);
  const final = await lifeboat(['check', '--read-data'], direct);
  assert.equal(final.code, 0, final.stdout + final.stderr);
});

test('a backup that fails (the server full) while the server stops answering ends in bounded time: close gives its uploads in flight, index write and lock removal one limit; the next backup works', { timeout: 120_000 }, async (t) => {
  const { d, server, clients } = await serverWithTokens(t);
  // The second pack is refused (the server's drive full), and from then on nothing is answered.
  let packs = 0;
  let stuck = false;
  const proxy = await faultProxy({
    target: server.origin,
    seed: 0,
    rate: 0,
    maxFaults: 0,
    decide: (method, path) => {
      if (stuck) return 'hang';
      if (method === 'PUT' && path.includes('/o/data/') && ++packs === 2) {
        stuck = true;
        return '507';
      }
      return undefined;
    },
  });
  t.after(() => proxy.close());
  const { direct, faulty } = clients(proxy.origin);
  assert.equal((await lifeboat(['init'], direct)).code, 0);
  const src = join(d.path, 'src');
  mkdirSync(src);
  for (let i = 0; i < 4; i++) writeFileSync(join(src, `f${i}.bin`), randomBytes(6 * MiB));

  const started = Date.now();
  const failed = await lifeboat(['backup', src], { ...faulty, LIFEBOAT_TEST_CLOSE_MS: '2000' });
  const seconds = (Date.now() - started) / 1000;
  t.diagnostic(`the failed backup ended after ${seconds.toFixed(1)} s: ${failed.stderr.trim()}`);
  assert.equal(failed.code, 1, failed.stderr);
  assert.match(failed.stderr, /^lifeboat: The drive of the Lifeboat server at http:\/\/127\.0\.0\.1:\d+ is full; free some space on the server \(or ask its administrator to\) and try again\.\n$/);
  assert.ok(proxy.injected.get('hang')! > 0, 'close met a server that did not answer');
  // Without the limit, each request to the silent server waits 120 s before its retries.
  assert.ok(seconds < 30, `close gave up on the silent server within its limit, shortened to 2 s here (${seconds.toFixed(1)} s)`);

  stuck = false;
  packs = 3; // the drive has room again
  const again = await lifeboat(['backup', src], faulty);
  assert.equal(again.code, 0, again.stderr);
  const check = await lifeboat(['check', '--read-data'], direct);
  assert.equal(check.code, 0, check.stdout + check.stderr);
  const restored = await lifeboat(['restore', 'latest', '--target', join(d.path, 'out')], direct);
  assert.equal(restored.code, 0, restored.stderr);
  assertSameTree(src, join(d.path, 'out', 'src'));
});
