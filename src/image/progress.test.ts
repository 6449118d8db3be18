import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Repository } from '../repo/repository.js';
import { MemoryStore } from '../store/memory.js';
import { createImage, loadManifest, writeImage, type ImageProgress, type ImageWriter } from './imager.js';

process.env['LIFEBOAT_INSECURE_FAST_KDF'] = '1';

const MiB = 1024 * 1024;

function writer(size: number, sparse: boolean): ImageWriter {
  const bytes = Buffer.alloc(size);
  return { size, sparse, write: async (o, d) => void bytes.set(d, o), read: async (o, l) => bytes.subarray(o, o + l), sync: async () => undefined };
}

function assertComplete(events: ImageProgress[], total: number): void {
  assert.ok(events.length > 0);
  let before = 0;
  for (const e of events) {
    assert.equal(e.bytesTotal, total, 'one total, known from the start');
    assert.ok(e.bytesDone >= before && e.bytesDone <= total, 'steady, never past the total');
    before = e.bytesDone;
  }
  assert.equal(events[events.length - 1]!.bytesDone, total);
}

test('image progress: creating counts the used bytes; restoring onto a sparse target counts only the stored chunks, so zeros do not jump it', async (t) => {
  const { repo } = await Repository.init(new MemoryStore(), 'pw');
  await repo.loadIndex();
  t.after(() => repo.close());
  // 16 MiB: data in the first 3 MiB and at 12 MiB, zeros elsewhere; only the first 14 MiB used.
  const disk = Buffer.alloc(16 * MiB);
  randomBytes(3 * MiB).copy(disk, 0);
  randomBytes(MiB).copy(disk, 12 * MiB);
  const created: ImageProgress[] = [];
  const res = await createImage(
    repo,
    { size: disk.length, read: async (o, l) => disk.subarray(o, o + l) },
    [{ start: 0, end: 14 * MiB }],
    { table: { kind: 'none' }, partitions: [], source: { path: 'disk' }, unreadable: [] },
    { chunkSize: MiB, onProgress: (p) => created.push(p) },
  );
  assertComplete(created, 14 * MiB);
  const m = await loadManifest(repo, res.manifestId);

  const sparse: ImageProgress[] = [];
  await writeImage(repo, m, writer(disk.length, true), { onProgress: (p) => sparse.push(p) });
  assertComplete(sparse, 4 * MiB);
  const full: ImageProgress[] = [];
  await writeImage(repo, m, writer(disk.length, false), { onProgress: (p) => full.push(p) });
  assertComplete(full, 16 * MiB);
});
