/**
 * The Lifeboat server's repository protocol (`lifeboat server`): serves the repositories under one
 * data location (a folder holding one folder per repository, or an `s3:` URL with one prefix per
 * repository) to other computers, speaking the protocol documented in store/remote.ts, over HTTPS
 * with the certificate of certificate.ts (plain HTTP only when asked, for loopback and tests).
 *
 * Every request carries a per-computer token; tokens are kept in `tokens.json` in the server's own
 * state folder (mode 0600) as SHA-256 hashes, compared in constant time, and re-read when the file
 * changes (a revoked token stops working at once). A token has a role:
 *   - read:   get, stat and list only;
 *   - append: also adds objects that do not exist yet (packs, indexes, snapshots, pins, parity) and
 *             takes and releases its own locks; it never deletes or overwrites anything else, and
 *             never writes keys/ or config. A stale lock (older than 30 minutes, the format's rule)
 *             may be removed by anyone, as FORMAT.md §9 says. Who made which lock is recorded in
 *             `lock-owners.json` in the state folder;
 *   - admin:  everything (forget, prune, keys, repair), and only admin removes what killed writers
 *             left outside the objects (POST leftovers: S3's unfinished uploads, old temporaries).
 * A token may be limited to named repositories (`repositories` in its entry; every repository when
 * absent, as tokens made before the limit existed): any request for another one is refused with 403
 * before the repository is opened.
 * A refusal is 403 with one plain sentence the client shows as is. Names are checked with the
 * stores' own rules before any I/O; a body that is not exactly Content-Length bytes with the
 * announced SHA-256 is refused and stores nothing.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer as createHttpsServer } from 'node:https';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { systemClock, type Clock } from '../util/clock.js';
import { LifeboatError, isLifeboatError } from '../util/errors.js';
import { BufferPool } from '../util/memory.js';
import { writePrivateFile } from './private-file.js';
import { assertValidPrefix } from '../store/names.js';
import { isFolderLocation, openStoreAt } from '../store/open.js';
import { endWithBody, REMOTE_API, REMOTE_MAX_OBJECT, REPOSITORY_NAME_RE } from '../store/remote.js';
import { isTransient, assertValidName, removeLeftovers, type Store } from '../store/store.js';

export type Role = 'append' | 'read' | 'admin';
export const ROLES: readonly Role[] = ['append', 'read', 'admin'];

export interface TokenEntry {
  readonly name: string;
  readonly role: Role;
  /** hex SHA-256 of the token */
  readonly sha256: string;
  readonly created: string;
  /** The repositories it may reach; every one the server serves when absent. */
  readonly repositories?: readonly string[];
}

const TOKEN_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** FORMAT.md §9: a lock older than this is stale and may be removed by anyone. */
const LOCK_STALE_MS = 30 * 60 * 1000;

/** The server's tokens, hashed, in `<state>/tokens.json`. */
export class TokenFile {
  readonly path: string;
  private entries: TokenEntry[] = [];
  private seen = '';

  constructor(
    readonly stateDir: string,
    private readonly clock: Clock = systemClock,
  ) {
    this.path = join(stateDir, 'tokens.json');
  }

