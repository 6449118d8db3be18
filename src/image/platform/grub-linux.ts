/**
 * GRUB's BIOS boot code for the rescue kit, taken from the build machine's GRUB (Debian/Ubuntu:
 * grub-pc-bin). Its core image must be assembled by `grub-mkimage` (it is LZMA-compressed with
 * the modules and the configuration inside): the one step of building the kit that runs a system
 * tool, Linux only. Everything else of the kit's disk is written by Lifeboat itself.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LifeboatError } from '../../util/errors.js';

export const GRUB_I386_PC = '/usr/lib/grub/i386-pc';

export interface GrubBios {
  /** boot.img: the MBR's code. */
  readonly boot: Buffer;
  /** core.img: GRUB with its modules and `config` built in, for the sectors after the MBR. */
  readonly core: Buffer;
}

/** boot.img and a core.img that runs `config` (GRUB's script) from the first MBR partition; undefined when GRUB for BIOS is not installed. */
export async function grubBios(config: string, dir = GRUB_I386_PC): Promise<GrubBios | undefined> {
  const boot = await readFile(join(dir, 'boot.img')).catch(() => undefined);
  if (!boot) return undefined;
  const tmp = await mkdtemp(join(tmpdir(), 'lifeboat-grub-'));
  try {
    await writeFile(join(tmp, 'embedded.cfg'), config);
    const args = ['-O', 'i386-pc', '-d', dir, '-p', '(hd0,msdos1)/boot/grub', '-c', join(tmp, 'embedded.cfg'), '-o', join(tmp, 'core.img'), 'biosdisk', 'part_msdos', 'fat', 'linux', 'boot'];
    await new Promise<void>((res, rej) =>
      execFile('grub-mkimage', args, { timeout: 120_000 }, (e, _o, err) => (e ? rej(new LifeboatError('io', `grub-mkimage failed: ${String(err).trim() || e.message}`)) : res())),
    );
    return { boot, core: await readFile(join(tmp, 'core.img')) };
  } catch (e) {
    if ((e as { cause?: { code?: string } }).cause?.code === 'ENOENT' || /ENOENT/.test(String(e))) return undefined;
    throw e;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
