/** The mirror command: lifeboat mirror SRC DST [--keep-days N]. */
import type { Command } from 'commander';
import { ExitCode, LifeboatError, formatBytes } from '../../util/errors.js';
import { DEFAULT_KEEP_DAYS, MIRROR_VERSIONS, mirrorOnce, mirrorWatch, type MirrorResult } from '../../jobs/mirror.js';
import { DEFAULT_MAX_DELAY_MS, DEFAULT_SETTLE_MS } from '../../jobs/watch.js';
import { localTime } from '../format.js';
import { renderEvents } from '../events.js';
import type { Context } from '../context.js';
import type { Run } from './repo.js';
import { systemClock } from '../../util/clock.js';

/** "10s", "5m", "1h", "500ms" or plain seconds, in milliseconds. */
export function interval(option: string) {
  return (v: string): number => {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v.trim());
    if (!m) throw new LifeboatError('usage', `--${option} needs a time such as 10s, 5m or 1h, not "${v}".`);
    return Math.round(Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h']);
  };
}

export function days(v: string): number {
  if (!/^\d+$/.test(v)) throw new LifeboatError('usage', `--keep-days needs a whole number of days, such as 30, not "${v}".`);
  return Number.parseInt(v, 10);
}

/** Prints a run's summary; returns its exit code (partial when something could not be mirrored). */
function report(ctx: Context, r: MirrorResult, watching = false): number {
  const s = r.summary;
  if (ctx.json) ctx.printJson({ src: r.src, dst: r.dst, summary: s });
  else if (watching) {
    const what = [`${s.copied} copied`, `${s.renamed} renamed`, `${s.versioned} old versions kept`].filter((x) => !x.startsWith('0 '));
    ctx.report(`${localTime(new Date(systemClock.now()))}: mirror up to date${what.length ? ` (${what.join(', ')})` : ''}${s.conflicts + s.errors > 0 ? `; ${s.conflicts + s.errors} entries could not be mirrored` : ''}.`);
  }
  else {
    const parts = [`${s.copied} copied (${formatBytes(s.bytesCopied)}${s.hardLinked ? `; ${s.hardLinked} as hard links` : ''})`, `${s.renamed} renamed`, `${s.unchanged} unchanged`];
    if (s.metadataUpdated) parts.push(`${s.metadataUpdated} with new permissions or times`);
    if (s.adopted) parts.push(`${s.adopted} already there`);
    if (s.versioned) parts.push(`${s.versioned} old versions kept in ${MIRROR_VERSIONS}`);
    if (s.versionsExpired) parts.push(`${s.versionsExpired} expired version folders removed`);
    ctx.report(`Mirrored ${r.src} into ${r.dst} in ${s.durationSeconds} s: ${parts.join(', ')}.`);
    if (s.conflicts + s.errors > 0) ctx.report(`${s.conflicts + s.errors} entries could not be mirrored (see the warnings above).`);
  }
  return s.conflicts + s.errors > 0 ? ExitCode.partial : ExitCode.ok;
}

export function registerMirrorCommands(program: Command, run: Run): void {
  program
    .command('mirror <src> <dst>')
    .description('make DST a plain copy of the folder SRC that any computer can open; files deleted or overwritten in SRC are kept in DST/.lifeboat-versions')
    .option('--keep-days <n>', `days to keep deleted and overwritten files in ${MIRROR_VERSIONS} (0 keeps none)`, days, DEFAULT_KEEP_DAYS)
    .option('--allow-empty-source', 'mirror SRC even when it is empty although the mirror holds files from it (refused otherwise: its drive may not be connected)')
    .option('--watch', 'stay and follow changes: DST is brought up to date a few seconds after they settle (stop with Ctrl-C)')
    .option('--settle <time>', 'with --watch: wait this long after the last change', interval('settle'), DEFAULT_SETTLE_MS)
    .option('--max-delay <time>', 'with --watch: but never longer than this after the first change', interval('max-delay'), DEFAULT_MAX_DELAY_MS)
    .action(
      run(async (ctx, src: string, dst: string, o: { keepDays: number; allowEmptySource?: boolean; watch?: boolean; settle: number; maxDelay: number }) => {
        const render = renderEvents(ctx);
        if (o.watch) {
          ctx.info(`Mirroring ${src} into ${dst} and following its changes; stop with Ctrl-C.`);
          return mirrorWatch(src, dst, {
            keepDays: o.keepDays,
            allowEmptySource: o.allowEmptySource === true,
            settleMs: o.settle,
            maxDelayMs: o.maxDelay,
            signal: ctx.abort.signal,
            onEvent: render,
            onRun: (r) => {
              render.done();
              report(ctx, r, true);
            },
          });
        }
        const r = await mirrorOnce(src, dst, { keepDays: o.keepDays, allowEmptySource: o.allowEmptySource === true, signal: ctx.abort.signal, onEvent: render });
        render.done();
        return report(ctx, r);
      }),
    );
}
