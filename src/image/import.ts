/**
 * Importing disk files into the repository as image snapshots: raw disk images, VHD (fixed or
 * dynamic), VHDX (fixed or dynamic), and the system images Windows 7's Backup and Restore wrote
 * (WindowsImageBackup/<PC name>/Backup <date>/*.vhd|*.vhdx). Blocks a container does not store
 * are passed to the imager as free, so they are neither read nor stored.
 */
import { promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { LifeboatError } from '../util/errors.js';
import type { Repository } from '../repo/repository.js';
import { createImage, normalizeRanges, type ByteRange, type CreateImageResult, type ImageProgress } from './imager.js';
import { analyzeDisk, type DiskLayout } from './layout.js';
import { diskTools } from './tools.js';
import { looksLikeVhd, openFileAccess, openVhd, type VirtualDisk } from './vhd.js';
import { looksLikeVhdx, openVhdx } from './vhdx.js';

export type ContainerKind = 'raw' | 'vhd' | 'vhdx';

/** Opens a disk file, recognising VHDX and VHD by their signatures; anything else is raw. */
export async function openDiskFile(path: string, warn?: (message: string) => void): Promise<VirtualDisk & { readonly kind: ContainerKind }> {
  const file = await openFileAccess(path);
  try {
    if (file.size === 0) throw new LifeboatError('invalid-argument', `${path} is empty; there is nothing to import.`);
    if (await looksLikeVhdx(file)) return { ...(await openVhdx(file)), kind: 'vhdx' };
    if (await looksLikeVhd(file)) return { ...(await openVhd(file, warn)), kind: 'vhd' };
    return {
      kind: 'raw',
      format: 'raw',
      size: file.size,
      allocated: [{ start: 0, end: file.size }],
      read: (offset, length) => file.read(offset, length),
      close: () => file.close(),
    };
  } catch (e) {
    await file.close();
    throw e;
  }
}

/** Ranges in both lists (each sorted and non-overlapping). */
export function intersectRanges(a: readonly ByteRange[], b: readonly ByteRange[]): ByteRange[] {
  const out: ByteRange[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a[i]!;
    const y = b[j]!;
    const start = Math.max(x.start, y.start);
    const end = Math.min(x.end, y.end);
    if (end > start) out.push({ start, end });
    if (x.end < y.end) i++;
    else j++;
  }
  return out;
}

export interface ImportResult extends CreateImageResult {
  readonly layout: DiskLayout;
}

/**
 * Images an opened disk file like `image create` images a drive: the partition table and
 * filesystems decide what is used, and of that only what the container stores is read.
 */
export async function importDisk(
  repo: Repository,
  disk: VirtualDisk,
  source: { path: string; [k: string]: unknown },
  opts: { signal?: AbortSignal; onProgress?: (p: ImageProgress) => void } = {},
): Promise<ImportResult> {
  const tools = diskTools();
  const layout = await analyzeDisk(disk, tools.tables, tools.probes);
  const used = intersectRanges(normalizeRanges(layout.used, disk.size), normalizeRanges(disk.allocated, disk.size));
  const res = await createImage(repo, disk, used, { table: layout.table, partitions: layout.partitions, source, unreadable: [] }, opts);
  return { ...res, layout };
}

// ------------------------------------------------------------------ WindowsImageBackup folders

export interface WindowsBackupDisk {
  /** The computer's name: the folder above the backup folder. */
  readonly pc: string;
  /** The "Backup YYYY-MM-DD HHMMSS" folder. */
  readonly folder: string;
  /** When the backup was taken, from the folder's name (Windows names it in UTC). */
  readonly time: Date;
  /** The .vhd or .vhdx file of one disk. */
  readonly file: string;
}

const BACKUP_FOLDER = /^Backup (\d{4})-(\d{2})-(\d{2}) (\d{2})(\d{2})(\d{2})$/;
const MAX_FOLDERS_VISITED = 2000;

export function parseBackupFolderName(name: string): Date | undefined {
  const m = BACKUP_FOLDER.exec(name);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const t = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  if (t.getUTCFullYear() !== y || t.getUTCMonth() !== mo - 1 || t.getUTCDate() !== d || t.getUTCHours() !== h || t.getUTCMinutes() !== mi || t.getUTCSeconds() !== s) return undefined;
  return t;
}

/**
 * Finds the disks of every system image under `root`, which may be the drive or folder holding
 * WindowsImageBackup, that folder, a computer's folder in it, or one backup folder. Looks at most
 * four folder levels deep and visits a bounded number of folders.
 */
export async function findWindowsBackups(root: string): Promise<WindowsBackupDisk[]> {
  const disks: WindowsBackupDisk[] = [];
  let visited = 0;
  const visit = async (dir: string, depth: number): Promise<void> => {
    if (++visited > MAX_FOLDERS_VISITED) return;
    const time = parseBackupFolderName(basename(dir));
    let entries: import('node:fs').Dirent[];
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch {
      return; // unreadable folders (System Volume Information, …) are not part of a backup
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    if (time) {
      const pc = basename(dirname(dir));
      for (const e of entries) if (e.isFile() && /\.vhdx?$/i.test(e.name)) disks.push({ pc, folder: dir, time, file: join(dir, e.name) });
      return;
    }
    if (depth >= 3) return;
    for (const e of entries) if (e.isDirectory()) await visit(join(dir, e.name), depth + 1);
  };
  await visit(root, 0);
  return disks;
}
