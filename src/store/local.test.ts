import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { listAll, rejectsWithCode, storeConformanceSuite } from './conformance.js';
import { LocalStore, isTransientErrno } from './local.js';
import { nativeAddon } from '../util/native.js';
import { FakeClock } from '../util/clock.js';
import { LimitStore } from './limit.js';
import { MemoryStore } from './memory.js';
import { RetryStore } from './retry.js';
import { removeLeftovers } from './store.js';

const TMPFS_MAGIC = 0x01021994;

async function tempRoot(): Promise<string> {
  return fs.mkdtemp(join(tmpdir(), 'lifeboat-local-'));
}

storeConformanceSuite('local folder', async () => {
  const dir = await tempRoot();
  return { store: new LocalStore(join(dir, 'repo')), cleanup: () => fs.rm(dir, { recursive: true, force: true }) };
});

test('LocalStore: objects are private files at their relative paths; temporaries are never listed and stale ones are cleaned', async () => {
  const dir = await tempRoot();
  try {
    const s = new LocalStore(dir);
    await s.put('data/ab/ab01', new Uint8Array([1, 2, 3]));
    const st = await fs.stat(join(dir, 'data', 'ab', 'ab01'));
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal((await fs.readdir(join(dir, '.tmp'))).length, 0, 'no temporary left after a put');
    // What a killed writer leaves behind, one old and one recent, plus stray files that are not objects.
    await fs.writeFile(join(dir, '.tmp', 'old'), 'partial');
    await fs.writeFile(join(dir, '.tmp', 'new'), 'partial');
    const twoDaysAgo = new Date(Date.now() - 2 * 24 * 3600 * 1000);
    await fs.utimes(join(dir, '.tmp', 'old'), twoDaysAgo, twoDaysAgo);
    await fs.writeFile(join(dir, 'data', 'desktop.ini '), 'x');
    await fs.symlink(join(dir, 'data', 'ab', 'ab01'), join(dir, 'data', 'link'));
    assert.deepEqual(await listAll(s, ''), [{ name: 'data/ab/ab01', size: 3 }]);
    assert.equal(await LocalStore.cleanTemporaries(dir), 1);
    assert.deepEqual((await fs.readdir(join(dir, '.tmp'))).sort(), ['new']);
    assert.equal(await s.cleanTemporaries(0), 1);
    assert.equal(await LocalStore.cleanTemporaries(join(dir, 'missing')), 0);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test("LocalStore.getInto: the whole object or a range, into the caller's memory; a range past the end is refused as get refuses it", async () => {
  const root = await fs.mkdtemp(join(tmpdir(), 'lifeboat-local-'));
  try {
    const s = new LocalStore(root);
    const d = randomBytes(3 * 1024 * 1024 + 5);
    await s.put('data/ab/ab01', d);
    const mine = new Uint8Array(4 * 1024 * 1024);
    const take = (n: number): Uint8Array => mine.subarray(0, n);
    const whole = await s.getInto('data/ab/ab01', take);
    assert.equal(whole.buffer, mine.buffer);
    assert.ok(Buffer.from(whole).equals(d));
    const range = await s.getInto('data/ab/ab01', take, undefined, { offset: 1000, length: 2 * 1024 * 1024 });
    assert.equal(range.buffer, mine.buffer);
    assert.ok(Buffer.from(range).equals(d.subarray(1000, 1000 + 2 * 1024 * 1024)));
    assert.ok(Buffer.from(await s.getInto('data/ab/ab01', take, undefined, { offset: d.length - 7 })).equals(d.subarray(d.length - 7)));
    await rejectsWithCode(s.getInto('data/ab/ab01', take, undefined, { offset: d.length - 10, length: 11 }), 'corrupt');
    await s.close();
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
});

test('LocalStore: names inside the temporary folder are refused', async () => {
  const dir = await tempRoot();
  try {
    const s = new LocalStore(dir);
    await assert.rejects(s.put('.tmp/x', new Uint8Array(1)), /invalid store object name/);
    await assert.rejects(s.get('.tmp/x'), /invalid store object name/);
    await assert.rejects(s.delete('.tmp'), /invalid store object name/);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test("LocalStore: a put that cannot be renamed into place fails with 'io' and leaves no temporary", async () => {
  const dir = await tempRoot();
  try {
    const s = new LocalStore(dir);
    await s.put('blocker', new Uint8Array(5));
    await s.put('folder/inside', new Uint8Array(5));
    await rejectsWithCode(s.put('blocker/x', new Uint8Array(100)), 'io'); // an object where a folder must go
    await rejectsWithCode(s.put('folder', new Uint8Array(100)), 'io'); // a folder where the object must go
    await rejectsWithCode(s.put('folder', new Uint8Array(100), { ifAbsent: true }), 'conflict');
    assert.deepEqual(await fs.readdir(join(dir, '.tmp')), []);
    assert.deepEqual((await listAll(s, '')).map((o) => o.name), ['blocker', 'folder/inside']);
    await rejectsWithCode(s.get('folder'), 'not-found');
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('LocalStore: a relative root works and is created on the first put', async () => {
  const dir = await tempRoot();
  try {
    const s = new LocalStore(relative(process.cwd(), join(dir, 'new', 'repo')));
    await s.put('data/00/x', new Uint8Array([9]));
    assert.deepEqual(await fs.readFile(join(dir, 'new', 'repo', 'data', '00', 'x')), Buffer.from([9]));
    assert.deepEqual(await listAll(s, 'data/'), [{ name: 'data/00/x', size: 1 }]);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('LocalStore: a committed file leaves the page cache once it is on disk, and a pack read blob by blob is read ahead (fincore checks)', async (t) => {
  const dir = await tempRoot();
  try {
    if (!nativeAddon()) return t.skip('the native addon is not built');
    if ((await fs.statfs(dir)).type === TMPFS_MAGIC) return t.skip('the temporary folder is in memory (tmpfs), where files are the cache');
    const s = new LocalStore(dir);
    const data = randomBytes(4 * 1024 * 1024);
    const w = s.createWriter();
    await w.write(data);
    await w.commit('data/cd/cd01');
    // The control: the same bytes written and fsynced without the advice stay cached.
    const control = join(dir, 'control');
    const h = await fs.open(control, 'w');
    await h.write(data);
    await h.sync();
    await h.close();
    const resident = (path: string): number => Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', path], { encoding: 'utf8' }).trim());
    assert.equal(resident(control), data.length, 'a freshly written file is cached');
    assert.equal(resident(join(dir, 'data', 'cd', 'cd01')), 0, 'the committed object is not');
    // Reading one small blob of a pack that is not cached asks for the rest of the pack to be
    // read ahead (kernel readahead alone brings in about 128 KiB): a fresh store opens it anew.
    const reader = new LocalStore(dir);
    assert.ok(data.subarray(0, 4096).equals(await reader.get('data/cd/cd01', 0, 4096)));
    let cached = 0;
    for (let i = 0; i < 50 && cached < data.length; i++, await new Promise((r) => setTimeout(r, 20))) cached = resident(join(dir, 'data', 'cd', 'cd01'));
    assert.equal(cached, data.length, 'the whole pack is read ahead after one small read');
    await reader.close();
    assert.ok(data.equals(await s.get('data/cd/cd01')), 'and reads back whole');
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('LocalStore: a busy call or a dropped network share is a transient failure; a full, read-only or refused drive is not', () => {
  for (const code of ['EAGAIN', 'EBUSY', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTDOWN']) assert.equal(isTransientErrno(code), true, code);
  for (const code of ['ENOSPC', 'EROFS', 'EACCES', 'EIO', 'ENOENT', undefined]) assert.equal(isTransientErrno(code), false, String(code));
});

test('LocalStore.cleanTemporaries: a temporary is removed once a day old on the clock given', async () => {
  const dir = await tempRoot();
  try {
    await fs.mkdir(join(dir, '.tmp'));
    await fs.writeFile(join(dir, '.tmp', 'left'), 'partial');
    const clock = new FakeClock(Date.now() + 23 * 3600 * 1000);
    assert.equal(await LocalStore.cleanTemporaries(dir, undefined, clock), 0);
    clock.advance(2 * 3600 * 1000);
    assert.equal(await LocalStore.cleanTemporaries(dir, undefined, clock), 1);
    assert.deepEqual(await fs.readdir(join(dir, '.tmp')), []);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('removeLeftovers (prune, under the exclusive lock) finds the folder store under its wrappers and removes temporaries an hour old, not newer ones', async () => {
  const dir = await tempRoot();
  try {
    await fs.mkdir(join(dir, '.tmp'));
    await fs.writeFile(join(dir, '.tmp', 'killed-writer'), 'partial pack');
    await fs.writeFile(join(dir, '.tmp', 'lock-being-written'), 'lock');
    const twoHoursAgo = new Date(Date.now() - 2 * 3600 * 1000);
    await fs.utimes(join(dir, '.tmp', 'killed-writer'), twoHoursAgo, twoHoursAgo);
    const wrapped = new RetryStore(new LimitStore(new LocalStore(dir), 4));
    assert.equal(await removeLeftovers(wrapped), 1);
    assert.deepEqual(await fs.readdir(join(dir, '.tmp')), ['lock-being-written']);
    assert.equal(await removeLeftovers(new MemoryStore()), 0, 'a store without leftovers');
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
