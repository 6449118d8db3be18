/**
 * What every command shares: the global options (--repo, --password-file, --json), finding and
 * opening the repository, reading passwords, printing, and turning errors into exit codes.
 * Commands stay thin: parse, call the layer below, print.
 */
import { PASSWORD_FILE_LIMIT, readSmallFile } from '../util/small-file.js';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { LifeboatError } from '../util/errors.js';
import type { Repository } from '../repo/repository.js';
import type { Store } from '../store/store.js';
import { isRemoteUrl, parseRemoteUrl, type RemoteStoreOptions, type ServerPin } from '../store/remote.js';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { OwnFolder } from '../files/backup.js';
import { dataDir, defaultCacheDir, defaultRepositoryPath, isUrl, ownFolders } from '../jobs/paths.js';
import { openRepositoryAt, openStore } from '../jobs/open.js';

export interface GlobalOptions {
  repo?: string;
  passwordFile?: string;
  tokenFile?: string;
  json?: boolean;
  quiet?: boolean;
  /** commander's negation of --no-lock: false when given. */
  lock?: boolean;
}

export { defaultRepositoryPath, defaultCacheDir };

/**
 * How to reach the repository copied from (copy --from, init --copy-parameters-from, job add
 * --copy-from) when it is on a Lifeboat server: a token of its own (--from-token-file).
 */
export interface SourceAccess {
  readonly tokenFile?: string;
}

/** The options of a command that reads a second repository (its password and token files). */
export interface SourceOptions {
  readonly fromPasswordFile?: string;
  readonly fromTokenFile?: string;
}

export class Context {
  private readonly opened: Repository[] = [];
  readonly abort = new AbortController();

  constructor(
    readonly global: GlobalOptions,
    readonly stdout: NodeJS.WritableStream = process.stdout,
    readonly stderr: NodeJS.WritableStream = process.stderr,
  ) {}

  get json(): boolean {
    return this.global.json === true;
  }

  /** Lifeboat's own folders on this computer, which no backup includes: the repository (when it is a folder), the cache, the data folder. */
  ownFolders(): OwnFolder[] {
    return ownFolders(this.repoLocation());
  }

  /** Whether the repository (or the one at `loc`) is a folder on this computer (not s3:… or another URL). */
  repoIsFolder(loc = this.repoLocation()): boolean {
    return !isUrl(loc);
  }

  repoLocation(): string {
    return this.global.repo ?? process.env['LIFEBOAT_REPO'] ?? defaultRepositoryPath();
  }

  openStore(loc = this.repoLocation()): Store {
    return openStore(loc, this.remoteFor(loc));
  }

  /**
   * What the Lifeboat server at `location` needs from this computer: its token and the certificate
   * it trusts. `source` for the repository copied from (SourceAccess).
   */
  remoteFor(location: string, source?: SourceAccess): () => RemoteStoreOptions {
    return () => ({ token: this.serverToken(source && { ...source, location }), pin: this.serverPin(location, source !== undefined) });
  }

  /**
   * Whether `location`, the repository copied from, is on another Lifeboat server than the one
   * --repo names: the token and fingerprint given for --repo are then not its own.
   */
  private onOtherServer(location: string): boolean {
    const dest = this.repoLocation();
    return isRemoteUrl(location) && isRemoteUrl(dest) && parseRemoteUrl(location).origin.toLowerCase() !== parseRemoteUrl(dest).origin.toLowerCase();
  }

