/**
 * Linux facts about drives, from /sys/dev/block and /proc/self/mounts: no ioctls, no external tools.
 * Falls back to the portable reading probe where sysfs does not answer.
 */
import { promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { MountedFilesystem, Platform } from './platform.js';
import { filesystemOf, portablePlatform } from './platform.js';

/** Decodes the octal escapes (\040 for a space, \011, \012, \134) that /proc/self/mounts uses. */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Parses /proc/self/mounts text. Exported for tests. */
export function parseMounts(text: string): MountedFilesystem[] {
  const out: MountedFilesystem[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const options = f[3]!.split(',');
    out.push({ device: unescapeMount(f[0]!), mountpoint: unescapeMount(f[1]!), fstype: f[2]!, readOnly: options.includes('ro') });
  }
  return out;
}

/** The /sys/dev/block/MAJ:MIN directory of a device number, or undefined. */
async function sysDirOf(dev: bigint): Promise<string | undefined> {
  // glibc's gnu_dev_major / gnu_dev_minor.
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn & 0xffffffffn);
  const dir = `/sys/dev/block/${major}:${minor}`;
  return (await fs.stat(dir).catch(() => undefined)) ? await fs.realpath(dir) : undefined;
}

/** The /sys/dev/block/MAJ:MIN directory of a block device node, or undefined. */
async function sysDir(path: string): Promise<string | undefined> {
  const st = await fs.stat(path).catch(() => undefined);
  if (!st?.isBlockDevice()) return undefined;
  return sysDirOf(BigInt(st.rdev));
}

/**
 * The disks under a block device's sysfs directory: a partition's parent disk; for a device
 * mapper, RAID or other stacked device, the disks of each of its "slaves"; a loop device's
 * backing file's disks.
 */
async function disksUnder(dir: string, depth = 0): Promise<string[]> {
  if (depth > 8) return [];
  if (await fs.stat(join(dir, 'partition')).catch(() => undefined)) return disksUnder(dirname(dir), depth + 1);
  const backing = await fs.readFile(join(dir, 'loop', 'backing_file'), 'utf8').then((t) => t.trim(), () => '');
  if (backing) return linuxPlatform.disksOf(backing);
  const slaves = await fs.readdir(join(dir, 'slaves')).catch(() => []);
  if (slaves.length === 0) return [basename(dir)];
  const out = new Set<string>();
  for (const s of slaves) for (const d of await disksUnder(await fs.realpath(join(dir, 'slaves', s)), depth + 1)) out.add(d);
  return [...out];
}

export const linuxPlatform: Platform = {
  async deviceSize(path) {
    const dir = await sysDir(path);
    if (dir) {
      const text = await fs.readFile(join(dir, 'size'), 'utf8').catch(() => undefined);
      const sectors = text === undefined ? NaN : Number(text.trim());
      // sysfs always counts 512-byte units, whatever the logical sector size.
      if (Number.isSafeInteger(sectors) && sectors > 0) return sectors * 512;
    }
    return portablePlatform.deviceSize(path);
  },
  async mountedFilesystems() {
    const text = await fs.readFile('/proc/self/mounts', 'utf8').catch(() => '');
    return parseMounts(text);
  },
  isBlockDevice: (p) => portablePlatform.isBlockDevice(p),
  async deviceModel(path) {
    const dir = await sysDir(path);
    if (!dir) return undefined;
    const read = (f: string) => fs.readFile(join(dir, f), 'utf8').then((t) => t.trim(), () => '');
    const backing = await read('loop/backing_file');
    if (backing) return `loop device of ${backing}`;
    const model = [await read('device/vendor'), await read('device/model')].filter((x) => x !== '').join(' ');
    return model || undefined;
  },
  async disksOf(path) {
    const st = await fs.stat(path, { bigint: true }).catch(() => undefined);
    if (!st) return [];
    // A folder's filesystem device, or a drive or partition node's own device number.
    const dir = await sysDirOf(st.isBlockDevice() ? st.rdev : st.dev);
    return dir ? disksUnder(dir) : filesystemOf(path); // btrfs subvolumes, tmpfs, overlay: no block device
  },
  async listDrives() {
    // Whole drives are the entries of /sys/block; loop, RAM, optical and device-mapper nodes are not drives a person restores onto.
    const names = await fs.readdir('/sys/block').catch(() => [] as string[]);
    const drives: string[] = [];
    for (const n of names.sort()) {
      if (/^(loop|ram|zram|sr|fd|dm-|md|nbd)/.test(n)) continue;
      if ((await fs.stat(join('/dev', n)).catch(() => undefined))?.isBlockDevice()) drives.push(join('/dev', n));
    }
    return drives;
  },
  async relatedDevices(path) {
    const real = await fs.realpath(path).catch(() => path);
    const out = [real];
    const dir = await sysDir(real);
    if (!dir) return out;
    // Partitions are subdirectories of the disk's sysfs directory that contain a "partition" file.
    const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      if (await fs.stat(join(dir, e.name, 'partition')).catch(() => undefined)) out.push(join('/dev', basename(e.name)));
    }
    return out;
  },
};
