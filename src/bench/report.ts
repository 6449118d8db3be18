/**
 * Results: the figures of every run, their medians, the plain-text tables with Lifeboat's ratios
 * to the other tools, and the P2/P3 targets with a pass/fail mark each.
 */
import { median } from './exec.js';

export interface Sample {
  readonly run: number;
  readonly ok: boolean;
  readonly error?: string;
  readonly wall: number;
  readonly user: number;
  readonly sys: number;
  readonly rssKiB: number;
  /** Bytes the repository (or output) grew by. */
  readonly added?: number;
  /** Files the repository grew by (for "repository size": the files it holds). */
  readonly files?: number;
  /** Bytes read from the source, when the tool says so. */
  readonly bytesRead?: number;
  /** 'ok', or what did not match. */
  readonly verify?: string;
  /** What the tool printed as JSON (summaries), for --json. */
  readonly details?: unknown;
}

export interface Figure {
  readonly ok: boolean;
  readonly error?: string;
  readonly runs: number;
  readonly wall: number;
  readonly cpu: number;
  readonly rssKiB: number;
  readonly added: number;
  readonly files: number;
  readonly bytesRead: number;
  readonly verify?: string;
}

export interface OpResult {
  readonly op: string;
  readonly title: string;
  readonly samples: Record<string, Sample[]>;
}

export interface Target {
  readonly text: string;
  readonly measured: string;
  /** null: could not be judged (a figure is missing). */
  readonly pass: boolean | null;
}

export interface DatasetResult {
  readonly name: string;
  readonly description: string;
  readonly tools: readonly string[];
  readonly ops: OpResult[];
  readonly facts: Record<string, unknown>;
  targets: Target[];
}

export function figure(samples: readonly Sample[] | undefined): Figure {
  const s = samples ?? [];
  const bad = s.find((x) => !x.ok);
  const mismatch = s.find((x) => x.verify !== undefined && x.verify !== 'ok');
  const verify = mismatch ? mismatch.verify : s.some((x) => x.verify === 'ok') ? 'ok' : undefined;
  const m = (f: (x: Sample) => number | undefined): number => median(s.map((x) => f(x) ?? NaN));
  return {
    ok: s.length > 0 && !bad,
    ...(bad ? { error: bad.error ?? 'failed' } : s.length === 0 ? { error: 'not run' } : {}),
    runs: s.length,
    wall: m((x) => x.wall),
    cpu: m((x) => x.user + x.sys),
    rssKiB: m((x) => x.rssKiB),
    added: m((x) => x.added),
    files: m((x) => x.files),
    bytesRead: m((x) => x.bytesRead),
    ...(verify !== undefined ? { verify } : {}),
  };
}

export function fmtBytes(n: number): string {
  if (!Number.isFinite(n)) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 0 : 1)} ${units[u]}`;
}

function fmtNum(n: number, digits = 2): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

function ratio(a: number, b: number): string {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : '-';
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

const COLS = [
  ['wall s', 8],
  ['cpu s', 8],
  ['peak RSS', 10],
  ['added', 10],
  ['files', 7],
  ['read', 10],
] as const;

/** The plain-text table of one dataset. */
export function renderDataset(d: DatasetResult): string {
  const lines: string[] = [];
  lines.push(`== ${d.name}: ${d.description}`);
  const opW = Math.max(9, ...d.ops.map((o) => o.title.length)) + 2;
  const toolW = Math.max(...d.tools.map((t) => t.length), 'lifeboat/xxxxxx'.length) + 2;
  lines.push(pad('operation', opW) + pad('tool', toolW) + COLS.map(([h, w]) => pad(h, w, true)).join(' ') + '  note');
  const ref = d.tools[0]!;
  for (const op of d.ops) {
    const figs = new Map(d.tools.map((t) => [t, figure(op.samples[t])]));
    let first = true;
    for (const t of d.tools) {
      const f = figs.get(t)!;
      const head = pad(first ? op.title : '', opW) + pad(t, toolW);
      first = false;
      if (!op.samples[t]) continue;
      if (!f.ok) {
        lines.push(`${head}n/a: ${f.error ?? 'failed'}`);
        continue;
      }
      const note = f.verify === undefined ? '' : f.verify === 'ok' ? 'verified' : `!!! RESTORE MISMATCH: ${f.verify} !!!`;
      lines.push(
        head +
          [fmtNum(f.wall), fmtNum(f.cpu), fmtBytes(f.rssKiB * 1024), fmtBytes(f.added), fmtNum(f.files, 0), fmtBytes(f.bytesRead)]
            .map((v, i) => pad(v, COLS[i]![1], true))
            .join(' ') +
          (note ? `  ${note}` : ''),
      );
    }
    const r = figs.get(ref)!;
    for (const t of d.tools.slice(1)) {
      const o = figs.get(t)!;
      if (!op.samples[t] || !op.samples[ref]) continue;
      const label = `${ref}/${t.split(/[ |]/)[0]}`;
      const cells = r.ok && o.ok ? [ratio(r.wall, o.wall), ratio(r.cpu, o.cpu), ratio(r.rssKiB, o.rssKiB), ratio(r.added, o.added), ratio(r.files, o.files), ratio(r.bytesRead, o.bytesRead)] : ['-', '-', '-', '-', '-', '-'];
      lines.push(pad('', opW) + pad(label, toolW) + cells.map((v, i) => pad(v, COLS[i]![1], true)).join(' '));
    }
  }
  if (d.targets.length) {
    lines.push('');
    lines.push('targets:');
    for (const t of d.targets) {
      const mark = t.pass === null ? '[ n/a ]' : t.pass ? '[PASS ]' : '[FAIL ]';
      lines.push(`  ${mark} ${t.text}: ${t.measured}`);
    }
  }
  return lines.join('\n');
}

/** "measured" text and pass mark for "lifeboat value ≤ factor × reference". */
export function compareTarget(text: string, lb: number, ref: number, factor: number, unit: (n: number) => string, refName: string): Target {
  if (!Number.isFinite(lb) || !Number.isFinite(ref) || ref <= 0) {
    return { text, measured: `lifeboat ${Number.isFinite(lb) ? unit(lb) : 'n/a'}, ${refName} ${Number.isFinite(ref) ? unit(ref) : 'n/a'}`, pass: null };
  }
  return { text, measured: `lifeboat ${unit(lb)} vs ${refName} ${unit(ref)} (${(lb / ref).toFixed(2)}×, limit ${factor}×)`, pass: lb <= factor * ref };
}

export const seconds = (n: number): string => `${n.toFixed(2)} s`;
export const kib = (n: number): string => fmtBytes(n * 1024);
