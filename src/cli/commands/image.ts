/** System image commands: image create, restore, info. */
import type { Command } from 'commander';
import { ExitCode, LifeboatError, formatBytes } from '../../util/errors.js';
import { loadManifest } from '../../image/imager.js';
import { createImageSnapshot, planImageCreate, restoreImageSnapshot } from '../../jobs/image.js';
import { describeTargetText, type TargetDescription } from '../../image/target-info.js';
import type { PartitionChoice } from '../../image/layout.js';
import { excludedPartitions, partitionText } from '../../image/manifest.js';
import { renderEvents } from '../events.js';
import { localTime } from '../format.js';
import type { Run } from './repo.js';
import { formatDuration } from '../progress.js';
import { registerImageExportCommands } from './image-export.js';
import { registerImageFileCommands } from './image-files.js';


const collect = (v: string, prev: string[]) => [...prev, v];

/** Partition numbers from "1,2" (repeatable options collect several). */
function partitionNumbers(values: readonly string[], option: string): number[] {
  const out: number[] = [];
  for (const part of values.join(',').split(',')) {
    const t = part.trim();
    if (!/^\d{1,4}$/.test(t) || Number(t) < 1) throw new LifeboatError('usage', `${option} ${values.join(',')}: give partition numbers as the drive's table numbers them, such as ${option} 1,2.`);
    if (!out.includes(Number(t))) out.push(Number(t));
  }
  return out;
}

/** The partitions `--partitions` or `--exclude-partition` choose (undefined: all); both at once is a usage error. */
export function partitionChoice(o: { partitions?: string[]; excludePartition?: string[] }): PartitionChoice | undefined {
  const only = o.partitions ?? [];
  const exclude = o.excludePartition ?? [];
  if (only.length > 0 && exclude.length > 0) throw new LifeboatError('usage', 'Give either --partitions (the ones to image) or --exclude-partition (the ones to leave out), not both.');
  if (only.length > 0) return { only: partitionNumbers(only, '--partitions') };
  if (exclude.length > 0) return { exclude: partitionNumbers(exclude, '--exclude-partition') };
  return undefined;
}

/** The options that choose partitions, shared by image create and job add --image. */
export function addPartitionOptions(c: Command): Command {
  return c
    .option('--partitions <list>', 'image only these partitions (numbers as in the partition table, e.g. 1,2); the table and boot areas are always imaged, the others restore empty', collect, [] as string[])
    .option('--exclude-partition <n>', 'leave this partition out of the image (repeatable, or a list such as 3,4); it restores empty', collect, [] as string[]);
}

/** "GPT partition table", or "no partition table" for a drive that has none. */
function tableName(kind: string): string {
  return kind === 'none' ? 'no partition table' : `${kind.toUpperCase()} partition table`;
}

