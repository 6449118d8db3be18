/** Maintenance commands: forget, prune, pin, unpin, repair config, repair index, repair snapshots. */
import type { Command } from 'commander';
import { LifeboatError, formatBytes } from '../../util/errors.js';
import { parseDuration, type ForgetPolicy } from '../../repo/forget.js';
import type { PruneReport } from '../../repo/prune.js';
import { forgetSnapshots, pin, pruneRepository, repairConfigJob, repairIndexJob, repairSnapshotsJob, unpin } from '../../jobs/maintenance.js';
import { renderEvents } from '../events.js';
import type { Repository } from '../../repo/repository.js';
import type { Context } from '../context.js';
import { localTime } from '../format.js';
import type { Run } from './repo.js';

function count(name: string) {
  return (v: string): number => {
    if (v === 'unlimited') return -1;
    if (!/^-?\d+$/.test(v)) throw new LifeboatError('usage', `--${name} needs a whole number or "unlimited", not "${v}".`);
    return Number.parseInt(v, 10);
  };
}

export function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

export interface KeepOptions {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  keepWithin?: string;
  keepWithinHourly?: string;
  keepWithinDaily?: string;
  keepWithinWeekly?: string;
  keepWithinMonthly?: string;
  keepWithinYearly?: string;
  keepTag: string[];
}

interface ForgetOptions extends KeepOptions {
  host: string[];
  dryRun?: boolean;
  prune?: boolean;
  maxUnused: string;
}

export function policyOf(o: KeepOptions): ForgetPolicy {
  const p: { -readonly [K in keyof ForgetPolicy]: ForgetPolicy[K] } = {};
  if (o.keepLast !== undefined) p.last = o.keepLast;
  if (o.keepHourly !== undefined) p.hourly = o.keepHourly;
  if (o.keepDaily !== undefined) p.daily = o.keepDaily;
  if (o.keepWeekly !== undefined) p.weekly = o.keepWeekly;
  if (o.keepMonthly !== undefined) p.monthly = o.keepMonthly;
  if (o.keepYearly !== undefined) p.yearly = o.keepYearly;
  if (o.keepWithin !== undefined) p.within = parseDuration(o.keepWithin);
  if (o.keepWithinHourly !== undefined) p.withinHourly = parseDuration(o.keepWithinHourly);
  if (o.keepWithinDaily !== undefined) p.withinDaily = parseDuration(o.keepWithinDaily);
  if (o.keepWithinWeekly !== undefined) p.withinWeekly = parseDuration(o.keepWithinWeekly);
  if (o.keepWithinMonthly !== undefined) p.withinMonthly = parseDuration(o.keepWithinMonthly);
  if (o.keepWithinYearly !== undefined) p.withinYearly = parseDuration(o.keepWithinYearly);
  if (o.keepTag.length > 0) p.tags = o.keepTag.map((t) => t.split(',').filter((x) => x !== ''));
  return p;
}

function maxUnusedOf(v: string): number {
  const n = Number(v.replace(/%$/, ''));
  if (!Number.isFinite(n) || n < 0) throw new LifeboatError('usage', `--max-unused needs a percentage such as 5 or 5%, not "${v}".`);
  return n;
}

async function runPrune(ctx: Context, repo: Repository, maxUnused: number, dryRun: boolean): Promise<PruneReport> {
  const render = renderEvents(ctx);
  const r = await pruneRepository(repo, { maxUnusedPercent: maxUnused, dryRun, signal: ctx.abort.signal, onEvent: render });
  render.done();
  if (ctx.json) return r;
  const would = dryRun ? 'would be ' : '';
  ctx.report(`${r.snapshots} snapshots need ${r.blobsUsed} blocks (${formatBytes(r.bytes.used)}) in ${formatBytes(r.bytes.before)} of packs.`);
  ctx.report(`Packs: ${r.packs.deleted} unused ${would}deleted, ${r.packs.repacked} ${would}repacked, ${r.packs.unindexed} left by interrupted backups ${would}deleted, ${r.packs.kept} kept.`);
  if (r.pinsRemoved > 0) ctx.report(`Removed ${r.pinsRemoved} pin(s) of snapshots that no longer exist.`);
  if (r.leftoversRemoved > 0) ctx.report(`Removed ${r.leftoversRemoved} unfinished upload(s) or temporary file(s) that interrupted backups left behind.`);
  ctx.report(`${dryRun ? 'Would free' : 'Freed'} ${formatBytes(Math.max(0, r.bytes.freed))}${r.bytes.unusedRemaining > 0 ? `; ${formatBytes(r.bytes.unusedRemaining)} unused stays in partly used packs` : ''}.`);
  return r;
}

