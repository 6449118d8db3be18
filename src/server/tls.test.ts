/** The server's self-signed certificate and the client's pinning of its fingerprint. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BIN, lifeboat, tempDir } from '../cli/testing.js';
import { isTransient } from '../store/store.js';
import { normalizeFingerprint, parseRemoteUrl, RemoteStore } from '../store/remote.js';
import { makeSelfSignedCertificate, serverCertificate } from './certificate.js';
import { RepoServer } from './repo-server.js';

test('the certificate is a valid self-signed X.509 v3 for its P-256 key, made once and kept private', () => {
  const { cert, key } = makeSelfSignedCertificate('Lifeboat server');
  const x = new X509Certificate(cert);
  assert.equal(x.subject, 'CN=Lifeboat server');
  assert.equal(x.issuer, 'CN=Lifeboat server');
  assert.ok(x.verify(createPublicKey(key)), 'signed by its own key');
  assert.ok(x.checkPrivateKey(createPrivateKey(key)), 'the key belongs to it');
  assert.ok(x.ca, 'its own trust anchor (basicConstraints CA)');
  assert.ok(new Date(x.validTo).getTime() > Date.now() + 10 * 365 * 24 * 3600 * 1000);
  const t = tempDir();
  try {
    const first = serverCertificate(join(t.path, 'state'));
    assert.equal(serverCertificate(join(t.path, 'state')).fingerprint, first.fingerprint, 'kept across starts');
    assert.equal(statSync(join(t.path, 'state', 'key.pem')).mode & 0o777, 0o600);
    assert.equal(normalizeFingerprint(first.fingerprint.replace(/:/g, '').toLowerCase()), first.fingerprint);
  } finally {
    t.cleanup();
  }
});

test('https: the client talks only to the server whose fingerprint it pinned, and sends nothing to another', async () => {
  const t = tempDir();
  const state = join(t.path, 'state');
  const certificate = serverCertificate(state);
  const server = new RepoServer({ data: join(t.path, 'data'), stateDir: state, tls: certificate });
  const token = server.tokens.add('admin', 'admin');
  const { port } = await server.listen('127.0.0.1', 0);
  const at = parseRemoteUrl(`lifeboat:https://127.0.0.1:${port}/repo`);
  try {
    const good = new RemoteStore(at, { token, pin: { expected: certificate.fingerprint } });
    await good.put('data/ab/ab01', new Uint8Array([1, 2, 3]));
    assert.deepEqual([...(await good.get('data/ab/ab01'))], [1, 2, 3]);

    const other = makeSelfSignedCertificate('Lifeboat server');
    const wrong = new RemoteStore(at, { token, pin: { expected: new X509Certificate(other.cert).fingerprint256, source: 'LIFEBOAT_SERVER_FINGERPRINT' } });
    await assert.rejects(wrong.put('data/ab/ab02', new Uint8Array([4])), (e: Error) => !isTransient(e) && /someone may be intercepting the connection, so nothing was sent/.test(e.message));
    assert.equal(await good.stat('data/ab/ab02'), undefined);

    const stranger = new RemoteStore(at, { token });
    await assert.rejects(stranger.get('data/ab/ab01'), (e: Error) => e.message.includes(certificate.fingerprint) && /LIFEBOAT_SERVER_FINGERPRINT/.test(e.message));
    const asked: string[] = [];
    const trusting = new RemoteStore(at, { token, pin: { firstUse: async (_o, fp) => (asked.push(fp), true) } });
    assert.deepEqual([...(await trusting.get('data/ab/ab01'))], [1, 2, 3]);
    await trusting.stat('data/ab/ab01');
    assert.deepEqual(asked, [certificate.fingerprint], 'asked once');
    for (const s of [good, wrong, stranger, trusting]) await s.close();
  } finally {
    await server.close();
    t.cleanup();
  }
});

test('lifeboat server without --http serves HTTPS and prints its fingerprint; clients pin it from LIFEBOAT_SERVER_FINGERPRINT', async () => {
  const t = tempDir();
  try {
    const data = join(t.path, 'data');
    mkdirSync(data);
    const admin = (await lifeboat(['server', 'token', 'add', 'admin', '--role', 'admin', '--data', data])).stdout.trim();
    const child = spawn(process.execPath, [BIN, 'server', '--data', data, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const first = await new Promise<string>((res, rej) => {
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes('\n')) res(out.split('\n')[0]!);
      });
      child.on('exit', (code) => rej(new Error(`the server exited with ${code}`)));
    });
    try {
      const m = /^Lifeboat server listening on (https:\/\/127\.0\.0\.1:\d+) with certificate fingerprint ((?:[0-9A-F]{2}:){31}[0-9A-F]{2}) /.exec(first);
      assert.ok(m, first);
      const env = { LIFEBOAT_REPO: `lifeboat:${m[1]}/home`, LIFEBOAT_PASSWORD: 'pw', LIFEBOAT_TOKEN: admin, XDG_CACHE_HOME: join(t.path, 'cache'), XDG_DATA_HOME: join(t.path, 'xdg') };
      const unpinned = await lifeboat(['init'], env);
      assert.equal(unpinned.code, 2);
      assert.ok(unpinned.stderr.includes(m[2]!), unpinned.stderr);
      const pinned = { ...env, LIFEBOAT_SERVER_FINGERPRINT: m[2]! };
      assert.equal((await lifeboat(['init'], pinned)).code, 0);
      const src = join(t.path, 'src');
      mkdirSync(src);
      writeFileSync(join(src, 'f.txt'), 'over TLS\n');
      const backup = await lifeboat(['backup', src], pinned);
      assert.equal(backup.code, 0, backup.stderr);
      const cat = await lifeboat(['restore', 'latest', '--target', join(t.path, 'out')], pinned);
      assert.equal(cat.code, 0, cat.stderr);
    } finally {
      const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
      child.kill('SIGTERM');
      assert.equal(await exited, 0, 'SIGTERM stops the server with exit code 0');
    }
  } finally {
    t.cleanup();
  }
});
