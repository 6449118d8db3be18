/**
 * `lifeboat server` for the benchmark's `server` dataset (bench/README.md, "Lifeboat server"; issue
 * 20 asks for at least 80 % of the folder's throughput): a server on 127.0.0.1 over plain HTTP or
 * HTTPS, its data folder in the bench's work folder, an admin token for the client, and the
 * server's CPU time from /proc (Linux).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { must } from './exec.js';
import { lifeboatCommand, lifeboatEnv, type ToolEnv } from './tools.js';

export interface RunningServer {
  readonly pid: number;
  /** http(s)://127.0.0.1:PORT */
  readonly origin: string;
  /** What the client needs: LIFEBOAT_TOKEN, and LIFEBOAT_SERVER_FINGERPRINT over HTTPS. */
  readonly clientEnv: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

/** CPU seconds (user + system) a process has used so far, from /proc/PID/stat. */
export function cpuOf(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime (fields 14 and 15), in clock ticks of 1/100 s
}

/** Starts `lifeboat server --data DATA` on a free port of 127.0.0.1 (with `--http` unless `https`), with an admin token. */
export async function startServer(t: ToolEnv, data: string, https: boolean): Promise<RunningServer> {
  const lb = lifeboatCommand(t.lifeboatRoot);
  const { LIFEBOAT_REPO: _, ...env } = lifeboatEnv(t, ''); // `token add` refuses a repository location
  fs.mkdirSync(data, { recursive: true });
  const token = must(lb.cmd, [...lb.args, 'server', 'token', 'add', 'bench', '--role', 'admin', '--data', data], { env }).trim();
  const child = spawn(lb.cmd, [...lb.args, 'server', '--data', data, '--listen', '127.0.0.1:0', ...(https ? [] : ['--http'])], { env, stdio: ['ignore', 'pipe', 'ignore'] });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  let out = '';
  const line = await new Promise<string>((res, rej) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('\n')) res(out.split('\n')[0]!);
    });
    child.on('exit', (code) => rej(new Error(`lifeboat server exited with ${String(code)} before it listened`)));
  });
  const m = /listening on (https?:\/\/[\d.]+:\d+)(?: with certificate fingerprint ([0-9A-F:]+))?/.exec(line);
  if (!m) {
    child.kill('SIGINT');
    throw new Error(`unexpected output of lifeboat server: ${line}`);
  }
  return {
    pid: child.pid!,
    origin: m[1]!,
    clientEnv: { LIFEBOAT_TOKEN: token, ...(m[2] ? { LIFEBOAT_SERVER_FINGERPRINT: m[2] } : {}) },
    stop: async () => {
      child.kill('SIGINT');
      await exited;
    },
  };
}
