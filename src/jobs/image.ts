/**
 * System image use cases: estimate an image, create one, import disk files and Windows system
 * images, restore one onto a drive or file (never over data without a yes or --force), copy
 * files out of one, export one as a raw, VHD or VHDX file. Each takes the repository, locks it, reuses what an interrupted run uploaded, picks the
 * previous image of the same drive as parent (one rule for create and import: previousImage) and
 * writes the snapshot last.
 */
import { hostname } from 'node:os';
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Hex } from '../repo/ids.js';
import type { Repository } from '../repo/repository.js';
import { indexUnindexedPacks } from '../repo/repair.js';
import type { Snapshot } from '../repo/snapshot.js';
import { LifeboatError, formatBytes } from '../util/errors.js';
import { createImage, formatLeftOut, loadManifest, previousImage, totalBytes, writeImage, type ImageProgress, type LeftOutPartition } from '../image/imager.js';
import { filesystemName, partitionText } from '../image/manifest.js';
import { openTarget } from '../image/target.js';
import { describeTarget, describeTargetText, type TargetDescription } from '../image/target-info.js';
import { analyzeDisk, type DiskLayout, type PartitionChoice } from '../image/layout.js';
import { openSource, type FileSource } from '../image/source.js';
import { diskTools } from '../image/tools.js';
import { findWindowsBackups, importDisk, openDiskFile, type WindowsBackupDisk } from '../image/import.js';
import { parseLocation } from '../image/browse.js';
import { exportImage, type ExportFormat, type ExportResult } from '../image/export.js';
import { ImageTree } from '../image/image-tree.js';
import { resolve as resolveIn, splitPath } from '../tree/tree.js';
import { copyOut, type CopyOutSummary } from '../tree/restore.js';
import { currentUser, type JobEvent, type JobOptions } from './events.js';
import { systemClock } from '../util/clock.js';
import { reusingLargeBlocks } from '../util/memory.js';

function progress(phase: string, onEvent: ((e: JobEvent) => void) | undefined): (p: ImageProgress) => void {
  return (p) => onEvent?.({ type: 'progress', phase, done: p.bytesDone, total: p.bytesTotal, stored: p.bytesStored });
}

export interface ImagePlan {
  readonly source: string;
  readonly size: number;
  readonly bytesToRead: number;
  readonly table: DiskLayout['table'];
  readonly partitions: DiskLayout['partitions'];
  readonly estimatedSeconds: number;
}

interface Opened {
  readonly path: string;
  readonly src: FileSource;
  readonly layout: DiskLayout;
  readonly unreadable: { start: number; length: number }[];
}

/** Which partitions of a drive to image (`--partitions 1,2` or `--exclude-partition 3`); all when absent. */
export interface PartitionOptions {
  readonly partitions?: PartitionChoice;
}

/** Opens a drive or disk file and reads its layout; warnings (mounted, damaged filesystems) go to `onEvent`. */
async function openDrive(source: string, o: JobOptions & PartitionOptions): Promise<Opened> {
  const path = resolve(source); // snapshots record the absolute path of the drive or file
  const warn = (message: string) => o.onEvent?.({ type: 'warning', message, path });
  const unreadable: { start: number; length: number }[] = [];
  const src = await openSource(path, {
    onUnreadable: (start, length) => {
      unreadable.push({ start, length });
      warn(`cannot read ${length} bytes at byte ${start} of ${path}; they will restore as zeros`);
    },
  });
  try {
    if (src.size === 0) throw new LifeboatError('invalid-argument', `${path} is empty; there is nothing to image.`);
    const tools = diskTools();
    for (const w of await tools.mountWarnings(path)) warn(w);
    const layout = await analyzeDisk(src, tools.tables, tools.probes, o.partitions);
    for (const w of layout.warnings) warn(w);
    return { path, src, layout, unreadable };
  } catch (e) {
    await src.close();
    throw e;
  }
}