  /**
   * Which certificate of the Lifeboat server at `location` to trust: LIFEBOAT_SERVER_FINGERPRINT,
   * else the one remembered in known-servers.json in Lifeboat's data folder, else asked on a
   * terminal (and remembered). For the repository copied from (`source`):
   * LIFEBOAT_FROM_SERVER_FINGERPRINT first, and LIFEBOAT_SERVER_FINGERPRINT only when it is on the
   * same server as --repo (or --repo is not on one).
   */
  serverPin(location = this.repoLocation(), source = false): ServerPin {
    const fromEnv = source ? process.env['LIFEBOAT_FROM_SERVER_FINGERPRINT'] : undefined;
    if (fromEnv) return { expected: fromEnv, source: 'LIFEBOAT_FROM_SERVER_FINGERPRINT' };
    const env = source && this.onOtherServer(location) ? undefined : process.env['LIFEBOAT_SERVER_FINGERPRINT'];
    if (env) return { expected: env, source: 'LIFEBOAT_SERVER_FINGERPRINT' };
    const file = join(dataDir(), 'known-servers.json');
    let known: Record<string, string> = {};
    try {
      known = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
    } catch {
      // none yet
    }
    const remembered = Object.entries(known).find(([origin]) => location.toLowerCase().startsWith(`lifeboat:${origin.toLowerCase()}/`))?.[1];
    return {
      firstUse: async (origin, fingerprint) => {
        if (!process.stdin.isTTY) return false;
        this.stderr.write(`This computer has not connected to the Lifeboat server at ${origin} before. Its certificate fingerprint is\n  ${fingerprint}\n`);
        if (!(await this.confirm('Is this the fingerprint the server printed when it started?'))) return false;
        mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
        writeFileSync(file, JSON.stringify({ ...known, [origin]: fingerprint }, null, 1) + '\n', { mode: 0o600 });
        return true;
      },
      ...(remembered === undefined ? {} : { expected: remembered, source: `remembered in ${file}` }),
    };
  }

  /**
   * The token for a Lifeboat server: --token-file, LIFEBOAT_TOKEN_FILE or LIFEBOAT_TOKEN. For the
   * repository copied from (`source`): --from-token-file, LIFEBOAT_FROM_TOKEN_FILE or
   * LIFEBOAT_FROM_TOKEN, else the same token when it is on the same server as --repo (or --repo is
   * not on one); a token is never sent to another server than the one it was given for.
   */
  serverToken(source?: SourceAccess & { readonly location: string }): string {
    if (source) {
      const fromFile = source.tokenFile ?? process.env['LIFEBOAT_FROM_TOKEN_FILE'];
      const fromToken = fromFile ? readSmallFile(fromFile, PASSWORD_FILE_LIMIT, 'token').trim() : process.env['LIFEBOAT_FROM_TOKEN']?.trim();
      if (fromToken) return fromToken;
      if (this.onOtherServer(source.location)) {
        throw new LifeboatError('usage', `The repository to copy from is on another Lifeboat server than ${this.repoLocation()}: give this computer's token for ${parseRemoteUrl(source.location).origin} with --from-token-file or LIFEBOAT_FROM_TOKEN.`);
      }
    }
    const file = this.global.tokenFile ?? process.env['LIFEBOAT_TOKEN_FILE'];
    const token = file ? readSmallFile(file, PASSWORD_FILE_LIMIT, 'token').trim() : process.env['LIFEBOAT_TOKEN']?.trim();
    if (!token) throw new LifeboatError('usage', "A Lifeboat server needs this computer's token: set LIFEBOAT_TOKEN or use --token-file (the server's administrator makes one with `lifeboat server token add`).");
    return token;
  }

  /** The password from LIFEBOAT_PASSWORD, --password-file, or a prompt on a terminal. */
  async password(prompt = 'Repository password (or recovery key): '): Promise<string> {
    return readPassword(this.global.passwordFile ?? process.env['LIFEBOAT_PASSWORD_FILE'], 'LIFEBOAT_PASSWORD', '--password-file', prompt);
  }

  /** The password of the repository that copy reads from: LIFEBOAT_FROM_PASSWORD, --from-password-file (or LIFEBOAT_FROM_PASSWORD_FILE), or a prompt. */
  async sourcePassword(file?: string): Promise<string> {
    return readPassword(file ?? process.env['LIFEBOAT_FROM_PASSWORD_FILE'], 'LIFEBOAT_FROM_PASSWORD', '--from-password-file', 'Password of the repository to copy from (or its recovery key): ');
  }

