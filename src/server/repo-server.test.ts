/**
 * `lifeboat server` through the real CLI: tokens, a backup/restore/check through the server, and
 * the ransomware drill (issue 20): an append-only computer cannot destroy or change history.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { assertSameTree, lifeboat, tempDir } from '../cli/testing.js';
import { fileHashes, startServer } from './testing.js';

test('ransomware drill: an append-only token backs up and restores, but cannot delete, overwrite or truncate anything; an admin prunes', async () => {
  const t = tempDir();
  try {
    const data = join(t.path, 'server');
    mkdirSync(data);
    const token = async (name: string, role: string): Promise<string> => {
      const r = await lifeboat(['server', 'token', 'add', name, '--role', role, '--data', data]);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.trim();
    };
    const admin = await token('admin', 'admin');
    const laptop = await token('laptop', 'append');
    const desktop = await token('desktop', 'append');
    const viewer = await token('viewer', 'read');
    assert.match(readFileSync(join(data, '.lifeboat-server', 'tokens.json'), 'utf8'), /"sha256"/);
    assert.ok(!readFileSync(join(data, '.lifeboat-server', 'tokens.json'), 'utf8').includes(laptop), 'tokens are stored hashed');
    assert.equal(statSync(join(data, '.lifeboat-server', 'tokens.json')).mode & 0o777, 0o600);

    const { origin, firstLine, stop } = await startServer(data);
    assert.match(firstLine, /^Lifeboat server listening on http:\/\/127\.0\.0\.1:\d+/);
    const repoUrl = `lifeboat:${origin}/home`;
    const env = (tok: string): Record<string, string> => ({
      LIFEBOAT_REPO: repoUrl,
      LIFEBOAT_PASSWORD: 'pw',
      LIFEBOAT_TOKEN: tok,
      XDG_CACHE_HOME: join(t.path, 'cache'),
      XDG_DATA_HOME: join(t.path, 'xdg-data'),
    });
    try {
      assert.equal((await lifeboat(['init'], env(laptop))).code, 1, 'an append token cannot create a repository (config)');
      const init = await lifeboat(['init'], env(admin));
      assert.equal(init.code, 0, init.stderr);

      const src = join(t.path, 'src');
      mkdirSync(join(src, 'docs'), { recursive: true });
      writeFileSync(join(src, 'docs', 'a.txt'), 'first version\n');
      writeFileSync(join(src, 'big.bin'), randomBytes(300_000));
      assert.equal((await lifeboat(['backup', src], env(laptop))).code, 0);
      writeFileSync(join(src, 'docs', 'a.txt'), 'second version\n');
      const second = await lifeboat(['backup', src], env(laptop));
      assert.equal(second.code, 0, second.stderr);
      // A third backup with data only it holds, forgotten by the admin below: prune then has work.
      const extra = join(src, 'extra.bin');
      writeFileSync(extra, randomBytes(200_000));
      assert.equal((await lifeboat(['backup', src], env(laptop))).code, 0);
      const snaps = JSON.parse((await lifeboat(['snapshots', '--json'], env(viewer))).stdout) as { id: string; time: string }[];
      assert.equal(snaps.length, 3, 'a read token lists snapshots');
      snaps.sort((a, b) => (a.time < b.time ? -1 : 1));
      const forgetThird = await lifeboat(['forget', snaps[2]!.id], env(admin));
      assert.equal(forgetThird.code, 0, forgetThird.stderr);

      // Another computer holds a live lock (its own bytes: the server only records who made it).
      const api = (name: string): string => `${origin}/v1/home/o/${name}`;
      const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
      const put = (tok: string, name: string, body: Uint8Array, query = '', headers: Record<string, string> = {}): Promise<Response> =>
        fetch(api(name) + query, { method: 'PUT', body, headers: { authorization: `Bearer ${tok}`, 'x-lifeboat-sha256': sha(body), ...headers } });
      const otherLock = 'locks/' + 'ab'.repeat(32);
      assert.equal((await put(desktop, otherLock, randomBytes(100))).status, 201);

      const repoDir = join(data, 'home');
      const before = fileHashes(repoDir);
      const names = [...before.keys()];
      const pick = (prefix: string): string => names.find((n) => n.startsWith(prefix))!;
      const targets = [pick('data/'), pick('index/'), pick('snapshots/'), pick('keys/'), 'config', otherLock];
      for (const n of targets) assert.ok(n && before.has(n), `the repository has ${n}`);

      const refusals: Response[] = [];
      for (const n of targets) {
        const existing = readFileSync(join(repoDir, n));
        refusals.push(await fetch(api(n), { method: 'DELETE', headers: { authorization: `Bearer ${laptop}` } }));
        refusals.push(await put(laptop, n, randomBytes(existing.length))); // overwrite
        refusals.push(await put(laptop, n, existing.subarray(0, existing.length >> 1))); // truncate
        refusals.push(await put(laptop, n, Buffer.alloc(0))); // empty it
        refusals.push(await fetch(api(n), { method: 'DELETE', headers: { authorization: `Bearer ${laptop}`, 'x-http-method-override': 'GET', 'x-lifeboat-role': 'admin' } }));
      }
      refusals.push(await put(laptop, 'keys/' + 'cd'.repeat(32), randomBytes(50)), await put(laptop, 'config.copy', randomBytes(50)));
      // Prune's cleanup of killed writers' leftovers removes data too: admin only.
      for (const tok of [laptop, viewer]) refusals.push(await fetch(`${origin}/v1/home/leftovers`, { method: 'POST', headers: { authorization: `Bearer ${tok}` } }));
      for (const r of refusals) {
        assert.equal(r.status, 403, `${r.url}: ${r.status}`);
        const body = (await r.json()) as { message: string };
        assert.match(body.message, /^The Lifeboat server refused this computer's token: it may/);
      }
      // Forged requests: names outside the store, a wrong size or hash, no or a wrong token.
      const forged: [string, RequestInit, number][] = [
        [`${origin}/v1/home/o/../.lifeboat-server/tokens.json`, { method: 'GET' }, 400],
        [`${origin}/v1/home/o/data/%2e%2e/%2e%2e/config`, { method: 'DELETE' }, 400],
        [`${origin}/v1/..%2fhome/o/config`, { method: 'DELETE' }, 400],
        [`${origin}/v1/.lifeboat-server/o/tokens.json`, { method: 'GET' }, 400],
        [`${origin}/v1/home/list?prefix=..%2f`, { method: 'GET' }, 400],
      ];
      for (const [url, init, status] of forged) {
        const r = await fetch(url, { ...init, headers: { authorization: `Bearer ${laptop}` } });
        assert.equal(r.status, status, `${init.method} ${url}`);
      }
      // A missing object: the store's sentence, but naming the repository, not the server's folder.
      const missing = await fetch(api('data/ee/' + 'ee'.repeat(32)), { headers: { authorization: `Bearer ${viewer}` } });
      assert.equal(missing.status, 404);
      const missingMessage = ((await missing.json()) as { message: string }).message;
      assert.match(missingMessage, /does not exist in repository "home" on the Lifeboat server\./);
      assert.ok(!missingMessage.includes(t.path), missingMessage);
      const body = randomBytes(64);
      assert.equal((await put(admin, 'data/ff/' + 'ff'.repeat(32), body, '', { 'x-lifeboat-sha256': sha(randomBytes(64)) })).status, 400, 'a body that is not what was announced');
      assert.equal((await fetch(api(pick('data/')), { method: 'DELETE' })).status, 401, 'no token');
      assert.equal((await fetch(api(pick('data/')), { method: 'DELETE', headers: { authorization: `Bearer ${admin.slice(0, -1)}x` } })).status, 401, 'a token one character off');
      // What an append token may do: send an existing object again unchanged, take and release its own lock.
      const pack = pick('data/');
      assert.equal((await put(laptop, pack, readFileSync(join(repoDir, pack)))).status, 200, 'a retried upload of the same bytes is harmless');
      const myLock = 'locks/' + '12'.repeat(32);
      assert.equal((await put(laptop, myLock, randomBytes(80))).status, 201);
      assert.equal((await fetch(api(myLock), { method: 'DELETE', headers: { authorization: `Bearer ${laptop}` } })).status, 204);
      assert.deepEqual(fileHashes(repoDir), before, 'nothing in the repository changed');

      // The CLI, with the append token: forget and prune fail in one plain sentence, and change nothing.
      const forget = await lifeboat(['forget', '--keep-last', '1'], env(laptop));
      assert.equal(forget.code, 1, forget.stderr);
      assert.match(forget.stderr, /^lifeboat: The Lifeboat server refused this computer's token: it may only add backups, not remove them\.\n$/);
      const prune = await lifeboat(['prune'], env(laptop));
      assert.equal(prune.code, 1, prune.stderr);
      assert.match(prune.stderr, /The Lifeboat server refused this computer's token: it may only add backups, not remove them\./);
      for (const [n, h] of before) if (!n.startsWith('locks/')) assert.equal(fileHashes(repoDir).get(n), h, `${n} is unchanged`);

      const restoreAll = async (tok: string): Promise<void> => {
        // every snapshot the admin kept, byte-identical
        for (const [i, s] of snaps.slice(0, 2).entries()) {
          const target = join(t.path, `restore-${tok.slice(4, 10)}-${i}`);
          const r = await lifeboat(['restore', s.id, '--target', target], env(tok));
          assert.equal(r.code, 0, r.stderr);
          assert.equal(readFileSync(join(target, 'src', 'docs', 'a.txt'), 'utf8'), i === 0 ? 'first version\n' : 'second version\n');
          assert.ok(readFileSync(join(target, 'src', 'big.bin')).equals(readFileSync(join(src, 'big.bin'))));
        }
      };
      await restoreAll(laptop);
      const check = await lifeboat(['check', '--read-data'], env(laptop));
      assert.equal(check.code, 0, check.stdout + check.stderr);

      // The admin prunes beside the other computer's lock (unreadable to it, so not in its way),
      // and the server removes a temporary that a killed upload left two hours ago.
      const oldTemporary = join(repoDir, '.tmp', 'ab'.repeat(16));
      writeFileSync(oldTemporary, randomBytes(1000));
      utimesSync(oldTemporary, new Date(Date.now() - 7_200_000), new Date(Date.now() - 7_200_000));
      const adminPrune = await lifeboat(['prune'], env(admin));
      assert.equal(adminPrune.code, 0, adminPrune.stderr);
      assert.match(adminPrune.stdout, /Removed 1 unfinished upload\(s\) or temporary file\(s\) that interrupted backups left behind/);
      assert.ok(!existsSync(oldTemporary), 'the old temporary is gone');
      const checkAfter = await lifeboat(['check', '--read-data'], env(admin));
      assert.equal(checkAfter.code, 0, checkAfter.stdout + checkAfter.stderr);
      const last = join(t.path, 'restore-after-prune'); // a read token restores (without a lock)
      assert.equal((await lifeboat(['restore', snaps[1]!.id, '--target', last], env(viewer))).code, 0);
      rmSync(extra);
      assertSameTree(src, join(last, 'src'));
    } finally {
      assert.equal(await stop(), 130, 'Ctrl-C stops the server cleanly');
    }
  } finally {
    t.cleanup();
  }
});


test('a token limited to named repositories reaches only those: every request for another is refused (403), before anything is opened', async () => {
  const t = tempDir();
  try {
    const data = join(t.path, 'server');
    mkdirSync(data);
    const add = (args: string[]) => lifeboat(['server', 'token', 'add', ...args, '--data', data]);
    const made = async (args: string[]): Promise<string> => {
      const r = await add(args);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.trim();
    };
    const admin = await made(['admin', '--role', 'admin']);
    const homeAdmin = await made(['home-admin', '--role', 'admin', '--repository', 'home']);
    const laptop = await made(['laptop', '--role', 'append', '--repository', 'home', '--repository', 'laptop-old']);
    const wrongName = await add(['x', '--role', 'read', '--repository', '../photos']);
    assert.equal(wrongName.code, 2);
    assert.match(wrongName.stderr, /"\.\.\/photos" cannot name a repository on a Lifeboat server/);
    const globalRepo = await lifeboat(['--repo', 'photos', 'server', 'token', 'add', 'y', '--role', 'read', '--data', data]);
    assert.equal(globalRepo.code, 2);
    assert.match(globalRepo.stderr, /To limit a token to a repository write --repository NAME/);
    const list = await lifeboat(['server', 'token', 'list', '--data', data]);
    assert.match(list.stdout, /^laptop\tappend\thome,laptop-old\t/m);
    assert.match(list.stdout, /^admin\tadmin\t\(all repositories\)\t/m);

    const { origin, stop } = await startServer(data);
    try {
      const env = (tok: string, repo: string): Record<string, string> => ({
        LIFEBOAT_REPO: `lifeboat:${origin}/${repo}`,
        LIFEBOAT_PASSWORD: 'pw',
        LIFEBOAT_TOKEN: tok,
        XDG_CACHE_HOME: join(t.path, 'cache'),
        XDG_DATA_HOME: join(t.path, 'xdg-data'),
      });
      const src = join(t.path, 'src');
      mkdirSync(src);
      writeFileSync(join(src, 'a.txt'), 'hello\n');
      assert.equal((await lifeboat(['init'], env(homeAdmin, 'home'))).code, 0);
      assert.equal((await lifeboat(['init'], env(admin, 'photos'))).code, 0);
      const backup = await lifeboat(['backup', src], env(laptop, 'home'));
      assert.equal(backup.code, 0, backup.stderr);

      const other = await lifeboat(['snapshots'], env(laptop, 'photos'));
      assert.equal(other.code, 1, other.stderr);
      assert.equal(other.stderr, `lifeboat: The Lifeboat server refused this computer's token: it is not for the repository "photos" (only for "home", "laptop-old").\n`);
      const otherInit = await lifeboat(['init'], env(homeAdmin, 'music'));
      assert.equal(otherInit.code, 1, otherInit.stderr);
      assert.match(otherInit.stderr, /it is not for the repository "music" \(only for "home"\)/);
      assert.ok(!existsSync(join(data, 'music')), 'nothing was made for the refused repository');
      const before = fileHashes(join(data, 'photos'));
      const config = readFileSync(join(data, 'photos', 'config'));
      const sha = createHash('sha256').update(config).digest('hex');
      for (const tok of [laptop, homeAdmin]) {
        const auth = { authorization: `Bearer ${tok}` };
        const attempts = [
          fetch(`${origin}/v1/photos/o/config`, { headers: auth }),
          fetch(`${origin}/v1/photos/o/config`, { method: 'HEAD', headers: auth }),
          fetch(`${origin}/v1/photos/list?prefix=`, { headers: auth }),
          fetch(`${origin}/v1/photos/o/config`, { method: 'DELETE', headers: auth }),
          fetch(`${origin}/v1/photos/o/data/ab/${'ab'.repeat(32)}`, { method: 'PUT', body: config, headers: { ...auth, 'x-lifeboat-sha256': sha } }),
        ];
        for (const r of await Promise.all(attempts)) assert.equal(r.status, 403, `${r.url}: ${r.status}`);
      }
      assert.deepEqual(fileHashes(join(data, 'photos')), before, 'the other repository is unchanged');
      const unlimited = await lifeboat(['snapshots', '--json'], env(admin, 'home'));
      assert.equal(unlimited.code, 0, unlimited.stderr);
      assert.equal((JSON.parse(unlimited.stdout) as unknown[]).length, 1, 'a token without a limit still reaches every repository');
    } finally {
      await stop();
    }
  } finally {
    t.cleanup();
  }
});
