/**
 * The whole promise of a system image: image a bootable drive, restore it onto a larger drive (a
 * loop device), and boot it in QEMU. Fixtures come from scripts/fixtures/boot-disks.sh.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { BIN, lifeboat, tempDir } from '../cli/testing.js';
import { boots } from './testing.js';

const MARKER = 'LIFEBOAT-BOOT-OK';
const FIXTURES = resolve(BIN, '..', '..', 'scripts', 'fixtures', 'boot-disks.sh');

function sh(cmd: string, cwd: string): string {
  return execFileSync('bash', ['-euo', 'pipefail', '-c', cmd], { cwd, encoding: 'utf8' });
}

async function restoreOntoLargerLoop(env: Record<string, string>, snapshot: string, dir: string, name: string): Promise<{ file: string; json: Record<string, unknown> }> {
  const file = join(dir, name);
  sh(`truncate -s 160M ${name}`, dir);
  const loop = sh(`losetup -f --show ${name}`, dir).trim();
  try {
    const r = await lifeboat(['image', 'restore', snapshot, '--target', loop, '--force', '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    return { file, json: JSON.parse(r.stdout) as Record<string, unknown> };
  } finally {
    sh(`losetup -d ${loop}`, dir);
  }
}

test('GRUB on MBR and UEFI on GPT: imaged, restored onto a larger drive, and they boot', { timeout: 600_000 }, async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  sh(`bash ${FIXTURES} ${d.path} ${MARKER}`, d.path);
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);

  const grub = await lifeboat(['image', 'create', join(d.path, 'grub-mbr.img'), '--json'], env);
  assert.equal(grub.code, 0, grub.stderr);
  const uefi = await lifeboat(['image', 'create', join(d.path, 'uefi-gpt.img'), '--json'], env);
  assert.equal(uefi.code, 0, uefi.stderr);
  const grubId = (JSON.parse(grub.stdout) as { id: string }).id;
  const uefiId = (JSON.parse(uefi.stdout) as { id: string }).id;

  const g = await restoreOntoLargerLoop(env, grubId, d.path, 'grub-restored.img');
  assert.equal(await boots(g.file, false, d.path, 120_000), true, 'the restored GRUB drive boots');

  const u = await restoreOntoLargerLoop(env, uefiId, d.path, 'uefi-restored.img');
  assert.equal(u.json['gptRelocated'], true, 'the GPT backup header moved to the new end');
  sh(`sgdisk -v uefi-restored.img | grep -q 'No problems found'`, d.path);
  assert.equal(await boots(u.file, true, d.path, 120_000), true, 'the restored UEFI drive boots');

  // The test can fail: a restore that lost the gap after the MBR (GRUB's core.img) does not boot.
  sh(`cp grub-restored.img broken.img && dd if=/dev/zero of=broken.img bs=512 seek=1 count=2047 conv=notrunc status=none`, d.path);
  assert.equal(await boots(join(d.path, 'broken.img'), false, d.path, 25_000), false);
});
