/** image export (raw, VHD, VHDX files other tools open) and image import (disk files, Windows system images). */
import type { Command } from 'commander';
import { statSync } from 'node:fs';
import { ExitCode, LifeboatError, formatBytes } from '../../util/errors.js';
import { formatFromName, type ExportFormat } from '../../image/export.js';
import { exportImageSnapshot, importImages } from '../../jobs/image.js';
import { renderEvents } from '../events.js';
import { localTime } from '../format.js';
import type { Run } from './repo.js';
import { formatDuration } from '../progress.js';

const FORMATS: readonly ExportFormat[] = ['raw', 'vhd', 'vhdx'];

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
        const events = renderEvents(ctx);
        const res = await exportImageSnapshot(repo, ref, format, out, { overwrite: o.force === true, signal: ctx.abort.signal, onEvent: events });
        events.done();
        const { id, seconds, ...written } = res;
        const onDisk = statSync(out).blocks * 512;
        if (ctx.json) return ctx.printJson({ snapshot: id, ...written, bytesOnDisk: onDisk, seconds });
        ctx.report(`Exported image ${id.slice(0, 8)} (${formatBytes(res.size)} drive) to ${out} as ${format.toUpperCase()} in ${formatDuration(seconds)}; the file uses ${formatBytes(onDisk)}.`);
      }),
    );

  image
    .command('import <path>')
    .description('bring a disk file (raw, VHD, VHDX) or a Windows "Backup and Restore" system image (a WindowsImageBackup folder) into the repository as image snapshots')
    .option('--tag <tag>', 'add a tag (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .action(
      run(async (ctx, path: string, o: { tag: string[] }) => {
        const repo = await ctx.openRepository();
        const render = renderEvents(ctx);
        const r = await importImages(repo, path, {
          tags: o.tag,
          signal: ctx.abort.signal,
          onEvent: render,
          onImported: (i) => {
            render.done();
            if (ctx.json) return;
            const s = i.snapshot.summary ?? {};
            const wib = i.windowsBackup ? `, ${i.windowsBackup.pc}, backup of ${localTime(i.snapshot.time)}` : '';
            ctx.report(`Image snapshot ${i.id.slice(0, 8)} imported from ${i.source} (${i.format}, ${formatBytes(i.size)} drive${wib}).`);
            ctx.report(`Read ${formatBytes(s['bytesRead'] ?? 0)}; added ${formatBytes(s['bytesAdded'] ?? 0)} to the repository (${s['chunksNew']} new chunks of ${s['chunksStored']}) in ${formatDuration(s['seconds'] ?? 0)}.`);
          },
        });
        if (ctx.json) {
          const imported = r.imported.map((i) => ({ id: i.id, source: i.source, format: i.format, size: i.size, ...i.snapshot.summary, warnings: i.warnings, tags: i.snapshot.tags, time: i.snapshot.time }));
          ctx.printJson({ imported, failed: r.failed });
        }
        return r.failed.length > 0 ? ExitCode.partial : ExitCode.ok;
      }),
    );
}
