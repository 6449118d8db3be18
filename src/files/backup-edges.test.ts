import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { constants } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { BIN, lifeboat } from '../cli/testing.js';
import { LifeboatError } from '../util/errors.js';
import { backup, CompactStat, lifeboatOwnFolders, nodeFileAccess, type BackupEvent, type FileAccess } from './backup.js';
import { loadDir } from './tree.js';
import type { Hex } from '../repo/ids.js';
import type { Repository } from '../repo/repository.js';
import { newRepo, tmp, watchFullCollections } from './testing.js';

process.env['LIFEBOAT_INSECURE_FAST_KDF'] = '1';

/** Every path in a snapshot's tree, '/'-separated from its root listing. */
async function pathsIn(repo: Repository, tree: Hex, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await loadDir(repo, tree)) {
    const p = `${prefix}/${e.name.toString('utf8')}`;
    out.push(p);
    if (e.subtree !== undefined) out.push(...(await pathsIn(repo, e.subtree, p)));
  }
  return out;
}

const TAG = 'Signature: 8a477f597d28d172789f06886806bc55\n';

test('a FIFO or a folder named CACHEDIR.TAG is not a cache tag, and a FIFO does not block the backup', { timeout: 60_000 }, async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  fs.mkdirSync(join(src, 'fifo'), { recursive: true });
  execFileSync('mkfifo', [join(src, 'fifo', 'CACHEDIR.TAG')]);
  fs.writeFileSync(join(src, 'fifo', 'kept'), 'kept');
  fs.mkdirSync(join(src, 'folder', 'CACHEDIR.TAG'), { recursive: true });
  fs.writeFileSync(join(src, 'folder', 'kept'), 'kept');
  fs.mkdirSync(join(src, 'real'));
  fs.writeFileSync(join(src, 'real', 'CACHEDIR.TAG'), TAG);
  fs.writeFileSync(join(src, 'real', 'gone'), 'left out');
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  const events: BackupEvent[] = [];
  const r = await backup(repo, { paths: [src], excludeCaches: true, onEvent: (e) => e.type !== 'progress' && events.push(e) });
  const saved = await pathsIn(repo, r.snapshot.root);
  assert.ok(saved.includes('/src/fifo/kept') && saved.includes('/src/fifo/CACHEDIR.TAG') && saved.includes('/src/folder/kept'));
  assert.ok(saved.includes('/src/real/CACHEDIR.TAG') && !saved.includes('/src/real/gone'));
  assert.deepEqual(events.map((e) => e.type !== 'progress' && e.path), [join(src, 'real')]);
});

test('sources that are all missing, below a file, or Lifeboat\'s own folder save nothing; an own folder named beside others is left out', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  fs.mkdirSync(src);
  fs.writeFileSync(join(src, 'a'), 'a');
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  const notFound = (re: RegExp) => (e: unknown) => e instanceof LifeboatError && e.code === 'not-found' && re.test(e.message);
  await assert.rejects(backup(repo, { paths: [join(src, 'a', 'below')] }), notFound(/does not exist/));
  const own = lifeboatOwnFolders({ repository: join(dir, 'repo'), cache: join(dir, 'no-cache-yet') });
  await assert.rejects(backup(repo, { paths: [join(dir, 'repo')], ownFolders: own }), notFound(new RegExp(`^Nothing was backed up: ${join(dir, 'repo')} is Lifeboat's own data`)));
  await assert.rejects(backup(repo, { paths: [join(dir, 'repo'), join(dir, 'missing')], ownFolders: own }), notFound(/own data/));
  assert.equal((await repo.listSnapshots(() => undefined)).length, 0, 'no snapshot was written');

  const events: BackupEvent[] = [];
  const r = await backup(repo, { paths: [join(dir, 'repo'), src], ownFolders: own, onEvent: (e) => e.type !== 'progress' && events.push(e) });
  assert.deepEqual(r.snapshot.paths, [join(dir, 'repo'), src]);
  const saved = await pathsIn(repo, r.snapshot.root);
  assert.deepEqual(saved.sort(), ['/src', '/src/a']);
  assert.deepEqual(events, [{ type: 'excluded', path: join(dir, 'repo'), reason: "it is this backup's own repository" }]);
});

test('files that vanish inside a folder whose name is not UTF-8 are reported one by one, not as the folder gone', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  const odd = Buffer.concat([Buffer.from(src + '/'), Buffer.from([0x6e, 0xff, 0x2d, 0x64])]);
  const at = (n: string) => Buffer.concat([odd, Buffer.from('/' + n)]);
  fs.mkdirSync(odd, { recursive: true });
  for (const n of ['a', 'b', 'c', 'd']) fs.writeFileSync(at(n), n);
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  const vanishing: FileAccess = {
    ...nodeFileAccess,
    open: async (p, f) => {
      if (p.equals(at('b')) || p.equals(at('d'))) fs.unlinkSync(p); // removed between lstat and open
      return nodeFileAccess.open(p, f);
    },
  };
  const warnings: BackupEvent[] = [];
  const r = await backup(repo, { paths: [src], fs: vanishing, onEvent: (e) => e.type === 'warning' && warnings.push(e) });
  const shown = odd.toString('utf8');
  assert.deepEqual(warnings.map((w) => w.type === 'warning' && w.path).sort(), [`${shown}/b`, `${shown}/d`]);
  assert.equal(r.summary.vanished, 2);
});