/** What imaging `source` would read and about how long it would take, reading at most 64 MiB to measure. */
export async function planImageCreate(source: string, o: JobOptions & PartitionOptions = {}): Promise<ImagePlan> {
  const d = await openDrive(source, o);
  try {
    const toRead = totalBytes(d.layout.used);
    const rate = await measureReadRate(d.src, d.layout.used);
    const seconds = toRead / Math.min(rate, 250e6); // compression bound on a typical 2-core machine
    return { source: d.path, size: d.src.size, bytesToRead: toRead, partitions: d.layout.partitions, table: d.layout.table, estimatedSeconds: Math.round(seconds) };
  } finally {
    await d.src.close();
  }
}

export interface ImageCreateResult {
  readonly id: Hex;
  readonly snapshot: Snapshot;
  readonly layout: DiskLayout;
  readonly unreadable: readonly { start: number; length: number }[];
}

/**
 * Images a drive (or raw disk file) into a new snapshot; only used blocks are read, changed chunks
 * are stored as deltas to the previous image (whatever partitions it held). With `partitions`, the
 * others are left out: only the table and the areas outside partitions are read besides the chosen ones.
 */
export async function createImageSnapshot(repo: Repository, source: string, o: JobOptions & PartitionOptions & { tags?: readonly string[] } = {}): Promise<ImageCreateResult> {
  const d = await openDrive(source, o);
  try {
    await repo.lock(false, 'image create');
    await indexUnindexedPacks(repo); // loads the index; reuses what an interrupted run uploaded
    const started = performance.now();
    const host = hostname();
    // The previous image of this drive: its chunks are the bases of this image's delta blobs.
    const parent = await previousImage(repo, host, d.path, d.src.size, d.layout.table);
    const res = await createImage(repo, d.src, d.layout.used, { table: d.layout.table, partitions: d.layout.partitions, source: { path: d.path }, unreadable: d.unreadable }, {
      parent: parent?.snapshot.root,
      ...(o.signal ? { signal: o.signal } : {}),
      onProgress: progress('imaging', o.onEvent),
    });
    const seconds = (performance.now() - started) / 1000;
    const u = d.unreadable;
    const snapshot: Snapshot = {
      version: 1,
      kind: 'image',
      time: new Date(systemClock.now()).toISOString(),
      host,
      user: currentUser(),
      paths: [d.path],
      tags: [...(o.tags ?? [])],
      root: res.manifestId,
      ...(parent ? { parent: parent.id } : {}),
      ...(u.length ? { incomplete: { count: u.length, paths: u.slice(0, 100).map((x) => `bytes ${x.start}-${x.start + x.length - 1}`) } } : {}),
      summary: { totalBytes: res.manifest.bytesUsed, size: d.src.size, bytesRead: res.bytesRead, bytesAdded: res.bytesAdded, chunksStored: res.chunksStored, chunksNew: res.chunksNew, chunksDelta: res.chunksDelta, seconds },
    };
    const id = await repo.saveSnapshot(snapshot);
    return { id, snapshot, layout: d.layout, unreadable: u };
  } finally {
    await d.src.close();
  }
}

async function measureReadRate(src: { read(o: number, l: number): Promise<Uint8Array> }, used: readonly { start: number; end: number }[]): Promise<number> {
  const started = process.hrtime.bigint();
  let bytes = 0;
  for (const r of used) {
    for (let o = r.start; o < r.end && bytes < 64 * 1024 * 1024; o += 4 * 1024 * 1024) {
      const n = Math.min(4 * 1024 * 1024, r.end - o);
      await src.read(o, n);
      bytes += n;
    }
    if (bytes >= 64 * 1024 * 1024) break;
  }
  const s = Number(process.hrtime.bigint() - started) / 1e9;
  return bytes > 0 && s > 0 ? bytes / s : 1e9;
}

export interface Imported {
  readonly id: Hex;
  readonly snapshot: Snapshot;
  readonly source: string;
  readonly format: string;
  readonly size: number;
  readonly warnings: readonly string[];
  readonly windowsBackup?: WindowsBackupDisk;
}

export interface ImportResult {
  readonly imported: readonly Imported[];
  readonly failed: readonly { readonly source: string; readonly error: string }[];
}