/** The --keep-* options of forget, also used by `job add` for a job's retention. */
export function keepOptions(cmd: Command): Command {
  return cmd
    .option('-l, --keep-last <n>', 'keep the newest n snapshots', count('keep-last'))
    .option('-H, --keep-hourly <n>', 'keep the newest snapshot of each of the last n hours that have one', count('keep-hourly'))
    .option('-d, --keep-daily <n>', 'keep the newest snapshot of each of the last n days that have one', count('keep-daily'))
    .option('-w, --keep-weekly <n>', 'keep the newest snapshot of each of the last n weeks that have one', count('keep-weekly'))
    .option('-m, --keep-monthly <n>', 'keep the newest snapshot of each of the last n months that have one', count('keep-monthly'))
    .option('-y, --keep-yearly <n>', 'keep the newest snapshot of each of the last n years that have one', count('keep-yearly'))
    .option('--keep-within <duration>', 'keep every snapshot newer than this before the newest one (e.g. 1y5m7d2h)')
    .option('--keep-within-hourly <duration>', 'keep hourly snapshots within this duration')
    .option('--keep-within-daily <duration>', 'keep daily snapshots within this duration')
    .option('--keep-within-weekly <duration>', 'keep weekly snapshots within this duration')
    .option('--keep-within-monthly <duration>', 'keep monthly snapshots within this duration')
    .option('--keep-within-yearly <duration>', 'keep yearly snapshots within this duration')
    .option('--keep-tag <taglist>', 'keep snapshots that have all these tags (comma-separated; may be repeated)', collect, []);
}

