import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BlobType } from '../repo/repository.js';
import { BufferPool } from '../util/memory.js';
import { SmallFileSaver } from './small-files.js';
import { newRepo, tmp } from './testing.js';

test('small files sealed into a shared ring too small for all of them: every blob stored intact, the ring given back', async (t) => {
  const dir = tmp(t);
  const repo = await newRepo(dir);
  await repo.ensureIndexLoaded();
  // 64 KiB of ring for files of up to 40 KiB, all in flight at once: some find it full (and get
  // buffers of their own), the rest wrap around it.
  const saver = new SmallFileSaver(repo, 1, 64 * 1024);
  t.after(() => saver.close());
  const files = Array.from({ length: 60 }, (_, i) => {
    const path = join(dir, `f${i}`);
    const body = randomBytes(1 + ((i * 7919) % (40 * 1024))); // incompressible: envelopes as large as the files
    writeFileSync(path, body);
    return { path, body };
  });
  let inRing = 0;
  const saved = await Promise.all(
    files.map(async ({ path, body }) => {
      const st = statSync(path, { bigint: true });
      const r = await saver.save({ path: Buffer.from(path).toString('latin1'), ino: st.ino.toString(), size: st.size.toString(), mtimeNs: st.mtimeNs.toString(), type: BlobType.data, limit: 512 * 1024 });
      assert.equal(r.status, 'ok');
      if (r.status !== 'ok') return undefined;
      assert.equal(r.bytesRead, body.length);
      if (r.slot) inRing++;
      try {
        return await repo.saveSealedBlob(BlobType.data, r.id!, r.env!, r.rawLength!);
      } finally {
        saver.done(r);
      }
    }),
  );
  assert.ok(inRing > 0 && inRing < files.length, `some in the ring, some not (${inRing} of ${files.length})`);
  await repo.flush();
  for (const [i, s] of saved.entries()) assert.deepEqual(Buffer.from(await repo.loadBlob(s!.id)), files[i]!.body, `file ${i}`);
  // Every slot was freed: the ring takes a reservation of its whole size again.
  const again = await saver.save({ path: Buffer.from(files[0]!.path).toString('latin1'), ino: statSync(files[0]!.path, { bigint: true }).ino.toString(), size: String(files[0]!.body.length), mtimeNs: statSync(files[0]!.path, { bigint: true }).mtimeNs.toString(), type: BlobType.data, limit: 512 * 1024 });
  assert.ok(again.status === 'ok' && again.slot, 'the next file goes into the ring');
  saver.done(again);
});

test('chunks and envelopes in shared pool buffers are lent to the worker and come back as they went', async (t) => {
  const dir = tmp(t);
  const repo = await newRepo(dir);
  await repo.ensureIndexLoaded();
  const saver = new SmallFileSaver(repo, 1);
  t.after(() => saver.close());
  const chunks = new BufferPool(1024 * 1024, 2, true);
  const envelopes = new BufferPool(1024 * 1024 + 64, 2, true);
  const data = chunks.take(300 * 1024);
  data.fill(7);
  const into = envelopes.take(envelopes.capacity);
  const id = repo.blobId(data);
  const sealed = await saver.seal(BlobType.data, id, data, true, into);
  assert.equal(sealed.data, data, 'the same view back: nothing was moved');
  assert.equal(data.length, 300 * 1024);
  assert.equal(sealed.env.buffer, into.buffer, 'the envelope is in the lent buffer');
  assert.ok(sealed.env.length < 2048, 'compressed');
  await repo.saveSealedBlob(BlobType.data, id, sealed.env, data.length);
  await repo.flush();
  assert.deepEqual(Buffer.from(await repo.loadBlob(id)), Buffer.alloc(300 * 1024, 7));
  assert.ok(chunks.owns(sealed.data) && envelopes.owns(sealed.env));
});
