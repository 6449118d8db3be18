/**
 * `npm run bench [-- options]`: Lifeboat side by side with restic and borg (files) and with
 * partclone | zstd -3 and restic --stdin (disk images), on generated datasets. See bench/README.md.
 *
 * Runs are interleaved (lifeboat, restic, borg, lifeboat, restic, borg, …) and every figure is the
 * median of the runs. Progress goes to stderr; the tables (or, with --json, every figure) to
 * stdout. A tool that fails is recorded as n/a with its error and the benchmark carries on.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { countingProxy } from '../store/counting-proxy.js';
import { buildDisk, mutateDisk, type DiskMutation } from './disk.js';
import { apparentBytes, timed, tryRun, usage, warmCache, type Cmd, type Measured } from './exec.js';
import { describeMachine, ensureTools, type MachineDescription } from './machine.js';
import { buildDevHome, buildMedia, buildSystemTree, describeTree, fmtMakeUp, mutateFiles, treeFiles, type Budget } from './real.js';
import { compareTarget, figure, fmtBytes, kib, renderDataset, seconds, type DatasetResult, type OpResult, type Sample, type Target } from './report.js';
import { cephMissing, startRadosgw } from './rgw.js';
import { cpuOf, startServer, type RunningServer } from './server.js';
import { fileTools, lifeboatImageCreate, lifeboatInit, partcloneZstd, resticInit, resticStdin, type FileTool, type ToolEnv } from './tools.js';
import {
  checksumTree,
  compareSums,
  hashFile,
  mutateLarge,
  mutateTree,
  planLarge,
  planTree,
  summarise,
  writeTree,
  type MutationSummary,
  type Sum,
  type TreePlan,
} from './tree.js';

const MiB = 1024 * 1024;
/** The datasets, in the order their tables are printed. */
const DATASETS = ['files', 's3', 'server', 'large', 'image', 'system', 'devhome', 'media'] as const;
type DatasetName = (typeof DATASETS)[number];
/** The order they run in: s3 and server back up the files dataset's tree before it is mutated. */
const RUN_ORDER: readonly DatasetName[] = ['s3', 'server', 'files', 'large', 'image', 'system', 'devhome', 'media'];
/** The datasets that measure the generated `files` tree. */
const TREE_USERS: readonly DatasetName[] = ['s3', 'server', 'files'];

interface Options {
  quick: boolean;
  json: boolean;
  runs: number;
  only: Set<DatasetName>;
  keep: boolean;
  save: boolean;
  /** Development aid: measure only these tools (default all). */
  tools: Set<string>;
  /** Byte budget of each real-world dataset (system, devhome, media); 0 = the mode's default. */
  realBytes: number;
}

interface Sizes {
  files: { files: number; bytes: number; largeMin: number; largeMax: number };
  large: { count: number; size: number };
  image: { ext4Bytes: number; fatBytes: number; largeMin: number; largeMax: number };
  /** Real-world datasets (bench/real.ts): budgets of bytes and files. */
  system: Budget;
  devhome: Budget;
  media: Budget;
}

const QUICK: Sizes = {
  files: { files: 5000, bytes: 80e6, largeMin: 2 * MiB, largeMax: 6 * MiB },
  large: { count: 4, size: 16 * MiB },
  image: { ext4Bytes: 96 * MiB, fatBytes: 48 * MiB, largeMin: 1 * MiB, largeMax: 6 * MiB },
  system: { bytes: 150e6, files: 8000 },
  devhome: { bytes: 150e6, files: 10_000 },
  media: { bytes: 150e6, files: 1000 },
};

const FULL: Sizes = {
  files: { files: 100_000, bytes: 1.6e9, largeMin: 8 * MiB, largeMax: 64 * MiB },
  large: { count: 4, size: 512 * MiB },
  image: { ext4Bytes: 2048 * MiB, fatBytes: 1024 * MiB, largeMin: 8 * MiB, largeMax: 64 * MiB },
  system: { bytes: 2.5e9, files: 100_000 },
  devhome: { bytes: 1.2e9, files: 60_000 },
  media: { bytes: 2e9, files: 1000 },
};

/** --real-size: the byte budget of each real dataset, with the file budgets scaled to it. */
function realBudget(b: Budget, full: Budget, bytes: number): Budget {
  return bytes > 0 ? { bytes, files: Math.max(100, Math.round((full.files * bytes) / full.bytes)) } : b;
}

function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(s.trim());
  if (!m) throw new Error(`--real-size takes a size such as 500M or 2G; not "${s}"`);
  return Math.round(Number(m[1]) * 1024 ** ' kmgt'.indexOf((m[2] || ' ').toLowerCase()));
}

const USAGE = `usage: npm run bench -- [--quick] [--json] [--runs N] [--only files|s3|server|large|image|system|devhome|media[,…]] [--real-size SIZE] [--keep] [--save]
  --quick   small datasets, 1 run each (about two minutes)
  --json    every figure as JSON on stdout (the tables go to stderr)
  --runs N  runs per tool and operation (default 3, or 1 with --quick); figures are medians
  --only    run only these datasets (comma-separated or repeated)
  --real-size SIZE  byte budget of each real-world dataset (system, devhome, media), e.g. 500M
  --keep    keep bench/work (datasets, repositories) afterwards
  --save    write bench/results/<date>-<host>.json and .md
  --tools   measure only these tools, e.g. --tools lifeboat,restic (while developing)`;

