/**
 * An HTTP proxy on 127.0.0.1 that counts the requests passing through it, by kind, and can answer
 * chosen ones with a failure instead: the S3 tests put it between the CLI and radosgw (request
 * counts, injected faults), and the benchmark between each tool and radosgw (how many requests
 * Lifeboat and restic make). Only node: modules; no part of the product uses it.
 */
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface CountingProxy {
  /** Its address, to use instead of the server's in a repository URL. */
  readonly endpoint: string;
  /** Requests since the last reset, by kind: GET, GET range, HEAD, PUT, POST, DELETE, LIST. */
  readonly counts: Map<string, number>;
  /** Each request since the last reset, as "KIND /path?query", in the order they came. */
  readonly requests: string[];
  /** Body bytes since the last reset: sent to the server (requests) and received from it (answers). */
  readonly bytes: { sent: number; received: number };
  total(): number;
  reset(): void;
  /** Replaces the failure rule (see Failure); undefined passes everything on. */
  failWith(fail: Failure | undefined): void;
  close(): Promise<void>;
}

/**
 * A failure rule: given the number of a request (from 1) and the request, answer it with an HTTP
 * status instead of passing it on (503 as S3's SlowDown, 500 as InternalError, or any status with
 * the S3 error code given), or 'reset' to drop the connection after the request went through (so
 * the server did the work, but the answer is lost).
 */
export type Failure = (n: number, req: { readonly method: string; readonly url: string }) => number | { readonly status: number; readonly code: string } | 'reset' | undefined;

/** Starts a proxy in front of the HTTP server at `target` (such as http://127.0.0.1:7480). */
export async function countingProxy(target: string, options: { fail?: Failure } = {}): Promise<CountingProxy> {
  const to = new URL(target);
  const counts = new Map<string, number>();
  const bytes = { sent: 0, received: 0 };
  const requests: string[] = [];
  let n = 0;
  let fail = options.fail;
  const server = createServer((req, res) => {
    const kind = req.method === 'GET' && /[?&]list-type=/.test(req.url ?? '') ? 'LIST' : req.method === 'GET' && req.headers.range ? 'GET range' : (req.method ?? '?');
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
    requests.push(`${kind} ${req.url ?? ''}`);
    const failure = fail?.(++n, { method: req.method ?? '', url: req.url ?? '' });
    const status = typeof failure === 'object' ? failure.status : failure;
    if (typeof status === 'number') {
      const code = typeof failure === 'object' ? failure.code : status === 503 ? 'SlowDown' : 'InternalError';
      req.resume();
      req.on('end', () => res.writeHead(status, { 'content-type': 'application/xml' }).end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected by the test</Message></Error>`));
      return;
    }
    // The Host header goes through unchanged: it is part of what the client signed.
    const up = request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      if (status === 'reset') {
        r.resume();
        r.on('end', () => res.socket?.destroy());
        return;
      }
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.on('data', (d: Buffer) => (bytes.received += d.length));
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.on('data', (d: Buffer) => (bytes.sent += d.length));
    req.pipe(up);
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    counts,
    requests,
    bytes,
    total: () => [...counts.values()].reduce((a, b) => a + b, 0),
    reset: () => {
      counts.clear();
      requests.length = 0;
      bytes.sent = bytes.received = 0;
    },
    failWith: (f) => {
      fail = f;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
