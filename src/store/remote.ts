/**
 * A repository on a Lifeboat server (`lifeboat:http(s)://HOST:PORT/NAME`, server/repo-server.ts):
 * the Store operations over a small HTTP protocol, authenticated by a per-computer token.
 *
 * Protocol (version 1), every request with `Authorization: Bearer <token>`:
 *   GET    /v1/NAME/o/<object>[?offset=N[&length=N]]   the object or a byte range of it
 *   HEAD   /v1/NAME/o/<object>                         its size in X-Lifeboat-Size (404 when absent)
 *   PUT    /v1/NAME/o/<object>[?ifAbsent=1]            stores the body; Content-Length and
 *                                                      X-Lifeboat-Sha256 (hex) must match it
 *   DELETE /v1/NAME/o/<object>                         removes it (idempotent)
 *   GET    /v1/NAME/list?prefix=P                      one JSON line {"name","size"} per object
 *   POST   /v1/NAME/leftovers                          removes what killed writers left in the
 *                                                      server's store (prune, admin only; store.ts
 *                                                      LeftoverRemover): answers {"removed": N}
 * Errors answer a JSON body {"code","message"} (the message also URI-encoded in X-Lifeboat-Message,
 * for HEAD): 401 unknown token, 403 not allowed for the token's role or repository, 404 missing, 409 exists (ifAbsent), 416 range past the end, 507 server full, 5xx transient.
 *
 * Over https the server's certificate is self-signed (server/certificate.ts): the client trusts
 * exactly the certificate whose SHA-256 fingerprint it pinned (ServerPin), as SSH does with host
 * keys. Before the first request it fetches the certificate without sending anything, compares its
 * fingerprint, and from then on the connection accepts only that certificate (its trust anchor and
 * the fingerprint checked again in every handshake), so a token never reaches another server.
 *
 * Connection failures, timeouts and 5xx are transient (the RetryStore that openRemoteStore stacks
 * around this one tries again); 4xx are permanent and carry the server's one-sentence reason.
 */
import { createHash } from 'node:crypto';
import type { Agent as HttpAgent, IncomingHttpHeaders, OutgoingMessage } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import { LifeboatError, type ErrorCode } from '../util/errors.js';
import { LimitStore } from './limit.js';
import { assertValidPrefix } from './names.js';
import { RetryStore, type RetryOptions } from './retry.js';
import { assertValidName, collectingWriter, StoreError, type LeftoverRemover, type ObjectWriter, type OperationOptions, type PutOptions, type Store, type StoreProperties, type StoreStat } from './store.js';

/** The protocol's path prefix; a future incompatible protocol gets /v2. */
export const REMOTE_API = '/v1';
/** A repository name on a server: one folder-like name. */
export const REPOSITORY_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** The largest object the protocol carries in one request (packs are far smaller). */
export const REMOTE_MAX_OBJECT = 1024 * 1024 * 1024;

const URL_FORM = 'lifeboat:http(s)://HOST:PORT/NAME';
const MAX_IN_FLIGHT = 8;
const MAX_ATTEMPTS = 6;
const TIMEOUT_MS = 120_000;

/**
 * node:http, node:https and node:tls, loaded when a server repository first connects: every other
 * command and repository would pay ~2.3 MiB and 10-25 ms of start-up for them (session 19).
 */
interface Net {
  readonly http: typeof import('node:http');
  readonly https: typeof import('node:https');
  readonly tls: typeof import('node:tls');
}
let net: Promise<Net> | undefined;
function loadNet(): Promise<Net> {
  return (net ??= Promise.all([import('node:http'), import('node:https'), import('node:tls')]).then(([http, https, tls]) => ({ http, https, tls })));
}
/**
 * A body at least this large goes out in a write of its own, after the headers (endWithBody). Node's
 * TLS socket copies a write of several buffers (`end(body)` writes the headers and the body
 * together) into one new buffer before encrypting it: for a pack, 8–16 MiB of fresh memory faulted
 * in page by page, most of the server's CPU in a restore over HTTPS and a fifth of the client's
 * main thread in a backup (bench/README.md, "Lifeboat server", session 14). A single buffer is
 * encrypted where it lies.
 */
const OWN_WRITE = 64 * 1024;

/** Ends `out` with `body`, a large body in a write of its own (OWN_WRITE); `out` must have its socket. */
export function endWithBody(out: OutgoingMessage, body: Uint8Array, done?: () => void): void {
  if (body.byteLength >= OWN_WRITE) out.flushHeaders();
  out.end(body, done);
}

