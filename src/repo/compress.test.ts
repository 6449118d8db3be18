import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createPortableZstdCodec, createZstdCodec, nativeZstd } from './compress.js';

const inputs = (): Buffer[] => [
  Buffer.alloc(0),
  Buffer.from('x'),
  Buffer.from('hello world '.repeat(300)),
  randomBytes(70_000),
  Buffer.concat([randomBytes(300_000), Buffer.alloc(800_000, 7)]),
];

test('the native zstd codec is in use here, and its frames and the npm binding\'s decode either way, exactly', () => {
  assert.ok(nativeZstd(), 'libzstd through the native addon (npm ci builds it; libzstd1 is part of Debian)');
  const fast = createZstdCodec();
  const portable = createPortableZstdCodec();
  for (const [i, input] of inputs().entries()) {
    if (i === 2 || i === 4) assert.ok(fast.compressSync(input).length < input.length / 2, 'compressible input shrinks');
    const a = fast.compressSync(input);
    const b = portable.compressSync(input);
    assert.deepEqual(Buffer.from(portable.decompressSync(a)), input, `npm binding decodes native frame of ${input.length}`);
    assert.deepEqual(Buffer.from(fast.decompressSync(a, input.length)), input);
    assert.deepEqual(Buffer.from(fast.decompressSync(b, input.length)), input, `native decodes npm frame of ${input.length} (no size in its header)`);
    assert.deepEqual(Buffer.from(fast.decompressSync(b)), input);
    for (const codec of [fast, portable]) {
      const t = Buffer.from(codec.compressTransient(input));
      assert.deepEqual(Buffer.from(fast.decompressSync(t, input.length)), input, `transient frame of ${input.length}`);
    }
  }
  // A transient frame is overwritten by the next call: the codec reuses its buffer (no garbage per call).
  const first = fast.compressTransient(Buffer.from('hello world '.repeat(300)));
  const copy = Buffer.from(first);
  fast.compressTransient(Buffer.from('other text, other frame '.repeat(300)));
  assert.notDeepEqual(Buffer.from(first), copy);
});

test('native zstd frames are standard: the zstd tool decodes them', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lifeboat-zstd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const input = Buffer.from('a line of text for the zstd command line tool\n'.repeat(5000));
  writeFileSync(join(dir, 'x.zst'), createZstdCodec().compressSync(input));
  execFileSync('zstd', ['-q', '-d', join(dir, 'x.zst'), '-o', join(dir, 'x')]);
  assert.deepEqual(readFileSync(join(dir, 'x')), input);
});

test('native zstd refuses damaged frames and wrong lengths instead of returning wrong bytes', () => {
  const codec = createZstdCodec();
  const input = Buffer.from('some text that compresses well. '.repeat(2000));
  const frame = Buffer.from(codec.compressSync(input));
  assert.throws(() => codec.decompressSync(frame, input.length + 1));
  assert.throws(() => codec.decompressSync(frame, input.length - 1));
  assert.throws(() => codec.decompressSync(frame.subarray(0, frame.length - 4), input.length));
  const bad = Buffer.from(frame);
  bad[Math.floor(bad.length / 2)]! ^= 0xff;
  let decoded: Uint8Array | undefined;
  try {
    decoded = codec.decompressSync(bad, input.length);
  } catch {
    decoded = undefined;
  }
  // zstd frames from the one-shot API carry no checksum; a flipped byte either fails or changes
  // the output, which the blob's id check then catches. It never decodes silently to the input.
  if (decoded) assert.notDeepEqual(Buffer.from(decoded), input);
  const portablePlain = createPortableZstdCodec().compressSync(input);
  assert.throws(() => codec.decompressSync(Buffer.from(portablePlain).subarray(0, 10), input.length));
});

test('decompressInto decodes a frame into a given buffer of exactly its size, and refuses a wrong size or a frame that is not one', (t) => {
  const codec = createZstdCodec();
  if (!codec.decompressInto) return t.skip('the native addon with zstdDecompressInto is not built here');
  const data = Buffer.concat([randomBytes(5000), Buffer.alloc(300_000, 7), Buffer.from('tail')]);
  const frame = codec.compressSync(data);
  const out = Buffer.alloc(data.length + 100, 0xee);
  codec.decompressInto(frame, out.subarray(0, data.length));
  assert.ok(out.subarray(0, data.length).equals(data));
  assert.ok(out.subarray(data.length).every((b) => b === 0xee), 'nothing written past the size');
  assert.throws(() => codec.decompressInto!(frame, Buffer.alloc(data.length - 1)));
  assert.throws(() => codec.decompressInto!(frame, Buffer.alloc(data.length + 1)));
  // (A byte flipped inside the data may decode to other bytes: the blob's id check catches that.)
  const damaged = Buffer.from(frame);
  damaged[0]! ^= 0xff; // the frame's magic number
  assert.throws(() => codec.decompressInto!(damaged, Buffer.alloc(data.length)));
});
