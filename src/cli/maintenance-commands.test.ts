import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { LocalStore } from '../store/local.js';
import { Repository } from '../repo/repository.js';
import { AAD, sealFile } from '../repo/envelope-file.js';
import { sha256 } from '../repo/crypto.js';
import { asId, Names, toHex, type Hex } from '../repo/ids.js';
import { BIN, lifeboat, tempDir } from './testing.js';

interface Env {
  [k: string]: string;
  LIFEBOAT_REPO: string;
  LIFEBOAT_PASSWORD: string;
}

async function ok(args: string[], env: Env): Promise<string> {
  const r = await lifeboat(args, env);
  assert.equal(r.code, 0, `lifeboat ${args.join(' ')}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

async function setup(t: { after: (fn: () => void) => void }) {
  const dir = tempDir();
  t.after(dir.cleanup);
  const env: Env = { LIFEBOAT_REPO: join(dir.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  const src = join(dir.path, 'src');
  mkdirSync(src);
  for (const n of ['a', 'b', 'c']) writeFileSync(join(src, n), randomBytes(20_000));
  await ok(['init'], env);
  const backup = async (time: string) => {
    writeFileSync(join(src, 'a'), randomBytes(20_000)); // each backup adds new data
    const out = await ok(['backup', src, '--time', time, '--json'], env);
    const line = out.trim().split('\n').pop()!;
    return asId((JSON.parse(line) as { id?: string; snapshot?: string }).id ?? (JSON.parse(line) as { snapshot: string }).snapshot);
  };
  return { dir, env, src, backup };
}

test('pin, forget --dry-run with reasons, forget --prune, and check through the CLI', async (t) => {
  const { env, backup } = await setup(t);
  const ids = [];
  for (const time of ['2024-01-01T10:00:00Z', '2024-01-02T10:00:00Z', '2024-01-03T10:00:00Z', '2024-01-04T10:00:00Z']) ids.push(await backup(time));
  const [oldest, , third, newest] = ids as [Hex, Hex, Hex, Hex];
  await ok(['pin', oldest.slice(0, 10), '--note', 'before the upgrade'], env);
  assert.match(await ok(['snapshots'], env), new RegExp(`${oldest.slice(0, 8)} .*\\[pinned: before the upgrade\\]`), 'listings show the pin and its note');
  const listed = JSON.parse(await ok(['snapshots', '--json'], env)) as { id: string; pinned?: { note: string } }[];
  assert.deepEqual(listed.filter((s) => s.pinned).map((s) => [s.id, s.pinned!.note]), [[oldest, 'before the upgrade']]);

  const dry = JSON.parse(await ok(['forget', '--keep-last', '1', '--dry-run', '--json'], env)) as { groups: { keep: { id: string; reasons: string[] }[]; remove: { id: string }[] }[] };
  assert.equal(dry.groups.length, 1);
  assert.deepEqual(dry.groups[0]!.keep.map((k) => [k.id, k.reasons]), [[newest, ['last snapshot']], [oldest, ['pinned']]]);
  assert.equal(dry.groups[0]!.remove.length, 2);
  const text = await ok(['forget', '--keep-last', '1', '--dry-run'], env);
  assert.match(text, new RegExp(`keep +${oldest.slice(0, 8)} .*pinned \\(before the upgrade\\)`));
  assert.match(text, /2 snapshot\(s\) would be removed/);
  assert.equal((await ok(['snapshots', '--json'], env)).includes(third), true, 'a dry run removes nothing');

  const real = JSON.parse(await ok(['forget', '--keep-last', '1', '--prune', '--max-unused', '0', '--json'], env)) as { removed: string[]; prune: { bytes: { freed: number }; packs: { deleted: number } } };
  assert.equal(real.removed.length, 2);
  assert.ok(real.prune.bytes.freed > 30_000, `freed ${real.prune.bytes.freed}`);
  assert.equal((await lifeboat(['check', '--read-data'], env)).code, 0);

  const refused = await lifeboat(['forget', oldest], env);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /is pinned/);
  await ok(['unpin', oldest], env);
  await ok(['forget', oldest], env);
  const left = JSON.parse(await ok(['forget', '--keep-last', '5', '--dry-run', '--json'], env)) as { groups: { keep: { id: string }[] }[] };
  assert.deepEqual(left.groups[0]!.keep.map((k) => k.id), [newest]);
  const pr = await ok(['prune'], env);
  assert.match(pr, /Freed/);
  assert.equal((await lifeboat(['check', '--read-data'], env)).code, 0);
});

async function writeLock(repoPath: string, info: object): Promise<Hex> {
  const repo = await Repository.open(new LocalStore(repoPath), 'pw');
  const bytes = await sealFile(repo.codec, repo.keys.encKey, AAD.lock, Buffer.from(JSON.stringify({ version: 1, user: 'u', exclusive: false, purpose: 'backup', ...info })));
  const id = toHex(sha256(bytes));
  await repo.store.put(Names.lock(id), bytes);
  await repo.close();
  return id;
}

test('locks: a live foreign lock blocks prune (exit 11); unlock removes dead-process and expired locks only', async (t) => {
  const { env } = await setup(t);
  const repoPath = env.LIFEBOAT_REPO;
  const deadPid = spawnSync(process.execPath, ['-e', '0']).pid;
  const dead = await writeLock(repoPath, { host: hostname(), pid: deadPid, time: new Date().toISOString() });
  const expired = await writeLock(repoPath, { host: 'other-host', pid: 1, time: new Date(Date.now() - 31 * 60_000).toISOString() });
  const live = await writeLock(repoPath, { host: 'other-host', pid: 1, time: new Date(Date.now() - 29 * 60_000).toISOString() });
  const lockNames = async () => {
    const out: string[] = [];
    for await (const o of new LocalStore(repoPath).list('locks/')) out.push(o.name);
    return out.sort();
  };
  assert.deepEqual(await lockNames(), [Names.lock(dead), Names.lock(expired), Names.lock(live)].sort());
  assert.match(await ok(['unlock'], env), /Removed 2 lock\(s\)/);
  assert.deepEqual(await lockNames(), [Names.lock(live)], 'the fresh lock of another host stays');
  const blocked = await lifeboat(['prune'], env);
  assert.equal(blocked.code, 11);
  assert.match(blocked.stderr, /in use by "backup" on other-host/);
  assert.match(await ok(['unlock'], env), /No stale locks/);
  assert.match(await ok(['unlock', '--remove-all'], env), /Removed 1 lock/);
  await ok(['prune'], env);
  assert.deepEqual(await lockNames(), [], 'prune released its lock');
  // A stale lock does not block: prune clears it by itself.
  await writeLock(repoPath, { host: hostname(), pid: deadPid, time: new Date().toISOString(), exclusive: true });
  await ok(['prune'], env);
  assert.deepEqual(await lockNames(), []);
});

test('a prune process killed with SIGKILL at random moments leaves a repository that checks clean', async (t) => {
  const { env, backup, src } = await setup(t);
  let day = 1;
  for (let i = 0; i < 3; i++) await backup(`2024-02-0${day++}T10:00:00Z`);
  const delays = [150, 250, 350, 450];
  const codes: (number | null)[] = [];
  for (const delay of delays) {
    await backup(`2024-02-${String(day++).padStart(2, '0')}T10:00:00Z`);
    await ok(['forget', '--keep-last', '2'], env);
    const child = spawn(process.execPath, [BIN, 'prune', '--max-unused', '0'], { env: { ...process.env, LIFEBOAT_INSECURE_FAST_KDF: '1', ...env }, stdio: 'ignore' });
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    const timer = setTimeout(() => child.kill('SIGKILL'), delay + Math.floor(Math.random() * 50));
    const code = await exited;
    clearTimeout(timer);
    codes.push(code);
    const check = await lifeboat(['check', '--read-data', '--json'], env);
    assert.equal(check.code, 0, `after a kill at ~${delay} ms (exit ${code}): ${check.stdout}`);
  }
  console.log(`prune exit codes (null = killed): ${JSON.stringify(codes)}`);
  await ok(['prune', '--max-unused', '0'], env);
  const clean = JSON.parse((await lifeboat(['check', '--read-data', '--json'], env)).stdout) as { errors: unknown[]; warnings: unknown[] };
  assert.deepEqual([clean.errors, clean.warnings], [[], []]);
  const target = join(src, '..', 'restored');
  await ok(['restore', 'latest', '--target', target], env);
});

test('a damaged index file costs only time: restore, ls and check warn once and go on; repair snapshots rebuilds a damaged snapshot file', async (t) => {
  const { dir, env, src, backup } = await setup(t);
  const id = await backup('2024-01-01T10:00:00Z');
  const repoDir = env.LIFEBOAT_REPO;
  const store = new LocalStore(repoDir);
  const index: string[] = [];
  for await (const o of store.list('index/')) index.push(o.name);
  const flip = (name: string) => {
    const p = join(repoDir, name);
    const b = readFileSync(p);
    b[b.length >> 1]! ^= 0x08;
    chmodSync(p, 0o644);
    writeFileSync(p, b);
  };
  for (const n of index) flip(n);
  const target = join(dir.path, 'out');
  const r = await lifeboat(['restore', id, '--target', target], env);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr.match(/warning: The index file/g)?.length, index.length, r.stderr);
  for (const n of ['a', 'b', 'c']) assert.deepEqual(readFileSync(join(target, 'src', n)), readFileSync(join(src, n)));
  assert.match((await lifeboat(['ls', id], env)).stdout, /\/src\//);
  const check = await lifeboat(['check'], env);
  assert.equal(check.code, 1, 'check names the damaged index file');
  assert.match(check.stdout + check.stderr, new RegExp(index[0]!.slice(6, 20)));

  flip(Names.snapshot(id));
  assert.notEqual((await lifeboat(['ls', id], env)).code, 0);
  await ok(['repair', 'snapshots'], env);
  assert.match((await lifeboat(['ls', id], env)).stdout, /\/src\//, 'the snapshot file is rebuilt from its copy under the same id');
});
