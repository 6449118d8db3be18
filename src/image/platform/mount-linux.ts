/**
 * Mounting a partition so its files can be read or written (the rescue kit looks for repositories
 * on every drive and copies files onto a USB stick). Node has no mount(2), so this one module runs
 * the system's `mount` and `umount` (busybox's in the rescue kit, util-linux's on a live Linux):
 * the only place the product starts a system tool, Linux only, behind the Mounter interface.
 */
import { execFile } from 'node:child_process';
import { mkdir, rmdir } from 'node:fs/promises';
import { LifeboatError } from '../../util/errors.js';

export interface Mounter {
  /** Mounts the filesystem on `device` at `dir` (created if missing); rejects when no filesystem the system knows is there. */
  mount(device: string, dir: string, o: { readonly readOnly: boolean }): Promise<void>;
  /** Unmounts `dir` (flushing what was written) and removes the empty folder. */
  unmount(dir: string): Promise<void>;
}

function run(cmd: string, args: readonly string[]): Promise<void> {
  return new Promise((res, rej) => {
    execFile(cmd, args, { timeout: 60_000 }, (e, _out, err) => (e ? rej(new LifeboatError('io', `${cmd} ${args.join(' ')}: ${String(err).trim() || e.message}`)) : res()));
  });
}

export const linuxMounter: Mounter = {
  async mount(device, dir, o) {
    await mkdir(dir, { recursive: true });
    try {
      await run('mount', ['-o', o.readOnly ? 'ro' : 'rw', device, dir]);
    } catch (e) {
      await rmdir(dir).catch(() => undefined);
      throw e;
    }
  },
  async unmount(dir) {
    await run('umount', [dir]);
    await rmdir(dir).catch(() => undefined);
  },
};