export interface RemoteLocation {
  /** http(s)://HOST:PORT */
  readonly origin: string;
  readonly name: string;
}

/** Which server certificate an https client trusts. */
export interface ServerPin {
  /** The fingerprint this computer expects ("AB:CD:…" or plain hex), when it knows one. */
  readonly expected?: string;
  /** Where `expected` came from, for the message when the server shows another. */
  readonly source?: string;
  /** First connection, nothing expected: resolves true to trust `fingerprint` (and remember it). */
  readonly firstUse?: (origin: string, fingerprint: string) => Promise<boolean>;
}

/** A SHA-256 fingerprint as Node prints it ("AB:CD:…"), from that form or plain hex; undefined if it is not one. */
export function normalizeFingerprint(text: string): string | undefined {
  const hex = text.replace(/^sha256:/i, '').replace(/[\s:]/g, '').toUpperCase();
  return /^[0-9A-F]{64}$/.test(hex) ? hex.match(/../g)!.join(':') : undefined;
}

export interface RemoteStoreOptions {
  /** The client's token (LIFEBOAT_TOKEN or --token-file). */
  readonly token: string;
  /** https only: the certificate to trust. */
  readonly pin?: ServerPin;
  readonly uploadsInFlight?: number;
}

export function isRemoteUrl(location: string): boolean {
  return /^lifeboat:/i.test(location);
}