function parseOptions(argv: readonly string[]): Options {
  const o: Options = { quick: false, json: false, runs: 0, only: new Set(), keep: false, save: false, tools: new Set(), realBytes: 0 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const eq = a.indexOf('=');
      if (eq > 0) return a.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const name = a.split('=')[0];
    if (name === '--quick') o.quick = true;
    else if (name === '--json') o.json = true;
    else if (name === '--keep') o.keep = true;
    else if (name === '--save') o.save = true;
    else if (name === '--runs') {
      o.runs = Number(value());
      if (!Number.isInteger(o.runs) || o.runs < 1) throw new Error('--runs needs a whole number of 1 or more');
    } else if (name === '--only') {
      for (const d of value().split(',')) {
        if (!(DATASETS as readonly string[]).includes(d)) throw new Error(`--only takes ${DATASETS.join(', ')}; not "${d}"`);
        o.only.add(d as DatasetName);
      }
    } else if (name === '--real-size') {
      o.realBytes = parseSize(value());
    } else if (name === '--tools') {
      for (const t of value().split(',')) o.tools.add(t);
    } else if (name === '--help' || name === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else throw new Error(`unknown option ${a}\n${USAGE}`);
  }
  if (o.runs === 0) o.runs = o.quick ? 1 : 3;
  if (o.only.size === 0) for (const d of DATASETS) o.only.add(d);
  return o;
}

const started = Date.now();
function log(msg: string): void {
  const s = Math.round((Date.now() - started) / 1000);
  process.stderr.write(`[bench ${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}] ${msg}\n`);
}

/** The last JSON object a tool printed (lifeboat and borg print one; restic prints JSON lines). */
function lastJson(stdout: string): Record<string, unknown> | undefined {
  const text = stdout.trim();
  if (!text) return undefined;
  try {
    const v: unknown = JSON.parse(text);
    if (v && typeof v === 'object') return v as Record<string, unknown>;
  } catch {
    // JSON lines: take the last one that parses
  }
  const lines = text.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      const v: unknown = JSON.parse(lines[i]!);
      if (v && typeof v === 'object') return v as Record<string, unknown>;
    } catch {
      // not JSON
    }
  }
  return undefined;
}

function findNumber(v: unknown, names: readonly string[], depth = 0): number | undefined {
  if (!v || typeof v !== 'object' || depth > 4) return undefined;
  for (const [k, x] of Object.entries(v)) if (names.includes(k) && typeof x === 'number') return x;
  for (const x of Object.values(v)) {
    const n = findNumber(x, names, depth + 1);
    if (n !== undefined) return n;
  }
  return undefined;
}

function sample(run: number, m: Measured, extra: Partial<Omit<Sample, 'run' | 'ok'>> = {}): Sample {
  return {
    run,
    ok: m.ok,
    ...(m.error !== undefined ? { error: m.error } : {}),
    wall: m.wall,
    user: m.user,
    sys: m.sys,
    rssKiB: m.rssKiB,
    ...extra,
  };
}

function failed(run: number, error: string): Sample {
  return { run, ok: false, error, wall: NaN, user: NaN, sys: NaN, rssKiB: NaN };
}

function describeRun(tool: string, s: Sample): string {
  if (!s.ok) return `${tool}: n/a (${s.error ?? 'failed'})`;
  const parts = [`${s.wall.toFixed(2)} s`, `cpu ${(s.user + s.sys).toFixed(2)} s`, `rss ${kib(s.rssKiB)}`];
  if (s.added !== undefined) parts.push(`+${fmtBytes(s.added)}`);
  if (s.requests !== undefined) parts.push(`${s.requests} requests (${Object.entries(s.requestKinds ?? {}).map(([k, n]) => `${k} ${n}`).join(', ')})`);
  if (s.serverCpu !== undefined) parts.push(`server cpu ${s.serverCpu.toFixed(2)} s`);
  if (s.verify !== undefined) parts.push(s.verify === 'ok' ? 'verified' : `MISMATCH ${s.verify}`);
  return `${tool}: ${parts.join(', ')}`;
}

class Bench {
  readonly root: string;
  readonly work: string;
  readonly env: ToolEnv;
  constructor(readonly o: Options) {
    this.root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
    this.work = path.join(this.root, 'bench', 'work');
    this.env = { lifeboatRoot: this.root, cacheDir: path.join(this.work, 'cache') };
  }

  wants(tool: string): boolean {
    return this.o.tools.size === 0 || this.o.tools.has(tool) || this.o.tools.has(tool.split(/[ |]/)[0]!);
  }

  /** Removes scratch data as soon as it is no longer needed, unless --keep. */
  private drop(p: string): void {
    if (!this.o.keep) this.discard(p);
  }

  private trashed = 0;
  /**
   * Moves `p` out of the way at once (a rename); the files are deleted after the measurements.
   * Deleting thousands of files takes seconds on a busy disk and is not what is measured.
   */
  discard(p: string, now = false): void {
    if (!fs.existsSync(p)) return;
    if (now) {
      fs.rmSync(p, { recursive: true, force: true });
      return;
    }
    const trash = this.dir('trash');
    fs.renameSync(p, path.join(trash, `${++this.trashed}`));
  }

