import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { serverCertificate } from '../server/certificate.js';
import { RepoServer } from '../server/repo-server.js';
import { rejectsWithCode, storeConformanceSuite } from './conformance.js';
import { openRemoteStore, parseRemoteUrl, RemoteStore } from './remote.js';
import { isTransient } from './store.js';
import { FakeClock } from '../util/clock.js';

/** A server on 127.0.0.1 over a fresh folder, with one token of each role; over HTTPS with `https` (`fingerprint` is its certificate's). */
async function startServer(https = false): Promise<{ url: string; server: RepoServer; tokens: Record<'admin' | 'append' | 'read', string>; fingerprint?: string; cleanup(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'lifeboat-remote-'));
  const certificate = https ? serverCertificate(join(dir, 'state')) : undefined;
  const server = new RepoServer({ data: join(dir, 'data'), stateDir: join(dir, 'state'), ...(certificate ? { tls: certificate } : {}) });
  const tokens = { admin: server.tokens.add('admin', 'admin'), append: server.tokens.add('laptop', 'append'), read: server.tokens.add('viewer', 'read') };
  const { port } = await server.listen('127.0.0.1', 0);
  return {
    url: `lifeboat:${https ? 'https' : 'http'}://127.0.0.1:${port}/repo`,
    server,
    tokens,
    ...(certificate ? { fingerprint: certificate.fingerprint } : {}),
    cleanup: async () => {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

storeConformanceSuite('Lifeboat server over a folder', async () => {
  const s = await startServer();
  return { store: openRemoteStore(s.url, { token: s.tokens.admin }), cleanup: () => s.cleanup() };
});

// Over TLS a large body goes out in writes of its own (store/remote.ts endWithBody, the server's
// sendInPieces): the 9 MiB object and the ranges across its pieces must arrive whole, on new
// connections and on reused ones.
storeConformanceSuite('Lifeboat server over a folder, HTTPS', async () => {
  const s = await startServer(true);
  return { store: openRemoteStore(s.url, { token: s.tokens.admin, pin: { expected: s.fingerprint! } }), cleanup: () => s.cleanup() };
});

test('server URLs: the parts are read; malformed ones are refused with the form to use', () => {
  assert.deepEqual(parseRemoteUrl('lifeboat:https://backup.example:8443/home'), { origin: 'https://backup.example:8443', name: 'home' });
  for (const bad of ['lifeboat:', 'lifeboat:ftp://h/r', 'lifeboat:http://h', 'lifeboat:http://h/a/b', 'lifeboat:http://t@h/r', 'lifeboat:http://h/..', 'lifeboat:http://h/r?x']) {
    assert.throws(() => parseRemoteUrl(bad), (e: Error) => e.message.includes('lifeboat:http(s)://HOST:PORT/NAME'), bad);
  }
});

test('server errors: a refused connection is transient; an unknown token and a refused role are permanent, in one plain sentence', async () => {
  const s = await startServer();
  try {
    const down = new RemoteStore(parseRemoteUrl('lifeboat:http://127.0.0.1:1/repo'), { token: 'x' });
    await assert.rejects(down.get('config'), (e: Error) => isTransient(e) && /Could not reach the Lifeboat server/.test(e.message));
    await down.close();

    const stranger = new RemoteStore(parseRemoteUrl(s.url), { token: 'lbt_not-a-token' });
    await rejectsWithCode(stranger.get('config'), 'usage');
    await stranger.close();

    const admin = new RemoteStore(parseRemoteUrl(s.url), { token: s.tokens.admin });
    await admin.put('data/ab/ab01', new Uint8Array([1, 2, 3]));
    const reader = new RemoteStore(parseRemoteUrl(s.url), { token: s.tokens.read });
    assert.deepEqual([...(await reader.get('data/ab/ab01'))], [1, 2, 3]);
    await assert.rejects(reader.put('locks/0a', new Uint8Array(3)), (e: Error) => !isTransient(e) && /it may only restore and browse/.test(e.message));
    const appender = new RemoteStore(parseRemoteUrl(s.url), { token: s.tokens.append });
    await assert.rejects(appender.delete('data/ab/ab01'), { message: "The Lifeboat server refused this computer's token: it may only add backups, not remove them." });
    s.server.tokens.revoke('laptop');
    await rejectsWithCode(appender.get('data/ab/ab01'), 'usage');
    for (const st of [admin, reader, appender]) await st.close();
  } finally {
    await s.cleanup();
  }
});

test("locks: an append token releases its own, not another computer's live one; a stale one (30 minutes) anyone may remove", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lifeboat-remote-'));
  const clock = new FakeClock();
  const server = new RepoServer({ data: join(dir, 'data'), stateDir: join(dir, 'state'), clock });
  const a = server.tokens.add('a', 'append');
  const b = server.tokens.add('b', 'append');
  const { port } = await server.listen('127.0.0.1', 0);
  const at = parseRemoteUrl(`lifeboat:http://127.0.0.1:${port}/repo`);
  const sa = new RemoteStore(at, { token: a });
  const sb = new RemoteStore(at, { token: b });
  try {
    await sa.put('locks/01', new Uint8Array([1]));
    await sb.put('locks/02', new Uint8Array([2]));
    await assert.rejects(sb.delete('locks/01'), { message: "The Lifeboat server refused this computer's token: it may remove only its own locks, not another computer's." });
    await sb.delete('locks/02');
    clock.advance(31 * 60 * 1000);
    await sb.delete('locks/01');
    assert.equal(await sa.stat('locks/01'), undefined);
    // A lock already gone is gone for everyone: two computers that both found it stale both succeed.
    await sa.put('locks/03', new Uint8Array([3]));
    await sa.delete('locks/03');
    await sb.delete('locks/03');
    await sa.put('locks/04', new Uint8Array([4]));
    await assert.rejects(sb.delete('locks/04'), /only its own locks/);
  } finally {
    await sa.close();
    await sb.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
