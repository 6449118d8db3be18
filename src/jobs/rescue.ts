/**
 * The rescue kit's use cases, for a computer that no longer starts: find the repositories on the
 * attached drives, list the drive images in one, say which drives an image can go onto (never the
 * drive that holds the repository, never one too small), and the USB drives files can be copied
 * to. The restore itself is jobs/image.ts `restoreImageSnapshot`; nothing here needs a cache, the
 * job database or any configuration of the dead computer: a repository and its password are all.
 */
import { promises as fs } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { Hex } from '../repo/ids.js';
import { Repository } from '../repo/repository.js';
import { LifeboatError, formatBytes } from '../util/errors.js';
import { loadManifest } from '../image/imager.js';
import { describeTarget, type TargetDescription } from '../image/target-info.js';
import { diskTools, type DiskTools } from '../image/tools.js';
import { openStore } from './open.js';

export interface FoundRepository {
  /** The repository's folder (absolute). */
  readonly location: string;
  readonly id: string;
  /** The partition it was found on, when the rescue kit mounted it. */
  readonly device?: string;
}

/** Whether `dir` looks like a repository: a config file and a keys folder (read before anything is opened). */
async function looksLikeRepository(dir: string): Promise<boolean> {
  const [c, k] = await Promise.all([fs.stat(join(dir, 'config')).catch(() => undefined), fs.stat(join(dir, 'keys')).catch(() => undefined)]);
  return c?.isFile() === true && k?.isDirectory() === true;
}

/** Repositories in `folders` themselves or up to `depth` folder levels below them (hidden folders are skipped). */
export async function findRepositories(folders: readonly string[], depth = 2): Promise<FoundRepository[]> {
  const found: FoundRepository[] = [];
  const seen = new Set<string>();
  const visit = async (dir: string, left: number): Promise<void> => {
    const real = await fs.realpath(dir).catch(() => undefined);
    if (real === undefined || seen.has(real)) return;
    seen.add(real);
    if (await looksLikeRepository(real)) {
      try {
        const { config } = await Repository.readConfig(openStore(real));
        found.push({ location: real, id: config.id });
      } catch {
        // A damaged or newer repository: not offered (lifeboat check tells more on a working computer).
      }
      return;
    }
    if (left === 0) return;
    const entries = await fs.readdir(real, { withFileTypes: true }).catch(() => []);
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.isDirectory() && !e.name.startsWith('.') && e.name !== 'lost+found') await visit(join(real, e.name), left - 1);
    }
  };
  for (const f of folders) await visit(resolve(f), depth);
  return found;
}

/** The volume label of the rescue kit's partition: the stick it started from is never a target. */
export const KIT_LABEL = 'LIFEBOATKIT';

/** Where the rescue kit mounts the partitions it looks at. */
export const RESCUE_MOUNTS = '/run/lifeboat';

/**
 * In the rescue kit: every partition of every drive is mounted read-only (unless mounted already)
 * and searched; partitions without a repository are unmounted again, so they can be restored onto.
 */
export async function findRepositoriesOnDrives(tools: DiskTools = diskTools(), onWarning?: (message: string) => void): Promise<FoundRepository[]> {
  const found: FoundRepository[] = [];
  for (const drive of await tools.listDrives()) {
    const parts = (await tools.relatedDevices(drive)).slice(1);
    for (const part of parts.length > 0 ? parts : [drive]) {
      const mounted = await tools.mountedOn(part);
      if (mounted.length > 0) {
        for (const r of await findRepositories(mounted)) found.push({ ...r, device: part });
        continue;
      }
      if (!tools.mounter) continue;
      const dir = join(RESCUE_MOUNTS, basename(part));
      try {
        await tools.mounter.mount(part, dir, { readOnly: true });
      } catch {
        continue; // no filesystem the kit can read (swap, a blank drive, an encrypted partition)
      }
      const repos = await findRepositories([dir]);
      for (const r of repos) found.push({ ...r, device: part });
      if (repos.length === 0) await tools.mounter.unmount(dir).catch((e: unknown) => onWarning?.(`${part} could not be unmounted: ${e instanceof Error ? e.message : String(e)}`));
    }
  }
  return found;
}

export interface ImageChoice {
  readonly id: Hex;
  readonly time: string;
  readonly host: string;
  /** The drive that was imaged, as its computer named it. */
  readonly source: string;
  /** The imaged drive's size. */
  readonly size: number;
  readonly tags: readonly string[];
}

/** The drive images of a repository, newest first. */
export async function listImages(repo: Repository): Promise<ImageChoice[]> {
  const all = await repo.listSnapshots();
  const images = all.filter((s) => s.snapshot.kind === 'image').sort((a, b) => (a.snapshot.time < b.snapshot.time ? 1 : -1));
  const out: ImageChoice[] = [];
  for (const { id, snapshot } of images) {
    let size = snapshot.summary?.['size'];
    if (typeof size !== 'number') {
      await repo.loadIndex();
      size = (await loadManifest(repo, snapshot.root)).size;
    }
    out.push({ id, time: snapshot.time, host: snapshot.host, source: snapshot.paths[0] ?? '', size, tags: snapshot.tags });
  }
  return out;
}

