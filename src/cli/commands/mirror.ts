/** The mirror command: lifeboat mirror SRC DST [--keep-days N]. */
import type { Command } from 'commander';
import { ExitCode, LifeboatError, formatBytes } from '../../util/errors.js';
import { platform } from '../../files/platform/platform.js';
import { DEFAULT_KEEP_DAYS, MIRROR_VERSIONS, mirrorOnce, type MirrorResult } from '../../jobs/mirror.js';
import { renderEvents } from '../events.js';
import type { Context } from '../context.js';
import type { Run } from './repo.js';

function days(v: string): number {
  if (!/^\d+$/.test(v)) throw new LifeboatError('usage', `--keep-days needs a whole number of days, such as 30, not "${v}".`);
  return Number.parseInt(v, 10);
}

/** Prints a run's summary; returns its exit code (partial when something could not be mirrored). */
function report(ctx: Context, r: MirrorResult): number {
  const s = r.summary;
  if (ctx.json) ctx.printJson({ src: r.src, dst: r.dst, summary: s });
  else {
    const parts = [`${s.copied} copied (${formatBytes(s.bytesCopied)})`, `${s.renamed} renamed`, `${s.unchanged} unchanged`];
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
    .action(
      run(async (ctx, src: string, dst: string, o: { keepDays: number }) => {
        const p = platform();
        if (!p.exact && p.missing) ctx.warn(p.missing);
        const render = renderEvents(ctx);
        const r = await mirrorOnce(src, dst, { keepDays: o.keepDays, signal: ctx.abort.signal, onEvent: render });
        render.done();
        return report(ctx, r);
      }),
    );
}