/** Parses `lifeboat:http(s)://HOST:PORT/NAME`; a malformed URL is a 'usage' error saying the form. */
export function parseRemoteUrl(location: string): RemoteLocation {
  const bad = (why: string): LifeboatError => new LifeboatError('usage', `The repository URL "${location}" is not a valid Lifeboat server location (${why}); write it as ${URL_FORM}.`);
  if (!isRemoteUrl(location)) throw bad('it does not start with lifeboat:');
  let url: URL;
  try {
    url = new URL(location.slice('lifeboat:'.length));
  } catch {
    throw bad('the server address is missing or malformed');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw bad('the server must be given as http:// or https://');
  if (url.username || url.password) throw bad('tokens do not belong in the URL; set LIFEBOAT_TOKEN or use --token-file');
  if (url.search || url.hash) throw bad('it has a ? or # part');
  const parts = url.pathname.split('/').filter((p) => p !== '');
  if (parts.length !== 1 || !REPOSITORY_NAME_RE.test(parts[0]!)) throw bad('it must end with one repository name made of letters, digits, ".", "_" and "-"');
  return { origin: url.origin, name: parts[0]! };
}

/** The server's reason, shortened to one clean line (it is shown to the user). */
function cleanMessage(text: string): string {
  return text.replace(/[^\x20-\x7e\u00a0-\uffff]/g, ' ').slice(0, 500).trim();
}

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export class RemoteStore implements Store, LeftoverRemover {
  readonly location: string;
  readonly properties: StoreProperties;
  private readonly base: URL;
  private agent: HttpAgent | undefined;
  private pinnedAgent: Promise<HttpsAgent> | undefined;
  private closed = false;
  private readonly secure: boolean;

  constructor(
    readonly at: RemoteLocation,
    private readonly options: RemoteStoreOptions,
  ) {
    this.location = `Lifeboat server ${at.origin}/${at.name}`;
    this.properties = { uploadsInFlight: options.uploadsInFlight ?? 4 };
    this.base = new URL(`${REMOTE_API}/${at.name}/`, at.origin);
    this.secure = this.base.protocol === 'https:';
  }

  /** The agent for requests: for https, made once the server's certificate is the pinned one. */
  private async connection(): Promise<HttpAgent> {
    if (!this.secure) return (this.agent ??= new (await loadNet()).http.Agent({ keepAlive: true }));
    this.pinnedAgent ??= this.pin().catch((e: unknown) => {
      this.pinnedAgent = undefined;
      throw e;
    });
    return this.pinnedAgent;
  }

  /** The server's certificate, fetched without sending a byte of the protocol. */
  private async peerCertificate(): Promise<{ pem: string; fingerprint: string }> {
    const url = new URL(this.at.origin);
    const { tls } = await loadNet();
    return new Promise((res, rej) => {
      const socket = tls.connect({ host: url.hostname, port: Number(url.port || 443), rejectUnauthorized: false, ...(/^[\d.]+$|:/.test(url.hostname) ? {} : { servername: url.hostname }) });
      socket.setTimeout(TIMEOUT_MS, () => socket.destroy(new Error('no answer')));
      socket.once('secureConnect', () => {
        const c = socket.getPeerCertificate();
        socket.destroy();
        if (!c.raw) rej(new StoreError('io', `The Lifeboat server at ${this.at.origin} showed no certificate.`, false));
        else res({ pem: `-----BEGIN CERTIFICATE-----\n${c.raw.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END CERTIFICATE-----\n`, fingerprint: c.fingerprint256 });
      });
      socket.once('error', (e: NodeJS.ErrnoException) =>
        rej(new StoreError('io', `Could not reach the Lifeboat server at ${this.at.origin} (${e.code ?? e.message}); check that it is running and reachable from this computer.`, true, { cause: e })),
      );
    });
  }

  private async pin(): Promise<HttpsAgent> {
    const { pem, fingerprint } = await this.peerCertificate();
    const pin = this.options.pin ?? {};
    const expected = pin.expected === undefined ? undefined : normalizeFingerprint(pin.expected);
    if (pin.expected !== undefined && expected === undefined) {
      throw new LifeboatError('usage', `"${pin.expected}" (${pin.source ?? 'the expected fingerprint'}) is not a SHA-256 fingerprint; copy the one the server printed when it started (64 hexadecimal digits, with or without colons).`);
    }
    if (expected !== undefined && expected !== fingerprint) {
      throw new StoreError(
        'io',
        `The Lifeboat server at ${this.at.origin} shows the certificate fingerprint ${fingerprint}, but this computer expects ${expected} (${pin.source ?? 'pinned'}): someone may be intercepting the connection, so nothing was sent. If the server's administrator made a new certificate, trust the new fingerprint they give you.`,
        false,
      );
    }
    if (expected === undefined && !(await pin.firstUse?.(this.at.origin, fingerprint))) {
      throw new LifeboatError(
        'usage',
        `This computer has not connected to the Lifeboat server at ${this.at.origin} before; it shows the certificate fingerprint ${fingerprint}. If that is the fingerprint the server printed when it started, set LIFEBOAT_SERVER_FINGERPRINT to it (or run on a terminal to be asked).`,
      );
    }
    return new (await loadNet()).https.Agent({
      keepAlive: true,
      ca: pem,
      checkServerIdentity: (_host, cert) => (cert.fingerprint256 === fingerprint ? undefined : Object.assign(new Error(`the server's certificate changed to ${cert.fingerprint256}`), { code: 'LIFEBOAT_FINGERPRINT' })),
    });
  }

  private objectUrl(name: string, query = ''): URL {
    return new URL(`o/${name}${query}`, this.base);
  }

  /**
   * One request. With a body, an abort that comes once the body is all sent waits for the answer
   * (the server may already have stored it), so a put that rejects with the abort stored nothing.
   */
  private async request(method: string, url: URL, o: { body?: Uint8Array; headers?: Record<string, string>; signal?: AbortSignal | undefined } = {}): Promise<Answer> {
    const { signal } = o;
    signal?.throwIfAborted();
    if (this.closed) throw new StoreError('io', `The connection to the Lifeboat server at ${this.at.origin} was closed.`, false);
    const agent = await this.connection();
    const { http, https } = await loadNet();
    signal?.throwIfAborted();
    return new Promise<Answer>((resolveAnswer, reject) => {
      let settled = false;
      let bodySent = o.body === undefined;
      const finish = (e: unknown, a?: Answer): void => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        if (a) resolveAnswer(a);
        else reject(e);
      };
      const headers: Record<string, string> = { authorization: `Bearer ${this.options.token}`, ...o.headers };
      if (o.body) headers['content-length'] = String(o.body.byteLength);
      const req = (this.secure ? https.request : http.request)(url, { method, headers, agent });
      const onAbort = (): void => {
        if (o.body !== undefined && bodySent) return;
        req.destroy();
        finish(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      req.setTimeout(TIMEOUT_MS, () => req.destroy(new StoreError('io', `The Lifeboat server at ${this.at.origin} did not answer for ${TIMEOUT_MS / 1000} seconds.`, true)));
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e instanceof StoreError) finish(e);
        else if (e.code === 'LIFEBOAT_FINGERPRINT') finish(new StoreError('io', `The Lifeboat server at ${this.at.origin} changed its certificate during the session (${e.message}); nothing was sent.`, false, { cause: e }));
        else finish(new StoreError('io', `Could not reach the Lifeboat server at ${this.at.origin} (${e.code ?? e.message}); check that it is running and reachable from this computer.`, !this.closed, { cause: e }));
      });
      req.on('response', (res) => {
        // A body of announced length (a pack span) goes straight into one buffer of its own, which
        // the caller may hand to a worker thread whole; any other is gathered and joined.
        const announced = Number(res.headers['content-length']);
        const whole = method === 'GET' && res.statusCode === 200 && Number.isSafeInteger(announced) && announced > 0 && announced <= REMOTE_MAX_OBJECT ? Buffer.allocUnsafeSlow(announced) : undefined;
        let got = 0;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => {
          if (whole && got + c.length <= whole.length) whole.set(c, got);
          else chunks.push(c);
          got += c.length;
        });
        res.on('error', (e) => finish(new StoreError('io', `The connection to the Lifeboat server at ${this.at.origin} broke during an answer (${e.message}).`, true, { cause: e })));
        res.on('end', () => {
          if (!res.complete || (whole && got !== whole.length)) finish(new StoreError('io', `The Lifeboat server at ${this.at.origin} sent an incomplete answer.`, true));
          else finish(undefined, { status: res.statusCode ?? 0, headers: res.headers, body: whole ?? Buffer.concat(chunks) });
        });
      });
      const body = o.body;
      // The headers go out once the request has its connection (endWithBody): before, they would
      // wait in the request and go out with the body in one write.
      if (body) req.once('socket', () => endWithBody(req, body, () => (bodySent = true)));
      else req.end();
    });
  }

  /** The StoreError for an answer that is not a success. */
  private failure(a: Answer, name: string): StoreError {
    let message = '';
    try {
      const j = JSON.parse(a.body.toString('utf8')) as { message?: unknown };
      if (typeof j.message === 'string') message = cleanMessage(j.message);
    } catch {
      // not JSON (a proxy's page, or the answer to a HEAD, which has no body): the header or the status says enough
      const header = a.headers['x-lifeboat-message'];
      if (typeof header === 'string') {
        try {
          message = cleanMessage(decodeURIComponent(header));
        } catch {
          // malformed: ignored
        }
      }
    }
    const permanent = (code: ErrorCode, fallback: string): StoreError => new StoreError(code, message || fallback, false);
    switch (a.status) {
      case 401:
        return permanent('usage', `The Lifeboat server at ${this.at.origin} does not know this computer's token (it was mistyped or revoked); set LIFEBOAT_TOKEN or --token-file to a token from the server's administrator.`);
      case 403:
        return permanent('read-only', `The Lifeboat server refused this computer's token for ${name}: its role does not allow this.`);
      case 404:
        return permanent('not-found', `The repository file ${name} is missing on ${this.location}.`);
      case 409:
        return permanent('conflict', `The repository file ${name} already exists on ${this.location}.`);
      case 416:
        return permanent('corrupt', `The repository file ${name} on ${this.location} is shorter than Lifeboat expected; it has been truncated or damaged.`);
      case 507:
        // Always in the client's words: the server's own message could name its folders.
        return new StoreError('no-space', `The drive of the Lifeboat server at ${this.at.origin} is full; free some space on the server (or ask its administrator to) and try again.`, false);
    }
    if (a.status >= 500 || a.status === 429 || a.status === 408) {
      return new StoreError('io', `The Lifeboat server at ${this.at.origin} had a problem (HTTP ${a.status}${message ? `: ${message}` : ''}); Lifeboat will try again.`, true);
    }
    return permanent('io', `The Lifeboat server at ${this.at.origin} refused a request for ${name} (HTTP ${a.status}${message ? `: ${message}` : ''}).`);
  }

  async put(name: string, data: Uint8Array, options: PutOptions = {}): Promise<void> {
    assertValidName(name);
    if (data.byteLength > REMOTE_MAX_OBJECT) throw new LifeboatError('invalid-argument', `The object ${name} is larger than a Lifeboat server accepts.`);
    // No copy: the request has sent all of it or is destroyed when put settles; and should a
    // reused buffer change under a late write, the server refuses bytes that do not match the hash.
    const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const sha = options.sha256 ?? createHash('sha256').update(body).digest('hex');
    const a = await this.request('PUT', this.objectUrl(name, options.ifAbsent ? '?ifAbsent=1' : ''), { body, headers: { 'x-lifeboat-sha256': sha }, signal: options.signal });
    if (a.status !== 200 && a.status !== 201 && a.status !== 204) throw this.failure(a, name);
  }

  async get(name: string, offset?: number, length?: number, options: OperationOptions = {}): Promise<Uint8Array> {
    assertValidName(name);
    if (offset !== undefined && (!Number.isSafeInteger(offset) || offset < 0)) throw new RangeError(`invalid byte range for ${name}: offset ${offset}`);
    if (length !== undefined && (!Number.isSafeInteger(length) || length < 0)) throw new RangeError(`invalid byte range for ${name}: length ${length}`);
    const query = offset === undefined && length === undefined ? '' : `?offset=${offset ?? 0}${length === undefined ? '' : `&length=${length}`}`;
    const a = await this.request('GET', this.objectUrl(name, query), { signal: options.signal });
    if (a.status !== 200) throw this.failure(a, name);
    if (length !== undefined && a.body.byteLength !== length) {
      throw new StoreError('io', `The Lifeboat server at ${this.at.origin} sent ${a.body.byteLength} bytes of ${name} instead of ${length}.`, true);
    }
    return new Uint8Array(a.body.buffer, a.body.byteOffset, a.body.byteLength);
  }

  async stat(name: string, options: OperationOptions = {}): Promise<StoreStat | undefined> {
    assertValidName(name);
    const a = await this.request('HEAD', this.objectUrl(name), { signal: options.signal });
    if (a.status === 404) return undefined;
    if (a.status !== 200) throw this.failure(a, name);
    const size = Number(a.headers['x-lifeboat-size']);
    if (!Number.isSafeInteger(size) || size < 0) throw new StoreError('io', `The Lifeboat server at ${this.at.origin} gave no size for ${name}.`, true);
    return { name, size };
  }

  async *list(prefix: string, options: OperationOptions = {}): AsyncIterable<StoreStat> {
    assertValidPrefix(prefix);
    const a = await this.request('GET', new URL(`list?prefix=${encodeURIComponent(prefix)}`, this.base), { signal: options.signal });
    if (a.status !== 200) throw this.failure(a, prefix || 'the repository');
    for (const line of a.body.toString('utf8').split('\n')) {
      if (line === '') continue;
      const o = JSON.parse(line) as StoreStat;
      assertValidName(o.name);
      if (!o.name.startsWith(prefix) || !Number.isSafeInteger(o.size)) throw new StoreError('io', `The Lifeboat server at ${this.at.origin} sent a malformed listing.`, true);
      yield { name: o.name, size: o.size };
    }
  }

  createWriter(options: OperationOptions = {}): ObjectWriter {
    return collectingWriter((n, d, o) => this.put(n, d, o), options.signal);
  }

  async delete(name: string, options: OperationOptions = {}): Promise<void> {
    assertValidName(name);
    const a = await this.request('DELETE', this.objectUrl(name), { signal: options.signal });
    if (a.status !== 200 && a.status !== 204 && a.status !== 404) throw this.failure(a, name);
  }

  /**
   * Prune's cleanup (store.ts LeftoverRemover), done by the server in its own store: S3's unfinished
   * multipart uploads, a folder's old temporaries. A server too old to know the request removes
   * nothing (0), as before.
   */
  async removeLeftovers(options: OperationOptions = {}): Promise<number> {
    const a = await this.request('POST', new URL('leftovers', this.base), { signal: options.signal });
    if (a.status === 400) return 0; // "does not understand this request": an older server
    if (a.status !== 200) throw this.failure(a, 'the leftovers of interrupted backups');
    const removed = (JSON.parse(a.body.toString('utf8')) as { removed?: unknown }).removed;
    if (typeof removed !== 'number' || !Number.isSafeInteger(removed) || removed < 0) throw new StoreError('io', `The Lifeboat server at ${this.at.origin} sent a malformed answer.`, true);
    return removed;
  }

  /**
   * Ends the requests in flight (a request still waiting then, an upload given up on after a failure,
   * fails and is not tried again) and refuses new ones.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.agent?.destroy();
    const pinned = this.pinnedAgent;
    this.pinnedAgent = undefined;
    if (pinned) (await pinned.catch(() => undefined))?.destroy();
  }
}

/** A server repository with the wrappers a network store wants: calls in flight bounded, transient failures retried. */
export function openRemoteStore(location: string, options: RemoteStoreOptions & { readonly retry?: RetryOptions }): Store {
  return new RetryStore(new LimitStore(new RemoteStore(parseRemoteUrl(location), options), MAX_IN_FLIGHT), { maxAttempts: MAX_ATTEMPTS, ...options.retry });
}
