import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LifeboatError } from '../util/errors.js';
import { flip, sparseDisk, writeAll } from './testing.js';
import { MemoryFile, VhdWriter, encodeVhdFooter, openVhd, vhdChecksum, vhdGeometry } from './vhd.js';

test('CHS geometry follows the specification', () => {
  // 64 MiB → 131072 sectors: 17 sectors/track, 8 heads, 963 cylinders (as Hyper-V and qemu compute).
  assert.deepEqual(vhdGeometry(64 * 1024 * 1024), { cylinders: 963, heads: 8, sectorsPerTrack: 17 });
  // 1 GiB → 2097152 sectors: 63 sectors/track, 16 heads, 2080 cylinders.
  assert.deepEqual(vhdGeometry(1024 ** 3), { cylinders: 2080, heads: 16, sectorsPerTrack: 63 });
  const g = vhdGeometry(2040 * 1024 ** 3);
  assert.equal(g.sectorsPerTrack, 255);
  assert.equal(g.heads, 16);
  assert.equal(g.cylinders, 65535);
});

test('a dynamic VHD written by VhdWriter reads back byte for byte, only non-zero blocks stored', async () => {
  const size = 9 * 1024 * 1024 + 512; // the last block is partial
  const disk = sparseDisk(size, 2 * 1024 * 1024, [0, 3, 4]);
  disk.fill(7, size - 512); // data in the last, partial block
  const f = new MemoryFile();
  await writeAll(new VhdWriter(f, size), disk);
  assert.ok(f.size < 5 * (2 * 1024 * 1024 + 512) + 16384, `file is ${f.size} bytes`);
  assert.equal(vhdChecksum(f.buf.subarray(0, 512), 64), f.buf.readUInt32BE(64));
  assert.ok(f.buf.subarray(0, 512).equals(f.buf.subarray(f.size - 512)), 'footer copy at the start equals the footer');
  const v = await openVhd(f);
  assert.equal(v.format, 'vhd-dynamic');
  assert.equal(v.size, size);
  assert.ok(Buffer.from(await v.read(0, size)).equals(disk));
  assert.ok(Buffer.from(await v.read(2 * 1024 * 1024 - 100, 300)).equals(disk.subarray(2 * 1024 * 1024 - 100, 2 * 1024 * 1024 + 200)));
  assert.deepEqual(v.allocated, [
    { start: 0, end: 2 * 1024 * 1024 },
    { start: 6 * 1024 * 1024, end: size },
  ]);
});

test('VhdWriter refuses sizes a VHD cannot hold', () => {
  const f = new MemoryFile();
  assert.throws(() => new VhdWriter(f, 1000), /512-byte sectors/);
  assert.throws(() => new VhdWriter(f, 3000 * 1024 ** 3), /larger than a VHD can hold/);
});

test('differencing, damaged and truncated VHD files give clear errors', async () => {
  const size = 4 * 1024 * 1024;
  const disk = sparseDisk(size, 2 * 1024 * 1024, [1]);
  const good = new MemoryFile();
  await writeAll(new VhdWriter(good, size), disk);

  const diff = new MemoryFile();
  diff.buf = Buffer.from(good.buf);
  const footer = encodeVhdFooter(size, 4, 512n, Buffer.alloc(16), new Date());
  footer.copy(diff.buf, diff.size - 512);
  await assert.rejects(openVhd(diff), /differencing VHD.*not supported/);

  const badSum = new MemoryFile();
  badSum.buf = Buffer.from(good.buf);
  flip(badSum.buf, badSum.size - 512 + 50);
  await assert.rejects(openVhd(badSum), /footer .* damaged/);

  // Cut off inside the only allocated block: the footer copy at the start is used, the block is past the end.
  const cut = new MemoryFile();
  cut.buf = Buffer.from(good.buf.subarray(0, good.size - 1024 * 1024));
  await assert.rejects(openVhd(cut), (e: unknown) => e instanceof LifeboatError && e.code === 'corrupt' && /past the end of the file/.test(e.message));

  // A BAT entry pointing far past the end.
  const far = new MemoryFile();
  far.buf = Buffer.from(good.buf);
  far.buf.writeUInt32BE(0x7ffffff0, 1536 + 4);
  await assert.rejects(openVhd(far), /Block 1 .* past the end/);

  // A fixed VHD whose data is shorter than its footer says.
  const fixed = new MemoryFile();
  fixed.buf = Buffer.concat([disk.subarray(0, size - 4096), encodeVhdFooter(size, 2, 0xffffffffffffffffn, Buffer.alloc(16), new Date())]);
  await assert.rejects(openVhd(fixed), /truncated/);
  const fixedOk = new MemoryFile();
  fixedOk.buf = Buffer.concat([disk, encodeVhdFooter(size, 2, 0xffffffffffffffffn, Buffer.alloc(16), new Date())]);
  const v = await openVhd(fixedOk);
  assert.equal(v.format, 'vhd-fixed');
  assert.ok(Buffer.from(await v.read(0, size)).equals(disk));
});

test('sectors whose bitmap bit is clear read as zeros', async () => {
  const size = 2 * 1024 * 1024;
  const disk = sparseDisk(size, size, [0]);
  const f = new MemoryFile();
  await writeAll(new VhdWriter(f, size), disk);
  const blockAt = f.buf.readUInt32BE(1536) * 512;
  f.buf.writeUInt8(0x7f, blockAt); // sector 0 not written
  const v = await openVhd(f);
  const back = Buffer.from(await v.read(0, 1024));
  assert.ok(back.subarray(0, 512).equals(Buffer.alloc(512)));
  assert.ok(back.subarray(512).equals(disk.subarray(512, 1024)));
});
