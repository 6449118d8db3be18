/**
 * image/platform — the only place that knows operating-system facts about drives: how big a block
 * device is, which filesystems are mounted, which device nodes belong to one drive. Everything
 * else in the image layer reads drives through plain positional reads and asks this interface.
 * The portable implementation uses nothing but node:fs; linux.ts adds /sys and /proc knowledge.
 */
import { promises as fs, constants as C } from 'node:fs';

export interface MountedFilesystem {
  /** The device or source as the system names it (/dev/sda1, /dev/mapper/vg-root, or a pseudo name). */
  readonly device: string;
  readonly mountpoint: string;
  readonly fstype: string;
  readonly readOnly: boolean;
}

export interface Platform {
  /** Size in bytes of a block device (or a regular file); undefined if it cannot be found. */
  deviceSize(path: string): Promise<number | undefined>;
  /** Every mounted filesystem; empty where the platform cannot tell. */
  mountedFilesystems(): Promise<MountedFilesystem[]>;
  isBlockDevice(path: string): Promise<boolean>;
  /** Canonical device paths of a drive and of its partitions (for matching against mounts). */
  relatedDevices(path: string): Promise<string[]>;
  /** The drive's maker and model ("ATA Samsung SSD 860"), or what backs a loop device; undefined where unknown. */
  deviceModel(path: string): Promise<string | undefined>;
  /**
   * The physical disks a file or folder is stored on (or a drive or partition is part of), as
   * names to compare: two paths share a disk when their lists share a name. ["sda"] for a folder
   * on /dev/sda2; every disk under an LVM, RAID or encrypted volume. Where the platform cannot
   * tell, the filesystem stands for the disk ("fs:2049"), so two partitions of one disk look apart.
   */
  disksOf(path: string): Promise<string[]>;
  /** The whole drives attached to this computer (/dev/sda, /dev/nvme0n1), not their partitions; empty where the platform cannot tell. */
  listDrives(): Promise<string[]>;
}

/** The filesystem a path is on, standing for its disk where nothing better is known; [] when the path cannot be read. */
export async function filesystemOf(path: string): Promise<string[]> {
  const st = await fs.stat(path, { bigint: true }).catch(() => undefined);
  return st ? [`fs:${st.isBlockDevice() ? `b${st.rdev}` : st.dev}`] : [];
}

/**
 * Size of an open handle by reading its end: 1-byte reads double until one fails, then a binary
 * search (about 80 reads for a 2 TB drive). Works on any OS's raw device paths without ioctls.
 */
export async function probeSizeByReading(h: fs.FileHandle): Promise<number> {
  const one = Buffer.alloc(1);
  const readable = async (off: number) => (await h.read(one, 0, 1, off).catch(() => ({ bytesRead: 0 }))).bytesRead === 1;
  if (!(await readable(0))) return 0;
  let lo = 1; // known readable byte count
  let hi = 512;
  while (await readable(hi - 1)) {
    lo = hi;
    hi *= 2;
    if (hi > 2 ** 53) return lo;
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (await readable(mid - 1)) lo = mid;
    else hi = mid;
  }
  return lo;
}

export const portablePlatform: Platform = {
  async deviceSize(path) {
    let h: fs.FileHandle;
    try {
      h = await fs.open(path, C.O_RDONLY);
    } catch {
      return undefined;
    }
    try {
      const st = await h.stat();
      return st.isFile() ? st.size : await probeSizeByReading(h);
    } finally {
      await h.close();
    }
  },
  mountedFilesystems: async () => [],
  isBlockDevice: async (p) => (await fs.stat(p).catch(() => undefined))?.isBlockDevice() === true,
  relatedDevices: async (p) => [await fs.realpath(p).catch(() => p)],
  deviceModel: async () => undefined,
  disksOf: filesystemOf,
  listDrives: async () => [],
};
