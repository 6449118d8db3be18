import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { createZstdCodec } from './compress.js';
import { chunkId, newMasterKeys, seal } from './crypto.js';
import { encodePayload } from './envelope-file.js';
import { element, multiply, TimesH, toBytes, xorInto } from './ghash.js';
import { blobAad, BlobType, PACK_TRAILER_BYTES, PackWriter, parsePack, type PackEntry } from './pack.js';
import { salvagePack } from './pack-scan.js';
import { encodeDelta } from './delta.js';
import { collectingWriter } from '../store/store.js';
import { toHex } from './ids.js';
import { prng } from '../util/testing.js';

test('GHASH in JavaScript gives the tag node:crypto gives', () => {
  for (const [aadLen, ctLen] of [[49, 0], [49, 1], [23, 100], [49, 4096 + 7]] as const) {
    const key = randomBytes(32);
    const nonce = randomBytes(12);
    const aad = randomBytes(aadLen);
    const c = createCipheriv('aes-256-gcm', key, nonce);
    c.setAAD(aad);
    const ct = Buffer.concat([c.update(randomBytes(ctLen)), c.final()]);
    const tag = c.getAuthTag();
    const ecb = createCipheriv('aes-256-ecb', key, null).setAutoPadding(false);
    const h = element(ecb.update(Buffer.alloc(16)));
    const times = new TimesH(h);
    const x = new Uint32Array(4);
    const absorb = (b: Buffer) => {
      for (let o = 0; o < b.length; o += 16) {
        xorInto(x, element(b, o, Math.min(16, b.length - o)));
        times.apply(x);
      }
    };
    absorb(aad);
    absorb(ct);
    xorInto(x, Uint32Array.of(0, aadLen * 8, 0, ctLen * 8));
    times.apply(x);
    xorInto(x, element(ecb.update(Buffer.concat([nonce, Buffer.from([0, 0, 0, 1])]))));
    assert.deepEqual(toBytes(x), tag, `aad ${aadLen}, ciphertext ${ctLen}`);
    const y = element(randomBytes(16));
    const byTable = Uint32Array.from(y);
    times.apply(byTable);
    assert.deepEqual(byTable, multiply(y, h));
  }
});

const keys = newMasterKeys();
const codec = createZstdCodec();

/** A pack of the given blobs (as PackWriter writes it) and its entries. */
async function makePack(bodies: { type: BlobType; body: Buffer }[]): Promise<{ bytes: Buffer; entries: PackEntry[] }> {
  let out: Buffer | undefined;
  const writer = new PackWriter(keys.encKey, collectingWriter(async (_name, data) => void (out = Buffer.from(data))));
  for (const b of bodies) writer.add(b.type, chunkId(keys, b.body), await encodePayload(codec, b.body), b.body.length);
  await writer.finish();
  return { bytes: out!, entries: parsePack(keys.encKey, out!, 'test') };
}

const random = prng(77);
function text(n: number): Buffer {
  const words = ['lifeboat', 'backup', 'sector', 'drive', 'pack', 'index', 'tree', 'restore'];
  let s = '';
  while (s.length < n) s += words[(random() * words.length) | 0] + ' ';
  return Buffer.from(s.slice(0, n));
}

const ids = (es: readonly PackEntry[]) => es.map((e) => `${e.type}:${toHex(e.id)}:${e.offset}:${e.length}:${e.rawLength}`);

test('a pack with its trailer or its header cut: every blob is found again and verified', async () => {
  const { bytes, entries } = await makePack([
    { type: BlobType.data, body: randomBytes(70_000) }, // raw
    { type: BlobType.data, body: text(50_000) }, // zstd
    { type: BlobType.data, body: randomBytes(20) }, // tiny, raw
    { type: BlobType.tree, body: Buffer.from('{"files":[]}') },
    { type: BlobType.data, body: randomBytes(3000) },
    { type: BlobType.snapshot, body: randomBytes(400) },
    { type: BlobType.data, body: randomBytes(5000) },
  ]);
  assert.ok(entries.some((e) => e.length < 70_000 && e.rawLength === 50_000), 'one blob is compressed');
  // Only the trailer lost: the sealed header is found by its magic.
  const noTrailer = await salvagePack(codec, keys, bytes.subarray(0, bytes.length - PACK_TRAILER_BYTES), 'p');
  assert.equal(noTrailer.fromHeader, true);
  assert.deepEqual(ids(noTrailer.entries), ids(entries));
  // The last 100 bytes cut (header damaged): the blobs are found by scanning.
  const cut = await salvagePack(codec, keys, bytes.subarray(0, bytes.length - 100), 'p');
  assert.equal(cut.fromHeader, false);
  assert.deepEqual(ids(cut.entries), ids(entries));
  // The header zeroed and a byte of a blob flipped: all but that blob are found; a raw blob after the damage only when a compressed one or a known entry leads to it.
  const bad = Buffer.from(bytes);
  const headerStart = entries.at(-1)!.offset + entries.at(-1)!.length;
  bad.fill(0, headerStart, bad.length);
  bad[entries[0]!.offset + 500]! ^= 1;
  const damaged = await salvagePack(codec, keys, bad, 'p');
  assert.deepEqual(ids(damaged.entries), ids(entries.slice(1)), 'the zstd blob after the damaged one leads the scan on');
});