  /** Deletes what was discarded now (between datasets of a full run, so that the disk does not fill up). */
  emptyTrash(): void {
    const trash = path.join(this.work, 'trash');
    if (!fs.existsSync(trash)) return;
    const t0 = Date.now();
    fs.rmSync(trash, { recursive: true, force: true });
    log(`deleted the scratch data of the last dataset in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }

  /** Deletes everything discarded (with `all`, everything in the work folder) in a detached process. */
  cleanUpInBackground(all: boolean): void {
    if (!fs.existsSync(this.work)) return;
    const doomed = path.join(this.work, `.deleting-${process.pid}-${Date.now()}`);
    fs.mkdirSync(doomed);
    for (const name of all ? fs.readdirSync(this.work) : ['trash']) {
      if (name.startsWith('.deleting-') || !fs.existsSync(path.join(this.work, name))) continue;
      fs.renameSync(path.join(this.work, name), path.join(doomed, name));
    }
    spawn('rm', ['-rf', doomed], { detached: true, stdio: 'ignore' }).unref();
  }

  private dir(...parts: string[]): string {
    const d = path.join(this.work, ...parts);
    fs.mkdirSync(d, { recursive: true });
    return d;
  }

  /** Runs `op` for every run and tool, interleaved; `each` measures one and returns its sample. */
  private async interleave(ds: string, op: OpResult, tools: readonly string[], each: (tool: string, run: number) => Promise<Sample>): Promise<OpResult> {
    for (let r = 0; r < this.o.runs; r++) {
      // Each tool goes first in turn: what the command before leaves behind weighs on each alike.
      // On this VM's ext4, creating 100k files right after 400k were deleted took 2.4x the system
      // time, and 1.8x on the next run still (bench/README.md, session 20).
      for (const t of tools.map((_, i) => tools[(i + r) % tools.length]!)) {
        const s = await each(t, r);
        (op.samples[t] ??= []).push(s);
        log(`${ds} · ${op.title} · run ${r + 1}/${this.o.runs} · ${describeRun(t, s)}`);
      }
    }
    return op;
  }

  /** The six operations of a file dataset, for lifeboat, restic and borg. */
  /** `fewFiles`: restored trees are deleted at once (cheap, and they are big). */
  async fileDataset(name: string, description: string, src: string, mutate: () => string, oneFile: string, fewFiles = false): Promise<DatasetResult> {
    const tools = fileTools(this.env).filter((t) => this.wants(t.name));
    const byName = new Map<string, FileTool>(tools.map((t) => [t.name, t]));
    const names = tools.map((t) => t.name);
    const repo = (t: string, r: number): string => path.join(this.work, 'repos', name, `${t}-${r + 1}`);
    const initError = new Map<string, string>();
    for (let r = 0; r < this.o.runs; r++) {
      for (const t of tools) {
        fs.rmSync(repo(t.name, r), { recursive: true, force: true });
        fs.mkdirSync(path.dirname(repo(t.name, r)), { recursive: true });
        const m = await timed(t.init(repo(t.name, r)));
        if (!m.ok) {
          initError.set(`${t.name}-${r}`, `init failed: ${m.error ?? ''}`);
          log(`${name} · ${t.name} init failed: ${m.error ?? ''}`);
        }
      }
    }
    const ops: OpResult[] = [];
    const backup = async (op: string, title: string, label: string): Promise<void> => {
      ops.push(
        await this.interleave(name, { op, title, samples: {} }, names, async (t, r) => {
          const ie = initError.get(`${t}-${r}`);
          if (ie) return failed(r, ie);
          const before = usage(repo(t, r));
          warmCache(src, repo(t, r)); // every run starts with what it reads cached (see warmCache)
          const m = await timed(byName.get(t)!.backup(repo(t, r), src, label));
          const after = usage(repo(t, r));
          const details = lastJson(m.stdout);
          const bytesRead = t === 'lifeboat' ? findNumber(details, ['bytesRead', 'bytes_read']) : undefined;
          return sample(r, m, { added: after.bytes - before.bytes, files: after.files - before.files, ...(bytesRead !== undefined ? { bytesRead } : {}), ...(details ? { details } : {}) });
        }),
      );
    };
    await backup('initial', 'initial backup', 'initial');
    await backup('nochange', 'no-change backup', 'nochange');
    log(`${name} · mutating`);
    const mutation = mutate();
    log(`${name} · ${mutation}; computing the checksum list of the source`);
    const sums = checksumTree(src);
    await backup('mutated', 'backup after mutation', 'mutated');

    const repoSize: OpResult = { op: 'repoSize', title: 'repository size', samples: {} };
    for (const t of names) {
      repoSize.samples[t] = Array.from({ length: this.o.runs }, (_, r) =>
        initError.has(`${t}-${r}`) ? failed(r, initError.get(`${t}-${r}`)!) : { run: r, ok: true, wall: NaN, user: NaN, sys: NaN, rssKiB: NaN, added: usage(repo(t, r)).bytes, files: usage(repo(t, r)).files },
      );
    }

    ops.push(
      await this.interleave(name, { op: 'restore', title: 'full restore', samples: {} }, names, async (t, r) => {
        const target = path.join(this.work, 'restore', `${name}-${t}`);
        fs.rmSync(target, { recursive: true, force: true });
        fs.mkdirSync(target, { recursive: true });
        warmCache(repo(t, r));
        const m = await timed(byName.get(t)!.restore(repo(t, r), target, 'mutated'));
        let verify: string | undefined;
        const t0 = Date.now();
        if (m.ok) verify = verifyTree(sums, target, src);
        const t1 = Date.now();
        this.discard(target, fewFiles);
        log(`${name} · ${t} restore checked in ${((t1 - t0) / 1000).toFixed(1)} s, removed in ${((Date.now() - t1) / 1000).toFixed(1)} s`);
        return sample(r, m, verify !== undefined ? { verify } : {});
      }),
    );
    ops.push(
      await this.interleave(name, { op: 'restoreOne', title: 'restore one file', samples: {} }, names, async (t, r) => {
        const dir = path.join(this.work, 'restore', `one-${t}`);
        fs.rmSync(dir, { recursive: true, force: true });
        fs.mkdirSync(dir, { recursive: true });
        const out = { file: path.join(this.work, 'restore', `one-${t}.out`), dir };
        const tool = byName.get(t)!;
        warmCache(repo(t, r));
        const m = await timed(tool.restoreOne(repo(t, r), src, oneFile, out, 'mutated'));
        let verify: string | undefined;
        if (m.ok) verify = verifyFile(sums.get(oneFile), tool.restoredOnePath(src, oneFile, out));
        this.discard(dir, fewFiles);
        this.discard(out.file, fewFiles);
        return sample(r, m, { ...(verify !== undefined ? { verify } : {}), bytesRead: sums.get(oneFile)?.size ?? NaN });
      }),
    );
    ops.push(
      await this.interleave(name, { op: 'check', title: 'check --read-data', samples: {} }, names, async (t, r) => {
        warmCache(repo(t, r));
        const m = await timed(byName.get(t)!.check(repo(t, r)));
        return sample(r, m);
      }),
    );
    ops.splice(3, 0, repoSize);
    const result: DatasetResult = { name, description: `${description}; mutation: ${mutation}`, tools: names, ops, facts: { oneFile, oneFileBytes: sums.get(oneFile)?.size }, targets: [] };
    this.drop(path.join(this.work, 'repos', name));
    return result;
  }

  /** The generated `files` tree, written on first use; the files, s3 and server datasets share it. */
  private tree: { src: string; seed: string; plan: TreePlan; description: string; oneFile: string; sums?: Map<string, Sum> | undefined } | undefined;

  private filesTree(): NonNullable<Bench['tree']> {
    if (this.tree) return this.tree;
    const sz = this.o.quick ? QUICK.files : FULL.files;
    const seed = 'lifeboat-bench-files-v1';
    const plan = planTree({ seed, ...sz });
    const sum = summarise(plan);
    const src = path.join(this.dir('data'), 'files');
    log(`files · generating ${sum.files.toLocaleString('en')} files in ${sum.dirs} folders, ${fmtBytes(sum.bytes)}`);
    writeTree(src, seed, plan, (done, total) => {
      if (done % 20000 === 0) log(`files · ${done.toLocaleString('en')} of ${total.toLocaleString('en')} files written`);
    });
    const kinds = Object.entries(sum.byKind)
      .map(([k, v]) => `${k} ${v.files.toLocaleString('en')} files/${fmtBytes(v.bytes)}`)
      .join(', ');
    const description = `${sum.files.toLocaleString('en')} files in ${sum.dirs.toLocaleString('en')} folders, ${fmtBytes(sum.bytes)} (${kinds})`;
    this.tree = { src, seed, plan, description, oneFile: pickOneFile(plan, 1 * MiB) };
    return this.tree;
  }

  /** The generated tree's checksum list (for checking restores), computed once. */
  private treeSums(): Map<string, Sum> {
    const tree = this.filesTree();
    return (tree.sums ??= checksumTree(tree.src));
  }

  /** Drops the generated tree once no dataset still to run needs it. */
  private releaseTree(after: DatasetName): void {
    const later = RUN_ORDER.slice(RUN_ORDER.indexOf(after) + 1);
    if (!this.tree || later.some((d) => TREE_USERS.includes(d) && this.o.only.has(d))) return;
    this.drop(this.tree.src);
    this.tree = undefined;
  }

  async files(): Promise<DatasetResult> {
    const tree = this.filesTree();
    const mutate = (): string => {
      tree.sums = undefined;
      return fmtMutation(mutateTree(tree.src, tree.seed, tree.plan, 0.01, new Set([tree.oneFile])), tree.plan.files.length);
    };
    const d = await this.fileDataset('files', tree.description, tree.src, mutate, tree.oneFile);
    d.targets = fileTargets(d);
    this.releaseTree('files');
    return d;
  }

  /**
   * Initial backup, no-change backup and full restore of `src` for each contender, runs
   * interleaved: the s3 and server datasets. A contender's `watch` starts just before each
   * measured command and says what it saw (requests, server CPU) once the command ended.
   */
  private async backupRestore(ds: string, src: string, sums: Map<string, Sum>, contenders: readonly Contender[]): Promise<OpResult[]> {
    const byName = new Map(contenders.map((c) => [c.name, c]));
    const names = contenders.map((c) => c.name);
    const initError = new Map<string, string>();
    for (let r = 0; r < this.o.runs; r++) {
      for (const c of contenders) {
        const folder = c.folder?.(r);
        if (folder) {
          fs.rmSync(folder, { recursive: true, force: true });
          fs.mkdirSync(path.dirname(folder), { recursive: true });
        }
        const m = await timed(c.tool.init(c.repo(r)));
        if (!m.ok) {
          initError.set(`${c.name}-${r}`, `init failed: ${m.error ?? ''}`);
          log(`${ds} · ${c.name} init failed: ${m.error ?? ''}`);
        }
      }
    }
    /** Runs one measured command of contender `t`: what `watch` saw, and for a backup what the repository folder grew by. */
    const measure = async (t: string, r: number, cmd: (c: Contender) => Cmd, warm: (c: Contender) => string[], backup: boolean): Promise<{ m: Measured; extra: Partial<Sample> }> => {
      const c = byName.get(t)!;
      const folder = backup ? c.folder?.(r) : undefined;
      const before = folder ? usage(folder) : undefined;
      warmCache(...warm(c));
      const seen = c.watch?.();
      const m = await timed(cmd(c));
      const extra: Partial<Sample> = { ...seen?.() };
      if (folder && before) {
        const after = usage(folder);
        Object.assign(extra, { added: after.bytes - before.bytes, files: after.files - before.files });
      }
      return { m, extra };
    };
    const ops: OpResult[] = [];
    for (const [op, title] of [
      ['initial', 'initial backup'],
      ['nochange', 'no-change backup'],
    ] as const) {
      ops.push(
        await this.interleave(ds, { op, title, samples: {} }, names, async (t, r) => {
          const ie = initError.get(`${t}-${r}`);
          if (ie) return failed(r, ie);
          const { m, extra } = await measure(t, r, (c) => c.tool.backup(c.repo(r), src, op), (c) => [src, ...(c.folder ? [c.folder(r)] : [])], true);
          return sample(r, m, extra);
        }),
      );
    }
    ops.push(
      await this.interleave(ds, { op: 'restore', title: 'full restore', samples: {} }, names, async (t, r) => {
        const ie = initError.get(`${t}-${r}`);
        if (ie) return failed(r, ie);
        const target = path.join(this.work, 'restore', `${ds}-${t}`);
        fs.rmSync(target, { recursive: true, force: true });
        fs.mkdirSync(target, { recursive: true });
        const { m, extra } = await measure(t, r, (c) => c.tool.restore(c.repo(r), target, 'nochange'), (c) => (c.folder ? [c.folder(r)] : []), false);
        const verify = m.ok ? verifyTree(sums, target, src) : undefined;
        this.discard(target);
        return sample(r, m, { ...extra, ...(verify !== undefined ? { verify } : {}) });
      }),
    );
    return ops;
  }

  /** The generated tree into radosgw on 127.0.0.1, Lifeboat against restic's S3 backend, through a counting proxy. */
  async s3(): Promise<DatasetResult> {
    const why = cephMissing();
    if (why) {
      log(`s3 · skipped: ${why}`);
      return skipped('s3', why);
    }
    const tools = (['lifeboat', 'restic'] as const).filter((t) => this.wants(t));
    const tree = this.filesTree();
    const sums = this.treeSums();
    // In memory for the quick tree; the full one (stored once per tool and run) in a sparse file on disk.
    const sz = this.o.quick ? QUICK.files : FULL.files;
    const osd = this.o.quick ? ({ osdStore: 'memstore', osdSize: '4G' } as const) : ({ osdStore: 'bluestore', osdSize: `${Math.ceil((sz.bytes * 2 * this.o.runs) / 2 ** 30) + 8}G` } as const);
    log(`s3 · starting radosgw on 127.0.0.1 (scripts/rgw.mjs, ${osd.osdStore})`);
    const rgw = await startRadosgw(this.root, osd);
    const onSignal = (): void => {
      rgw.stop();
      process.exit(130);
    };
    process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
    try {
      log(`s3 · radosgw answers at ${rgw.s3.endpoint} (started in ${rgw.seconds.toFixed(1)} s)`);
      const proxy = await countingProxy(rgw.s3.endpoint);
      try {
        const env: ToolEnv = { ...this.env, extraEnv: { AWS_ACCESS_KEY_ID: rgw.s3.accessKeyId, AWS_SECRET_ACCESS_KEY: rgw.s3.secretAccessKey, AWS_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true' } };
        const all = fileTools(env);
        const contenders: Contender[] = tools.map((t) => ({
          name: t,
          tool: all.find((x) => x.name === t)!,
          repo: (r) => `s3:${proxy.endpoint}/lifeboat-bench/${t}-${r + 1}`,
          watch: () => {
            proxy.reset();
            return () => ({
              requests: proxy.total(),
              requestKinds: Object.fromEntries(proxy.counts),
              ...(proxy.requests.length <= 100 ? { requestList: [...proxy.requests] } : {}),
              added: proxy.bytes.sent,
              bytesRead: proxy.bytes.received,
            });
          },
        }));
        const ops = await this.backupRestore('s3', tree.src, sums, contenders);
        const description =
          `the files dataset's tree (${tree.description}) into radosgw on 127.0.0.1 (${osd.osdStore}), s3:http://… for both tools; ` +
          'requests counted by a proxy in front of radosgw; added = bytes sent to radosgw, read = bytes received from it (request and answer bodies)';
        const d: DatasetResult = { name: 's3', description, tools: contenders.map((c) => c.name), ops, facts: { radosgwSeconds: rgw.seconds, osdStore: osd.osdStore }, targets: [] };
        d.targets = s3Targets(d);
        return d;
      } finally {
        await proxy.close();
      }
    } finally {
      process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
      log('s3 · stopping radosgw');
      rgw.stop();
      this.releaseTree('s3');
    }
  }

  /** The generated tree through `lifeboat server` on loopback (HTTP and HTTPS) against a folder repository on this computer. */
  async server(): Promise<DatasetResult> {
    if (!this.wants('lifeboat')) return skipped('server', 'only Lifeboat has a server, and --tools leaves it out');
    const tree = this.filesTree();
    const sums = this.treeSums();
    const base = path.join(this.work, 'server');
    const servers: RunningServer[] = [];
    try {
      const contenders: Contender[] = [{ name: 'folder', tool: fileTools(this.env)[0]!, repo: (r) => path.join(base, 'folder', `run-${r + 1}`), folder: (r) => path.join(base, 'folder', `run-${r + 1}`) }];
      for (const mode of ['http', 'https'] as const) {
        const data = path.join(base, mode);
        const s = await startServer(this.env, data, mode === 'https');
        servers.push(s);
        log(`server · lifeboat server listening on ${s.origin}`);
        contenders.push({
          name: `server-${mode}`,
          tool: fileTools({ ...this.env, extraEnv: s.clientEnv })[0]!,
          repo: (r) => `lifeboat:${s.origin}/run-${r + 1}`,
          folder: (r) => path.join(data, `run-${r + 1}`),
          watch: () => {
            const c0 = cpuOf(s.pid);
            return () => ({ serverCpu: cpuOf(s.pid) - c0 });
          },
        });
      }
      const ops = await this.backupRestore('server', tree.src, sums, contenders);
      const description =
        `the files dataset's tree (${tree.description}) into a folder repository, and through lifeboat server on 127.0.0.1 over HTTP and HTTPS ` +
        "(its data folder on the same disk); server cpu = the server's CPU time while the command ran (/proc)";
      const d: DatasetResult = { name: 'server', description, tools: contenders.map((c) => c.name), ops, facts: {}, targets: [], ratios: [['server-http', 'folder'], ['server-https', 'folder']] };
      d.targets = serverTargets(d);
      return d;
    } finally {
      for (const s of servers) await s.stop();
      this.drop(base);
      this.releaseTree('server');
    }
  }

  async large(): Promise<DatasetResult> {
    const sz = this.o.quick ? QUICK.large : FULL.large;
    const seed = 'lifeboat-bench-large-v1';
    const plan = planLarge(seed, sz.count, sz.size);
    const src = path.join(this.dir('data'), 'large');
    log(`large · generating ${sz.count} files of ${fmtBytes(sz.size)}`);
    writeTree(src, seed, plan);
    const description = `${sz.count} files of ${fmtBytes(sz.size)} (${plan.files.map((f) => f.kind).join(', ')})`;
    const mutate = (): string => {
      const m = mutateLarge(src, seed, plan, 0.01);
      return `1% of every file rewritten in 4 scattered ranges (${fmtBytes(m.bytesWritten)} written)`;
    };
    const d = await this.fileDataset('large', description, src, mutate, plan.files[1]!.rel, true);
    this.drop(src);
    return d;
  }

  /** A real-world dataset (bench/real.ts): built, described, then measured like the generated tree. */
  private async real(name: 'system' | 'devhome' | 'media', build: (dest: string, budget: Budget) => string): Promise<DatasetResult> {
    const budget = realBudget((this.o.quick ? QUICK : FULL)[name], FULL[name], this.o.realBytes);
    const src = path.join(this.dir('data'), name);
    log(`${name} · copying up to ${fmtBytes(budget.bytes)} / ${budget.files.toLocaleString('en')} files`);
    const origin = build(src, budget);
    const makeUp = describeTree(src);
    log(`${name} · ${fmtMakeUp(makeUp)}`);
    const files = treeFiles(src);
    let oneFile = files[0]!;
    for (const f of files) if (Math.abs(f.size - MiB) < Math.abs(oneFile.size - MiB)) oneFile = f;
    const seed = `lifeboat-bench-${name}-v1`;
    const mutate = (): string => fmtMutation(mutateFiles(src, seed, 0.01, new Set([oneFile.rel])), files.length);
    const d = await this.fileDataset(name, `${origin}\nmake-up: ${fmtMakeUp(makeUp)}`, src, mutate, oneFile.rel, name === 'media');
    d.facts['makeUp'] = makeUp;
    d.targets = [...fileTargets(d), ...realTargets(d)];
    this.drop(src);
    return d;
  }

  system(): Promise<DatasetResult> {
    return this.real('system', buildSystemTree);
  }

  devhome(): Promise<DatasetResult> {
    const gitDir = tryRun('git', ['-C', this.root, 'rev-parse', '--path-format=absolute', '--git-common-dir'])?.trim();
    const home = os.homedir();
    const repos = [...(gitDir ? [gitDir] : []), ...fs.readdirSync(home).map((n) => path.join(home, n, '.git')).filter((g) => fs.existsSync(g))];
    return this.real('devhome', (dest, budget) => buildDevHome(dest, budget, repos, path.join(this.root, 'node_modules')));
  }

  media(): Promise<DatasetResult> {
    return this.real('media', (dest, budget) => buildMedia(dest, budget, 'lifeboat-bench-media-v1'));
  }

  async image(): Promise<DatasetResult> {
    const sz = this.o.quick ? QUICK.image : FULL.image;
    const seed = 'lifeboat-bench-image-v1';
    const disk = buildDisk(path.join(this.work, 'image'), { seed, fill: 0.5, ...sz }, (s) => log(s));
    const tools = ['lifeboat', 'partclone|zstd', 'restic --stdin'].filter((t) => this.wants(t));
    const repo = (t: string, r: number): string => path.join(this.work, 'repos', 'image', `${t.split(' ')[0]!.replace('|', '-')}-${r + 1}`);
    const initError = new Map<string, string>();
    for (let r = 0; r < this.o.runs; r++) {
      for (const [t, init] of [
        ['lifeboat', lifeboatInit],
        ['restic --stdin', resticInit],
      ] as const) {
        if (!this.wants(t)) continue;
        fs.rmSync(repo(t, r), { recursive: true, force: true });
        fs.mkdirSync(path.dirname(repo(t, r)), { recursive: true });
        const m = await timed(init(this.env, repo(t, r)));
        if (!m.ok) initError.set(`${t}-${r}`, `init failed: ${m.error ?? ''}`);
      }
    }
    let usedBytes = NaN;
    const measure = async (t: string, r: number, op: string): Promise<Sample> => {
      const ie = initError.get(`${t}-${r}`);
      if (ie) return failed(r, ie);
      if (t === 'partclone|zstd') {
        const out = path.join(this.work, 'image-out', `${op}-${r + 1}`);
        fs.rmSync(out, { recursive: true, force: true });
        fs.mkdirSync(out, { recursive: true });
        warmCache(disk.disk);
        const m = await timed(partcloneZstd(disk.parts, out));
        const used = partcloneUsed(out, disk.parts.length);
        if (Number.isNaN(usedBytes) && Number.isFinite(used)) usedBytes = used + disk.parts[0]!.offset;
        const added = apparentBytes(out);
        fs.rmSync(out, { recursive: true, force: true });
        return sample(r, m, { added, bytesRead: used });
      }
      const cmd: Cmd = t === 'lifeboat' ? lifeboatImageCreate(this.env, repo(t, r), disk.disk) : resticStdin(this.env, repo(t, r), disk.disk);
      const before = usage(repo(t, r));
      warmCache(disk.disk, repo(t, r));
      const m = await timed(cmd);
      const after = usage(repo(t, r));
      const details = lastJson(m.stdout);
      const bytesRead = t === 'lifeboat' ? findNumber(details, ['bytesRead', 'bytes_read']) : disk.size;
      return sample(r, m, { added: after.bytes - before.bytes, files: after.files - before.files, ...(bytesRead !== undefined ? { bytesRead } : {}), ...(details ? { details } : {}) });
    };
    const ops: OpResult[] = [];
    ops.push(await this.interleave('image', { op: 'image1', title: 'first image', samples: {} }, tools, (t, r) => measure(t, r, 'image1')));
    log('image · mutating');
    const mutation = mutateDisk(disk, seed, 0.02);
    log(`image · ${fmtDiskMutation(mutation, usedBytes)}`);
    ops.push(await this.interleave('image', { op: 'image2', title: 'image after mutation', samples: {} }, tools, (t, r) => measure(t, r, 'image2')));
    const description =
      `${fmtBytes(disk.size)} raw disk, MBR: ext4 ${fmtBytes(disk.parts[0]!.size)} + FAT32 ${fmtBytes(disk.parts[1]!.size)}, ` +
      `${fmtBytes(usedBytes)} used (partclone's count + the 1 MiB before the first partition); ` +
      `mutation: ${fmtDiskMutation(mutation, usedBytes)}; partclone has no incremental mode, so its second image is a full one`;
    const d: DatasetResult = { name: 'image', description, tools, ops, facts: { diskBytes: disk.size, usedBytes, mutation }, targets: [] };
    d.targets = imageTargets(d, usedBytes);
    this.drop(path.join(this.work, 'repos', 'image'));
    this.drop(disk.dir);
    return d;
  }
}

