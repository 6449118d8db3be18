/**
 * Destination full in the middle of a backup (issue 6, P5). A real full drive: the repository on
 * an 8 MiB tmpfs, a 20 MB tree. The CLI exits non-zero with a plain message about space (no stack
 * trace), no half-written file is kept, the repository checks clean with --read-data, the earlier
 * snapshot restores, and no snapshot of the failed backup exists. Also an image onto the full
 * drive, and (in process, with FaultStore) the drive filling at every put of a backup. A restore
 * onto a drive that fills up stops at once with one plain message and completes when run again.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkRepository } from '../repo/check.js';
import { Repository } from '../repo/repository.js';
import type { Snapshot } from '../repo/snapshot.js';
import { MemoryStore } from '../store/memory.js';
import { LocalStore } from '../store/local.js';
import type { Store } from '../store/store.js';
import { backup } from '../files/backup.js';
import { fileTreeReferences } from '../files/tree.js';
import { ExitCode, LifeboatError } from '../util/errors.js';
import { bytesUnder } from '../util/testing.js';
import { startServer } from '../server/testing.js';
import { assertSameTree, lifeboat, tempDir } from './testing.js';

const canMount = process.getuid?.() === 0;

/**
 * A temporary folder with a tmpfs of `size` mounted at its mnt/, both gone after the test; what
 * `stopFirst` holds by then (a server using the drive) is stopped before the unmount.
 */
function smallDrive(t: TestContext, size: string, stopFirst: (() => Promise<unknown>)[] = []): { d: ReturnType<typeof tempDir>; mnt: string } {
  const d = tempDir();
  const mnt = join(d.path, 'mnt');
  mkdirSync(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mnt]);
  t.after(async () => {
    for (const stop of stopFirst) await stop();
    try {
      execFileSync('umount', [mnt]);
    } finally {
      d.cleanup();
    }
  });
  return { d, mnt };
}