/** Imports one disk file as one image snapshot; throws before writing a snapshot if it is damaged. */
async function importOne(repo: Repository, path: string, tags: readonly string[], wib: WindowsBackupDisk | undefined, o: JobOptions): Promise<Imported> {
  const warnings: string[] = [];
  const warn = (message: string) => {
    warnings.push(message);
    o.onEvent?.({ type: 'warning', message, path });
  };
  const disk = await openDiskFile(path, warn);
  try {
    const started = performance.now();
    const res = await importDisk(repo, disk, { path, format: disk.format }, { ...(o.signal ? { signal: o.signal } : {}), onProgress: progress('importing', o.onEvent) });
    for (const w of res.layout.warnings) warn(w);
    const seconds = (performance.now() - started) / 1000;
    const host = wib ? wib.pc : hostname();
    const time = wib ? wib.time.toISOString() : new Date(systemClock.now()).toISOString();
    const parent = await previousImage(repo, host, path, disk.size, res.manifest.table, time);
    const snapshot: Snapshot = {
      version: 1,
      kind: 'image',
      time,
      host,
      user: currentUser(),
      paths: [path],
      tags: wib ? [wib.pc, wib.time.toISOString().replace(/\.000Z$/, 'Z'), ...tags] : [...tags],
      root: res.manifestId,
      ...(parent ? { parent: parent.id } : {}),
      summary: { totalBytes: res.manifest.bytesUsed, size: disk.size, bytesRead: res.bytesRead, bytesAdded: res.bytesAdded, chunksStored: res.chunksStored, chunksNew: res.chunksNew, seconds },
      meta: {
        importedFrom: disk.kind,
        containerFormat: disk.format,
        ...(wib ? { windowsBackup: { pc: wib.pc, folder: wib.folder, time: wib.time.toISOString() } } : {}),
      },
    };
    const id = await repo.saveSnapshot(snapshot);
    return { id, snapshot, source: path, format: disk.format, size: disk.size, warnings, ...(wib ? { windowsBackup: wib } : {}) };
  } finally {
    await disk.close();
  }
}

/**
 * Imports a disk file (raw, VHD, VHDX) or every disk of a Windows "Backup and Restore" folder.
 * One damaged disk of a multi-disk backup does not stop the others; it is reported in `failed`.
 */
export async function importImages(repo: Repository, source: string, o: JobOptions & { tags?: readonly string[]; onImported?: (i: Imported) => void } = {}): Promise<ImportResult> {
  const path = resolve(source);
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    throw new LifeboatError('not-found', `${source} does not exist. Check the path.`);
  }
  const disks: { path: string; wib?: WindowsBackupDisk }[] = [];
  if (isDir) {
    const found = await findWindowsBackups(path);
    if (found.length === 0) throw new LifeboatError('not-found', `${source} holds no Windows system image (expected WindowsImageBackup/<computer>/Backup <date>/*.vhd or *.vhdx).`);
    for (const d of found) disks.push({ path: d.file, wib: d });
  } else disks.push({ path });
  await repo.lock(false, 'image import');
  await repo.loadIndex();
  const imported: Imported[] = [];
  const failed: { source: string; error: string }[] = [];
  for (const d of disks) {
    try {
      const r = await importOne(repo, d.path, o.tags ?? [], d.wib, o);
      imported.push(r);
      o.onImported?.(r);
    } catch (e) {
      if (disks.length === 1 || !(e instanceof LifeboatError)) throw e;
      failed.push({ source: d.path, error: e.message });
      o.onEvent?.({ type: 'warning', message: `${d.path} was not imported: ${e.message}`, path: d.path });
    }
  }
  if (imported.length === 0) throw new LifeboatError('corrupt', `None of the ${disks.length} disks could be imported: ${failed.map((f) => f.error).join(' ')}`);
  return { imported, failed };
}

export interface ImageRestoreOptions extends JobOptions {
  /** Write over a target that holds data, or is smaller than the imaged drive (when every partition fits), without asking. */
  readonly force?: boolean;
  readonly verify?: boolean;
  /**
   * Asked before anything is written over a target that holds data; without it (no one to ask)
   * such a target is refused unless `force`.
   */
  readonly confirmErase?: (target: TargetDescription) => Promise<boolean>;
}