/** One side of the s3 and server datasets: a tool with its repository per run. */
interface Contender {
  readonly name: string;
  readonly tool: FileTool;
  repo(run: number): string;
  /** The folder on this computer that holds the repository's files, if any: warmed before a command, its growth reported. */
  folder?(run: number): string;
  /** Starts watching a measured command; what it returns gives what was seen once the command ended. */
  watch?(): () => Partial<Sample>;
}

/** A dataset that could not run here, with the reason in its header. */
function skipped(name: string, why: string): DatasetResult {
  return { name, description: `skipped: ${why}`, tools: [], ops: [], facts: {}, targets: [] };
}

function fmtMutation(m: MutationSummary, files: number): string {
  return `${m.modified} modified, ${m.added} added, ${m.deleted} deleted (${(((m.modified + m.added + m.deleted) / files) * 100).toFixed(1)}% of the files), ${fmtBytes(m.bytesWritten)} written`;
}

function fmtDiskMutation(m: DiskMutation, used: number): string {
  const changed = m.blocksChanged * 4096;
  return `${m.ext4Files} ext4 + ${m.fatFiles} FAT files rewritten (${fmtBytes(m.bytesRewritten)}), ${m.blocksChanged} 4 KiB blocks changed (${fmtBytes(changed)}, ${((changed / used) * 100).toFixed(1)}% of the used bytes)`;
}