export function registerImageCommands(program: Command, run: Run): void {
  const image = program.command('image').description('system images: an exact copy of a whole drive');

  addPartitionOptions(
    image
      .command('create <source>')
      .description('image a drive (/dev/sdX, /dev/nvme0n1) or a raw disk image file; only used blocks are read')
      .option('--tag <tag>', 'add a tag (repeatable)', collect, [] as string[])
      .option('--dry-run', 'show what would be read and how long it would take, without reading it all'),
  ).action(
    run(async (ctx, source: string, o: { tag: string[]; dryRun?: boolean; partitions: string[]; excludePartition: string[] }) => {
      const render = renderEvents(ctx);
      const partitions = partitionChoice(o);
      if (o.dryRun) {
        const plan = await planImageCreate(source, { signal: ctx.abort.signal, onEvent: render, ...(partitions ? { partitions } : {}) });
        if (ctx.json) return ctx.printJson(plan);
        ctx.out(`${plan.source}: ${formatBytes(plan.size)}, ${tableName(plan.table.kind)}, ${plan.partitions.length} partition(s).`);
        for (const p of plan.partitions) ctx.out(`  ${p.index}: ${p.filesystem ?? p.typeName}, ${formatBytes(p.size)}, ${p.method === 'excluded' ? 'left out (not read; a restore leaves it empty)' : p.method === 'allocation' ? `${formatBytes(p.usedBytes)} used` : 'every block will be read'}`);
        ctx.out(`Would read ${formatBytes(plan.bytesToRead)} (${((plan.bytesToRead / Math.max(1, plan.size)) * 100).toFixed(0)}% of the drive); about ${formatDuration(plan.estimatedSeconds)} on this machine.`);
        return;
      }
      const repo = await ctx.openRepository();
      const r = await createImageSnapshot(repo, source, { tags: o.tag, signal: ctx.abort.signal, onEvent: render, ...(partitions ? { partitions } : {}) });
      render.done();
      const s = r.snapshot.summary ?? {};
      if (ctx.json) ctx.printJson({ id: r.id, ...s, partitions: r.layout.partitions, warnings: r.layout.warnings, unreadable: r.unreadable });
      else {
        ctx.report(`Image snapshot ${r.id.slice(0, 8)} of ${r.snapshot.paths[0]} saved.`);
        ctx.report(`Read ${formatBytes(s['bytesRead'] ?? 0)} of ${formatBytes(s['size'] ?? 0)}; added ${formatBytes(s['bytesAdded'] ?? 0)} to the repository (${s['chunksNew']} new chunks of ${s['chunksStored']}) in ${formatDuration(s['seconds'] ?? 0)}.`);
        for (const p of excludedPartitions(r.layout)) ctx.report(`${partitionText(p)} was left out: restoring this image leaves it empty.`);
      }
      return r.unreadable.length > 0 ? ExitCode.partial : ExitCode.ok;
    }),
  );

  image
    .command('restore <snapshot>')
    .description('write an image onto a drive or into a file (all-or-nothing); a target that holds data is erased only after you confirm')
    .requiredOption('--target <device-or-file>', 'the drive (/dev/sdX) or file to write')
    .option('--force', 'do not ask: erase a target that holds data, or one smaller than the original drive (when every partition still fits)')
    .option('--no-verify', 'skip reading back what was written')
    .action(
      run(async (ctx, ref: string, o: { target: string; force?: boolean; verify: boolean }) => {
        const repo = await ctx.openRepository();
        const render = renderEvents(ctx);
        const confirmErase = process.stdin.isTTY
          ? (d: TargetDescription) => {
              ctx.stderr.write(`This erases everything on ${describeTargetText(d)}.\n`);
              return ctx.confirm(`Erase ${d.path} and write the image onto it?`);
            }
          : undefined;
        const r = await restoreImageSnapshot(repo, ref, o.target, { verify: o.verify, force: o.force === true, signal: ctx.abort.signal, onEvent: render, ...(confirmErase ? { confirmErase } : {}) });
        render.done();
        if (ctx.json) return ctx.printJson({ snapshot: r.id, target: o.target, ...r });
        ctx.report(`Restored image ${r.id.slice(0, 8)} (${formatBytes(r.size)}) onto ${o.target} in ${formatDuration(r.seconds)}${r.verified ? '; verified' : ''}.`);
        if (r.targetSize > r.size) ctx.report(`The target is larger (${formatBytes(r.targetSize)}) and keeps its size${r.gptRelocated ? '; the GPT backup header was moved to its end' : ''}.`);
        for (const l of r.leftOut) ctx.out(l.note);
      }),
    );

  image
    .command('info <snapshot>')
    .description('partition table and partitions of an image snapshot')
    .action(
      run(async (ctx, ref: string) => {
        const repo = await ctx.openRepository();
        const { id, snapshot } = await repo.findSnapshot(ref, (s) => s.kind === 'image');
        if (snapshot.kind !== 'image') throw new LifeboatError('invalid-argument', `Snapshot ${id.slice(0, 8)} is a file backup, not a system image.`);
        const m = await loadManifest(repo, snapshot.root);
        if (ctx.json) return ctx.printJson({ id, time: snapshot.time, source: snapshot.paths[0], size: m.size, table: m.table, partitions: m.partitions, unreadable: m.unreadable, bytesUsed: m.bytesUsed });
        ctx.out(`Image ${id.slice(0, 8)} of ${snapshot.paths[0] ?? '?'} taken ${localTime(snapshot.time)}: ${formatBytes(m.size)}, ${tableName(m.table.kind)}.`);
        for (const p of m.partitions) {
          const used = p.method === 'excluded' ? `not in this image (${formatBytes(p.size)})` : `${formatBytes(p.usedBytes).padStart(9)} used of ${formatBytes(p.size)}`;
          ctx.out(`  ${String(p.index).padStart(2)}  ${p.typeName.padEnd(22)} ${(p.filesystem ?? '-').padEnd(6)} ${(p.label ?? '').padEnd(12)} ${used}`);
        }
      }),
    );

  registerImageExportCommands(image, run);
  registerImageFileCommands(image, run);
}