export interface ImageRestoreResult {
  readonly id: Hex;
  readonly size: number;
  readonly targetSize: number;
  readonly bytesWritten: number;
  readonly verified: boolean;
  readonly gptRelocated: boolean;
  /** What was on the target before (undefined: it did not exist). */
  readonly erased?: TargetDescription;
  readonly seconds: number;
  /** The partitions the image left out: restored empty, each with the note to show. */
  readonly leftOut: readonly LeftOutNote[];
}

export interface LeftOutNote {
  readonly index: number;
  readonly filesystem: string | null;
  readonly label: string | null;
  readonly size: number;
  /** The empty filesystem it now holds (null: none, it is blank). */
  readonly formatted: 'fat32' | null;
  /** "Partition 3 (NTFS 'Data', 600 GB) was not in this image and is blank now: …". */
  readonly note: string;
}

/** What to tell the user about a partition an image left out, once restored. */
function leftOutNote(l: LeftOutPartition): LeftOutNote {
  const p = l.partition;
  const what = partitionText(p);
  const fs = p.filesystem === undefined ? '' : ` as ${filesystemName(p.filesystem)}`;
  const note = l.formatted
    ? `${what} was not in this image: it is an empty ${l.formatted.toUpperCase()} filesystem now. Restore its files from your file backup.`
    : `${what} was not in this image and is blank now: format it${fs}, then restore its files from your file backup.`;
  return { index: p.index, filesystem: p.filesystem ?? null, label: p.label ?? null, size: p.size, formatted: l.formatted ?? null, note };
}

/** Writes an image snapshot onto a drive or into a file, all or nothing, after the safety checks. */
export async function restoreImageSnapshot(repo: Repository, ref: string, target: string, o: ImageRestoreOptions = {}): Promise<ImageRestoreResult> {
  await repo.lock(false, 'image restore', { reading: true });
  await repo.loadIndex();
  const { id, snapshot } = await repo.findSnapshot(ref, (s) => s.kind === 'image');
  if (snapshot.kind !== 'image') throw new LifeboatError('invalid-argument', `Snapshot ${id.slice(0, 8)} is a file backup, not a system image; restore its files instead.`);
  const m = await loadManifest(repo, snapshot.root);
  const tools = diskTools();
  const mounted = await tools.mountedOn(target);
  if (mounted.length > 0) throw new LifeboatError('invalid-argument', `${target} holds mounted filesystems (${mounted.join(', ')}). Unmount them first; Lifeboat will not overwrite a drive in use.`);
  const before = await describeTarget(target, tools);
  if (before?.kind === 'device' && before.size < m.size) {
    const lastEnd = Math.max(0, ...m.partitions.map((p) => p.start + p.size));
    if (lastEnd > before.size) throw new LifeboatError('invalid-argument', `The target ${target} holds ${formatBytes(before.size)}, but the imaged drive held ${formatBytes(m.size)} and its partitions reach ${formatBytes(lastEnd)}. Use a drive of at least ${formatBytes(m.size)}.`);
    if (!o.force) throw new LifeboatError('invalid-argument', `The target ${target} (${formatBytes(before.size)}) is smaller than the imaged drive (${formatBytes(m.size)}), but every partition fits. Run again with --force to restore anyway.`);
  }
  if (before && before.size > 0 && !o.force) {
    const agreed = o.confirmErase ? await o.confirmErase(before) : undefined;
    if (agreed === undefined) throw new LifeboatError('usage', `Restoring would erase everything on ${describeTargetText(before)}. Lifeboat erases a drive or file only when you confirm on a terminal, or with --force.`);
    if (!agreed) throw new LifeboatError('conflict', `Nothing was written to ${target}.`);
  }
  const started = performance.now();
  // A larger file keeps its size, as a larger drive does (the GPT backup header moves to its end).
  const out = await openTarget(target, Math.max(m.size, before?.kind === 'file' ? before.size : 0));
  try {
    // The chunks are opened here one after the other (see restoreImageFiles).
    const res = await reusingLargeBlocks(() => writeImage(repo, m.size > out.size ? { ...m, size: out.size } : m, out, { verify: o.verify !== false, ...(o.signal ? { signal: o.signal } : {}), onProgress: progress('restoring', o.onEvent) }));
    let gptRelocated = false;
    if (m.table.kind === 'gpt' && out.size > m.size) gptRelocated = await tools.relocateGpt(out, m.size);
    // Partitions left out of the image: blank (writeImage zeroed their ends), FAT ones formatted empty.
    const leftOut = (await formatLeftOut(m, out)).map(leftOutNote);
    await out.sync();
    return { id, size: m.size, targetSize: out.size, ...res, gptRelocated, ...(before ? { erased: before } : {}), seconds: (performance.now() - started) / 1000, leftOut };
  } finally {
    await out.close();
  }
}