/** A file of about `near` bytes, for the restore-one-file operation. */
function pickOneFile(plan: TreePlan, near: number): string {
  let best = plan.files[0]!;
  for (const f of plan.files) if (Math.abs(f.size - near) < Math.abs(best.size - near)) best = f;
  return best.rel;
}

/** Where a tool put the restored tree: under the full source path, under its last name, or at the top. */
function verifyTree(expected: Map<string, Sum>, target: string, src: string): string {
  const candidates = [path.join(target, src), path.join(target, path.basename(src)), target];
  const root = candidates.find((c) => fs.existsSync(c) && fs.statSync(c).isDirectory()) ?? target;
  const c = compareSums(expected, checksumTree(root));
  return c.ok ? 'ok' : `${c.missing} missing, ${c.differ} differ, ${c.extra} extra (${c.examples.join('; ')})`;
}

function verifyFile(expected: Sum | undefined, file: string): string {
  if (!expected) return 'no checksum for the source file';
  if (!fs.existsSync(file)) return 'file not restored';
  const a = hashFile(file);
  return a.sha256 === expected.sha256 && a.size === expected.size ? 'ok' : `differs (${a.size} bytes vs ${expected.size})`;
}

/** Used bytes of all partitions, from partclone's "Space in use: … = N Blocks" and "Block size". */
function partcloneUsed(outDir: string, parts: number): number {
  let total = 0;
  for (let i = 1; i <= parts; i++) {
    let text: string;
    try {
      text = fs.readFileSync(path.join(outDir, `part${i}.log`), 'utf8');
    } catch {
      return NaN;
    }
    const blocks = /Space in use:.*?=\s*(\d+)\s*Blocks/.exec(text)?.[1];
    const size = /Block size:\s*(\d+)\s*Byte/.exec(text)?.[1];
    if (!blocks || !size) return NaN;
    total += Number(blocks) * Number(size);
  }
  return total;
}

