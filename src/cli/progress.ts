/**
 * Renders progress events: a live line with amount, rate and time left on a terminal; JSON lines
 * with --json when LIFEBOAT_PROGRESS_JSON=1 or --json on a terminal; nothing when output is piped.
 */
import { formatBytes } from '../util/errors.js';
import type { Context } from './context.js';

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return 'unknown time';
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  const h = Math.floor(seconds / 3600);
  return `${h} h ${Math.round((seconds - h * 3600) / 60)} min`;
}

export interface ProgressUpdate {
  readonly done: number;
  readonly total?: number;
  readonly files?: number;
  readonly extra?: string;
}

export class Progress {
  private readonly started = Date.now();
  private last = 0;
  private readonly mode: 'tty' | 'json' | 'none';

  constructor(private readonly ctx: Context, private readonly label: string) {
    const stderrTty = (ctx.stderr as NodeJS.WriteStream).isTTY === true;
    this.mode = ctx.global.quiet ? 'none' : ctx.json && (stderrTty || process.env['LIFEBOAT_PROGRESS_JSON'] === '1') ? 'json' : stderrTty && !ctx.json ? 'tty' : 'none';
  }

  update(u: ProgressUpdate, force = false): void {
    if (this.mode === 'none') return;
    const now = Date.now();
    if (!force && now - this.last < 250) return;
    this.last = now;
    const elapsed = (now - this.started) / 1000;
    const rate = elapsed > 0 ? u.done / elapsed : 0;
    const eta = u.total !== undefined && rate > 0 ? (u.total - u.done) / rate : undefined;
    if (this.mode === 'json') {
      this.ctx.stderr.write(JSON.stringify({ type: 'progress', what: this.label, done: u.done, total: u.total, files: u.files, rate: Math.round(rate), etaSeconds: eta === undefined ? null : Math.round(eta) }) + '\n');
      return;
    }
    const pct = u.total ? ` ${((u.done / Math.max(1, u.total)) * 100).toFixed(1)}%` : '';
    const files = u.files !== undefined ? `, ${u.files} files` : '';
    const left = eta !== undefined ? `, about ${formatDuration(eta)} left` : '';
    const line = `${this.label}:${pct} ${formatBytes(u.done)}${u.total ? ` of ${formatBytes(u.total)}` : ''}${files}, ${formatBytes(rate)}/s${left}${u.extra ? `, ${u.extra}` : ''}`;
    this.ctx.stderr.write(`\r\x1b[K${line}`);
  }

  done(): void {
    if (this.mode === 'tty') this.ctx.stderr.write('\r\x1b[K');
  }
}
