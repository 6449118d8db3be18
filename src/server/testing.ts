/**
 * Test helpers for the dashboard (a started server in a temporary home, and raw HTTP requests with
 * any Host header) and for `lifeboat server` (started through the real CLI).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import type { TestContext } from 'node:test';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { BIN } from '../cli/testing.js';
import { tmp } from '../files/testing.js';
import { startDashboard, type Dashboard } from './serve.js';
import type { Clock } from '../util/clock.js';

export interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
  json<T = Record<string, unknown>>(): T;
}

export function http(origin: string, method: string, path: string, headers: Record<string, string> = {}, body?: unknown): Promise<Reply> {
  const u = new URL(path, origin);
  const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((res, rej) => {
    const req = request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: { ...(data ? { 'content-type': 'application/json', 'content-length': String(data.length) } : {}), ...headers } }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => {
        const b = Buffer.concat(chunks);
        res({ status: r.statusCode ?? 0, headers: r.headers, body: b, json: <T>() => JSON.parse(b.toString('utf8')) as T });
      });
      r.on('error', rej);
    });
    req.on('error', rej);
    req.end(data);
  });
}

export interface Home {
  readonly dir: string;
  readonly dashboard: Dashboard;
  /** The folder to back up (a few files) and an empty "drive" to back up to. */
  readonly source: string;
  readonly drive: string;
  /** Headers of a logged-in same-origin request. */
  readonly auth: { readonly cookie: string; readonly origin: string };
}

/** A dashboard on a random port, its data in a temporary folder (XDG_DATA_HOME / XDG_CACHE_HOME point there); runs are timed by `clock` when given. */
export async function startHome(t: TestContext, o: { readonly clock?: Clock } = {}): Promise<Home> {
  const dir = tmp(t);
  process.env['XDG_DATA_HOME'] = join(dir, 'data');
  process.env['XDG_CACHE_HOME'] = join(dir, 'cache');
  const source = join(dir, 'home', 'Documents');
  mkdirSync(join(source, 'letters'), { recursive: true });
  writeFileSync(join(source, 'letters', 'mum.txt'), 'Dear Mum,\n');
  const big = Buffer.alloc(3_000_000);
  for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
  writeFileSync(join(source, 'photo.raw'), big);
  const drive = join(dir, 'Passport');
  mkdirSync(drive);
  const dashboard = await startDashboard({ statePath: join(dir, 'data', 'lifeboat', 'jobs.db'), port: 0, schedule: false, ...(o.clock ? { clock: o.clock } : {}) });
  t.after(async () => {
    await dashboard.close();
  });
  return { dir, dashboard, source, drive, auth: { cookie: `lifeboat_token=${dashboard.token}`, origin: dashboard.origin } };
}

export interface RepoServer {
  readonly child: ChildProcess;
  /** http://127.0.0.1:PORT */
  readonly origin: string;
  /** https only: the certificate fingerprint it printed. */
  readonly fingerprint?: string;
  readonly firstLine: string;
  /** What it has written to stderr so far (its log of refused and failed requests). */
  readonly log: () => string;
  /** Ctrl-C; resolves with its exit code (130 when it stopped cleanly). */
  readonly stop: () => Promise<number | null>;
}

/**
 * `lifeboat server --data DATA` on a free loopback port, through the real CLI: plain HTTP (--http)
 * unless `https`; `env` adds to its environment (S3 credentials, XDG_DATA_HOME for an s3: data location's tokens).
 */
export async function startServer(data: string, o: { readonly https?: boolean; readonly env?: Record<string, string> } = {}): Promise<RepoServer> {
  const child = spawn(process.execPath, [BIN, 'server', '--data', data, '--listen', '127.0.0.1:0', ...(o.https ? [] : ['--http'])], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...o.env } });
  let log = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (log += d));
  let out = '';
  const firstLine = await new Promise<string>((res, rej) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('\n')) res(out.split('\n')[0]!);
    });
    child.on('exit', (code) => rej(new Error(`the server exited with ${code}`)));
  });
  const m = /listening on (https?:\/\/127\.0\.0\.1:\d+)(?: with certificate fingerprint ([0-9A-F:]+))?/.exec(firstLine);
  assert.ok(m, firstLine);
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  return {
    child,
    origin: m[1]!,
    ...(m[2] ? { fingerprint: m[2] } : {}),
    firstLine,
    log: () => log,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
      return exited;
    },
  };
}

/** Every file under `root` (a server's data folder), with the SHA-256 of its bytes. */
export function fileHashes(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out.set(relative(root, p), createHash('sha256').update(readFileSync(p)).digest('hex'));
    }
  };
  walk(root);
  return out;
}