function op(d: DatasetResult, name: string): OpResult | undefined {
  return d.ops.find((o) => o.op === name);
}

function fileTargets(d: DatasetResult): Target[] {
  const f = (o: string, t: string) => figure(op(d, o)?.samples[t]);
  const lbOk = (o: string): boolean => f(o, 'lifeboat').ok;
  const val = (o: string, t: string, k: 'wall' | 'rssKiB' | 'added'): number => (f(o, t).ok ? f(o, t)[k] : NaN);
  const t: Target[] = [];
  t.push(compareTarget('initial backup: wall time ≤ 1× restic', val('initial', 'lifeboat', 'wall'), val('initial', 'restic', 'wall'), 1, seconds, 'restic'));
  t.push(compareTarget('no-change backup: wall time ≤ 0.5× restic', val('nochange', 'lifeboat', 'wall'), val('nochange', 'restic', 'wall'), 0.5, seconds, 'restic'));
  const memOps = ['initial', 'nochange', 'mutated', 'restore'];
  const peak = (tool: string): number => (memOps.every(lbOk) || tool !== 'lifeboat' ? Math.max(...memOps.map((o) => val(o, tool, 'rssKiB'))) : NaN);
  t.push(compareTarget('peak memory (largest median RSS of the backups and the full restore) ≤ restic', peak('lifeboat'), peak('restic'), 1, kib, 'restic'));
  t.push(compareTarget('repository size after the three backups ≤ restic (default compression)', val('repoSize', 'lifeboat', 'added'), val('repoSize', 'restic', 'added'), 1, fmtBytes, 'restic'));
  t.push(compareTarget('full restore: wall time ≤ 1× restic', val('restore', 'lifeboat', 'wall'), val('restore', 'restic', 'wall'), 1, seconds, 'restic'));
  const v = f('restore', 'lifeboat');
  t.push({ text: 'full restore matches the source (checksum list)', measured: v.ok ? (v.verify ?? 'not verified') : 'n/a', pass: v.ok ? v.verify === 'ok' : null });
  return t;
}

