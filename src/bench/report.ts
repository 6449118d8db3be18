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
  /** HTTP requests the tool made (S3, counted by a proxy), and how many of each kind. */
  readonly requests?: number;
  readonly requestKinds?: Record<string, number>;
  /** Each request ("KIND /path?query"), when there were few (for --json). */
  readonly requestList?: readonly string[];
  /** CPU seconds of the repository server while the command ran (Lifeboat server). */
  readonly serverCpu?: number;
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
  readonly requests: number;
  readonly serverCpu: number;
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
  /** A figure to quote, with no limit to pass (pass is then null). */
  readonly info?: boolean;
}

export interface DatasetResult {
  readonly name: string;
  readonly description: string;
  readonly tools: readonly string[];
  readonly ops: OpResult[];
  readonly facts: Record<string, unknown>;
  targets: Target[];
  /** The ratio rows under each operation, [numerator, denominator]; default the first tool over each other one. */
  readonly ratios?: readonly (readonly [string, string])[];
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
    requests: m((x) => x.requests),
    serverCpu: m((x) => x.serverCpu),
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

interface Column {
  readonly head: string;
  readonly width: number;
  readonly cell: (f: Figure) => string;
  readonly value: (f: Figure) => number;
  /** Shown only when some figure of the dataset has it. */
  readonly optional?: true;
}

const COLS: readonly Column[] = [
  { head: 'wall s', width: 8, cell: (f) => fmtNum(f.wall), value: (f) => f.wall },
  { head: 'cpu s', width: 8, cell: (f) => fmtNum(f.cpu), value: (f) => f.cpu },
  { head: 'peak RSS', width: 10, cell: (f) => fmtBytes(f.rssKiB * 1024), value: (f) => f.rssKiB },
  { head: 'added', width: 10, cell: (f) => fmtBytes(f.added), value: (f) => f.added },
  { head: 'files', width: 7, cell: (f) => fmtNum(f.files, 0), value: (f) => f.files },
  { head: 'read', width: 10, cell: (f) => fmtBytes(f.bytesRead), value: (f) => f.bytesRead },
  { head: 'requests', width: 9, cell: (f) => fmtNum(f.requests, 0), value: (f) => f.requests, optional: true },
  { head: 'server cpu', width: 11, cell: (f) => fmtNum(f.serverCpu), value: (f) => f.serverCpu, optional: true },
];

/** The plain-text table of one dataset. */
export function renderDataset(d: DatasetResult): string {
  const lines: string[] = [];
  lines.push(`== ${d.name}: ${d.description}`);
  const figures = d.ops.map((op) => new Map(d.tools.map((t) => [t, figure(op.samples[t])])));
  const cols = COLS.filter((c) => !c.optional || figures.some((m) => [...m.values()].some((f) => Number.isFinite(c.value(f)))));
  const ratios = d.ratios ?? d.tools.slice(1).map((t) => [d.tools[0]!, t] as const);
  const label = ([a, b]: readonly [string, string]): string => `${a}/${b.split(/[ |]/)[0]}`;
  const opW = Math.max(9, ...d.ops.map((o) => o.title.length)) + 2;
  const toolW = Math.max(...d.tools.map((t) => t.length), ...ratios.map((r) => label(r).length), 'lifeboat/xxxxxx'.length) + 2;
  lines.push(pad('operation', opW) + pad('tool', toolW) + cols.map((c) => pad(c.head, c.width, true)).join(' ') + '  note');
  d.ops.forEach((op, i) => {
    const figs = figures[i]!;
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
      lines.push(head + cols.map((c) => pad(c.cell(f), c.width, true)).join(' ') + (note ? `  ${note}` : ''));
    }
    for (const [a, b] of ratios) {
      if (!op.samples[a] || !op.samples[b]) continue;
      const r = figs.get(a)!;
      const o = figs.get(b)!;
      lines.push(pad('', opW) + pad(label([a, b]), toolW) + cols.map((c) => pad(r.ok && o.ok ? ratio(c.value(r), c.value(o)) : '-', c.width, true)).join(' '));
    }
  });
  if (d.targets.length) {
    lines.push('');
    lines.push('targets:');
    for (const t of d.targets) {
      const mark = t.info ? '[info ]' : t.pass === null ? '[ n/a ]' : t.pass ? '[PASS ]' : '[FAIL ]';
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
