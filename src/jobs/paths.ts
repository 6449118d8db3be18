/**
 * Where Lifeboat keeps its own things on this computer: the default repository, the cache, and the
 * data folder (the job database, the password files of scheduled jobs). One answer for the CLI, the
 * scheduler and the dashboard, so they find the same jobs and leave out the same folders.
 */
import { homedir, platform } from 'node:os';
import { join, resolve } from 'node:path';
import { lifeboatOwnFolders, type OwnFolder } from '../files/own-folders.js';
import { isFolderLocation } from '../store/open.js';

/** The per-user data folder: XDG on Linux, Application Support on macOS, LOCALAPPDATA on Windows. */
export function dataDir(): string {
  const home = homedir();
  switch (platform()) {
    case 'win32':
      return join(process.env['LOCALAPPDATA'] ?? join(home, 'AppData', 'Local'), 'Lifeboat');
    case 'darwin':
      return join(home, 'Library', 'Application Support', 'Lifeboat');
    default:
      return join(process.env['XDG_DATA_HOME'] || join(home, '.local', 'share'), 'lifeboat');
  }
}

/** The documented default repository: a folder in the user's data directory. */
export function defaultRepositoryPath(): string {
  return join(dataDir(), 'repository');
}

/** The per-user cache folder (the listing cache of backups lives here): XDG on Linux, Library/Caches on macOS, LOCALAPPDATA on Windows. */
export function defaultCacheDir(): string {
  const home = homedir();
  switch (platform()) {
    case 'win32':
      return join(process.env['LOCALAPPDATA'] ?? join(home, 'AppData', 'Local'), 'Lifeboat', 'cache');
    case 'darwin':
      return join(home, 'Library', 'Caches', 'Lifeboat');
    default:
      return join(process.env['XDG_CACHE_HOME'] || join(home, '.cache'), 'lifeboat');
  }
}

/** The job database (jobs, runs, their figures and warnings). */
export function stateDbPath(): string {
  return join(dataDir(), 'jobs.db');
}

/** A repository location names a network store (s3:…, lifeboat:…, or any URL), else it is a folder. */
export function isUrl(location: string): boolean {
  return !isFolderLocation(location);
}

/** Lifeboat's own folders, which no backup into `location` includes: that repository (a folder), the cache, the data folder. */
export function ownFolders(location: string): OwnFolder[] {
  return lifeboatOwnFolders({ ...(isUrl(location) ? {} : { repository: resolve(location) }), cache: defaultCacheDir(), data: dataDir() });
}
