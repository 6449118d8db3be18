import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, scryptSync } from 'node:crypto';
import { deriveKek, open, scryptInLanes, seal } from './crypto.js';
import { nativeAddon } from '../util/native.js';

test('a sealed envelope owns exactly its own memory (never a slice of a shared pool), and opens again', () => {
  // Packs keep envelopes and workers transfer them: a pooled slice pinned (or moved) a whole 8 KiB
  // slab per small blob, which took a 100,000-file backup to over a gigabyte.
  const key = randomBytes(32);
  const aad = Buffer.from('test');
  for (const size of [0, 1, 100, 3000, 5000, 100_000]) {
    const plain = randomBytes(size);
    const env = seal(key, [plain.subarray(0, size >> 1), plain.subarray(size >> 1)], aad);
    assert.equal(env.byteOffset, 0, `size ${size}`);
    assert.equal(env.buffer.byteLength, env.length, `size ${size}: the envelope is its whole buffer`);
    assert.deepEqual(open(key, env, aad, 'test'), plain);
  }
});

test('nonces from the pool are never repeated, across refills, and are not all zero', () => {
  const key = randomBytes(32);
  const aad = Buffer.from('test');
  const seen = new Set<string>();
  for (let i = 0; i < 3000; i++) {
    const nonce = seal(key, Buffer.alloc(1), aad).subarray(0, 12).toString('hex');
    assert.notEqual(nonce, '0'.repeat(24));
    assert.ok(!seen.has(nonce), `nonce ${i} repeats an earlier one`);
    seen.add(nonce);
  }
});

test('a blob larger than the piece seal encrypts at a time opens to the same bytes (parts split across pieces)', () => {
  const key = randomBytes(32);
  const aad = Buffer.from('blob');
  const plain = randomBytes(3 * 65536 + 12345);
  const env = seal(key, [plain.subarray(0, 1), plain.subarray(1, 65537 + 7), plain.subarray(65537 + 7)], aad);
  assert.equal(env.length, plain.length + 28);
  assert.deepEqual(open(key, env, aad, 'test blob'), plain);
  // The same bytes in one part give a ciphertext that opens the same way (a stream cipher: piece size changes nothing on disk).
  assert.deepEqual(open(key, seal(key, plain, aad), aad, 'test blob'), plain);
});

test('scrypt with its lanes spread over the cores gives the key crypto.scrypt gives', async (t) => {
  const mix = nativeAddon<{ scryptLanes?: (b: Uint8Array, N: number, r: number) => Promise<Uint8Array> }>()?.scryptLanes;
  const cases: [string, number, number, number][] = [['correct horse', 2 ** 15, 8, 4], ['pässwörd', 1024, 8, 1], ['x', 16, 1, 3], ['', 1024, 4, 5], ['k', 2 ** 12, 2, 2]];
  for (const [password, N, r, p] of cases) {
    const salt = randomBytes(16);
    const want = scryptSync(password.normalize('NFC'), salt, 32, { N, r, p, maxmem: 256 * N * r + 16 * 1024 * 1024 });
    assert.deepEqual(await deriveKek(password, salt, { N, r, p }), want, `deriveKek N=${N} r=${r} p=${p}`);
    for (const shares of [1, 2, 3]) {
      if (mix) assert.deepEqual(await scryptInLanes(mix, password.normalize('NFC'), salt, { N, r, p }, shares), want, `${shares} share(s) N=${N} r=${r} p=${p}`);
    }
  }
  if (!mix) t.diagnostic('the native addon is not built here: only the crypto.scrypt path was checked');
});
