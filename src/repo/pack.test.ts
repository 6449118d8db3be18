import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { openBlob, PackBuffers, PackWriter, parsePack, PACK_TARGET_BYTES, BlobType } from './pack.js';
import { toHex } from './ids.js';

test('packs written one after another through reused buffers are each exactly their own blobs, including one that outgrows the buffer', () => {
  const key = randomBytes(32);
  const pool = new PackBuffers(1);
  const blobs = (sizes: number[]) => sizes.map((n) => ({ id: randomBytes(32), body: randomBytes(n) }));
  // The second pack is smaller than the first (stale bytes would show past its end); the third
  // holds a blob larger than a pool buffer, so its buffer grows.
  const sets = [blobs([700_000, 3_000, 1_200_000]), blobs([10, 2_000]), blobs([5_000, PACK_TARGET_BYTES + 2 * 1024 * 1024])];
  for (const [i, set] of sets.entries()) {
    const w = new PackWriter(key, pool);
    for (const b of set) w.add(BlobType.data, b.id, [Uint8Array.of(0), b.body], b.body.length);
    const { id, bytes } = w.finish();
    const copy = Buffer.from(bytes);
    assert.equal(id, createHash('sha256').update(copy).digest('hex'), `pack ${i}: named by the SHA-256 of its bytes`);
    const entries = parsePack(key, copy, `p${i}`);
    assert.deepEqual(entries.map((e) => toHex(e.id)), set.map((b) => toHex(b.id)));
    for (const [k, e] of entries.entries()) {
      const payload = openBlob(key, e.type, e.id, copy.subarray(e.offset, e.offset + e.length), `p${i}`);
      assert.deepEqual(payload.subarray(1), set[k]!.body);
    }
    w.release();
  }
});
