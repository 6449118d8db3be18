/** Renders a job's event stream (jobs/events.ts): a progress line per phase, warnings as they come (as JSON lines with --json). */
import { formatBytes } from '../util/errors.js';
import type { JobEvent } from '../jobs/events.js';
import type { Context } from './context.js';
import { Progress } from './progress.js';

export interface EventRenderer {
  (e: JobEvent): void;
  /** Clears the progress line before the summary is printed. */
  done(): void;
  /** Whether progress is shown at all (a job may skip work, such as a size walk, that only progress needs). */
  readonly shown: boolean;
}

export function renderEvents(ctx: Context): EventRenderer {
  const bars = new Map<string, Progress>();
  let counted = false;
  const clear = () => {
    for (const b of bars.values()) b.done();
    if (counted && (ctx.stderr as NodeJS.WriteStream).isTTY) ctx.stderr.write('\r\x1b[K');
    counted = false;
  };
  const render = (e: JobEvent) => {
    if (e.type === 'warning') {
      clear();
      if (ctx.json) ctx.stderr.write(JSON.stringify({ type: 'warning', ...(e.kind !== undefined ? { kind: e.kind } : {}), ...(e.path !== undefined ? { path: e.path } : {}), message: e.message }) + '\n');
      else ctx.warn(e.message);
    } else if (e.type === 'notice') {
      clear();
      // With --json, scripts get notices as JSON lines on stderr too (e.g. folders a backup left out).
      if (ctx.json && !ctx.global.quiet) ctx.stderr.write(JSON.stringify({ type: 'notice', ...(e.path !== undefined ? { path: e.path } : {}), message: e.message }) + '\n');
      else ctx.info(e.message);
    } else if (e.type === 'progress' && e.unit === 'items') {
      // Counts (packs, snapshots): a plain "phase: done/total" line on a terminal.
      if (!ctx.json && !ctx.global.quiet && (ctx.stderr as NodeJS.WriteStream).isTTY) ctx.stderr.write(`\r\x1b[K${e.phase}: ${e.done}${e.total !== undefined ? `/${e.total}` : ''}`);
      counted = true;
    } else if (e.type === 'progress') {
      let bar = bars.get(e.phase);
      if (!bar) bars.set(e.phase, (bar = new Progress(ctx, e.phase)));
      bar.update({ done: e.done, ...(e.total !== undefined ? { total: e.total } : {}), ...(e.files !== undefined ? { files: e.files } : {}), ...(e.stored !== undefined ? { extra: `stored ${formatBytes(e.stored)}` } : {}) });
    }
  };
  return Object.assign(render, { done: clear, shown: new Progress(ctx, '').shown });
}
