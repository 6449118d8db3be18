/**
 * Through `lifeboat server` on loopback against a folder on this computer (bench/README.md,
 * "Lifeboat server"; issue 20 asks for at least 80 % of the folder's throughput): backup and
 * restore of one generated tree into a folder repository, and into a server repository over plain
 * HTTP and over HTTPS (the server's data folder on the same disk). Client wall and CPU time from GNU
 * time, the server's CPU time from /proc (Linux). A small run for a shared machine, not part of
 * `npm run bench`:
 *   node dist/bench/server.js [MiB=200] [runs=2]
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { timed } from './exec.js';
import { planTree, writeTree } from './tree.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'lifeboat.js');
const MODES = ['folder', 'http', 'https'] as const;
type Mode = (typeof MODES)[number];

interface Figures {
  wall: number[];
  client: number[];
  server: number[];
}

/** CPU seconds (user + system) a process has used so far, from /proc/PID/stat. */
function cpuOf(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime (fields 14 and 15), in clock ticks of 1/100 s
}

function lifeboat(args: string[], env: NodeJS.ProcessEnv): string {
  const r = spawnSync(process.execPath, [BIN, ...args], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`lifeboat ${args.join(' ')} failed (${String(r.status)}): ${r.stderr}`);
  return r.stdout;
}

async function startServer(data: string, https: boolean, env: NodeJS.ProcessEnv): Promise<{ pid: number; origin: string; fingerprint?: string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [BIN, 'server', '--data', data, '--listen', '127.0.0.1:0', ...(https ? [] : ['--http'])], { env, stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  const line = await new Promise<string>((res, rej) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('\n')) res(out.split('\n')[0]!);
    });
    child.on('exit', (code) => rej(new Error(`the server exited with ${String(code)}`)));
  });
  const m = /listening on (https?:\/\/[\d.]+:\d+)(?: with certificate fingerprint ([0-9A-F:]+))?/.exec(line);
  if (!m) throw new Error(`unexpected server output: ${line}`);
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  return {
    pid: child.pid!,
    origin: m[1]!,
    ...(m[2] ? { fingerprint: m[2] } : {}),
    stop: async () => {
      child.kill('SIGINT');
      await exited;
    },
  };
}

const median = (v: readonly number[]): number => [...v].sort((a, b) => a - b)[Math.floor((v.length - 1) / 2)]!;

const mib = Number(process.argv[2] ?? 200);
const runs = Number(process.argv[3] ?? 2);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'lifeboat-server-bench-'));
try {
  const src = path.join(work, 'src');
  const plan = planTree({ seed: 'server', files: 2000, bytes: mib * 1024 * 1024, largeMin: 4 * 1024 * 1024, largeMax: 16 * 1024 * 1024 });
  writeTree(src, 'server', plan);
  const total = plan.files.reduce((s, f) => s + f.size, 0);
  const results = new Map<string, Figures>();
  const record = (key: string, wall: number, client: number, server: number): void => {
    const f = results.get(key) ?? { wall: [], client: [], server: [] };
    f.wall.push(wall);
    f.client.push(client);
    f.server.push(server);
    results.set(key, f);
  };
  // Modes alternate within each run, so a busy moment of the shared machine hits all of them.
  for (let i = 0; i < runs; i++) {
    for (const mode of MODES as readonly Mode[]) {
      const base: NodeJS.ProcessEnv = { ...process.env, LIFEBOAT_INSECURE_FAST_KDF: '1', LIFEBOAT_PASSWORD: 'bench', XDG_CACHE_HOME: path.join(work, `cache-${mode}-${i}`), XDG_DATA_HOME: path.join(work, `data-${mode}-${i}`) };
      const data = path.join(work, `server-${mode}-${i}`);
      let env = base;
      let repo = path.join(work, `repo-${i}`);
      let server: Awaited<ReturnType<typeof startServer>> | undefined;
      if (mode !== 'folder') {
        fs.mkdirSync(data);
        const token = lifeboat(['server', 'token', 'add', 'bench', '--role', 'admin', '--data', data], base).trim();
        server = await startServer(data, mode === 'https', base);
        env = { ...base, LIFEBOAT_TOKEN: token, ...(server.fingerprint ? { LIFEBOAT_SERVER_FINGERPRINT: server.fingerprint } : {}) };
        repo = `lifeboat:${server.origin}/bench`;
      }
      try {
        lifeboat(['--repo', repo, 'init'], env);
        const target = path.join(work, `out-${mode}-${i}`);
        for (const [op, args] of [
          ['backup', ['--repo', repo, 'backup', src]],
          ['restore', ['--repo', repo, 'restore', 'latest', '--target', target]],
        ] as const) {
          const s0 = server ? cpuOf(server.pid) : 0;
          const m = await timed({ cmd: process.execPath, args: [BIN, ...args], env });
          if (!m.ok) throw new Error(`${mode} ${op}: ${m.error ?? m.exitCode}`);
          record(`${mode} ${op}`, m.wall, m.user + m.sys, server ? cpuOf(server.pid) - s0 : 0);
        }
        fs.rmSync(target, { recursive: true, force: true });
      } finally {
        await server?.stop();
        fs.rmSync(mode === 'folder' ? repo : data, { recursive: true, force: true });
      }
    }
  }
  const m = (n: number): string => (n / 1048576).toFixed(1);
  console.log(`tree: ${plan.files.length} files, ${m(total)} MiB; median of ${runs} runs; ${os.cpus().length} cores, load average ${os.loadavg()[0]!.toFixed(1)}`);
  console.log('| repository | backup | client CPU | server CPU | of the folder | restore | client CPU | server CPU | of the folder |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const mode of MODES) {
    const cells = (['backup', 'restore'] as const).map((op) => {
      const f = results.get(`${mode} ${op}`)!;
      const folder = median(results.get(`folder ${op}`)!.wall);
      const wall = median(f.wall);
      return `${wall.toFixed(2)} s (${m(total / wall)} MiB/s) | ${median(f.client).toFixed(2)} s | ${mode === 'folder' ? '–' : `${median(f.server).toFixed(2)} s`} | ${((100 * folder) / wall).toFixed(0)} %`;
    });
    console.log(`| ${mode === 'folder' ? 'folder' : `server, ${mode}`} | ${cells.join(' | ')} |`);
  }
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