/** P12's targets on the real-world datasets, beside P2's. */
function realTargets(d: DatasetResult): Target[] {
  const val = (o: string, t: string, k: 'wall' | 'rssKiB'): number => {
    const f = figure(op(d, o)?.samples[t]);
    return f.ok ? f[k] : NaN;
  };
  return [
    compareTarget('initial backup: wall time ≤ 0.8× restic (P12)', val('initial', 'lifeboat', 'wall'), val('initial', 'restic', 'wall'), 0.8, seconds, 'restic'),
    compareTarget('check --read-data: wall time ≤ restic (P12)', val('check', 'lifeboat', 'wall'), val('check', 'restic', 'wall'), 1, seconds, 'restic'),
    compareTarget('check --read-data: peak memory ≤ restic (P12)', val('check', 'lifeboat', 'rssKiB'), val('check', 'restic', 'rssKiB'), 1, kib, 'restic'),
  ];
}

/** P9 on S3: initial backup and restore no slower than restic's S3 backend; the no-change backup's requests and time beside restic's. */
function s3Targets(d: DatasetResult): Target[] {
  const f = (o: string, t: string) => figure(op(d, o)?.samples[t]);
  const wall = (o: string, t: string): number => (f(o, t).ok ? f(o, t).wall : NaN);
  const v = f('restore', 'lifeboat');
  const nc = (t: string): string => (f('nochange', t).ok ? `${t} ${f('nochange', t).requests} requests in ${seconds(f('nochange', t).wall)}` : `${t} n/a`);
  return [
    compareTarget("initial backup into radosgw: wall time ≤ 1× restic's S3 backend (P9)", wall('initial', 'lifeboat'), wall('initial', 'restic'), 1, seconds, 'restic'),
    compareTarget('full restore from radosgw: wall time ≤ 1× restic (P9)', wall('restore', 'lifeboat'), wall('restore', 'restic'), 1, seconds, 'restic'),
    { text: 'full restore from radosgw matches the source (checksum list)', measured: v.ok ? (v.verify ?? 'not verified') : 'n/a', pass: v.ok ? v.verify === 'ok' : null },
    { text: 'no-change backup to radosgw: requests and wall time (P9)', measured: `${nc('lifeboat')}, ${nc('restic')}`, pass: null, info: true },
  ];
}

/** P9 through the server: at least 80% of the folder's throughput (same bytes, so wall ≤ 1.25× the folder's), and restores that match. */
function serverTargets(d: DatasetResult): Target[] {
  const t: Target[] = [];
  for (const mode of ['server-http', 'server-https']) {
    const over = mode === 'server-http' ? 'HTTP' : 'HTTPS';
    for (const [o, title] of [
      ['initial', 'initial backup'],
      ['restore', 'full restore'],
    ] as const) {
      const a = figure(op(d, o)?.samples[mode]);
      const f = figure(op(d, o)?.samples['folder']);
      const text = `${title} through lifeboat server over ${over}: throughput ≥ 80% of the folder's (P9)`;
      if (!a.ok || !f.ok) t.push({ text, measured: `${mode} ${a.ok ? seconds(a.wall) : 'n/a'}, folder ${f.ok ? seconds(f.wall) : 'n/a'}`, pass: null });
      else t.push({ text, measured: `${seconds(a.wall)} vs the folder's ${seconds(f.wall)}: ${((100 * f.wall) / a.wall).toFixed(0)}% of its throughput (limit 80%)`, pass: f.wall >= 0.8 * a.wall });
    }
    const v = figure(op(d, 'restore')?.samples[mode]);
    t.push({ text: `full restore through lifeboat server over ${over} matches the source (checksum list)`, measured: v.ok ? (v.verify ?? 'not verified') : 'n/a', pass: v.ok ? v.verify === 'ok' : null });
  }
  return t;
}