export interface ImageFilesResult extends CopyOutSummary {
  readonly id: Hex;
  /** Chunks of the image read from the repository, of all it has: what copying files out cost. */
  readonly chunksFetched: number;
  readonly chunksInImage: number;
}

/**
 * Copies files and folders out of an image into folder `target` without restoring the drive:
 * each location is PARTITION[:PATH] ("2:/Users/ann/notes.txt"); a partition's root puts its
 * contents into `target` itself. Problems with single items are warnings ("2:/path" as path).
 */
export async function restoreImageFiles(repo: Repository, ref: string, locations: readonly string[], target: string, o: JobOptions = {}): Promise<ImageFilesResult> {
  const wanted = locations.map(parseLocation);
  await repo.lock(false, 'image restore-files', { reading: true });
  await repo.loadIndex();
  const image = await ImageTree.open(repo, ref);
  // The image's chunks are opened on this thread one after the other: with the allocator keeping
  // large blocks for reuse, each chunk's buffers are not fresh memory faulted in page by page (a
  // 760 MB partition copied out: 842,000 page faults, 25.5 CPU-s before).
  const total: CopyOutSummary = { files: 0, dirs: 0, symlinks: 0, hardlinks: 0, bytesWritten: 0, errors: 0 };
  await reusingLargeBlocks(async () => {
    for (const w of wanted) {
      const fs = await image.partition(w.partition);
      const node = await resolveIn(fs, w.path, '"lifeboat image ls"');
      const s = await copyOut(fs, [{ node, shown: '/' + splitPath(w.path).join('/') }], target, {
        ...(o.signal ? { signal: o.signal } : {}),
        owners: true,
        onWarning: (path, message) => o.onEvent?.({ type: 'warning', path: `${w.partition}:${path}`, message }),
      });
      for (const k of Object.keys(total) as (keyof CopyOutSummary)[]) total[k] += s[k];
    }
  });
  return { id: image.id, ...total, chunksFetched: image.img.source.stats.chunkLoads, chunksInImage: image.img.source.stats.chunkCount };
}

export interface ImageExportResult extends ExportResult {
  readonly id: Hex;
  readonly seconds: number;
}

/** Writes image snapshot `ref` as a file other tools open (raw, VHD, VHDX); an existing `out` is replaced only with `overwrite`. */
export async function exportImageSnapshot(repo: Repository, ref: string, format: ExportFormat, out: string, o: JobOptions & { readonly overwrite?: boolean } = {}): Promise<ImageExportResult> {
  await repo.lock(false, 'image export', { reading: true });
  await repo.loadIndex();
  const { id, snapshot } = await repo.findSnapshot(ref, (s) => s.kind === 'image');
  if (snapshot.kind !== 'image') throw new LifeboatError('invalid-argument', `Snapshot ${id.slice(0, 8)} is a file backup, not a system image.`);
  const m = await loadManifest(repo, snapshot.root);
  const started = performance.now();
  const res = await reusingLargeBlocks(() => exportImage(repo, m, format, out, { overwrite: o.overwrite === true, ...(o.signal ? { signal: o.signal } : {}), onProgress: progress('exporting', o.onEvent) })); // see restoreImageFiles
  return { id, ...res, seconds: (performance.now() - started) / 1000 };
}
