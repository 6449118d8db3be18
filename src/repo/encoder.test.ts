import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createZstdCodec } from './compress.js';
import { open } from './crypto.js';
import { CODEC_RAW, CODEC_ZSTD, decodePayload } from './envelope-file.js';
import { sealBlobSync } from './encoder.js';
import { blobAad, openBlob } from './pack.js';

const codecByte = (key: Buffer, env: Buffer, id: Buffer): number => open(key, env, blobAad(0, id), 'test')[0]!;

test('a large blob whose samples do not compress is stored raw (no zstd pass); one that compresses anywhere a sample looks is compressed; both open to the same bytes', async () => {
  // The codec, counting the bytes it is given to compress.
  const zstd = createZstdCodec();
  let fed = 0;
  const codec = {
    ...zstd,
    compressTransient: (d: Uint8Array) => {
      fed += d.length;
      return zstd.compressTransient(d);
    },
  };
  const key = randomBytes(32);
  const id = randomBytes(32);
  const random = randomBytes(1024 * 1024);
  const text = Buffer.from('the quick brown fox jumps over the lazy dog, '.repeat(30000)).subarray(0, 1024 * 1024);
  // Random except for a compressible quarter in the middle: the middle sample sees it.
  const mixed = Buffer.concat([randomBytes(384 * 1024), text.subarray(0, 256 * 1024), randomBytes(384 * 1024)]);
  for (const [name, data, expected, zstdBytes] of [
    ['random', random, CODEC_RAW, 5 * 4096],
    ['text', text, CODEC_ZSTD, 4096 + text.length],
    ['mixed', mixed, CODEC_ZSTD, 3 * 4096 + mixed.length],
    ['small random (not probed; zstd finds nothing to save)', randomBytes(100 * 1024), CODEC_RAW, 100 * 1024],
  ] as const) {
    fed = 0;
    const env = sealBlobSync(codec, key, 0, id, data);
    assert.equal(fed, zstdBytes, `${name}: bytes given to zstd`);
    assert.equal(codecByte(key, env, id), expected, name);
    assert.deepEqual(await decodePayload(codec, openBlob(key, 0, id, env, name), name, data.length, true), data, name);
  }
  assert.ok(sealBlobSync(codec, key, 0, id, text).length < text.length / 10, 'text is compressed whole');
});
