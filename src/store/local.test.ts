import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { listAll, rejectsWithCode, storeConformanceSuite } from './conformance.js';
import { LocalStore } from './local.js';

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