  private load(): void {
    let sig: string;
    try {
      const st = statSync(this.path);
      sig = `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch {
      this.entries = [];
      this.seen = '';
      return;
    }
    if (sig === this.seen) return;
    const parsed = JSON.parse(readFileSync(this.path, 'utf8')) as { version?: number; tokens?: TokenEntry[] };
    if (parsed.version !== 1 || !Array.isArray(parsed.tokens)) throw new LifeboatError('corrupt', `The server's token file ${this.path} is not readable by this version of Lifeboat.`);
    // A malformed entry reaches nothing (a limit that cannot be read must not become "every repository").
    this.entries = parsed.tokens.filter((t) => ROLES.includes(t.role) && /^[0-9a-f]{64}$/.test(t.sha256) && (t.repositories === undefined || (Array.isArray(t.repositories) && t.repositories.every((r) => typeof r === 'string'))));
    this.seen = sig;
  }

  private save(): void {
    mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
    writePrivateFile(this.path, JSON.stringify({ version: 1, tokens: this.entries }, null, 1) + '\n');
    this.seen = '';
  }

  list(): TokenEntry[] {
    this.load();
    return [...this.entries];
  }

  /**
   * Adds a token and returns it: the only time it is ever seen (only its hash is kept). With
   * `repositories` (not empty) it reaches only those repositories.
   */
  add(name: string, role: Role, repositories?: readonly string[]): string {
    if (!TOKEN_NAME_RE.test(name)) throw new LifeboatError('usage', `"${name}" cannot name a token: use up to 64 letters, digits, ".", "_" and "-".`);
    if (!ROLES.includes(role)) throw new LifeboatError('usage', `"${String(role)}" is not a role: use append, read or admin.`);
    for (const r of repositories ?? []) {
      if (!REPOSITORY_NAME_RE.test(r)) throw new LifeboatError('usage', `"${r}" cannot name a repository on a Lifeboat server: use letters, digits, ".", "_" and "-".`);
    }
    this.load();
    if (this.entries.some((t) => t.name === name)) throw new LifeboatError('usage', `A token named "${name}" exists already; revoke it first or choose another name.`);
    const token = `lbt_${randomBytes(32).toString('base64url')}`;
    const only = repositories && repositories.length > 0 ? { repositories: [...new Set(repositories)] } : {};
    this.entries.push({ name, role, sha256: createHash('sha256').update(token).digest('hex'), created: new Date(this.clock.now()).toISOString(), ...only });
    this.save();
    return token;
  }

  /** Removes the token named `name`; false if there is none. */
  revoke(name: string): boolean {
    this.load();
    const before = this.entries.length;
    this.entries = this.entries.filter((t) => t.name !== name);
    if (this.entries.length === before) return false;
    this.save();
    return true;
  }

  /** The entry of `token`, comparing its hash with every entry in constant time. */
  verify(token: string): TokenEntry | undefined {
    this.load();
    const h = createHash('sha256').update(token).digest();
    let found: TokenEntry | undefined;
    for (const t of this.entries) if (timingSafeEqual(h, Buffer.from(t.sha256, 'hex')) && !found) found = t;
    return found;
  }
}

/** Who made which lock, so an append token may release its own locks and nobody else's. */
class LockOwners {
  private readonly path: string;
  private readonly owners = new Map<string, { token: string; time: number }>();

  constructor(
    stateDir: string,
    private readonly clock: Clock,
  ) {
    this.path = join(stateDir, 'lock-owners.json');
    try {
      const parsed = JSON.parse(readFileSync(this.path, 'utf8')) as Record<string, { token: string; time: number }>;
      for (const [k, v] of Object.entries(parsed)) this.owners.set(k, v);
    } catch {
      // none yet
    }
  }

  get(repo: string, name: string): { token: string; time: number } | undefined {
    return this.owners.get(`${repo}/${name}`);
  }

