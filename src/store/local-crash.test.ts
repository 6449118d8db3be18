/**
 * LocalStore under real failures: a writer process killed with SIGKILL mid-put, and a drive that is
 * really full (a 1 MiB tmpfs; needs root, skipped otherwise).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { isLifeboatError } from '../util/errors.js';
import { listAll, rejectsWithCode } from './conformance.js';
import { LocalStore } from './local.js';

const OBJECT_SIZE = 4 * 1024 * 1024;

/** Object i of the writer: its number in the first 4 bytes, then the byte i & 0xff. */
function expectedObject(i: number): Buffer {
  const b = Buffer.alloc(OBJECT_SIZE, i & 0xff);
  b.writeUInt32LE(i, 0);
  return b;
}

const WRITER = `
import { LocalStore } from ${JSON.stringify(new URL('./local.js', import.meta.url).href)};
const [root, prefix] = process.argv.slice(2);
const s = new LocalStore(root);
// Bounded, so a writer the test fails to kill cannot fill the drive.
for (let i = 0; i < 100; i++) {
  const b = Buffer.alloc(${OBJECT_SIZE}, i & 0xff);
  b.writeUInt32LE(i, 0);
  await s.put(prefix + String(i).padStart(6, '0'), b, { ifAbsent: i % 2 === 1 });
  process.stdout.write(i + '\\n');
}
`;

test('LocalStore: a writer killed at a random moment never leaves a partial object, and its temporary is not listed', async (t) => {
  const dir = await fs.mkdtemp(join(tmpdir(), 'lifeboat-kill-'));
  try {
    const script = join(dir, 'writer.mjs');
    await fs.writeFile(script, WRITER);
    const root = join(dir, 'repo');
    for (let round = 0; round < 6; round++) {
      const prefix = `data/r${round}/`;
      const child = spawn(process.execPath, [script, root, prefix], { stdio: ['ignore', 'pipe', 'inherit'] });
      const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
      let out = '';
      let firstAck!: () => void;
      const started = new Promise<void>((resolve) => (firstAck = resolve));
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('\n')) firstAck();
      });
      // Until the kill, a reader watches: no listed object may ever be incomplete, even for a moment.
      const watcher = new LocalStore(root);
      let looks = 0;
      try {
        await Promise.race([started, exited]);
        const killAt = Date.now() + randomInt(0, 150);
        do {
          for (const o of await listAll(watcher, prefix)) assert.equal(o.size, OBJECT_SIZE, `${o.name} is listed only once complete`);
          looks++;
          await sleep(1);
        } while (Date.now() < killAt);
      } finally {
        child.kill('SIGKILL');
        await exited;
      }
      assert.equal(child.signalCode, 'SIGKILL', 'the writer was still writing when it was killed');
      assert.ok(looks > 0);
      const acked = out.split('\n').filter((l) => l !== '').map(Number);
      assert.ok(acked.length > 0, 'the writer stored at least one object before it was killed');

      const listed = await listAll(new LocalStore(root), prefix);
      const s = new LocalStore(root);
      for (const o of listed) {
        assert.equal(o.size, OBJECT_SIZE, `${o.name} is complete`);
        const i = Number(o.name.slice(prefix.length));
        assert.ok(Buffer.from(await s.get(o.name)).equals(expectedObject(i)), `${o.name} has the right bytes`);
      }
      // Every acknowledged put is there; at most the one in flight landed beyond them.
      const names = new Set(listed.map((o) => Number(o.name.slice(prefix.length))));
      for (const i of acked) assert.ok(names.has(i), `acknowledged object ${i} is stored`);
      assert.ok(listed.length <= acked.length + 1);
      assert.ok((await listAll(s, '')).every((o) => !o.name.startsWith('.tmp')));
    }
    const leftovers = (await fs.readdir(join(root, '.tmp'))).length;
    t.diagnostic(`temporaries left by killed writers: ${leftovers}`);
    assert.equal(await LocalStore.cleanTemporaries(root, 0), leftovers);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test("LocalStore: a full drive gives 'no-space' with the size and what to do, and keeps nothing", async (t) => {
  const dir = await fs.mkdtemp(join(tmpdir(), 'lifeboat-full-'));
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { encoding: 'utf8' });
  if (mounted.status !== 0) {
    await fs.rm(dir, { recursive: true, force: true });
    t.skip(`cannot mount a small tmpfs here (needs root): ${mounted.stderr.trim()}`);
    return;
  }
  try {
    const s = new LocalStore(join(dir, 'repo'));
    await s.put('config', new Uint8Array(100));
    const big = new Uint8Array(OBJECT_SIZE);
    for (const options of [{}, { ifAbsent: true }]) {
      await rejectsWithCode(s.put('data/00/big', big, options), 'no-space');
    }
    await assert.rejects(s.put('data/00/big', big), (e: unknown) => {
      assert.ok(isLifeboatError(e));
      assert.match(e.message, /4\.19 MB/);
      assert.match(e.message, /Free some space/);
      assert.match(e.message, /choose another/);
      return true;
    });
    assert.deepEqual(await fs.readdir(join(dir, 'repo', '.tmp')), [], 'the temporary was removed');
    assert.equal(await s.stat('data/00/big'), undefined);
    assert.deepEqual((await listAll(s, '')).map((o) => o.name), ['config']);
    // The space was given back: a small object still fits.
    await s.put('data/00/small', new Uint8Array(1000));
    assert.equal((await s.stat('data/00/small'))?.size, 1000);
  } finally {
    spawnSync('umount', [dir]);
    await fs.rm(dir, { recursive: true, force: true });
  }
});
