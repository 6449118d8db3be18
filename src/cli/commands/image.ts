/** System image commands: image create, restore, info. */
import type { Command } from 'commander';
import { ExitCode, LifeboatError, formatBytes } from '../../util/errors.js';
import { loadManifest, writeImage, type ImageProgress } from '../../image/imager.js';
import { openTarget } from '../../image/target.js';
import { diskTools } from '../../image/tools.js';
import { createImageSnapshot, planImageCreate } from '../../jobs/image.js';
import { renderEvents } from '../events.js';
import type { Context } from '../context.js';
import { localTime } from '../format.js';
import type { Run } from './repo.js';
import { Progress, formatDuration } from '../progress.js';
import { registerImageExportCommands } from './image-export.js';
import { registerImageFileCommands } from './image-files.js';

function progressPrinter(ctx: Context, label: string): (p: ImageProgress) => void {
  const bar = new Progress(ctx, label);
  return (p) => bar.update({ done: p.bytesDone, total: p.bytesTotal, extra: `stored ${formatBytes(p.bytesStored)}` });
}

export function registerImageCommands(program: Command, run: Run): void {
  const image = program.command('image').description('system images: an exact copy of a whole drive');

  image
    .command('create <source>')
    .description('image a drive (/dev/sdX, /dev/nvme0n1) or a raw disk image file; only used blocks are read')
    .option('--tag <tag>', 'add a tag (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--dry-run', 'show what would be read and how long it would take, without reading it all')
    .action(
      run(async (ctx, source: string, o: { tag: string[]; dryRun?: boolean }) => {
        const render = renderEvents(ctx);
        if (o.dryRun) {
          const plan = await planImageCreate(source, { signal: ctx.abort.signal, onEvent: render });
          if (ctx.json) return ctx.printJson(plan);
          ctx.out(`${plan.source}: ${formatBytes(plan.size)}, ${plan.table.kind.toUpperCase()} partition table, ${plan.partitions.length} partition(s).`);
          for (const p of plan.partitions) ctx.out(`  ${p.index}: ${p.filesystem ?? p.typeName}, ${formatBytes(p.size)}, ${p.method === 'allocation' ? `${formatBytes(p.usedBytes)} used` : 'every block will be read'}`);
          ctx.out(`Would read ${formatBytes(plan.bytesToRead)} (${((plan.bytesToRead / Math.max(1, plan.size)) * 100).toFixed(0)}% of the drive); about ${formatDuration(plan.estimatedSeconds)} on this machine.`);
          return;
        }
        const repo = await ctx.openRepository();
        const r = await createImageSnapshot(repo, source, { tags: o.tag, signal: ctx.abort.signal, onEvent: render });
        render.done();
        const s = r.snapshot.summary ?? {};
        if (ctx.json) ctx.printJson({ id: r.id, ...s, partitions: r.layout.partitions, warnings: r.layout.warnings, unreadable: r.unreadable });
        else {
          ctx.report(`Image snapshot ${r.id.slice(0, 8)} of ${r.snapshot.paths[0]} saved.`);
          ctx.report(`Read ${formatBytes(s['bytesRead'] ?? 0)} of ${formatBytes(s['size'] ?? 0)}; added ${formatBytes(s['bytesAdded'] ?? 0)} to the repository (${s['chunksNew']} new chunks of ${s['chunksStored']}) in ${formatDuration(s['seconds'] ?? 0)}.`);
        }
        return r.unreadable.length > 0 ? ExitCode.partial : ExitCode.ok;
      }),
    );

  image
    .command('restore <snapshot>')
    .description('write an image onto a drive or into a file (all-or-nothing)')
    .requiredOption('--target <device-or-file>', 'the drive (/dev/sdX) or file to write')
    .option('--force', 'write even though the target is smaller than the original drive (when every partition still fits)')
    .option('--no-verify', 'skip reading back what was written')
    .action(
      run(async (ctx, ref: string, o: { target: string; force?: boolean; verify: boolean }) => {
        const repo = await ctx.openRepository();
        await repo.lock(false, 'image restore');
        await repo.loadIndex();
        const { id, snapshot } = await repo.findSnapshot(ref, (s) => s.kind === 'image');
        if (snapshot.kind !== 'image') throw new LifeboatError('invalid-argument', `Snapshot ${id.slice(0, 8)} is a file backup, not a system image; use "lifeboat restore".`);
        const m = await loadManifest(repo, snapshot.root);
        const tools = diskTools();
        const mounted = await tools.mountedOn(o.target);
        if (mounted.length > 0) throw new LifeboatError('invalid-argument', `${o.target} holds mounted filesystems (${mounted.join(', ')}). Unmount them first; Lifeboat will not overwrite a drive in use.`);
        const existing = await tools.deviceSize(o.target);
        const targetIsDevice = await tools.isBlockDevice(o.target);
        if (targetIsDevice && existing !== undefined && existing < m.size) {
          const lastEnd = Math.max(0, ...m.partitions.map((p) => p.start + p.size));
          if (lastEnd > existing) {
            throw new LifeboatError('invalid-argument', `The target ${o.target} holds ${formatBytes(existing)}, but the imaged drive held ${formatBytes(m.size)} and its partitions reach ${formatBytes(lastEnd)}. Use a drive of at least ${formatBytes(m.size)}.`);
          }
          if (!o.force) {
            throw new LifeboatError('invalid-argument', `The target ${o.target} (${formatBytes(existing)}) is smaller than the imaged drive (${formatBytes(m.size)}), but every partition fits. Run again with --force to restore anyway.`);
          }
        }
        const target = await openTarget(o.target, m.size);
        try {
          const started = Date.now();
          const res = await writeImage(repo, m.size > target.size ? { ...m, size: target.size } : m, target, { verify: o.verify, signal: ctx.abort.signal, onProgress: progressPrinter(ctx, 'restoring') });
          let relocated = false;
          if (m.table.kind === 'gpt' && target.size > m.size) relocated = await tools.relocateGpt(target, m.size);
          await target.sync();
          const seconds = (Date.now() - started) / 1000;
          if (ctx.json) return ctx.printJson({ snapshot: id, target: o.target, size: m.size, targetSize: target.size, ...res, gptRelocated: relocated, seconds });
          ctx.report(`Restored image ${id.slice(0, 8)} (${formatBytes(m.size)}) onto ${o.target} in ${formatDuration(seconds)}${res.verified ? '; verified' : ''}.`);
          if (relocated) ctx.report('The target is larger: the GPT backup header was moved to its end.');
        } finally {
          await target.close();
        }
      }),
    );

  image
    .command('info <snapshot>')
    .description('partition table and partitions of an image snapshot')
    .action(
      run(async (ctx, ref: string) => {
        const repo = await ctx.openRepository();
        await repo.loadIndex();
        const { id, snapshot } = await repo.findSnapshot(ref, (s) => s.kind === 'image');
        if (snapshot.kind !== 'image') throw new LifeboatError('invalid-argument', `Snapshot ${id.slice(0, 8)} is a file backup, not a system image.`);
        const m = await loadManifest(repo, snapshot.root);
        if (ctx.json) return ctx.printJson({ id, time: snapshot.time, source: snapshot.paths[0], size: m.size, table: m.table, partitions: m.partitions, unreadable: m.unreadable, bytesUsed: m.bytesUsed });
        ctx.out(`Image ${id.slice(0, 8)} of ${snapshot.paths[0] ?? '?'} taken ${localTime(snapshot.time)}: ${formatBytes(m.size)}, ${m.table.kind.toUpperCase()} partition table.`);
        for (const p of m.partitions) {
          ctx.out(`  ${String(p.index).padStart(2)}  ${p.typeName.padEnd(22)} ${(p.filesystem ?? '-').padEnd(6)} ${(p.label ?? '').padEnd(12)} ${formatBytes(p.usedBytes).padStart(9)} used of ${formatBytes(p.size)}`);
        }
      }),
    );

  registerImageExportCommands(image, run);
  registerImageFileCommands(image, run);
}
