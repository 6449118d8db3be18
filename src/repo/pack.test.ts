import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalStore } from '../store/local.js';
import { MemoryStore } from '../store/memory.js';
import type { ObjectWriter, Store } from '../store/store.js';
import { LifeboatError } from '../util/errors.js';
import { openBlob, PackWriter, parsePack, PACK_TARGET_BYTES, BlobType, StageBuffers } from './pack.js';
import { Names, toHex, type Hex } from './ids.js';
import { createZstdCodec } from './compress.js';
import { chunkId, newMasterKeys } from './crypto.js';
import { sealBlobSync } from './encoder.js';
import { openSealedBlob } from './pack-check.js';
import { release } from '../util/memory.js';
import { nativeAddon } from '../util/native.js';

const blobs = (sizes: number[]) => sizes.map((n) => ({ id: randomBytes(32), body: randomBytes(n) }));

async function checkStored(store: Store, key: Buffer, id: Hex, set: { id: Buffer; body: Buffer }[], what: string): Promise<void> {
  const bytes = Buffer.from(await store.get(Names.pack(id)));
  assert.equal(id, createHash('sha256').update(bytes).digest('hex'), `${what}: named by the SHA-256 of its bytes`);
  const entries = parsePack(key, bytes, what);
  assert.deepEqual(entries.map((e) => toHex(e.id)), set.map((b) => toHex(b.id)), what);
  for (const [k, e] of entries.entries()) {
    const payload = openBlob(key, e.type, e.id, bytes.subarray(e.offset, e.offset + e.length), what);
    assert.deepEqual(payload.subarray(1), set[k]!.body, `${what}: blob ${k}`);
  }
}

for (const kind of ['folder', 'memory'] as const) {
  test(`packs filled at the same time through one pool of stage buffers are each exactly their own blobs (${kind} store)`, async () => {
    const dir = kind === 'folder' ? await fs.mkdtemp(join(tmpdir(), 'lifeboat-pack-')) : undefined;
    const store: Store = dir ? new LocalStore(dir) : new MemoryStore();
    try {
      const key = randomBytes(32);
      const pool = new StageBuffers(1);
      // Two packs fill in turns, as a backup's data and tree packs do, sharing and reusing stages;
      // blobs cross stage boundaries, and one is larger than the pack target (and than a stage).
      const sets = [blobs([700_000, 3_000, 1_200_000, 10, PACK_TARGET_BYTES + 2 * 1024 * 1024]), blobs([5_000, 2_000_000, 0, 900_000])];
      const writers = sets.map(() => new PackWriter(key, store.createWriter(), pool));
      for (let i = 0; i < Math.max(...sets.map((s) => s.length)); i++) {
        for (const [w, set] of sets.entries()) {
          const b = set[i];
          if (!b) continue;
          writers[w]!.add(BlobType.data, b.id, [Uint8Array.of(0), b.body], b.body.length);
          await writers[w]!.keepUp();
        }
      }
      for (const [w, set] of sets.entries()) {
        const { id, bytes } = await writers[w]!.finish();
        assert.equal(bytes, (await store.stat(Names.pack(id)))?.size);
        await checkStored(store, key, id, set, `pack ${w}`);
      }
      if (dir) assert.deepEqual(await fs.readdir(join(dir, '.tmp')), [], 'no temporary file is left');
    } finally {
      if (dir) await fs.rm(dir, { recursive: true, force: true });
    }
  });
}

test('a failed write makes the writer refuse to go on, and abort removes the partial pack from the folder', async () => {
  const dir = await fs.mkdtemp(join(tmpdir(), 'lifeboat-pack-'));
  try {
    const store = new LocalStore(dir);
    let writes = 0;
    const inner = store.createWriter();
    const failing: ObjectWriter = {
      write: async (d) => {
        if (++writes === 3) throw new LifeboatError('no-space', 'The destination is full (test).');
        await inner.write(d);
      },
      commit: (n, o) => inner.commit(n, o),
      abort: () => inner.abort(),
    };
    const w = new PackWriter(randomBytes(32), failing);
    let error: unknown;
    for (const b of blobs([1_500_000, 1_500_000, 1_500_000, 1_500_000])) {
      w.add(BlobType.data, b.id, [Uint8Array.of(0), b.body], b.body.length);
      error = await w.keepUp().then(() => undefined, (e: unknown) => e);
      if (error) break;
    }
    error ??= await w.finish().then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof LifeboatError && error.code === 'no-space', `the write error reaches the caller: ${String(error)}`);
    assert.equal((await fs.readdir(join(dir, '.tmp'))).length, 1, 'the partial pack exists until aborted');
    await w.abort();
    assert.deepEqual(await fs.readdir(join(dir, '.tmp')), []);
    assert.deepEqual(await fs.readdir(dir), ['.tmp'], 'no pack was stored');
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('a sealed blob opens to its plaintext and the one buffer that holds it, which can be freed at once (compressed and stored raw)', async (t) => {
  if (!nativeAddon()) {
    t.skip('the native addon is not built here');
    return;
  }
  const keys = newMasterKeys();
  const codec = createZstdCodec();
  for (const [what, body] of [['compressible', Buffer.alloc(300_000, 'lifeboat ')], ['random (stored raw)', randomBytes(300_000)]] as const) {
    const id = chunkId(keys, body);
    const env = sealBlobSync(codec, keys.encKey, BlobType.data, id, body);
    const { plain, owner } = await openSealedBlob(codec, keys, BlobType.data, id, env, body.length, 'p', true);
    assert.deepEqual(Buffer.from(plain), body, what);
    assert.equal(owner.buffer, plain.buffer, `${what}: the owner holds the plaintext`);
    assert.equal(release(owner), true, `${what}: the owner is a whole buffer`);
    assert.equal(plain.length, 0, `${what}: freeing the owner frees the plaintext`);
    assert.equal(env.length > 0, true, `${what}: the envelope is the caller's and untouched`);
  }
  // A damaged blob is still refused.
  const body = randomBytes(5000);
  const id = chunkId(keys, body);
  const env = sealBlobSync(codec, keys.encKey, BlobType.data, id, body);
  env[100]! ^= 1;
  await assert.rejects(openSealedBlob(codec, keys, BlobType.data, id, env, body.length, 'p', true), (e: unknown) => e instanceof LifeboatError && e.code === 'corrupt');
});