  async newPassword(what = 'new password', file?: string): Promise<string> {
    if (file) {
      const p = readSmallFile(file, PASSWORD_FILE_LIMIT, 'password').replace(/\r?\n$/, '');
      if (!p) throw new LifeboatError('usage', `The ${what} file is empty.`);
      return p;
    }
    if (!process.stdin.isTTY) {
      const env = process.env['LIFEBOAT_NEW_PASSWORD'];
      if (env) return env;
      throw new LifeboatError('usage', `A ${what} is needed: set LIFEBOAT_NEW_PASSWORD or use --new-password-file when not on a terminal.`);
    }
    const a = await readHidden(`Enter the ${what}: `);
    const b = await readHidden(`Type the ${what} again: `);
    if (a !== b) throw new LifeboatError('usage', 'The two passwords differ. Nothing was changed; try again.');
    if (a.length === 0) throw new LifeboatError('usage', 'An empty password is not allowed.');
    return a;
  }

  /** Asks a yes/no question on the terminal (no is the default); without a terminal the answer is no. */
  async confirm(question: string): Promise<boolean> {
    if (!process.stdin.isTTY) return false;
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    try {
      const answer = await new Promise<string>((res) => rl.question(`${question} [y/N] `, res));
      return /^\s*y(es)?\s*$/i.test(answer);
    } finally {
      rl.close();
    }
  }

  /**
   * Opens the repository. A remote one (not a folder) reads what never changes through the
   * repository cache on this computer (jobs/open.ts), unless `cache` is false: check and
   * repair must see the store itself.
   */
  async openRepository(options: { readonly cache?: boolean; readonly location?: string; readonly password?: () => Promise<string>; readonly source?: SourceAccess } = {}): Promise<Repository> {
    const location = options.location ?? this.repoLocation();
    const repo = await openRepositoryAt(location, options.password ?? (() => this.password()), { onWarning: (t) => this.warn(t), remote: this.remoteFor(location, options.source), ...(options.cache === false ? { cache: false } : {}) });
    repo.noLock = this.global.lock === false;
    repo.onWarning = (message) => this.warn(message);
    repo.onUnlocked = (why) =>
      this.info(why === 'asked' ? 'Reading the repository without a lock (--no-lock); do not prune it meanwhile.' : "The repository's drive is read-only: reading it without a lock.");
    this.opened.push(repo);
    return repo;
  }

  /**
   * Opens the repository copied from (copy --from, init --copy-parameters-from): its password from
   * LIFEBOAT_FROM_PASSWORD or the file given, and on a Lifeboat server its own token and fingerprint.
   */
  openSourceRepository(location: string, o: SourceOptions): Promise<Repository> {
    return this.openRepository({ location, password: () => this.sourcePassword(o.fromPasswordFile), source: { ...(o.fromTokenFile !== undefined ? { tokenFile: o.fromTokenFile } : {}) } });
  }

  track(repo: Repository): void {
    this.opened.push(repo);
  }

  async closeAll(): Promise<void> {
    for (const r of this.opened.splice(0)) await r.close().catch(() => undefined);
  }

  out(text: string): void {
    this.stdout.write(text.endsWith('\n') ? text : text + '\n');
  }

  /** A summary or confirmation of what a command did: left out with --quiet (results, warnings and errors are not). */
  report(text: string): void {
    if (!this.global.quiet) this.out(text);
  }

  printJson(value: unknown): void {
    this.stdout.write(JSON.stringify(value) + '\n');
  }

  info(text: string): void {
    if (!this.global.quiet && !this.json) this.stderr.write(text + '\n');
  }

  warn(text: string): void {
    this.stderr.write(`warning: ${text}\n`);
  }
}

/** A password from a file, else an environment variable, else asked on a terminal. */
async function readPassword(file: string | undefined, envName: string, option: string, prompt: string): Promise<string> {
  if (file) return readSmallFile(file, PASSWORD_FILE_LIMIT, 'password').replace(/\r?\n$/, '');
  const env = process.env[envName];
  if (env !== undefined) return env;
  if (!process.stdin.isTTY) {
    throw new LifeboatError('usage', `A password is needed: set ${envName}, use ${option}, or run on a terminal to be asked.`);
  }
  return readHidden(prompt);
}

async function readHidden(prompt: string): Promise<string> {
  let muted = false;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (!muted) process.stderr.write(chunk);
      cb();
    },
  });
  const rl = createInterface({ input: process.stdin, output: sink, terminal: true });
  process.stderr.write(prompt);
  muted = true;
  try {
    return await new Promise<string>((res) => rl.question('', res));
  } finally {
    muted = false;
    rl.close();
    process.stderr.write('\n');
  }
}