function imageTargets(d: DatasetResult, used: number): Target[] {
  const lb1 = figure(op(d, 'image1')?.samples['lifeboat']);
  const lb2 = figure(op(d, 'image2')?.samples['lifeboat']);
  const pc = figure(op(d, 'image1')?.samples['partclone|zstd']);
  const rs = figure(op(d, 'image1')?.samples['restic --stdin']);
  const ok = (f: typeof lb1, v: number): number => (f.ok ? v : NaN);
  const t: Target[] = [];
  t.push(compareTarget('first image reads only the used blocks: bytes read ≤ 1.05× used bytes', ok(lb1, lb1.bytesRead), used, 1.05, fmtBytes, 'used'));
  t.push(compareTarget('first image stores no more than the used bytes', ok(lb1, lb1.added), used, 1, fmtBytes, 'used'));
  t.push(compareTarget('first image: repository bytes ≤ restic --stdin of the drive (P12)', ok(lb1, lb1.added), ok(rs, rs.added), 1, fmtBytes, 'restic'));
  t.push(compareTarget('first image: wall time ≤ 1× partclone | zstd -3 (throughput at least theirs)', ok(lb1, lb1.wall), ok(pc, pc.wall), 1, seconds, 'partclone|zstd'));
  t.push(compareTarget('image after ~2% changed: adds ≤ 3% of the used bytes', ok(lb2, lb2.added), used, 0.03, fmtBytes, 'used'));
  t.push(compareTarget('image after ~2% changed: wall time ≤ 0.5× the first image ("well under")', ok(lb2, lb2.wall), ok(lb1, lb1.wall), 0.5, seconds, 'first image'));
  return t;
}

function datasetJson(d: DatasetResult): unknown {
  return {
    name: d.name,
    description: d.description,
    facts: d.facts,
    targets: d.targets,
    operations: Object.fromEntries(
      d.ops.map((o) => [o.op, { title: o.title, tools: Object.fromEntries(d.tools.map((t) => [t, { median: figure(o.samples[t]), samples: o.samples[t] ?? [] }])) }]),
    ),
  };
}

function machineText(m: MachineDescription): string {
  return [
    `machine: ${m.host}: ${m.cpu}, ${m.cores} cores, ${fmtBytes(m.memoryBytes)} memory; ${m.os}; kernel ${m.kernel}`,
    `versions: node ${m.node}, lifeboat ${m.lifeboatCommit}, ${Object.values(m.versions).join('; ')}`,
  ].join('\n');
}

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  const bench = new Bench(o);
  const loadBefore = os.loadavg()[0]!;
  log(`lifeboat benchmark: ${o.quick ? 'quick' : 'full'} mode, ${o.runs} run(s) each, datasets: ${[...o.only].join(', ')}; work folder ${bench.work}`);
  ensureTools(log);
  bench.cleanUpInBackground(true); // what an earlier run left
  fs.mkdirSync(bench.work, { recursive: true });
  const results: DatasetResult[] = [];
  for (const name of RUN_ORDER) {
    if (!o.only.has(name)) continue;
    try {
      results.push(await bench[name]());
      if (!o.quick && !o.keep) bench.emptyTrash();
    } catch (e) {
      log(`${name} · the dataset could not be measured: ${e instanceof Error ? e.message : String(e)}`);
      results.push({ name, description: `could not be measured: ${e instanceof Error ? e.message : String(e)}`, tools: [], ops: [], facts: {}, targets: [] });
    }
  }
  results.sort((a, b) => DATASETS.indexOf(a.name as DatasetName) - DATASETS.indexOf(b.name as DatasetName));
  const machine = describeMachine(bench.root);
  const seconds = Math.round((Date.now() - started) / 1000);
  const header = [
    `Lifeboat benchmark, ${new Date().toISOString()}, ${o.quick ? 'quick' : 'full'} mode, median of ${o.runs} run(s), ${seconds} s in all`,
    machineText(machine),
    `load average (1 min) at the start ${loadBefore.toFixed(2)}, at the end ${os.loadavg()[0]!.toFixed(2)}: anything well above 0 means other work shared the ${machine.cores} cores.`,
    'restic: default compression (auto); borg: --compression zstd,3, repokey encryption; lifeboat: its defaults.',
    'wall/cpu in seconds (cpu = user + sys); peak RSS of the largest process (GNU time %M); added = bytes the repository grew by',
    '(apparent size) and files = how many files it grew by (for repository size: its totals); read = bytes read from the',
    'source where known. Ratios are lifeboat ÷ other: below 1× Lifeboat is better.',
  ].join('\n');
  const text = [header, ...results.map(renderDataset)].join('\n\n') + '\n';
  const json = { date: new Date().toISOString(), mode: o.quick ? 'quick' : 'full', runs: o.runs, seconds, loadAverage: { start: loadBefore, end: os.loadavg()[0] }, machine, datasets: results.map(datasetJson) };
  if (o.json) {
    process.stderr.write(`\n${text}`);
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  } else {
    process.stdout.write(`\n${text}`);
  }
  if (o.save) {
    const dir = path.join(bench.root, 'bench', 'results');
    fs.mkdirSync(dir, { recursive: true });
    const base = path.join(dir, `${new Date().toISOString().slice(0, 10)}-${os.hostname()}${o.quick ? '-quick' : ''}`);
    fs.writeFileSync(`${base}.json`, `${JSON.stringify(json, null, 2)}\n`);
    fs.writeFileSync(`${base}.md`, `# Lifeboat benchmark, ${json.date.slice(0, 10)}, ${os.hostname()}\n\n${machineText(machine).replace(/\n/g, '\n\n')}\n\n\`\`\`\n${text}\`\`\`\n`);
    log(`saved ${base}.json and ${base}.md`);
  }
  if (!o.keep) {
    bench.cleanUpInBackground(true);
    log(`removing ${bench.work} in the background`);
  } else {
    bench.cleanUpInBackground(false);
    log(`kept ${bench.work}`);
  }
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