export function registerMaintenanceCommands(program: Command, run: Run): void {
  keepOptions(
    program
      .command('forget [snapshot...]')
      .description('remove snapshots by retention rules (or by id); pinned snapshots are always kept'),
  )
    .option('--host <host>', 'only consider snapshots of this host (may be repeated)', collect, [])
    .option('-n, --dry-run', 'only show what would be removed, and why each snapshot is kept')
    .option('--prune', 'run prune afterwards to free the space')
    .option('--max-unused <percent>', 'with --prune: unused space tolerated in packs, in percent', '5')
    .action(
      run(async (ctx, refs: string[], o: ForgetOptions) => {
        const repo = await ctx.openRepository();
        const { groups, wouldRemove: removeIds } = await forgetSnapshots(repo, { ids: refs, ...(refs.length === 0 ? { policy: policyOf(o) } : {}), hosts: o.host, dryRun: o.dryRun === true });
        let pruneReport: PruneReport | undefined;
        if (!ctx.json) {
          for (const g of groups) {
            if (refs.length === 0) ctx.out(`${g.kind} snapshots of ${g.host}: ${g.paths.join(', ')}`);
            for (const k of g.keep) ctx.out(`  keep    ${k.snapshot.id.slice(0, 8)}  ${localTime(k.snapshot.time)}  ${k.reasons.join(', ')}${k.snapshot.note ? ` (${k.snapshot.note})` : ''}`);
            for (const r of g.remove) ctx.out(`  ${o.dryRun ? 'would remove' : 'remove'}  ${r.id.slice(0, 8)}  ${localTime(r.time)}`);
          }
          ctx.report(o.dryRun ? `${removeIds.length} snapshot(s) would be removed.` : `Removed ${removeIds.length} snapshot(s).`);
        }
        if (o.prune && (removeIds.length > 0 || !o.dryRun)) pruneReport = await runPrune(ctx, repo, maxUnusedOf(o.maxUnused), o.dryRun === true);
        if (ctx.json) {
          ctx.printJson({
            dryRun: o.dryRun === true,
            groups: groups.map((g) => ({
              kind: g.kind,
              host: g.host,
              paths: g.paths,
              keep: g.keep.map((k) => ({ id: k.snapshot.id, time: k.snapshot.time, tags: k.snapshot.tags, reasons: k.reasons })),
              remove: g.remove.map((r) => ({ id: r.id, time: r.time, tags: r.tags })),
            })),
            removed: o.dryRun ? [] : removeIds,
            ...(pruneReport ? { prune: pruneReport } : {}),
          });
        }
      }),
    );

  program
    .command('prune')
    .description('delete data that no snapshot needs and repack mostly unused packs')
    .option('--max-unused <percent>', 'unused space tolerated in packs, in percent of the used space', '5')
    .option('-n, --dry-run', 'only show what would be done')
    .action(
      run(async (ctx, o: { maxUnused: string; dryRun?: boolean }) => {
        const repo = await ctx.openRepository();
        const r = await runPrune(ctx, repo, maxUnusedOf(o.maxUnused), o.dryRun === true);
        if (ctx.json) ctx.printJson(r);
      }),
    );

  program
    .command('pin <snapshot>')
    .description('protect a snapshot: forget and prune never remove it')
    .option('--note <text>', 'why it is kept (shown in listings)', '')
    .action(
      run(async (ctx, ref: string, o: { note: string }) => {
        const repo = await ctx.openRepository();
        const { id, info } = await pin(repo, ref, o.note);
        if (ctx.json) return ctx.printJson({ snapshot: id, ...info });
        ctx.report(`Pinned snapshot ${id.slice(0, 8)}${o.note ? ` (${o.note})` : ''}.`);
      }),
    );

  program
    .command('unpin <snapshot>')
    .description('remove the protection of a pinned snapshot')
    .action(
      run(async (ctx, ref: string) => {
        const repo = await ctx.openRepository();
        const { id, was } = await unpin(repo, ref);
        if (ctx.json) return ctx.printJson({ snapshot: id, unpinned: was });
        ctx.report(was ? `Unpinned snapshot ${id.slice(0, 8)}.` : `Snapshot ${id.slice(0, 8)} was not pinned.`);
      }),
    );

  const repair = program.command('repair').description('rebuild a damaged repository as far as possible');
  repair
    .command('config')
    .description('write the config file or its copy again from the one that is sound')
    .option('-n, --dry-run', 'only report what would be written')
    .action(
      run(async (ctx, o: { dryRun?: boolean }) => {
        const repo = await ctx.openRepository();
        const r = await repairConfigJob(repo, { dryRun: o.dryRun === true });
        if (ctx.json) return ctx.printJson(r);
        for (const f of r.written) ctx.out(`${o.dryRun ? 'would write' : 'wrote'} ${f} again`);
        ctx.out(r.written.length === 0 ? 'The config file and its copy are sound.' : `${r.written.length} config file(s) ${o.dryRun ? 'would be' : 'were'} written again.`);
        return 0;
      }),
    );
  repair
    .command('index')
    .description('rebuild the index from the packs (keeping every block of a damaged pack that still verifies, found by scanning it if need be)')
    .option('-n, --dry-run', 'only read the packs and report')
    .action(
      run(async (ctx, o: { dryRun?: boolean }) => {
        const repo = await ctx.openRepository({ cache: false }); // the store itself, not the cache
        const events = renderEvents(ctx);
        const r = await repairIndexJob(repo, { dryRun: o.dryRun === true, signal: ctx.abort.signal, onEvent: events });
        events.done();
        if (ctx.json) return ctx.printJson(r);
        for (const d of r.damagedPacks) ctx.out(`damaged: ${d.file}: ${d.message}${d.keptBlobs > 0 ? ` (kept the ${d.keptBlobs} block(s) of it that still verify${d.salvagedBlobs > 0 ? `, ${d.salvagedBlobs} of them found by scanning the pack` : ''})` : ''}`);
        ctx.out(`${r.indexedPacks} of ${r.packs} packs indexed (${r.blobs} blocks)${o.dryRun ? '' : `; wrote ${r.indexFilesWritten} index file(s), removed ${r.indexFilesDeleted} old one(s)`}.`);
        if (r.damagedPacks.length > 0) ctx.out('Snapshots that need data from damaged packs: see "lifeboat check", then "lifeboat repair snapshots".');
        return r.damagedPacks.length > 0 ? 1 : 0;
      }),
    );
  repair
    .command('snapshots')
    .description('for each snapshot with missing data, write a copy that keeps what is intact and marks each damaged file')
    .option('--forget', 'remove each damaged snapshot once its repaired copy is written')
    .option('--read-data', 'also read every block, so damaged (not only missing) data counts')
    .option('-n, --dry-run', 'only report what would be repaired')
    .action(
      run(async (ctx, o: { forget?: boolean; readData?: boolean; dryRun?: boolean }) => {
        const repo = await ctx.openRepository({ cache: false }); // the store itself, not the cache
        const results = await repairSnapshotsJob(repo, { forget: o.forget === true, readData: o.readData === true, dryRun: o.dryRun === true, signal: ctx.abort.signal });
        if (ctx.json) return ctx.printJson(results);
        for (const r of results) {
          const head = `snapshot ${r.id.slice(0, 8)} (${r.kind}): `;
          if (r.status === 'repaired') ctx.out(head + (o.dryRun ? 'would be repaired' : `repaired as ${r.newId!.slice(0, 8)}${r.removed ? ', the damaged one removed' : ''}`));
          else ctx.out(head + (r.status === 'unrecoverable' ? `cannot be repaired: ${r.message ?? ''}${r.removed ? '; removed' : ''}` : `not repaired: ${r.message ?? ''}`));
          for (const d of r.damaged) ctx.out(`  damaged: ${d.where}${d.message ? ` (${d.message})` : ''}`);
        }
        ctx.out(results.length === 0 ? 'No snapshot needs repair.' : `${results.filter((r) => r.status === 'repaired').length} of ${results.length} damaged snapshot(s) ${o.dryRun ? 'can be' : 'were'} repaired.`);
        return results.every((r) => r.status === 'repaired') ? 0 : 1;
      }),
    );
}