  set(repo: string, name: string, token: string | undefined): void {
    if (token === undefined) this.owners.delete(`${repo}/${name}`);
    else this.owners.set(`${repo}/${name}`, { token, time: this.clock.now() });
    // Forget records far older than any live lock, so the file stays small.
    for (const [k, v] of this.owners) if (this.clock.now() - v.time > 24 * LOCK_STALE_MS) this.owners.delete(k);
    writePrivateFile(this.path, JSON.stringify(Object.fromEntries(this.owners)));
  }
}

export interface RepoServerOptions {
  /** A folder (one folder per repository inside) or an s3: URL (one prefix per repository). */
  readonly data: string;
  /** Where tokens.json and lock-owners.json live. */
  readonly stateDir: string;
  /** Serve HTTPS with this certificate (certificate.ts); plain HTTP without. */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** The time of day (lock ages, token dates); tests set it. */
  readonly clock?: Clock;
  /** Told about refused requests (the CLI prints them). */
  readonly onRefused?: (line: string) => void;
  /**
   * Told about requests that failed on the server's side (a full drive, a store error), with the
   * store's own message, which may name the server's paths; the client is told without them.
   */
  readonly onFailed?: (line: string) => void;
}

class HttpRefusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** What a client hears when the server's drive (or its S3 storage) is full; the client says it in its own words (store/remote.ts). */
const NO_SPACE = "The Lifeboat server's drive is full; free some space on the server (or ask its administrator to) and try again.";
const REFUSED = "The Lifeboat server refused this computer's token:";
const refuse = (what: string): HttpRefusal => new HttpRefusal(403, 'read-only', `${REFUSED} ${what}`);

/** What an upload's body is gathered in before it is written (RepoServer.put). */
const WRITE_BATCH = 1024 * 1024;
/** Batch buffers of finished uploads, at most 8, for the next ones (fresh memory is faulted in page by page). */
const batches = new BufferPool(WRITE_BATCH, 8);

/** What a large answer is sent in (sendInPieces). */
const SEND_PIECE = 1024 * 1024;

/**
 * Large answers (more than SEND_PIECE, up to a client's largest span of a pack, 16 MiB) are read
 * into buffers kept for the next ones where the store can (Store.getInto): a fresh buffer per
 * answer is faulted in page by page as the disk's bytes arrive (a restore of the bench's full
 * tree: the server's CPU 12.2 -> 3.2 s over HTTPS, 8.0 -> 2.2 s over HTTP, bench/README.md session
 * 14). An idle server keeps at most SPARE_ANSWERS of them.
 */
const ANSWER_BUFFER = 16 * 1024 * 1024;
const SPARE_ANSWERS = 4;
const spareAnswers: ArrayBuffer[] = [];
const lentAnswers = new WeakSet<ArrayBufferLike>(); // weak: a read that failed never gives its buffer back

function takeAnswer(size: number): Uint8Array {
  if (size <= SEND_PIECE || size > ANSWER_BUFFER) return Buffer.allocUnsafe(size);
  const b = spareAnswers.pop() ?? new ArrayBuffer(ANSWER_BUFFER);
  lentAnswers.add(b);
  return new Uint8Array(b, 0, size);
}

/** Takes back the buffer of an answer from takeAnswer once the connection is done with it. */
function giveAnswer(data: Uint8Array): void {
  if (!lentAnswers.delete(data.buffer)) return;
  if (spareAnswers.length < SPARE_ANSWERS) spareAnswers.push(data.buffer as ArrayBuffer);
}

/**
 * Ends `res` with `body`, a large body after the headers and in pieces of SEND_PIECE, each once the
 * connection took the one before. Over TLS each write is encrypted into a buffer of its own before
 * it is sent: written whole, a 16 MiB span of a pack took 16 MiB more of fresh memory (faulted in
 * page by page); in pieces the same few MiB serve every piece.
 */
async function sendInPieces(res: ServerResponse, body: Uint8Array): Promise<void> {
  if (body.byteLength <= SEND_PIECE) return endWithBody(res, body);
  // true once the connection took what was written, false if it closed first
  const drained = (): Promise<boolean> =>
    new Promise((resolveDrained) => {
      const drain = (): void => {
        res.off('close', close);
        resolveDrained(true);
      };
      const close = (): void => {
        res.off('drain', drain);
        resolveDrained(false);
      };
      res.once('drain', drain);
      res.once('close', close);
    });
  res.flushHeaders();
  for (let at = 0; at < body.byteLength; at += SEND_PIECE) {
    const piece = body.subarray(at, at + SEND_PIECE);
    if (at + SEND_PIECE >= body.byteLength) res.end(piece);
    else if (!res.write(piece) && (!res.socket || res.socket.destroyed || !(await drained()))) return; // the client went away
  }
}

export class RepoServer {
  readonly tokens: TokenFile;
  private readonly lockOwners: LockOwners;
  private readonly stores = new Map<string, Store>();
  private readonly http: Server;
  private readonly clock: Clock;

