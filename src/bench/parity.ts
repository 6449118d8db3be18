/**
 * The cost of parity (bench/README.md, "Parity"): repository growth and backup / restore time of
 * one generated tree without parity and with `--parity 10%`, through the real CLI. A small run for
 * a shared machine, not part of `npm run bench`:
 *   node dist/bench/parity.js [MiB=200] [runs=2]
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { encodeSidecar, paritySettings } from '../store/parity.js';
import { planTree, writeTree } from './tree.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'lifeboat.js');

function run(args: string[], env: Record<string, string>): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, LIFEBOAT_INSECURE_FAST_KDF: '1', ...env }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`lifeboat ${args.join(' ')} failed (${String(r.status)}): ${r.stderr}`);
  return Number(process.hrtime.bigint() - t) / 1e9;
}

function du(dir: string): number {
  let n = 0;
  if (!fs.existsSync(dir)) return 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) n += e.isDirectory() ? du(path.join(dir, e.name)) : fs.statSync(path.join(dir, e.name)).size;
  return n;
}

const mib = Number(process.argv[2] ?? 200);
const runs = Number(process.argv[3] ?? 2);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'lifeboat-parity-bench-'));
try {
  const src = path.join(work, 'src');
  const plan = planTree({ seed: 'parity', files: 2000, bytes: mib * 1024 * 1024, largeMin: 8 * 1024 * 1024, largeMax: 32 * 1024 * 1024 });
  writeTree(src, 'parity', plan);
  const total = du(src);
  const modes = ['none', '10%'] as const;
  const best = new Map(modes.map((m) => [m, { backup: Infinity, restore: Infinity, size: 0, parity: 0 }]));
  // Modes alternate within each run, so a busy moment of the shared machine hits both.
  for (let i = 0; i < runs; i++) {
    for (const mode of modes) {
      const b = best.get(mode)!;
      const repo = path.join(work, `repo-${mode}-${i}`);
      const env = { LIFEBOAT_REPO: repo, LIFEBOAT_PASSWORD: 'bench' };
      run(mode === 'none' ? ['init'] : ['init', '--parity', mode], env);
      b.backup = Math.min(b.backup, run(['backup', src], env));
      const target = path.join(work, `out-${mode}-${i}`);
      b.restore = Math.min(b.restore, run(['restore', 'latest', '--target', target], env));
      b.size = du(repo);
      b.parity = du(path.join(repo, 'parity'));
      fs.rmSync(target, { recursive: true, force: true });
      fs.rmSync(repo, { recursive: true, force: true });
    }
  }
  const m = (n: number) => (n / 1048576).toFixed(1);
  const rows = modes.map((mode) => {
    const b = best.get(mode)!;
    return `| ${mode} | ${m(b.size)} MiB | ${m(b.parity)} MiB (${((100 * b.parity) / (b.size - b.parity)).toFixed(1)} %) | ${b.backup.toFixed(2)} s (${m(total / b.backup)} MiB/s) | ${b.restore.toFixed(2)} s (${m(total / b.restore)} MiB/s) |`;
  });
  // The codec alone, on one thread: parity of 64 MiB of packs (the data setting of 10 %).
  const sample = randomBytes(64 * 1024 * 1024);
  const t = process.hrtime.bigint();
  encodeSidecar(sample, paritySettings(10).data);
  const encodeMiBs = 64 / (Number(process.hrtime.bigint() - t) / 1e9);
  console.log(`tree: ${plan.files.length} files, ${(total / 1048576).toFixed(1)} MiB; best of ${runs} runs; ${os.cpus().length} cores`);
  console.log('| parity | repository | of which parity | backup | restore |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const r of rows) console.log(r);
  console.log(`parity encoding alone (10 %, one thread): ${encodeMiBs.toFixed(0)} MiB/s`);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
