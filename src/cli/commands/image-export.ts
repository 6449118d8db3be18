/** image export (raw, VHD, VHDX files other tools open) and image import (disk files, Windows system images). */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { statSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { LifeboatError, formatBytes } from '../../util/errors.js';
import type { Snapshot } from '../../repo/snapshot.js';
import type { Repository } from '../../repo/repository.js';
import { loadManifest, type ImageProgress } from '../../image/imager.js';
import { exportImage, formatFromName, type ExportFormat } from '../../image/export.js';
import { findWindowsBackups, importDisk, openDiskFile, type WindowsBackupDisk } from '../../image/import.js';
import type { Context } from '../context.js';
import type { Run } from './repo.js';
import { Progress, formatDuration } from '../progress.js';

function username(): string {
  try {
    return userInfo().username;
  } catch {
    return '';
  }
}

function progressPrinter(ctx: Context, label: string, what: string): (p: ImageProgress) => void {
  const bar = new Progress(ctx, label);
  return (p) => bar.update({ done: p.bytesDone, total: p.bytesTotal, extra: `${what} ${formatBytes(p.bytesStored)}` });
}

const FORMATS: readonly ExportFormat[] = ['raw', 'vhd', 'vhdx'];

interface Imported {
  id: string;
  source: string;
  format: string;
  size: number;
  bytesRead: number;
  bytesAdded: number;
  chunksStored: number;
  chunksNew: number;
  seconds: number;
  warnings: string[];
  tags: readonly string[];
  time: string;
}

/** Imports one disk file as one image snapshot; throws before writing a snapshot if it is damaged. */
async function importOne(ctx: Context, repo: Repository, path: string, extraTags: readonly string[], wib: WindowsBackupDisk | undefined): Promise<Imported> {
  const warnings: string[] = [];
  const warn = (w: string) => {
    warnings.push(w);
    ctx.warn(w);
  };
  const disk = await openDiskFile(path, warn);
  try {
    const started = Date.now();
    const res = await importDisk(repo, disk, { path, format: disk.format }, { signal: ctx.abort.signal, onProgress: progressPrinter(ctx, 'importing', 'stored') });
    for (const w of res.layout.warnings) warn(w);
    const seconds = (Date.now() - started) / 1000;
    const host = wib ? wib.pc : hostname();
    const time = wib ? wib.time.toISOString() : new Date().toISOString();
    const tags = wib ? [wib.pc, wib.time.toISOString().replace(/\.000Z$/, 'Z'), ...extraTags] : [...extraTags];
    const parent = (await repo.listSnapshots(() => undefined)).filter((s) => s.snapshot.kind === 'image' && s.snapshot.host === host && s.snapshot.paths[0] === path && s.snapshot.time < time).pop();
    const snap: Snapshot = {
      version: 1,
      kind: 'image',
      time,
      host,
      user: username(),
      paths: [path],
      tags,
      root: res.manifestId,
      ...(parent ? { parent: parent.id } : {}),
      summary: { totalBytes: res.manifest.bytesUsed, size: disk.size, bytesRead: res.bytesRead, bytesAdded: res.bytesAdded, chunksStored: res.chunksStored, chunksNew: res.chunksNew, seconds },
      meta: {
        importedFrom: disk.kind,
        containerFormat: disk.format,
        ...(wib ? { windowsBackup: { pc: wib.pc, folder: wib.folder, time: wib.time.toISOString() } } : {}),
      },
    };
    const id = await repo.saveSnapshot(snap);
    return { id, source: path, format: disk.format, size: disk.size, bytesRead: res.bytesRead, bytesAdded: res.bytesAdded, chunksStored: res.chunksStored, chunksNew: res.chunksNew, seconds, warnings, tags, time };
  } finally {
    await disk.close();
  }
}

export function registerImageExportCommands(image: Command, run: Run): void {
  image
    .command('export <snapshot> <out>')
    .description('write an image snapshot as a file other tools open: raw (sparse), VHD or VHDX (dynamic; Hyper-V, VirtualBox, Windows "Attach VHD")')
    .option('--format <format>', 'raw, vhd or vhdx (default: from the file name)')
    .option('--force', 'replace <out> if it exists')
    .action(
      run(async (ctx, ref: string, out: string, o: { format?: string; force?: boolean }) => {
        const format = (o.format?.toLowerCase() ?? formatFromName(out)) as ExportFormat | undefined;
        if (!format) throw new LifeboatError('usage', `Say which format to write with --format raw, vhd or vhdx (the name ${out} does not tell).`);
        if (!FORMATS.includes(format)) throw new LifeboatError('usage', `Unknown format "${o.format ?? ''}"; use raw, vhd or vhdx.`);
        const repo = await ctx.openRepository();
        await repo.lock(false, 'image export');
        await repo.loadIndex();
        const { id, snapshot } = await repo.findSnapshot(ref, (s) => s.kind === 'image');
        if (snapshot.kind !== 'image') throw new LifeboatError('invalid-argument', `Snapshot ${id.slice(0, 8)} is a file backup, not a system image.`);
        const m = await loadManifest(repo, snapshot.root);
        const started = Date.now();
        const res = await exportImage(repo, m, format, out, { overwrite: o.force === true, signal: ctx.abort.signal, onProgress: progressPrinter(ctx, 'exporting', 'written') });
        const seconds = (Date.now() - started) / 1000;
        const onDisk = statSync(out).blocks * 512;
        if (ctx.json) return ctx.printJson({ snapshot: id, ...res, bytesOnDisk: onDisk, seconds });
        ctx.report(`Exported image ${id.slice(0, 8)} (${formatBytes(m.size)} drive) to ${out} as ${format.toUpperCase()} in ${formatDuration(seconds)}; the file uses ${formatBytes(onDisk)}.`);
      }),
    );

  image
    .command('import <path>')
    .description('bring a disk file (raw, VHD, VHDX) or a Windows "Backup and Restore" system image (a WindowsImageBackup folder) into the repository as image snapshots')
    .option('--tag <tag>', 'add a tag (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .action(
      run(async (ctx, path: string, o: { tag: string[] }) => {
        let isDir = false;
        try {
          isDir = statSync(path).isDirectory();
        } catch {
          throw new LifeboatError('not-found', `${path} does not exist. Check the path.`);
        }
        const jobs: { path: string; wib?: WindowsBackupDisk }[] = [];
        if (isDir) {
          const disks = await findWindowsBackups(resolve(path));
          if (disks.length === 0) {
            throw new LifeboatError('not-found', `${path} holds no Windows system image (expected WindowsImageBackup/<computer>/Backup <date>/*.vhd or *.vhdx).`);
          }
          for (const d of disks) jobs.push({ path: d.file, wib: d });
        } else {
          jobs.push({ path: resolve(path) });
        }
        const repo = await ctx.openRepository();
        await repo.lock(false, 'image import');
        await repo.loadIndex();
        const done: Imported[] = [];
        const failed: { source: string; error: string }[] = [];
        for (const j of jobs) {
          try {
            const r = await importOne(ctx, repo, j.path, o.tag, j.wib);
            done.push(r);
            if (!ctx.json) {
              ctx.report(`Image snapshot ${r.id.slice(0, 8)} imported from ${r.source} (${r.format}, ${formatBytes(r.size)} drive${j.wib ? `, ${j.wib.pc}, backup of ${r.time}` : ''}).`);
              ctx.report(`Read ${formatBytes(r.bytesRead)}; added ${formatBytes(r.bytesAdded)} to the repository (${r.chunksNew} new chunks of ${r.chunksStored}) in ${formatDuration(r.seconds)}.`);
            }
          } catch (e) {
            // One damaged disk of a multi-disk backup must not stop the others.
            if (jobs.length === 1 || !(e instanceof LifeboatError)) throw e;
            failed.push({ source: j.path, error: e.message });
            ctx.warn(`${j.path} was not imported: ${e.message}`);
          }
        }
        if (done.length === 0) throw new LifeboatError('corrupt', `None of the ${jobs.length} disks could be imported: ${failed.map((f) => f.error).join(' ')}`);
        if (ctx.json) ctx.printJson({ imported: done, failed });
        return failed.length > 0 ? 3 : 0;
      }),
    );
}