  constructor(readonly options: RepoServerOptions) {
    mkdirSync(options.stateDir, { recursive: true, mode: 0o700 });
    this.clock = options.clock ?? systemClock;
    this.tokens = new TokenFile(options.stateDir, this.clock);
    this.lockOwners = new LockOwners(options.stateDir, this.clock);
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      this.handle(req, res).catch((e: unknown) => this.fail(req, res, e));
    };
    this.http = options.tls ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, handler) : createServer(handler);
  }

  /** Starts listening; resolves with the address actually bound (port 0 picks a free one). */
  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((res, rej) => {
      this.http.once('error', rej);
      this.http.listen(port, host, () => {
        this.http.off('error', rej);
        res(this.http.address() as AddressInfo);
      });
    });
  }

  async close(): Promise<void> {
    await new Promise<void>((res) => {
      this.http.close(() => res());
      this.http.closeAllConnections();
    });
    for (const s of this.stores.values()) await s.close().catch(() => undefined);
    this.stores.clear();
  }

  private store(repo: string): Store {
    let s = this.stores.get(repo);
    if (!s) {
      const d = this.options.data;
      s = openStoreAt(isFolderLocation(d) ? join(resolve(d), repo) : `${d.replace(/\/+$/, '')}/${repo}`);
      this.stores.set(repo, s);
    }
    return s;
  }

  private fail(req: IncomingMessage, res: ServerResponse, e: unknown): void {
    let status = 500;
    let code = 'io';
    let message = 'The Lifeboat server could not do this; its log may say why.';
    const path = (req.url ?? '').split('?', 1)[0]!;
    if (e instanceof HttpRefusal) [status, code, message] = [e.status, e.code, e.message];
    else if (isLifeboatError(e)) {
      code = e.code;
      status = { 'not-found': 404, conflict: 409, corrupt: 416, 'no-space': 507, 'read-only': 403 }[e.code as string] ?? (isTransient(e) ? 503 : 500);
      // The store's message names where the server keeps the repository (its folder or S3
      // bucket), which means nothing at the client: the client hears it without, the log with it.
      message = code === 'no-space' ? NO_SPACE : this.withoutLocations(e.message, /^\/v1\/([^/]+)\//.exec(path)?.[1]);
      if (status >= 500) this.options.onFailed?.(`failed ${req.method} ${path}: ${e.message}`);
    } else if (e instanceof Error && /^invalid store (object name|list prefix)/.test(e.message)) [status, code, message] = [400, 'invalid-argument', e.message];
    else if (e instanceof RangeError) [status, code, message] = [400, 'invalid-argument', e.message];
    else this.options.onFailed?.(`failed ${req.method} ${path}: ${e instanceof Error ? e.message : String(e)}`);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = JSON.stringify({ code, message });
    // The message also in a header, for the answer to a HEAD, which has no body.
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-lifeboat-message': encodeURIComponent(message) });
    res.end(body);
  }

  /** `message` with the server's own locations (its data folder or S3 URL) replaced by what the client knows. */
  private withoutLocations(message: string, repo: string | undefined): string {
    const s = repo === undefined ? undefined : this.stores.get(repo);
    if (s) message = message.split(s.location).join(`repository "${repo}" on the Lifeboat server`);
    const d = this.options.data;
    return message.split(isFolderLocation(d) ? resolve(d) : d.replace(/\/+$/, '')).join("the Lifeboat server's data folder");
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const [path = '', query = ''] = (req.url ?? '').split('?', 2);
    const params = new URLSearchParams(query);
    const auth = req.headers.authorization ?? '';
    const token = /^Bearer (\S{1,200})$/.exec(auth)?.[1];
    const who = token === undefined ? undefined : this.tokens.verify(token);
    if (!who) {
      req.resume();
      throw new HttpRefusal(401, 'usage', "The Lifeboat server does not know this computer's token (it was mistyped or revoked); ask the server's administrator for a token and set LIFEBOAT_TOKEN or --token-file.");
    }
    const m = /^\/v1\/([^/]+)\/(o\/(.+)|list|leftovers)$/.exec(path);
    if (!path.startsWith(REMOTE_API + '/') || !m || !REPOSITORY_NAME_RE.test(m[1]!)) {
      req.resume();
      throw new HttpRefusal(400, 'invalid-argument', 'The Lifeboat server does not understand this request; the client and the server may be different versions of Lifeboat.');
    }
    const repo = m[1]!;
    const refused = (e: HttpRefusal): HttpRefusal => {
      this.options.onRefused?.(`refused ${req.method} ${path} for token "${who.name}" (${who.role})`);
      return e;
    };
    if (who.repositories && !who.repositories.includes(repo)) {
      req.resume();
      throw refused(refuse(`it is not for the repository "${repo}" (only for ${who.repositories.map((r) => `"${r}"`).join(', ')}).`));
    }
    const store = this.store(repo);

    if (m[2] === 'list') {
      if (req.method !== 'GET') throw new HttpRefusal(405, 'invalid-argument', 'Listing is a GET.');
      const prefix = params.get('prefix') ?? '';
      assertValidPrefix(prefix);
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      // In writes of about 64 KiB, not one per line: each write is a TLS record of its own.
      let lines = '';
      for await (const o of store.list(prefix)) {
        lines += JSON.stringify({ name: o.name, size: o.size }) + '\n';
        if (lines.length >= 65536) {
          res.write(lines);
          lines = '';
        }
      }
      res.end(lines);
      return;
    }

    if (m[2] === 'leftovers') {
      // Prune's cleanup of what killed writers left (store.ts LeftoverRemover): removes data, so admin only.
      req.resume();
      if (req.method !== 'POST') throw new HttpRefusal(405, 'invalid-argument', 'Removing leftovers is a POST.');
      if (who.role !== 'admin') throw refused(refuse(who.role === 'read' ? 'it may only restore and browse, not change the repository.' : 'it may only add backups, not remove them.'));
      const body = JSON.stringify({ removed: await removeLeftovers(store) });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }

    const name = m[3]!;
    assertValidName(name);
    switch (req.method) {
      case 'GET': {
        const num = (k: string): number | undefined => {
          const v = params.get(k);
          if (v === null) return undefined;
          if (!/^\d{1,15}$/.test(v)) throw new HttpRefusal(400, 'invalid-argument', `The ${k} of a read must be a whole number.`);
          return Number(v);
        };
        const offset = num('offset');
        const length = num('length');
        const data = store.getInto && (length === undefined || length > SEND_PIECE) ? await store.getInto(name, takeAnswer, undefined, { offset: offset ?? 0, ...(length === undefined ? {} : { length }) }) : await store.get(name, offset, length);
        // Once the connection has sent it, or closed: then nothing reads the buffer any more.
        res.once('close', () => giveAnswer(data));
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': data.byteLength });
        await sendInPieces(res, data);
        return;
      }
      case 'HEAD': {
        const st = await store.stat(name);
        if (!st) throw new HttpRefusal(404, 'not-found', `The repository file ${name} is missing.`);
        res.writeHead(200, { 'x-lifeboat-size': String(st.size), 'content-length': 0 });
        res.end();
        return;
      }
      case 'PUT':
        if (who.role === 'read') {
          req.resume();
          throw refused(refuse('it may only restore and browse, not change the repository.'));
        }
        if (who.role === 'append' && (name === 'config' || name === 'config.copy' || name.startsWith('keys/'))) {
          req.resume();
          throw refused(refuse("it may only add backups, not change the repository's keys or settings."));
        }
        await this.put(req, res, store, repo, name, who, params.get('ifAbsent') === '1', refused);
        return;
      case 'DELETE':
        if (who.role === 'read') throw refused(refuse('it may only restore and browse, not change the repository.'));
        if (who.role === 'append') {
          if (!name.startsWith('locks/')) throw refused(refuse('it may only add backups, not remove them.'));
          const owner = this.lockOwners.get(repo, name);
          const stale = owner !== undefined && this.clock.now() - owner.time > LOCK_STALE_MS;
          // A lock already gone is removed, whoever asks: two computers may both find the same
          // lock stale (its process ended on a machine they share) and both remove it.
          const gone = owner === undefined && (await store.stat(name)) === undefined;
          if (owner?.token !== who.name && !stale && !gone) throw refused(refuse("it may remove only its own locks, not another computer's."));
        }
        await store.delete(name);
        if (name.startsWith('locks/')) this.lockOwners.set(repo, name, undefined);
        res.writeHead(204);
        res.end();
        return;
      default:
        req.resume();
        throw new HttpRefusal(405, 'invalid-argument', 'The Lifeboat server does not understand this request.');
    }
  }

  /** Streams the body into a writer; stores it only if it is exactly the announced size and hash. */
  private async put(
    req: IncomingMessage,
    res: ServerResponse,
    store: Store,
    repo: string,
    name: string,
    who: TokenEntry,
    ifAbsent: boolean,
    refused: (e: HttpRefusal) => HttpRefusal,
  ): Promise<void> {
    const lengthHeader = req.headers['content-length'];
    const sha = req.headers['x-lifeboat-sha256'];
    if (lengthHeader === undefined || !/^\d{1,12}$/.test(lengthHeader) || typeof sha !== 'string' || !/^[0-9a-f]{64}$/.test(sha)) {
      req.resume();
      throw new HttpRefusal(400, 'invalid-argument', 'A store request needs its exact size (Content-Length) and SHA-256 (X-Lifeboat-Sha256).');
    }
    const expected = Number(lengthHeader);
    if (expected > REMOTE_MAX_OBJECT) {
      req.resume();
      throw new HttpRefusal(413, 'invalid-argument', 'The object is larger than a Lifeboat server accepts.');
    }
    const writer = store.createWriter();
    const hash = createHash('sha256');
    let received = 0;
    // A write that fails (the server's drive is full) is answered once the body is read, so the
    // client hears why (507) instead of waiting on a request nobody reads.
    let writeFailed: { error: unknown } | undefined;
    // The body arrives in pieces of 16 KiB over TLS (a record each): written in batches of
    // WRITE_BATCH, not a write (a thread-pool round trip) per piece.
    const batch = batches.take(WRITE_BATCH);
    let filled = 0;
    const flush = async (): Promise<void> => {
      if (filled > 0 && !writeFailed) await writer.write(batch.subarray(0, filled)).catch((e: unknown) => (writeFailed = { error: e }));
      filled = 0;
    };
    try {
      for await (const chunk of req as AsyncIterable<Buffer>) {
        received += chunk.byteLength;
        if (received > expected) break;
        hash.update(chunk);
        for (let at = 0; at < chunk.length; ) {
          const n = Math.min(chunk.length - at, batch.length - filled);
          batch.set(chunk.subarray(at, at + n), filled);
          filled += n;
          at += n;
          if (filled === batch.length) await flush();
        }
      }
      await flush();
    } catch {
      await writer.abort(); // the client went away mid-body: nothing is stored
      return;
    } finally {
      batches.give(batch);
    }
    if (writeFailed) {
      await writer.abort();
      throw writeFailed.error;
    }
    if (received !== expected || !req.complete || hash.digest('hex') !== sha) {
      await writer.abort();
      throw new HttpRefusal(400, 'invalid-argument', 'The object arrived with another size or content than announced; nothing was stored.');
    }
    const appendOnly = who.role === 'append';
    try {
      await writer.commit(name, { ifAbsent: ifAbsent || appendOnly });
    } catch (e) {
      await writer.abort();
      if (!(appendOnly && !ifAbsent && isLifeboatError(e) && e.code === 'conflict')) throw e;
      // An append token may send an object again (a retried upload) but never change one.
      const existing = createHash('sha256').update(await store.get(name)).digest('hex');
      if (existing !== sha) throw refused(refuse('it may only add backups, not change existing ones.'));
      res.writeHead(200);
      res.end();
      return;
    }
    if (name.startsWith('locks/')) this.lockOwners.set(repo, name, who.name);
    res.writeHead(201);
    res.end();
  }
}
