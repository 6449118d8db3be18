import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lifeboat, tempDir } from '../cli/testing.js';
import { makeExt4Disk, sh } from './testing.js';
import { vhdChecksum } from './vhd.js';

interface Imported {
  imported: { id: string; format: string; size: number; bytesRead: number; tags: string[]; time: string }[];
  failed: unknown[];
}

function snapshotCount(repo: string): number {
  try {
    return readdirSync(join(repo, 'snapshots')).length;
  } catch {
    return 0; // the folder appears with the first snapshot
  }
}

test('a VHDX and dynamic and fixed VHDs made by qemu-img import, and restore byte for byte', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const disk = makeExt4Disk(d.path);
  const size = statSync(disk).size;
  sh(`qemu-img convert -f raw -O vhdx disk.img q.vhdx
qemu-img convert -f raw -O vpc -o force_size=on disk.img q.vhd
qemu-img convert -f raw -O vpc -o subformat=fixed,force_size=on disk.img qfixed.vhd`, d.path);
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  for (const [file, format] of [['q.vhdx', 'vhdx-dynamic'], ['q.vhd', 'vhd-dynamic'], ['qfixed.vhd', 'vhd-fixed']] as const) {
    const r = await lifeboat(['image', 'import', join(d.path, file), '--tag', 'imported', '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Imported;
    const s = out.imported[0]!;
    assert.equal(s.format, format);
    assert.equal(s.size, size);
    assert.deepEqual(s.tags, ['imported']);
    if (format !== 'vhd-fixed') assert.ok(s.bytesRead < size / 2, `${file}: read ${s.bytesRead} bytes; unallocated blocks must not be read`);
    const target = join(d.path, `${file}.restored`);
    const rr = await lifeboat(['image', 'restore', s.id.slice(0, 8), '--target', target], env);
    assert.equal(rr.code, 0, rr.stderr);
    sh(`cmp disk.img '${file}.restored'`, d.path);
  }
  assert.equal((await lifeboat(['check', '--read-data'], env)).code, 0);
});

test('a WindowsImageBackup folder imports each disk with the computer name, the backup date as tag and time', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  makeExt4Disk(d.path);
  const pc = join(d.path, 'E', 'WindowsImageBackup', 'OFFICE-PC');
  const backup = join(pc, 'Backup 2011-05-21 163015');
  mkdirSync(join(pc, 'Catalog'), { recursive: true });
  mkdirSync(backup, { recursive: true });
  writeFileSync(join(pc, 'MediaId'), Buffer.alloc(16, 1));
  writeFileSync(join(pc, 'Catalog', 'GlobalCatalog'), Buffer.alloc(100, 2));
  writeFileSync(join(backup, 'BackupSpecs.xml'), '<BackupSpecs/>');
  writeFileSync(join(backup, '0f3c1b2a-5a56-11e0-8f3c-806e6f6e6963_Components.xml'), '<Components/>');
  sh(`qemu-img convert -f raw -O vhdx disk.img 'E/WindowsImageBackup/OFFICE-PC/Backup 2011-05-21 163015/0f3c1b2a-5a56-11e0-8f3c-806e6f6e6963.vhdx'`, d.path);
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const r = await lifeboat(['image', 'import', join(d.path, 'E'), '--tag', 'old-backups', '--json'], env);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Imported;
  assert.equal(out.imported.length, 1);
  const s = out.imported[0]!;
  assert.deepEqual(s.tags, ['OFFICE-PC', '2011-05-21T16:30:15Z', 'old-backups']);
  assert.equal(s.time, '2011-05-21T16:30:15.000Z');
  const info = await lifeboat(['image', 'info', s.id.slice(0, 8), '--json'], env);
  assert.equal((JSON.parse(info.stdout) as { time: string }).time, '2011-05-21T16:30:15.000Z');
  const rr = await lifeboat(['image', 'restore', s.id.slice(0, 8), '--target', join(d.path, 'restored.img')], env);
  assert.equal(rr.code, 0, rr.stderr);
  sh('cmp disk.img restored.img', d.path);

  // A second backup whose disk is damaged: the other disk of it still imports; exit 3 (partial).
  const later = join(pc, 'Backup 2011-06-01 090000');
  mkdirSync(later);
  sh(`qemu-img convert -f raw -O vhdx disk.img 'E/WindowsImageBackup/OFFICE-PC/Backup 2011-06-01 090000/a.vhdx'`, d.path);
  writeFileSync(join(later, 'b.vhdx'), readFileSync(join(later, 'a.vhdx')).subarray(0, 2 * 1024 * 1024));
  const partial = await lifeboat(['image', 'import', later, '--json'], env);
  assert.equal(partial.code, 3, partial.stderr);
  const p = JSON.parse(partial.stdout) as Imported;
  assert.deepEqual(p.imported.map((x) => x.tags), [['OFFICE-PC', '2011-06-01T09:00:00Z']]);
  assert.equal(p.failed.length, 1);
  assert.match(partial.stderr, /b\.vhdx was not imported: .*damaged/);

  const empty = join(d.path, 'nothing');
  mkdirSync(empty);
  const none = await lifeboat(['image', 'import', empty], env);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no Windows system image/);
});

