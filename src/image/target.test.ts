import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sourceOver } from './target.js';

test('a bad sector is retried, recorded and read as zeros; the rest of the read succeeds', async () => {
  const disk = Buffer.alloc(64 * 1024, 0xab);
  const bad = { start: 8192, end: 8192 + 1024 }; // two unreadable sectors
  let attempts = 0;
  const readAt = async (buf: Buffer, pos: number) => {
    if (pos < bad.end && pos + buf.length > bad.start) {
      attempts++;
      throw Object.assign(new Error('I/O error'), { code: 'EIO' });
    }
    return disk.copy(buf, 0, pos, Math.min(disk.length, pos + buf.length));
  };
  const unreadable: [number, number][] = [];
  const src = sourceOver('fake', disk.length, true, readAt, async () => undefined, (s, l) => unreadable.push([s, l]));
  const got = Buffer.from(await src.read(4096, 16384));
  assert.deepEqual(unreadable, [[8192, 512], [8704, 512]]);
  assert.ok(attempts >= 7, 'each bad sector is tried three times (plus the first big read)');
  assert.ok(got.subarray(0, 4096).every((b) => b === 0xab));
  assert.ok(got.subarray(4096, 5120).every((b) => b === 0));
  assert.ok(got.subarray(5120).every((b) => b === 0xab));
});