test('a backup onto a drive that fills up fails with a plain message and leaves the repository intact', { skip: !canMount && 'needs root to mount a tmpfs' }, async (t) => {
  const { d, mnt } = smallDrive(t, '8m');
  const env = { LIFEBOAT_REPO: join(mnt, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);

  const small = join(d.path, 'small');
  mkdirSync(small);
  writeFileSync(join(small, 'a.txt'), 'hello');
  writeFileSync(join(small, 'b.bin'), randomBytes(300_000));
  const b1 = await lifeboat(['backup', '--json', small], env);
  assert.equal(b1.code, 0, b1.stderr);
  const firstId = (JSON.parse(b1.stdout) as { snapshot: string }).snapshot;

  const big = join(d.path, 'big');
  mkdirSync(join(big, 'sub'), { recursive: true });
  for (let i = 0; i < 4; i++) writeFileSync(join(big, i % 2 ? 'sub' : '', `f${i}.bin`), randomBytes(5_000_000));
  const b2 = await lifeboat(['backup', big], env);
  assert.notEqual(b2.code, 0, 'the backup must fail');
  assert.match(b2.stderr, /is full/);
  assert.match(b2.stderr, /\(\d+(\.\d+)? [KMG]?B\)/, 'the message says how big the write that did not fit was');
  assert.match(b2.stderr, /Free some space/);
  assert.doesNotMatch(b2.stderr, /^\s+at /m, 'no stack trace');
  assert.equal(readdirSync(join(mnt, 'repo', '.tmp')).length, 0, 'nothing half-written is kept');

  const disk = join(d.path, 'disk.img');
  writeFileSync(disk, randomBytes(20_000_000));
  const img = await lifeboat(['image', 'create', disk], env);
  assert.notEqual(img.code, 0);
  assert.match(img.stderr, /is full/);
  assert.doesNotMatch(img.stderr, /^\s+at |unhandled/im, 'no stack trace or unhandled rejection');

  const check = await lifeboat(['check', '--read-data'], env);
  assert.equal(check.code, 0, check.stdout + check.stderr);
  const snaps = JSON.parse((await lifeboat(['snapshots', '--json'], env)).stdout) as { id: string }[];
  assert.deepEqual(snaps.map((s) => s.id), [firstId], 'no snapshot of the failed runs');
  const target = join(d.path, 'restored');
  assert.equal((await lifeboat(['restore', firstId, '--target', target], env)).code, 0);
  assert.ok(readFileSync(join(target, 'small', 'b.bin')).equals(readFileSync(join(small, 'b.bin'))));
});

for (const where of ['folder', 'Lifeboat server'] as const) {
  test(`a backup that fails when the drive fills up (${where}) indexes the packs it finished; on a larger drive the next backup adds only what was missing`, { skip: !canMount && 'needs root to mount a tmpfs' }, async (t) => {
    const stopFirst: (() => Promise<unknown>)[] = [];
    const { d, mnt } = smallDrive(t, '20m', stopFirst);
    const base = { LIFEBOAT_PASSWORD: 'pw', XDG_CACHE_HOME: join(d.path, 'cache'), XDG_DATA_HOME: join(d.path, 'data') };
    let env: Record<string, string>;
    let repo: string;
    let server: Awaited<ReturnType<typeof startServer>> | undefined;
    if (where === 'folder') {
      repo = join(mnt, 'repo');
      env = { ...base, LIFEBOAT_REPO: repo };
      assert.equal((await lifeboat(['init'], env)).code, 0);
    } else {
      // The server's data folder is the full drive: it answers 507, which the client reports as a full drive.
      const token = async (name: string, role: string): Promise<string> => (await lifeboat(['server', 'token', 'add', name, '--role', role, '--data', mnt])).stdout.trim();
      const admin = await token('admin', 'admin');
      const laptop = await token('laptop', 'append');
      server = await startServer(mnt);
      stopFirst.push(server.stop);
      repo = join(mnt, 'office');
      env = { ...base, LIFEBOAT_REPO: `lifeboat:${server.origin}/office`, LIFEBOAT_TOKEN: laptop };
      assert.equal((await lifeboat(['init'], { ...env, LIFEBOAT_TOKEN: admin })).code, 0);
    }
    const src = join(d.path, 'src');
    mkdirSync(src);
    const total = 5 * 6 * 1024 * 1024;
    for (let i = 0; i < 5; i++) writeFileSync(join(src, `f${i}.bin`), randomBytes(total / 5));

    const failed = await lifeboat(['backup', src], env);
    assert.equal(failed.code, ExitCode.failure, failed.stderr);
    assert.match(failed.stderr, /full|no space left/);
    if (server) {
      // Said in the client's words: the server's drive, what to do, and none of the server's paths (its log keeps them).
      assert.match(failed.stderr, /The drive of the Lifeboat server at http:\/\/127\.0\.0\.1:\d+ is full; free some space on the server \(or ask its administrator to\) and try again\./);
      assert.ok(!failed.stderr.includes(mnt), `no server path in what the client shows: ${failed.stderr}`);
      assert.match(server.log(), new RegExp(`failed PUT /v1/office/o/\\S+: .*${mnt}.* is full`));
    }
    assert.doesNotMatch(failed.stderr, /^\s+at /m, 'no stack trace');
    const stored = bytesUnder(join(repo, 'data'));
    // A finished pack holds whole chunks up to 8 MiB, so it may be well under 8 MiB (one was 7.2 MB).
    assert.ok(stored > 0, `at least one pack was finished before the drive filled (${stored} bytes)`);
    // Indexed on the way out (no header needs reading next time); nothing half-written kept.
    assert.ok(readdirSync(join(repo, 'index')).length > 0, 'the failed backup wrote an index of the packs it finished');
    assert.deepEqual(readdirSync(join(repo, '.tmp')), [], 'no temporary is left');
    const check = await lifeboat(['check', '--read-data'], env);
    assert.equal(check.code, 0, check.stdout + check.stderr);

    execFileSync('mount', ['-o', 'remount,size=128m', mnt]);
    const again = await lifeboat(['backup', '--json', src], env);
    assert.equal(again.code, 0, again.stderr);
    const added = (JSON.parse(again.stdout) as { summary: { bytesAdded: number } }).summary.bytesAdded;
    t.diagnostic(`${where}: ${stored} bytes of packs stored before the drive filled, ${added} added by the next backup, of ${total}`);
    assert.ok(stored + added < total * 1.02 + 64 * 1024, `the next backup added only what was missing: ${stored} + ${added} for ${total} bytes of files`);
    const after = await lifeboat(['check', '--read-data'], env);
    assert.equal(after.code, 0, after.stdout + after.stderr);
    const restored = await lifeboat(['restore', 'latest', '--target', join(d.path, 'out')], env);
    assert.equal(restored.code, 0, restored.stderr);
    assertSameTree(src, join(d.path, 'out', 'src'));
  });
}

test('a restore onto a drive that fills up stops with one plain message, keeps nothing half-written, and completes when run again', { skip: !canMount && 'needs root to mount a tmpfs' }, async (t) => {
  const { d, mnt } = smallDrive(t, '2m');
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  // 4.4 MB that does not compress: 120 small files in three folders and a file of several chunks.
  const src = join(d.path, 'src');
  const files: string[] = [];
  for (let i = 0; i < 120; i++) {
    const rel = join(`d${i % 3}`, `f${i}.bin`);
    mkdirSync(join(src, `d${i % 3}`), { recursive: true });
    writeFileSync(join(src, rel), randomBytes(20_000));
    files.push(rel);
  }
  writeFileSync(join(src, 'big.bin'), randomBytes(2_000_000));
  files.push('big.bin');
  assert.equal((await lifeboat(['backup', src], env)).code, 0);

  const target = join(mnt, 'restored');
  const r1 = await lifeboat(['restore', 'latest', '--target', target], env);
  assert.equal(r1.code, ExitCode.failure, r1.stderr);
  assert.match(r1.stderr, /The drive you are restoring to is full/);
  assert.match(r1.stderr, /run the same restore again/);
  assert.equal(r1.stderr.match(/is full/g)?.length, 1, 'one message, not one per file');
  assert.doesNotMatch(r1.stderr, /^\s+at |unhandled/im, 'no stack trace or unhandled rejection');
  // A file that got its saved time was finished: it is whole. (Times are set last; an unfinished
  // file keeps the time it was written, so the next restore writes it again.)
  let whole = 0;
  for (const rel of files) {
    const got = join(target, 'src', rel);
    let st;
    try {
      st = statSync(got, { bigint: true });
    } catch {
      continue;
    }
    if (st.mtimeNs !== statSync(join(src, rel), { bigint: true }).mtimeNs) continue;
    assert.ok(readFileSync(got).equals(readFileSync(join(src, rel))), `${rel} has its time but not all its bytes`);
    whole++;
  }
  assert.ok(whole > 0 && whole < files.length, `some files were restored before the drive was full (${whole})`);

  execFileSync('mount', ['-o', 'remount,size=16m', mnt]);
  const r2 = await lifeboat(['restore', 'latest', '--target', target], env);
  assert.equal(r2.code, 0, r2.stderr);
  assertSameTree(src, join(target, 'src')); // no temporaries or leftovers either
});

test('a restore onto a read-only drive stops with one plain message, whether the target folder exists or not', { skip: !canMount && 'needs root to mount a tmpfs' }, async (t) => {
  const { d, mnt } = smallDrive(t, '2m');
  mkdirSync(join(mnt, 'there'));
  execFileSync('mount', ['-o', 'remount,ro', mnt]);
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const src = join(d.path, 'src');
  mkdirSync(join(src, 'sub'), { recursive: true });
  for (let i = 0; i < 20; i++) writeFileSync(join(src, i % 2 ? 'sub' : '', `f${i}.txt`), `file ${i}`);
  assert.equal((await lifeboat(['backup', src], env)).code, 0);
  for (const target of [join(mnt, 'there'), join(mnt, 'new')]) {
    const r = await lifeboat(['restore', 'latest', '--target', target], env);
    assert.equal(r.code, ExitCode.failure, r.stderr);
    assert.match(r.stderr, /The drive you are restoring to is read-only/);
    assert.equal(r.stderr.match(/read-only/g)?.length, 1, 'one message, not one per file');
    assert.doesNotMatch(r.stderr, /^\s+at |unhandled/im, 'no stack trace or unhandled rejection');
  }
});

test('the store filling up at any put of a backup: no-space error, clean repository, no snapshot of missing data', async (t) => {
  process.env['LIFEBOAT_INSECURE_FAST_KDF'] = '1';
  const d = tempDir();
  t.after(d.cleanup);
  const tree = join(d.path, 'tree');
  mkdirSync(join(tree, 'sub'), { recursive: true });
  for (let i = 0; i < 4; i++) writeFileSync(join(tree, i % 2 ? 'sub' : '', `f${i}.bin`), randomBytes(5_000_000));
  for (let i = 0; i < 10; i++) writeFileSync(join(tree, 'sub', `s${i}.txt`), `small ${i}`);
  const walkers = { files: (repo: Repository, s: Snapshot, visit: (id: Uint8Array) => boolean) => fileTreeReferences(repo, s.root, visit) };
  const open = async (store: Store) => {
    const r = await Repository.open(store, 'pw');
    await r.loadIndex();
    return r;
  };
  const base = new MemoryStore();
  await Repository.init(base, 'pw');
  const clone = async () => {
    const out = new MemoryStore();
    for (const p of ['config', 'keys/']) for await (const o of base.list(p)) await out.put(o.name, await base.get(o.name));
    return out;
  };
  // Count the puts a clean backup makes; then let the drive be full from the (k+1)th put on, for
  // every k. (By count, not bytes: the order of concurrent puts may differ between runs.)
  let puts = 0;
  const probe = await clone();
  const rec = new Proxy(probe, { get: (o, k) => (k === 'put' ? (n: string, b: Uint8Array) => (puts++, o.put(n, b)) : (Reflect.get(o, k) as unknown)) });
  await backup(await open(rec), { paths: [tree] });
  assert.ok(puts >= 4, `${puts} puts`);
  for (let k = 0; k < puts; k++) {
    const inner = await clone();
    let n = 0;
    const full = new Proxy(inner, {
      get: (o, key) =>
        key === 'put'
          ? (name: string, b: Uint8Array) => (++n > k ? Promise.reject(new LifeboatError('no-space', `The drive is full: could not save ${name} (${b.length} bytes).`)) : o.put(name, b))
          : (Reflect.get(o, key) as unknown),
    });
    await assert.rejects(backup(await open(full), { paths: [tree] }), (e) => e instanceof LifeboatError && e.code === 'no-space', `full at put ${k + 1}`);
    const after = await open(inner);
    assert.deepEqual((await checkRepository(after, { readData: true, walkers })).errors, [], `full at put ${k + 1}: check`);
    assert.equal((await after.listSnapshots()).length, 0, `full at put ${k + 1}: no snapshot`);
  }
});

test('a repository on a read-only drive can be restored from, checked and browsed without a lock; writing commands and init say why they cannot', { skip: !canMount && 'needs root to mount a tmpfs' }, async (t) => {
  const { d, mnt } = smallDrive(t, '64m');
  const env = { LIFEBOAT_REPO: join(mnt, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  const tree = join(d.path, 'tree');
  mkdirSync(join(tree, 'sub'), { recursive: true });
  writeFileSync(join(tree, 'sub', 'a.bin'), randomBytes(300_000));
  writeFileSync(join(tree, 'notes.txt'), 'hello\n');
  const disk = join(d.path, 'disk.img');
  writeFileSync(disk, randomBytes(1 << 20));
  assert.equal((await lifeboat(['init'], env)).code, 0);
  assert.equal((await lifeboat(['backup', tree], env)).code, 0);
  assert.equal((await lifeboat(['image', 'create', disk], env)).code, 0);
  // --no-lock on a writable repository: the restore writes no lock at all.
  const watch = await lifeboat(['--no-lock', 'restore', 'latest', '--target', join(d.path, 'nolock')], env);
  assert.equal(watch.code, 0, watch.stderr);
  assert.match(watch.stderr, /without a lock \(--no-lock\)/);
  execFileSync('mount', ['-o', 'remount,ro', mnt]);

  const image = JSON.parse((await lifeboat(['snapshots', '--json'], env)).stdout) as { id: string; kind: string }[];
  const img = image.find((s) => s.kind === 'image')!.id;
  const files = image.find((s) => s.kind === 'files')!.id;
  for (const args of [['snapshots'], ['ls', files], ['find', 'notes.txt'], ['dump', files, '/tree/notes.txt'], ['diff', files, files], ['stats'], ['check', '--read-data'], ['image', 'info', img], ['image', 'export', img, join(d.path, 'out.vhdx')], ['image', 'restore', img, '--target', join(d.path, 'restored.img')]]) {
    const r = await lifeboat(args, env);
    assert.equal(r.code, 0, `${args.join(' ')} on a read-only drive: ${r.stderr}`);
    assert.ok((r.stderr.match(/read-only: reading it without a lock/g) ?? []).length <= 1, 'said at most once');
  }
  const target = join(d.path, 'restored');
  const r = await lifeboat(['restore', 'latest', '--target', target], env);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((r.stderr.match(/The repository's drive is read-only: reading it without a lock\./g) ?? []).length, 1);
  assertSameTree(tree, join(target, 'tree'));
  assert.ok(readFileSync(join(d.path, 'restored.img')).equals(readFileSync(disk)));

  for (const args of [['backup', tree], ['prune'], ['forget', '--keep-last', '1']]) {
    const w = await lifeboat(args, env);
    assert.equal(w.code, 1, `${args[0]}: ${w.stderr}`);
    assert.match(w.stderr, /on a drive that cannot be written \(read-only or write-protected\)/);
    assert.doesNotMatch(w.stderr, /locks\/|\n\s+at /);
  }
  const init = await lifeboat(['init'], { ...env, LIFEBOAT_REPO: join(mnt, 'new-repo'), LIFEBOAT_NEW_PASSWORD: 'pw' });
  assert.equal(init.code, 1);
  assert.match(init.stderr, /No repository can be created at .*new-repo: the drive cannot be written/);
  execFileSync('mount', ['-o', 'remount,rw', mnt]);
});

test('on a read-only view of a repository in use, a live exclusive lock still stops a reader (exit 11) unless --no-lock', { skip: !canMount && 'needs root to bind-mount' }, async (t) => {
  process.env['LIFEBOAT_INSECURE_FAST_KDF'] = '1';
  const d = tempDir();
  const repoDir = join(d.path, 'repo');
  const view = join(d.path, 'view');
  mkdirSync(view);
  const src = join(d.path, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'a.txt'), 'alpha\n');
  const env = { LIFEBOAT_REPO: repoDir, LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  assert.equal((await lifeboat(['backup', src], env)).code, 0);
  execFileSync('mount', ['--bind', repoDir, view]);
  execFileSync('mount', ['-o', 'remount,bind,ro', view]);
  // A prune running elsewhere, through the writable path: this process holds its exclusive lock.
  const writer = await Repository.open(new LocalStore(repoDir), 'pw');
  await writer.lock(true, 'prune');
  t.after(async () => {
    await writer.close();
    execFileSync('umount', [view]);
    d.cleanup();
  });
  const viewEnv = { LIFEBOAT_REPO: view, LIFEBOAT_PASSWORD: 'pw' };
  const locked = await lifeboat(['restore', 'latest', '--target', join(d.path, 'out1')], viewEnv);
  assert.equal(locked.code, ExitCode.locked, locked.stderr);
  const forced = await lifeboat(['--no-lock', 'restore', 'latest', '--target', join(d.path, 'out2')], viewEnv);
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(readFileSync(join(d.path, 'out2', 'src', 'a.txt'), 'utf8'), 'alpha\n');
  await writer.close();
  const free = await lifeboat(['restore', 'latest', '--target', join(d.path, 'out3')], viewEnv);
  assert.equal(free.code, 0, free.stderr);
  assert.match(free.stderr, /The repository's drive is read-only: reading it without a lock\./);
});