/** The paths the process `pid` has open (its own and its worker threads'). */
function openPaths(pid: number): string[] {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).map((fd) => {
      try {
        return fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        return '';
      }
    });
  } catch {
    return [];
  }
}

test('CLI: a folder another process deletes while the backup reads it gives one warning line and one summary line', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  const gone = join(src, 'victim');
  // 40 files of 1 MiB first: they fill the walker's window of entries in flight in this folder,
  // read two at a time, so the small files after them (read by the worker threads) are still to
  // come while these are read.
  fs.mkdirSync(join(gone, 'a-sub'), { recursive: true });
  for (let i = 0; i < 40; i++) fs.writeFileSync(join(gone, `big${String(i).padStart(2, '0')}`), randomBytes(1 << 20));
  for (let i = 0; i < 2000; i++) fs.writeFileSync(join(gone, `f${String(i).padStart(4, '0')}`), `file ${i}`);
  for (let i = 0; i < 20; i++) fs.writeFileSync(join(gone, 'a-sub', `g${i}`), `g${i}`);
  fs.writeFileSync(join(src, 'other'), 'other');
  const env = { LIFEBOAT_REPO: join(dir, 'repo'), LIFEBOAT_PASSWORD: 'pw', XDG_CACHE_HOME: join(dir, 'cache') };
  assert.equal((await lifeboat(['init'], env)).code, 0);

  const child = spawn(process.execPath, [BIN, 'backup', src], { env: { ...process.env, LIFEBOAT_INSECURE_FAST_KDF: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((res) => child.on('close', res));
  let running = true;
  void exited.then(() => (running = false));
  // Caught reading one of the folder's files, the backup is stopped while the folder goes.
  let deleted = false;
  while (running && !deleted) {
    if (openPaths(child.pid!).some((p) => p.startsWith(gone + '/big'))) {
      child.kill('SIGSTOP');
      fs.rmSync(gone, { recursive: true });
      child.kill('SIGCONT');
      deleted = true;
    } else await sleep(1);
  }
  const code = await exited;
  assert.ok(deleted, 'the backup was caught reading the folder');
  assert.equal(code, 3, stderr);
  assert.deepEqual(stderr.split('\n').filter((l) => l.startsWith('warning:')), [`warning: ${gone} was deleted or moved during the backup; what was read of it before that is saved.`]);
  assert.match(stdout, /^1 file\(s\) or folder\(s\) were deleted or moved while the backup ran/m);
  assert.doesNotMatch(stdout, /could not be read/);
});

test('the walker keeps a compact copy of each lstat result: the same fields and file type as lstat gives, and no Date objects', async (t) => {
  const dir = tmp(t);
  fs.writeFileSync(join(dir, 'file'), 'x'.repeat(1234));
  fs.mkdirSync(join(dir, 'dir'));
  fs.symlinkSync('file', join(dir, 'link'));
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  const fields = ['mode', 'dev', 'ino', 'nlink', 'uid', 'gid', 'rdev', 'size', 'atimeNs', 'mtimeNs', 'ctimeNs'] as const;
  const kinds = ['isFile', 'isDirectory', 'isSymbolicLink', 'isFIFO', 'isCharacterDevice', 'isBlockDevice', 'isSocket'] as const;
  for (const name of ['file', 'dir', 'link', 'fifo', '/dev/null']) {
    const p = name.startsWith('/') ? name : join(dir, name);
    const full = fs.lstatSync(p, { bigint: true });
    const st = await nodeFileAccess.lstat(Buffer.from(p));
    assert.ok(st instanceof CompactStat, name);
    for (const f of fields) assert.equal(st[f], full[f], `${name}: ${f}`);
    for (const k of kinds) assert.equal(st[k](), full[k](), `${name}: ${k}`);
    assert.ok(!Object.values(st).some((v) => v instanceof Date), `${name}: no Date kept`);
  }
});

test('a long backup has V8 collect its main thread\'s old garbage every so many files read, in V8\'s own full collections (never forced ones)', async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  for (let d = 0; d < 40; d++) {
    fs.mkdirSync(join(src, `d${d}`), { recursive: true });
    for (let i = 0; i < 10; i++) fs.writeFileSync(join(src, `d${d}`, `f${i}`), `file ${d}/${i} `.repeat(1 + i));
  }
  const repo = await newRepo(dir);
  t.after(() => repo.close());
  const full = watchFullCollections(t, 40);
  const r = await backup(repo, { paths: [src] });
  await full.settled();
  assert.equal(r.summary.filesNew, 400);
  // 400 files, one collection started per 40: V8 runs them as it runs its own (some may merge).
  assert.ok(full.flags.length >= 4, `${full.flags.length} full collections during the backup`);
  assert.equal(full.flags.filter((f) => f & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED).length, 0, 'none forced');
});
