import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { BIN, lifeboat, tempDir } from './testing.js';

test('init, key add/list/passwd/remove, check and stats through the CLI', async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const repo = join(dir.path, 'repo');
  const env = { LIFEBOAT_REPO: repo, LIFEBOAT_PASSWORD: 'first' };

  const init = await lifeboat(['init', '--json'], env);
  assert.equal(init.code, 0, init.stderr);
  const { recoveryKey } = JSON.parse(init.stdout) as { recoveryKey: string };
  assert.match(recoveryKey, /^([0-9A-Z]{5}-){7}[0-9A-Z]{5}$/);
  assert.equal((await lifeboat(['init'], env)).code, 1, 'a second init refuses');

  const pwFile = join(dir.path, 'pw2');
  writeFileSync(pwFile, 'second\n');
  const add = await lifeboat(['key', 'add', '--new-password-file', pwFile, '--label', 'laptop'], env);
  assert.equal(add.code, 0, add.stderr);
  const list = JSON.parse((await lifeboat(['key', 'list', '--json'], env)).stdout) as { id: string; kind: string; current: boolean; label: string }[];
  assert.equal(list.length, 3);
  assert.deepEqual(list.map((k) => k.kind).sort(), ['password', 'password', 'recovery']);

  // The second password and the recovery key both open it; a wrong one gives exit code 12.
  assert.equal((await lifeboat(['check'], { LIFEBOAT_REPO: repo, LIFEBOAT_PASSWORD: 'second' })).code, 0);
  assert.equal((await lifeboat(['check'], { LIFEBOAT_REPO: repo, LIFEBOAT_PASSWORD: recoveryKey.toLowerCase() })).code, 0);
  const wrong = await lifeboat(['check'], { LIFEBOAT_REPO: repo, LIFEBOAT_PASSWORD: 'nope' });
  assert.equal(wrong.code, 12);
  assert.match(wrong.stderr, /password is not correct/);
  assert.doesNotMatch(wrong.stderr, /at .*\.js/, 'no stack trace');

  // passwd replaces the slot in use; the old password stops working.
  const third = join(dir.path, 'pw3');
  writeFileSync(third, 'third');
  assert.equal((await lifeboat(['key', 'passwd', '--new-password-file', third], env)).code, 0);
  assert.equal((await lifeboat(['check'], env)).code, 12);
  const env3 = { LIFEBOAT_REPO: repo, LIFEBOAT_PASSWORD: 'third' };
  const list3 = JSON.parse((await lifeboat(['key', 'list', '--json'], env3)).stdout) as { id: string; label: string; current: boolean }[];
  const laptop = list3.find((k) => k.label === 'laptop')!;
  assert.equal((await lifeboat(['key', 'remove', laptop.id.slice(0, 10)], env3)).code, 0);
  assert.equal((await lifeboat(['check'], { LIFEBOAT_REPO: repo, LIFEBOAT_PASSWORD: 'second' })).code, 12);
  const current = list3.find((k) => k.current)!;
  assert.equal((await lifeboat(['key', 'remove', current.id], env3)).code, 2, 'cannot remove the key in use');

  const stats = await lifeboat(['stats', '--json'], env3);
  assert.equal(stats.code, 0, stats.stderr);
  assert.equal((JSON.parse(stats.stdout) as { snapshots: number }).snapshots, 0);

  // A reader that stops early (| head) is not an error: no stack trace, exit 0.
  const piped = spawnSync('bash', ['-o', 'pipefail', '-c', `for i in 1 2 3; do node ${BIN} key list; done | head -c 5 >/dev/null`], { env: { ...process.env, ...env3, LIFEBOAT_INSECURE_FAST_KDF: '1' }, encoding: 'utf8' });
  assert.doesNotMatch(piped.stderr, /EPIPE|Unhandled|at /);
  assert.equal(piped.status, 0, piped.stderr);

  const check = await lifeboat(['check', '--read-data', '--json'], env3);
  assert.equal(check.code, 0, check.stderr);
  assert.deepEqual((JSON.parse(check.stdout) as { errors: unknown[] }).errors, []);

  // Tamper with a key file: check --read-data names it and fails.
  const keysDir = join(repo, 'keys');
  const victim = readdirSync(keysDir).map((n) => join(keysDir, n)).find((p) => !readFileSync(p, 'utf8').includes('"kind":"password"'))!;
  const bytes = readFileSync(victim);
  bytes[20] = bytes[20]! ^ 0x02;
  writeFileSync(victim, bytes);
  const bad = await lifeboat(['check', '--read-data'], env3);
  assert.equal(bad.code, 1);
  assert.ok(bad.stdout.includes(victim.slice(repo.length + 1)), bad.stdout);
  assert.ok(statSync(victim).size > 0);
});

test('errors a person can act on: no repository, unsupported version, missing password', async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const none = await lifeboat(['check'], { LIFEBOAT_REPO: join(dir.path, 'nothing'), LIFEBOAT_PASSWORD: 'x' });
  assert.equal(none.code, 10);
  assert.match(none.stderr, /no Lifeboat repository/);

  const repo = join(dir.path, 'repo');
  assert.equal((await lifeboat(['init'], { LIFEBOAT_REPO: repo, LIFEBOAT_PASSWORD: 'pw' })).code, 0);
  const noPw = await lifeboat(['check'], { LIFEBOAT_REPO: repo, LIFEBOAT_PASSWORD: undefined });
  assert.equal(noPw.code, 2);
  assert.match(noPw.stderr, /password is needed/);

  // A newer Lifeboat writes the config and its copy.
  for (const cfgPath of [join(repo, 'config'), join(repo, 'config.copy')]) writeFileSync(cfgPath, readFileSync(cfgPath, 'utf8').replace('"version":1', '"version":7'));
  const future = await lifeboat(['check'], { LIFEBOAT_REPO: repo, LIFEBOAT_PASSWORD: 'pw' });
  assert.equal(future.code, 1);
  assert.match(future.stderr, /format version 7/);

  const unplugged = await lifeboat(['init'], { LIFEBOAT_REPO: join(dir.path, 'not-mounted', 'lifeboat'), LIFEBOAT_PASSWORD: 'pw' });
  assert.equal(unplugged.code, 2);
  assert.match(unplugged.stderr, /connect it first/);

  const usage = await lifeboat(['no-such-command'], {});
  assert.equal(usage.code, 2);
});

test('init on a folder whose parent is missing (an unplugged drive) refuses before asking for a password, and creates nothing', async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const repo = join(dir.path, 'Passport', 'backups');
  // No password in the environment and no terminal: asking for one would fail with another message.
  const r = await lifeboat(['init'], { LIFEBOAT_REPO: repo, LIFEBOAT_PASSWORD: undefined });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /The folder .*Passport does not exist\. If the repository belongs on an external drive, connect it first/);
  assert.deepEqual(readdirSync(dir.path), []);
});