/** The VHDX's BAT region offset, from its first region table. */
function batOffset(b: Buffer): number {
  const t = 192 * 1024;
  for (let i = 0; i < b.readUInt32LE(t + 8); i++) {
    const e = t + 16 + i * 32;
    if (b.subarray(e, e + 16).toString('hex') === '6677c22d23f600429d64115e9bfd4a08') return Number(b.readBigUInt64LE(e + 16));
  }
  throw new Error('no BAT region');
}

test('damaged or unsupported disk files give a clear error, exit 1 and write no snapshot', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  makeExt4Disk(d.path);
  sh('qemu-img convert -f raw -O vhdx disk.img good.vhdx && qemu-img convert -f raw -O vpc -o force_size=on disk.img good.vhd', d.path);
  const good = readFileSync(join(d.path, 'good.vhdx'));

  writeFileSync(join(d.path, 'truncated.vhdx'), good.subarray(0, good.length - 3 * 1024 * 1024));
  const badCrc = Buffer.from(good);
  for (const at of [64 * 1024, 128 * 1024]) badCrc.writeUInt32LE((badCrc.readUInt32LE(at + 4) ^ 0x10) >>> 0, at + 4);
  writeFileSync(join(d.path, 'badcrc.vhdx'), badCrc);
  const far = Buffer.from(good);
  far.writeUInt32LE((6 | (0xfff << 20)) >>> 0, batOffset(far)); // block 0: present, at ~4 TiB + …
  far.writeUInt32LE(0x00ffffff, batOffset(far) + 4);
  writeFileSync(join(d.path, 'far.vhdx'), far);
  const vhd = readFileSync(join(d.path, 'good.vhd'));
  const diff = Buffer.from(vhd);
  for (const at of [0, diff.length - 512]) {
    diff.writeUInt32BE(4, at + 60);
    diff.writeUInt32BE(vhdChecksum(diff.subarray(at, at + 512), 64), at + 64);
  }
  writeFileSync(join(d.path, 'diff.vhd'), diff);

  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  for (const [file, code, message] of [
    ['truncated.vhdx', 1, /truncated/],
    ['badcrc.vhdx', 1, /neither of its two headers is intact/],
    ['far.vhdx', 1, /block 0 .*past the end of the file/],
    ['diff.vhd', 2, /differencing VHD.*not supported/],
  ] as const) {
    const started = Date.now();
    const r = await lifeboat(['image', 'import', join(d.path, file)], env);
    assert.equal(r.code, code, `${file}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.ok(Date.now() - started < 60_000, `${file} took too long`);
    assert.equal(snapshotCount(join(d.path, 'repo')), 0, `${file} left a snapshot`);
  }
  // The undamaged file imports into the same repository (so the count above could have grown).
  assert.equal((await lifeboat(['image', 'import', join(d.path, 'good.vhdx')], env)).code, 0);
  assert.equal(snapshotCount(join(d.path, 'repo')), 1);
});
