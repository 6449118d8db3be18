/** lifeboat watch PATH…: continuous protection (jobs/continuous.ts). */
import type { Command } from 'commander';
import { formatBytes } from '../../util/errors.js';
import { protectContinuously } from '../../jobs/continuous.js';
import { DEFAULT_MAX_DELAY_MS, DEFAULT_SETTLE_MS } from '../../jobs/watch.js';
import { renderEvents } from '../events.js';
import { defaultCacheDir } from '../context.js';
import { localTime } from '../format.js';
import { interval } from './mirror.js';
import type { Run } from './repo.js';
import { systemClock } from '../../util/clock.js';

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

export function registerWatchCommands(program: Command, run: Run): void {
  program
    .command('watch <path...>')
    .description('continuous protection: take a snapshot of the folders a few seconds after they change, and thin old snapshots like Time Machine (stop with Ctrl-C)')
    .option('--settle <time>', 'wait this long after the last change', interval('settle'), DEFAULT_SETTLE_MS)
    .option('--max-delay <time>', 'but never longer than this after the first change', interval('max-delay'), DEFAULT_MAX_DELAY_MS)
    .option('--exclude <pattern>', 'skip paths matching a pattern (repeatable), as backup does', collect, [] as string[])
    .option('--tag <tag>', 'add a tag to every snapshot (repeatable)', collect, [] as string[])
    .option('--keep-all', 'keep every snapshot instead of thinning them (all for a day, hourly for a week, daily for a month, weekly after)')
    .action(
      run(async (ctx, paths: string[], o: { settle: number; maxDelay: number; exclude: string[]; tag: string[]; keepAll?: boolean }) => {
        const repo = await ctx.openRepository();
        const render = renderEvents(ctx);
        const settle = o.settle < 1000 ? `${o.settle} ms` : `${Math.round(o.settle / 1000)} s`;
        ctx.info(`Watching ${paths.join(', ')}: a snapshot is taken ${settle} after changes settle; stop with Ctrl-C.`);
        return protectContinuously(repo, {
          paths,
          excludes: o.exclude,
          tags: o.tag,
          ownFolders: ctx.ownFolders(),
          excludeCaches: true,
          cacheDir: defaultCacheDir(),
          settleMs: o.settle,
          maxDelayMs: o.maxDelay,
          ...(o.keepAll ? { retention: null } : {}),
          signal: ctx.abort.signal,
          onEvent: render,
          onSnapshot: (r, _batch, thinned) => {
            render.done();
            const s = r.summary;
            if (ctx.json) ctx.printJson({ snapshot: r.snapshotId, parent: r.parent ?? null, summary: s, thinned });
            else ctx.report(`${localTime(new Date(systemClock.now()))}: snapshot ${r.snapshotId.slice(0, 8)} (${s.filesNew} new, ${s.filesChanged} changed files, ${formatBytes(s.bytesAdded)} added${thinned ? `; ${thinned} older snapshots thinned out` : ''}).`);
          },
        });
      }),
    );
}
