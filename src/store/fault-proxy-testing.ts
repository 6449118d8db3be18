/**
 * A fault-injecting HTTP proxy for tests (issue 20, "Faults"): put between a client and a Lifeboat
 * server (or an S3 endpoint), it passes requests on and, for about `rate` of them, does instead
 * what a bad network or a struggling server does:
 *   - delay:       waits up to `maxDelayMs`, then passes the request on;
 *   - 500 / 503:   answers with that status (503 is S3's SlowDown) without passing the request on;
 *   - reset:       drops the connection before passing the request on;
 *   - reset-after: passes the request on (the server does the work) and drops the connection
 *                  before the answer, so the client cannot know whether it happened;
 *   - truncate:    passes the answer on with its announced length but only half of its body, then
 *                  drops the connection.
 * and, only when a test's own `decide` asks for them:
 *   - 507:         answers as a Lifeboat server whose drive is full;
 *   - hang:        never answers (a server that stopped responding), until the proxy is closed.
 * Which requests fail comes from `seed` (the same seed, the same requests in the same order fail
 * the same way); the kinds take turns, so every kind happens once `kinds.length` faults were
 * injected; at most `maxFaults` are injected in all. Everything stays on 127.0.0.1.
 */
import { Agent, createServer, request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { prng } from '../util/testing.js';

export type FaultKind = 'delay' | '500' | '503' | 'reset' | 'reset-after' | 'truncate' | '507' | 'hang';
export const FAULT_KINDS: readonly FaultKind[] = ['delay', '500', '503', 'reset', 'reset-after', 'truncate'];

export interface FaultProxyOptions {
  /** Where requests go: http://127.0.0.1:PORT. */
  readonly target: string;
  readonly seed: number;
  /** The chance of a fault per request, 0 to 1. */
  readonly rate: number;
  /** No more faults than this, ever. */
  readonly maxFaults: number;
  readonly kinds?: readonly FaultKind[];
  /** The longest delay (default 400 ms). */
  readonly maxDelayMs?: number;
  /**
   * Decides each request's fate instead of the seed (a test's own script): a fault, or undefined
   * to pass it on. `path` is the request's path with its query.
   */
  readonly decide?: (method: string, path: string) => FaultKind | undefined;
  /** The body of a 500, 503 or 507: JSON {code, message} as the Lifeboat server sends (default), or S3's XML. */
  readonly errors?: 'lifeboat' | 's3';
}

export interface FaultProxy {
  /** http://127.0.0.1:PORT, to use instead of the target's address. */
  readonly origin: string;
  /** Faults injected so far, by kind. */
  readonly injected: Map<FaultKind, number>;
  /** Requests seen so far. */
  requests(): number;
  /** While false, every request passes untouched (and the seed's sequence does not advance). */
  enabled: boolean;
  close(): Promise<void>;
}

function errorAnswer(res: ServerResponse, status: number, flavour: 'lifeboat' | 's3'): void {
  const body =
    flavour === 's3'
      ? `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${status === 503 ? 'SlowDown' : 'InternalError'}</Code><Message>injected by the test</Message></Error>`
      : JSON.stringify({ code: status === 507 ? 'no-space' : 'io', message: `injected by the test (${status})` });
  res.writeHead(status, { 'content-type': flavour === 's3' ? 'application/xml' : 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export async function faultProxy(o: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(o.target);
  const kinds = o.kinds ?? FAULT_KINDS;
  const next = prng(o.seed);
  const injected = new Map<FaultKind, number>();
  const agent = new Agent({ keepAlive: true });
  let requests = 0;
  let faults = 0;
  const state = { enabled: true };

  const choose = (): FaultKind | undefined => {
    if (!state.enabled) return undefined;
    requests++;
    if (faults >= o.maxFaults || next() >= o.rate) return undefined;
    const kind = kinds[faults % kinds.length]!;
    faults++;
    injected.set(kind, (injected.get(kind) ?? 0) + 1);
    return kind;
  };

  /** Passes the request on; `answer` gets the upstream answer (its body read whole), or undefined when the target did not answer. */
  const forward = (req: IncomingMessage, answer: (a: { status: number; headers: IncomingHttpHeaders; body: Buffer } | undefined) => void): void => {
    const up = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => answer({ status: r.statusCode ?? 502, headers: r.headers, body: Buffer.concat(chunks) }));
      r.on('error', () => answer(undefined));
    });
    up.on('error', () => answer(undefined));
    req.pipe(up);
  };

  const server = createServer((req, res) => {
    const kind = o.decide ? o.decide(req.method ?? '', req.url ?? '') : choose();
    if (o.decide && kind) injected.set(kind, (injected.get(kind) ?? 0) + 1);
    const drop = (): void => {
      res.socket?.destroy();
    };
    const pass = (): void =>
      forward(req, (a) => {
        if (!a) return drop();
        res.writeHead(a.status, a.headers);
        res.end(a.body);
      });
    switch (kind) {
      case undefined:
        return pass();
      case 'delay':
        setTimeout(pass, Math.floor(next() * (o.maxDelayMs ?? 400)));
        return;
      case 'hang':
        req.resume();
        return;
      case '500':
      case '503':
      case '507':
        req.resume();
        req.on('end', () => errorAnswer(res, Number(kind), o.errors ?? 'lifeboat'));
        return;
      case 'reset':
        return drop();
      case 'reset-after':
        return forward(req, drop);
      case 'truncate':
        return forward(req, (a) => {
          if (!a || a.body.length < 2) return drop(); // nothing to cut: as reset-after
          res.writeHead(a.status, a.headers); // the full length announced (or chunked)
          res.write(a.body.subarray(0, a.body.length >> 1), () => setTimeout(drop, 10));
        });
    }
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    injected,
    requests: () => requests,
    get enabled() {
      return state.enabled;
    },
    set enabled(v: boolean) {
      state.enabled = v;
    },
    close: () =>
      new Promise<void>((r) => {
        agent.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
