/**
 * Renders progress events: a live line with amount, rate and time left on a terminal; JSON lines
 * with --json when LIFEBOAT_PROGRESS_JSON=1 or --json on a terminal; nothing when output is piped.
 * A percentage and a time left appear only with a real total (util/progress.ts).
 */
import { formatBytes } from '../util/errors.js';
import type { Context } from './context.js';
import { Estimator, type ProgressState } from '../util/progress.js';

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return 'unknown time';
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  const h = Math.floor(seconds / 3600);
  return `${h} h ${Math.round((seconds - h * 3600) / 60)} min`;
}

export interface ProgressUpdate {
  readonly done: number;
  /** The real total, or undefined while it is not known: then no percentage and no time left. */
  readonly total?: number | undefined;
  readonly files?: number;
  readonly extra?: string;
}

export class Progress {
  private last = -Infinity;
  private readonly estimator = new Estimator();
  private readonly mode: 'tty' | 'json' | 'none';

  constructor(private readonly ctx: Context, private readonly label: string) {
    const stderrTty = (ctx.stderr as NodeJS.WriteStream).isTTY === true;
    this.mode = ctx.global.quiet ? 'none' : ctx.json && (stderrTty || process.env['LIFEBOAT_PROGRESS_JSON'] === '1') ? 'json' : stderrTty && !ctx.json ? 'tty' : 'none';
  }

  /** Whether anything is shown (an operation may skip work, such as a size walk, that only progress needs). */
  get shown(): boolean {
    return this.mode !== 'none';
  }

  update(u: ProgressUpdate, force = false): void {
    if (this.mode === 'none') return;
    const now = performance.now();
    // The event that completes the total is always shown (the last word of a finished operation).
    if (!force && now - this.last < 250 && (u.total === undefined || u.done < u.total)) return;
    this.last = now;
    const p = this.estimator.sample(u.done, u.total);
    if (this.mode === 'json') {
      this.ctx.stderr.write(JSON.stringify({ type: 'progress', what: this.label, done: p.done, total: p.total ?? null, files: u.files, rate: Math.round(p.rate), etaSeconds: p.eta === undefined ? null : Math.round(p.eta) }) + '\n');
      return;
    }
    this.ctx.stderr.write(`\r\x1b[K${progressLine(this.label, p, u)}`);
  }

  done(): void {
    if (this.mode === 'tty') this.ctx.stderr.write('\r\x1b[K');
  }
}

/** One line: "backup: 42.0% 1.2 GB of 2.9 GB, 1200 files, 80 MB/s, about 21 s left". */
export function progressLine(label: string, p: ProgressState, u: Pick<ProgressUpdate, 'files' | 'extra'> = {}): string {
  // 100% only when everything is done: a rounded 99.96% stays 99.9%.
  const pct = p.total !== undefined ? ` ${(Math.floor((p.done / Math.max(1, p.total)) * 1000) / 10).toFixed(1)}%` : '';
  const files = u.files !== undefined ? `, ${u.files} files` : '';
  const left = p.eta !== undefined && p.total !== undefined && p.done < p.total ? `, about ${formatDuration(p.eta)} left` : '';
  return `${label}:${pct} ${formatBytes(p.done)}${p.total !== undefined ? ` of ${formatBytes(p.total)}` : ''}${files}, ${formatBytes(p.rate)}/s${left}${u.extra ? `, ${u.extra}` : ''}`;
}
