import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LifeboatError } from '../util/errors.js';
import { flip, sparseDisk, writeAll } from './testing.js';
import { VhdxWriter, crc32c, guidBytes, openVhdx } from './vhdx.js';
import { MemoryFile } from './vhd.js';

const MiB = 1024 * 1024;


test('CRC-32C matches the standard check value', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.equal(crc32c(Buffer.alloc(32)), 0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeros
  assert.equal(crc32c(Buffer.from('56789'), crc32c(Buffer.from('1234'))), 0xe3069283);
});

test('GUIDs are stored with their first three fields little-endian', () => {
  assert.equal(guidBytes('2DC27766-F623-4200-9D64-115E9BFD4A08').toString('hex'), '6677c22d23f600429d64115e9bfd4a08');
});

async function sample(size = 9 * MiB, filled = [0, 3]): Promise<{ f: MemoryFile; disk: Buffer }> {
  const disk = sparseDisk(size, 2 * MiB, filled);
  const f = new MemoryFile('mem.vhdx');
  await writeAll(new VhdxWriter(f, size), disk);
  return { f, disk };
}

test('a dynamic VHDX written by VhdxWriter reads back byte for byte, zero blocks unallocated', async () => {
  const { f, disk } = await sample(9 * MiB + 4096, [0, 3, 4]);
  const v = await openVhdx(f);
  assert.equal(v.format, 'vhdx-dynamic');
  assert.equal(v.size, disk.length);
  assert.ok(Buffer.from(await v.read(0, disk.length)).equals(disk));
  assert.ok(Buffer.from(await v.read(2 * MiB - 5, 10)).equals(disk.subarray(2 * MiB - 5, 2 * MiB + 5)));
  assert.deepEqual(v.allocated, [{ start: 0, end: 2 * MiB }, { start: 6 * MiB, end: disk.length }]);
  assert.equal(f.size, 4 * MiB + 3 * 2 * MiB, 'headers, log, metadata, BAT and three blocks');
});

test('either header or region table copy may be damaged; both damaged is a clear error', async () => {
  const { f, disk } = await sample();
  const one = new MemoryFile('one.vhdx');
  one.buf = Buffer.from(f.buf);
  flip(one.buf, 128 * 1024 + 100); // header 2 (the current one) damaged: header 1 is used
  flip(one.buf, 192 * 1024 + 20); // region table 1 damaged: copy 2 is used
  assert.ok(Buffer.from(await (await openVhdx(one)).read(0, disk.length)).equals(disk));
  flip(one.buf, 64 * 1024 + 100);
  await assert.rejects(openVhdx(one), (e: unknown) => e instanceof LifeboatError && e.code === 'corrupt' && /neither of its two headers/.test(e.message));
  const regions = new MemoryFile('r.vhdx');
  regions.buf = Buffer.from(f.buf);
  flip(regions.buf, 192 * 1024 + 20);
  flip(regions.buf, 256 * 1024 + 20);
  await assert.rejects(openVhdx(regions), /region table/);
});

test('truncated files, BAT entries past the end and unreplayed logs are refused before any data is read', async () => {
  const { f } = await sample();
  const cut = new MemoryFile('cut.vhdx');
  cut.buf = Buffer.from(f.buf.subarray(0, f.size - MiB));
  await assert.rejects(openVhdx(cut), /block 3 .* past the end of the file/);
  const tiny = new MemoryFile('tiny.vhdx');
  tiny.buf = Buffer.from(f.buf.subarray(0, 200 * 1024));
  await assert.rejects(openVhdx(tiny), /shorter than/);

  const far = new MemoryFile('far.vhdx');
  far.buf = Buffer.from(f.buf);
  far.buf.writeUInt32LE(0xffffffff, 3 * MiB + 4); // block 0 at an offset of petabytes
  await assert.rejects(openVhdx(far), /block 0 .* past the end/);

  const log = new MemoryFile('log.vhdx');
  log.buf = Buffer.from(f.buf);
  for (const at of [64 * 1024, 128 * 1024]) {
    log.buf[at + 48] = 1; // LogGuid set
    log.buf.writeUInt32LE(0, at + 4);
    log.buf.writeUInt32LE(crc32c(log.buf.subarray(at, at + 4096)), at + 4);
  }
  await assert.rejects(openVhdx(log), /not closed cleanly/);

  const huge = new MemoryFile('huge.vhdx');
  huge.buf = Buffer.from(f.buf);
  huge.buf.writeBigUInt64LE(2n ** 60n, 2 * MiB + 64 * 1024 + 8); // virtual disk size item
  await assert.rejects(openVhdx(huge), /virtual disk size .* impossible/);
});
