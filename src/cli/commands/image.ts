/** System image commands: image create, restore, info. */
import type { Command } from 'commander';
import { hostname, userInfo } from 'node:os';
import { resolve } from 'node:path';
import { LifeboatError, formatBytes } from '../../util/errors.js';
import type { Snapshot } from '../../repo/snapshot.js';
import { indexUnindexedPacks } from '../../repo/repair.js';
import { createImage, loadManifest, previousImage, totalBytes, writeImage, type ImageProgress } from '../../image/imager.js';
import { analyzeDisk } from '../../image/layout.js';
import { openTarget } from '../../image/target.js';
import { openSource } from '../../image/source.js';
import { diskTools } from '../../image/tools.js';
import type { Context } from '../context.js';
import { localTime } from '../format.js';
import type { Run } from './repo.js';
import { Progress, formatDuration } from '../progress.js';
import { registerImageExportCommands } from './image-export.js';
import { registerImageFileCommands } from './image-files.js';

function username(): string {
  try {
    return userInfo().username;
  } catch {
    return '';
  }
}

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
      run(async (ctx, sourceArg: string, o: { tag: string[]; dryRun?: boolean }) => {
        const sourcePath = resolve(sourceArg); // snapshots record the absolute path of the drive or file
        const unreadable: { start: number; length: number }[] = [];
        const src = await openSource(sourcePath, {
          onUnreadable: (start, length) => {
            unreadable.push({ start, length });
            ctx.warn(`cannot read ${length} bytes at byte ${start} of ${sourcePath}; they will restore as zeros`);
          },
        });
        try {
          if (src.size === 0) throw new LifeboatError('invalid-argument', `${sourcePath} is empty; there is nothing to image.`);
          const tools = diskTools();
          for (const w of await tools.mountWarnings(sourcePath)) ctx.warn(w);
          const layout = await analyzeDisk(src, tools.tables, tools.probes);
          for (const w of layout.warnings) ctx.warn(w);
          const toRead = totalBytes(layout.used);
          if (o.dryRun) {
            const rate = await measureReadRate(src, layout.used);
            const seconds = toRead / Math.min(rate, 250e6); // compression bound on a typical 2-core machine
            const out = { source: sourcePath, size: src.size, bytesToRead: toRead, partitions: layout.partitions, table: layout.table, estimatedSeconds: Math.round(seconds) };
            if (ctx.json) return ctx.printJson(out);
            ctx.out(`${sourcePath}: ${formatBytes(src.size)}, ${layout.table.kind.toUpperCase()} partition table, ${layout.partitions.length} partition(s).`);
            for (const p of layout.partitions) ctx.out(`  ${p.index}: ${p.filesystem ?? p.typeName}, ${formatBytes(p.size)}, ${p.method === 'allocation' ? `${formatBytes(p.usedBytes)} used` : 'every block will be read'}`);
            ctx.out(`Would read ${formatBytes(toRead)} (${((toRead / Math.max(1, src.size)) * 100).toFixed(0)}% of the drive); about ${formatDuration(seconds)} on this machine.`);
            return;
          }
          const repo = await ctx.openRepository();
          await repo.lock(false, 'image create');
          await indexUnindexedPacks(repo); // loads the index; reuses what an interrupted run uploaded
          const started = Date.now();
          // The previous image of this drive: its chunks are the bases of this image's delta blobs.
          const parent = await previousImage(repo, hostname(), sourcePath, src.size, layout.table);
          const res = await createImage(repo, src, layout.used, { table: layout.table, partitions: layout.partitions, source: { path: sourcePath }, unreadable }, {
            parent: parent?.snapshot.root,
            signal: ctx.abort.signal,
            onProgress: progressPrinter(ctx, 'imaging'),
          });
          const seconds = (Date.now() - started) / 1000;
          const snap: Snapshot = {
            version: 1,
            kind: 'image',
            time: new Date().toISOString(),
            host: hostname(),
            user: username(),
            paths: [sourcePath],
            tags: o.tag,
            root: res.manifestId,
            ...(parent ? { parent: parent.id } : {}),
            ...(unreadable.length ? { incomplete: { count: unreadable.length, paths: unreadable.slice(0, 100).map((u) => `bytes ${u.start}-${u.start + u.length - 1}`) } } : {}),
            summary: { totalBytes: res.manifest.bytesUsed, size: src.size, bytesRead: res.bytesRead, bytesAdded: res.bytesAdded, chunksStored: res.chunksStored, chunksNew: res.chunksNew, chunksDelta: res.chunksDelta, seconds },
          };
          const id = await repo.saveSnapshot(snap);
          if (ctx.json) ctx.printJson({ id, ...snap.summary, partitions: layout.partitions, warnings: layout.warnings, unreadable });
          else {
            ctx.report(`Image snapshot ${id.slice(0, 8)} of ${sourcePath} saved.`);
            ctx.report(`Read ${formatBytes(res.bytesRead)} of ${formatBytes(src.size)}; added ${formatBytes(res.bytesAdded)} to the repository (${res.chunksNew} new chunks of ${res.chunksStored}) in ${formatDuration(seconds)}.`);
          }
          return unreadable.length > 0 ? 3 : 0;
        } finally {
          await src.close();
        }
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
