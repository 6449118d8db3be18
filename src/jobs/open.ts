/**
 * Opening a repository from its location and password: the one path the CLI, the scheduler and the
 * dashboard share. Store opening sits in `openStore` alone, so a new kind of storage (s3://…) is
 * one line there. Also the checks an unattended run needs before it starts: is the destination
 * connected, and the password file that only its owner can read.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { platform } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { BlobType, Repository, type OpenOptions } from '../repo/repository.js';
import type { Store } from '../store/store.js';
import { DiskCacheStore } from '../store/disk-cache.js';
import { openStoreAt } from '../store/open.js';
import type { RemoteStoreOptions } from '../store/remote.js';
import { LifeboatError } from '../util/errors.js';
import { PASSWORD_FILE_LIMIT, readSmallFile } from '../util/small-file.js';
import { defaultCacheDir, isUrl } from './paths.js';
import type { ServerAccess } from './state.js';

/**
 * The store at a repository location: a folder path, s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX] or
 * lifeboat:http(s)://HOST:PORT/NAME (store/open.ts), `remote` giving a Lifeboat server's token and pin.
 */
export function openStore(location: string, remote?: () => RemoteStoreOptions): Store {
  return openStoreAt(location, remote);
}

/**
 * Opens the repository at `location`: "no repository" and "unsupported version" are told before
 * the password is needed. A remote one (not a folder) reads what never changes through the
 * repository cache on this computer, unless `cache` is false (check and repair must see the store itself).
 */
export async function openRepositoryAt(
  location: string,
  password: string | (() => Promise<string>),
  o: OpenOptions & { readonly cache?: boolean; readonly remote?: () => RemoteStoreOptions } = {},
): Promise<Repository> {
  const { cache, remote: server, ...options } = o;
  const remote = openStore(location, server);
  const configRead = await Repository.readConfig(remote, options.onWarning);
  const opened: { repo?: Repository } = {};
  const store = !isUrl(location) || cache === false ? remote : repositoryCache(remote, configRead.config.id, () => opened.repo);
  const repo = await Repository.open(store, typeof password === 'string' ? password : await password(), { ...options, configRead });
  opened.repo = repo;
  return repo;
}

/** The on-disk cache of a remote repository: index, snapshots, keys and the packs of folder listings, which never change once written. */
function repositoryCache(store: Store, id: string, repo: () => Repository | undefined): DiskCacheStore {
  let treePacks: Set<string> | undefined;
  const isTreePack = (name: string): boolean => {
    const r = repo();
    if (!r) return false; // before the index is loaded
    treePacks ??= r.index.packsHolding([BlobType.tree, BlobType.snapshot]);
    return treePacks.has(name.slice(name.lastIndexOf('/') + 1));
  };
  return new DiskCacheStore(store, {
    dir: join(defaultCacheDir(), id.replace(/[^0-9a-f]/gi, '')), // beside the backup's listing cache of this repository
    cacheable: (name) => /^(index|snapshots|keys)\//.test(name) || (name.startsWith('data/') && isTreePack(name)),
    whole: (name) => name.startsWith('data/'), // a pack of listings: restore, ls and find read it listing by listing
  });
}

/**
 * Creates a new repository in `store` (lifeboat init, the wizard); returns it open, with the
 * recovery key to show once. `folder`: the repository's folder, whose parent must exist: a missing
 * one is usually a drive not plugged in, and the repository must not quietly land on the system disk.
 * The password may be asked for (a function), once that check has passed.
 */
export async function createRepository(store: Store, password: string | (() => Promise<string>), o: OpenOptions & { folder?: string } = {}): Promise<{ repo: Repository; recoveryKey: string }> {
  if (o.folder !== undefined && !existsSync(dirname(resolve(o.folder)))) {
    throw new LifeboatError('usage', `The folder ${dirname(resolve(o.folder))} does not exist. If the repository belongs on an external drive, connect it first; otherwise create the folder.`);
  }
  const secret = typeof password === 'string' ? password : await password();
  if (!secret) throw new LifeboatError('usage', 'An empty password is not allowed.');
  return Repository.init(store, secret, o);
}