test('scanning a 16 MiB pack of raw blobs with no header takes seconds, not minutes', async () => {
  const bodies = Array.from({ length: 16 }, (_, i) => ({ type: BlobType.data, body: randomBytes((1 << 20) - 997 * i) }));
  const envs = bodies.map((b) => seal(keys.encKey, [Buffer.of(0), b.body], blobAad(b.type, chunkId(keys, b.body))));
  const bytes = Buffer.concat(envs);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const r = await salvagePack(codec, keys, bytes, 'big');
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  console.log(`scanned ${(bytes.length / 2 ** 20).toFixed(1)} MiB in ${ms.toFixed(0)} ms (${((cpu.user + cpu.system) / 1000).toFixed(0)} ms of CPU)`);
  assert.equal(r.entries.length, 16);
  assert.ok(ms < 60_000, `${ms} ms`);
});

test('a pack holding a delta (header version 2) that lost its trailer, or its header too: the delta is found with its base', async () => {
  const base = randomBytes(32 * 1024);
  const changed = Buffer.from(base);
  randomBytes(4096).copy(changed, 4096); // a random block: the change list is stored raw, its length read from its own header
  const baseId = chunkId(keys, base);
  const deltaId = chunkId(keys, changed);
  let out: Buffer | undefined;
  const writer = new PackWriter(keys.encKey, collectingWriter(async (_name, data) => void (out = Buffer.from(data))));
  writer.add(BlobType.data, baseId, await encodePayload(codec, base), base.length);
  writer.add(BlobType.delta, deltaId, await encodePayload(codec, encodeDelta(baseId, base, changed)!), changed.length, baseId);
  writer.add(BlobType.data, chunkId(keys, changed.subarray(0, 100)), await encodePayload(codec, changed.subarray(0, 100)), 100);
  await writer.finish();
  const entries = parsePack(keys.encKey, out!, 'test');
  const loadBase = async (id: Uint8Array) => (Buffer.from(id).equals(baseId) ? base : undefined);
  const noTrailer = await salvagePack(codec, keys, out!.subarray(0, out!.length - PACK_TRAILER_BYTES), 'p', { loadBase });
  assert.equal(noTrailer.fromHeader, true);
  assert.deepEqual(ids(noTrailer.entries), ids(entries));
  const cut = await salvagePack(codec, keys, out!.subarray(0, entries.at(-1)!.offset + entries.at(-1)!.length), 'p', { loadBase });
  assert.deepEqual(ids(cut.entries), ids(entries));
  assert.deepEqual(cut.entries[1]!.base, baseId);
  const withoutBase = await salvagePack(codec, keys, out!.subarray(0, entries.at(-1)!.offset + entries.at(-1)!.length), 'p', { loadBase: async () => undefined });
  assert.equal(withoutBase.missingBases, 1, 'a delta whose base cannot be loaded is counted, for a second pass');
});

test('a damaged header still says where its blobs lie: raw blobs after a damaged one are found at those places', async () => {
  const { bytes, entries } = await makePack([70_000, 30_000, 20_000, 5000].map((n) => ({ type: BlobType.data, body: randomBytes(n) })));
  const bad = Buffer.from(bytes.subarray(0, bytes.length - PACK_TRAILER_BYTES));
  bad[entries[1]!.offset + 1000]! ^= 4; // blob 1 is lost
  const header = entries[3]!.offset + entries[3]!.length;
  bad[header + 12 + 9 + 3 * 41 + 5]! ^= 1; // the header no longer authenticates (its last entry's id is changed)
  const r = await salvagePack(codec, keys, bad, 'p');
  assert.equal(r.fromHeader, false);
  assert.deepEqual(ids(r.entries), ids([entries[0]!, entries[2]!, entries[3]!]));
});
