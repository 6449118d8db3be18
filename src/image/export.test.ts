import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { lifeboat, tempDir } from '../cli/testing.js';
import { makeExt4Disk, sh } from './testing.js';

function qemu(args: string[], cwd: string): { code: number | null; out: string } {
  const r = spawnSync('qemu-img', args, { cwd, encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

test('an image of an MBR/ext4 disk exports as raw, VHD and VHDX that qemu-img opens and finds identical to the disk', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const disk = makeExt4Disk(d.path);
  const size = statSync(disk).size;
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const c = await lifeboat(['image', 'create', disk, '--json'], env);
  assert.equal(c.code, 0, c.stderr);
  const id = (JSON.parse(c.stdout) as { id: string }).id.slice(0, 8);

  for (const [format, qfmt] of [['raw', 'raw'], ['vhd', 'vpc'], ['vhdx', 'vhdx']] as const) {
    const out = join(d.path, `out.${format}`);
    const e = await lifeboat(['image', 'export', id, '--format', format, out, '--json'], env);
    assert.equal(e.code, 0, e.stderr);
    const info = qemu(['info', '-f', qfmt, '--output=json', out], d.path);
    assert.equal(info.code, 0, info.out);
    assert.equal((JSON.parse(info.out) as { 'virtual-size': number })['virtual-size'], size, `${format} virtual size`);
    const cmp = qemu(['compare', '-f', 'raw', '-F', qfmt, disk, out], d.path);
    assert.equal(cmp.code, 0, cmp.out);
    assert.match(cmp.out, /Images are identical/);
    assert.doesNotMatch(cmp.out, /mismatch/);
    // A mostly empty disk: a dynamic file (or a sparse raw file) is much smaller than the disk.
    const used = format === 'raw' ? statSync(out).blocks * 512 : statSync(out).size;
    assert.ok(used < size / 4, `${format} file uses ${used} bytes of a ${size}-byte disk`);
  }
  sh('cmp disk.img out.raw', d.path);
  const check = qemu(['check', '-f', 'vhdx', join(d.path, 'out.vhdx')], d.path);
  assert.equal(check.code, 0, check.out);
  assert.match(check.out, /No errors were found/);

  // The format comes from the name when not given; an existing file is kept unless --force.
  const again = await lifeboat(['image', 'export', id, join(d.path, 'out.vhdx')], env);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already exists/);
  const forced = await lifeboat(['image', 'export', id, join(d.path, 'out.vhdx'), '--force'], env);
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(qemu(['compare', '-f', 'raw', '-F', 'vhdx', disk, join(d.path, 'out.vhdx')], d.path).code, 0);
  const unnamed = await lifeboat(['image', 'export', id, join(d.path, 'out.qcow2')], env);
  assert.equal(unnamed.code, 2);
  assert.match(unnamed.stderr, /--format/);
});

test('a disk whose size ends mid-block exports exactly; a size VHD cannot hold is refused and leaves no file', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  sh(`head -c $((5*1024*1024 + 1536)) /dev/urandom > odd.img
dd if=/dev/zero of=odd.img bs=1M seek=1 count=2 conv=notrunc status=none
head -c $((3*1024*1024 + 100)) /dev/urandom > bad.img`, d.path);
  for (const name of ['odd', 'bad']) assert.equal((await lifeboat(['image', 'create', join(d.path, `${name}.img`), '--tag', name], env)).code, 0);
  const odd = await lifeboat(['image', 'info', 'latest', '--json'], env);
  assert.equal(odd.code, 0);

  // "latest" is bad.img (3 MiB + 100 bytes): not whole sectors.
  for (const format of ['vhd', 'vhdx']) {
    const r = await lifeboat(['image', 'export', 'latest', '--format', format, join(d.path, `bad.${format}`)], env);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /512-byte sectors/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
  assert.deepEqual(readdirSync(d.path).filter((n) => n.startsWith('bad.vhd') || n.includes('partial')), []);
  const raw = await lifeboat(['image', 'export', 'latest', '--format', 'raw', join(d.path, 'bad.out')], env);
  assert.equal(raw.code, 0, raw.stderr);
  sh('cmp bad.img bad.out', d.path);

  // odd.img: 5 MiB + 1536 bytes, the last VHD/VHDX block is mostly past the end of the disk.
  const snaps = readdirSync(join(d.path, 'repo', 'snapshots'));
  assert.equal(snaps.length, 2);
  const infos = await Promise.all(snaps.map(async (s) => ({ s, info: JSON.parse((await lifeboat(['image', 'info', s, '--json'], env)).stdout) as { source: string } })));
  const oddId = infos.find((i) => i.info.source.endsWith('odd.img'))!.s;
  for (const [format, qfmt] of [['vhd', 'vpc'], ['vhdx', 'vhdx']] as const) {
    const out = join(d.path, `odd.${format}`);
    const r = await lifeboat(['image', 'export', oddId, '--format', format, out], env);
    assert.equal(r.code, 0, r.stderr);
    const cmp = qemu(['compare', '-f', 'raw', '-F', qfmt, join(d.path, 'odd.img'), out], d.path);
    assert.equal(cmp.code, 0, cmp.out);
    assert.doesNotMatch(cmp.out, /mismatch/);
  }
  assert.ok(existsSync(join(d.path, 'odd.vhdx')));
});