/** Creates a new repository at `location` (a folder or a URL), as createRepository. */
export function createRepositoryAt(location: string, password: string, o: OpenOptions = {}): Promise<{ repo: Repository; recoveryKey: string }> {
  return createRepository(openStore(location), password, { ...o, ...(isUrl(location) ? {} : { folder: location }) });
}

/**
 * Before an unattended run: a repository folder that is not there is, most of the time, a drive
 * that is not plugged in. Says so by the drive's name: the first missing folder of the path, or the
 * repository's parent when that is an empty folder (an unmounted drive's mount point).
 */
export function checkDestination(location: string): void {
  if (isUrl(location)) return;
  const path = resolve(location);
  if (existsSync(path)) return;
  let missing = path;
  while (!existsSync(dirname(missing)) && dirname(missing) !== missing) missing = dirname(missing);
  const parent = dirname(missing);
  const drive = missing !== path ? basename(missing) : isEmptyDir(parent) && dirname(parent) !== parent ? basename(parent) : undefined;
  if (drive !== undefined) {
    throw new LifeboatError('not-found', `The backup drive '${drive}' is not connected. Plug it in; the next scheduled run will try again.`);
  }
  throw new LifeboatError('no-repository', `The backup folder ${path} is gone. If it was moved, change the job's destination; otherwise set up the backup again.`);
}

function isEmptyDir(p: string): boolean {
  try {
    return readdirSync(p).length === 0;
  } catch {
    return false;
  }
}

/**
 * The password of an unattended job: a file only its owner may read (mode 0600). A file others can
 * read is refused, as ssh refuses such a key, so a mistake does not quietly leak the password.
 */
export function readPasswordFile(path: string, what: 'password' | 'token' = 'password'): string {
  if (platform() !== 'win32') {
    let mode: number;
    try {
      mode = statSync(path).mode;
    } catch {
      throw new LifeboatError('usage', `The ${what} file ${path} is missing. Set the job up again to store its ${what}.`);
    }
    if ((mode & 0o077) !== 0) {
      throw new LifeboatError('usage', `The ${what} file ${path} can be read by other users. Make it private (chmod 600 ${path}) and try again.`);
    }
  }
  return readSmallFile(path, PASSWORD_FILE_LIMIT, what).replace(/\r?\n$/, '');
}

/** Where a job keeps the token of the Lifeboat server its repository is on: beside the password file. */
export function tokenFileFor(passwordFile: string): string {
  return passwordFile.replace(/\.password$/, '') + '.token';
}

/** What a job's run gives a Lifeboat server (ServerAccess): the token from its file, the fingerprint trusted when the job was added. */
export function serverAccessOptions(server: ServerAccess, job: string): () => RemoteStoreOptions {
  return () => ({
    token: readPasswordFile(server.tokenFile, 'token'),
    pin: server.fingerprint ? { expected: server.fingerprint, source: `the job "${job}"` } : {},
  });
}

/** Opens a repository for an unattended run: the password from its file, a Lifeboat server reached with the job's ServerAccess. */
export function openJobRepository(job: string, location: string, passwordFile: string, server: ServerAccess | undefined, o: OpenOptions = {}): Promise<Repository> {
  return openRepositoryAt(location, async () => readPasswordFile(passwordFile), { ...o, ...(server ? { remote: serverAccessOptions(server, job) } : {}) });
}

/** Writes a password file readable by its owner only (mode 0600; on Windows the user's profile folder is private already). */
export function writePasswordFile(path: string, password: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, password + '\n', { mode: 0o600 });
  chmodSync(path, 0o600); // an existing file keeps its old mode on write
}

/** Where a job's password lives: one file per repository location in the data folder. */
export function passwordFileFor(dataFolder: string, location: string): string {
  const where = isUrl(location) ? location : resolve(location);
  const readable = where.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^_+/, '').slice(-60);
  return join(dataFolder, 'passwords', `${readable || 'repository'}-${createHash('sha256').update(where).digest('hex').slice(0, 12)}.password`);
}