export interface TargetChoice {
  readonly path: string;
  readonly size: number;
  readonly model?: string;
  readonly description: TargetDescription;
  /** Why the image cannot go onto this drive, in words; undefined when it can. */
  readonly refused?: string;
  /** The drive is smaller than the imaged one, though every partition fits. */
  readonly smaller?: boolean;
}

/** The device numbers of a drive and its partitions (st_rdev), to match against the device a folder lives on (st_dev). */
async function deviceNumbers(path: string, tools: DiskTools): Promise<Set<number>> {
  const out = new Set<number>();
  for (const d of await tools.relatedDevices(path)) {
    const st = await fs.stat(d).catch(() => undefined);
    if (st?.isBlockDevice()) out.add(st.rdev);
  }
  return out;
}

/**
 * The drives (or, in tests, files) image `imageId` could be restored onto, each with its model and
 * size, and a reason when it cannot: it holds the repository, it is in use, or it is too small.
 */
export async function checkTargets(repo: Repository, imageId: string, candidates: readonly string[], repositories: readonly FoundRepository[], tools: DiskTools = diskTools()): Promise<TargetChoice[]> {
  await repo.loadIndex();
  const { snapshot } = await repo.findSnapshot(imageId, (s) => s.kind === 'image');
  const m = await loadManifest(repo, snapshot.root);
  const needed = Math.max(0, ...m.partitions.map((p) => p.start + p.size));
  const repoDevices = new Map<number, string>();
  for (const r of repositories) {
    const st = await fs.stat(r.location).catch(() => undefined);
    if (st) repoDevices.set(st.dev, r.location);
  }
  const out: TargetChoice[] = [];
  for (const path of candidates) {
    const d = await describeTarget(path, tools);
    if (!d) continue;
    const base = { path, size: d.size, ...(d.model ? { model: d.model } : {}), description: d };
    const holding = [...(await deviceNumbers(path, tools))].map((n) => repoDevices.get(n)).find((x) => x !== undefined);
    const mounted = await tools.mountedOn(path);
    let refused: string | undefined;
    if (holding !== undefined) refused = `it holds the backups (${holding})`;
    else if (d.partitions.some((p) => p.label === KIT_LABEL)) refused = 'it is the Lifeboat rescue stick';
    else if (mounted.length > 0) refused = `it is in use (${mounted.join(', ')} mounted)`;
    else if (d.size < needed) refused = `it is too small: ${formatBytes(d.size)}, the image needs ${formatBytes(needed)}`;
    out.push({ ...base, ...(refused ? { refused } : {}), ...(!refused && d.size < m.size ? { smaller: true } : {}) });
  }
  return out;
}

export interface CopyDestination {
  /** The folder files are copied into. */
  readonly folder: string;
  /** The partition mounted for it (to unmount when done), when the kit mounted one. */
  readonly mounted?: string;
}

/**
 * Mounts partition `device` for writing so files can be copied onto it (the kit's "copy single
 * files to a USB drive"); refused for the partitions that hold a repository.
 */
export async function mountCopyDestination(device: string, repositories: readonly FoundRepository[], tools: DiskTools = diskTools()): Promise<CopyDestination> {
  if (repositories.some((r) => r.device === device)) throw new LifeboatError('invalid-argument', `${device} holds the backups; choose another drive to copy files onto.`);
  const mounted = await tools.mountedOn(device);
  if (mounted.length > 0) return { folder: mounted[0]! };
  if (!tools.mounter) throw new LifeboatError('invalid-argument', 'This system cannot mount drives; copy the files into a folder instead.');
  const dir = join(RESCUE_MOUNTS, `${basename(device)}-copy`);
  try {
    await tools.mounter.mount(device, dir, { readOnly: false });
  } catch {
    throw new LifeboatError('invalid-argument', `${device} holds no filesystem this kit can write (FAT, exFAT or ext4 work). Choose another drive.`);
  }
  return { folder: dir, mounted: dir };
}

/** The partitions (or whole drives without partitions) files could be copied onto: every one except those holding a repository. */
export async function copyCandidates(repositories: readonly FoundRepository[], tools: DiskTools = diskTools()): Promise<{ device: string; size: number; model?: string }[]> {
  const out: { device: string; size: number; model?: string }[] = [];
  for (const drive of await tools.listDrives()) {
    const model = await tools.deviceModel(drive);
    const parts = (await tools.relatedDevices(drive)).slice(1);
    // The rescue stick's own partition (sdb1, nvme0n1p1: named by its index) is no place for files.
    const kit = ((await describeTarget(drive, tools))?.partitions ?? []).filter((p) => p.label === KIT_LABEL).map((p) => p.index);
    for (const p of parts.length > 0 ? parts : [drive]) {
      if (repositories.some((r) => r.device === p)) continue;
      if (kit.some((i) => new RegExp(`\\D${i}$`).test(p))) continue;
      out.push({ device: p, size: (await tools.deviceSize(p)) ?? 0, ...(model ? { model } : {}) });
    }
  }
  return out;
}
