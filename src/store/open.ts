/**
 * Opening a store from the location a user types: a folder path, `s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]`
 * or `lifeboat:http(s)://HOST:PORT/NAME` (a Lifeboat server). The CLI opens repositories with it, and
 * `lifeboat server` opens the stores it serves with it, so both accept the same locations.
 */
import { resolve } from 'node:path';
import { LifeboatError } from '../util/errors.js';
import { LocalStore } from './local.js';
import { isRemoteUrl, openRemoteStore, type RemoteStoreOptions } from './remote.js';
import { isS3Url, openS3Store } from './s3.js';
import type { Store } from './store.js';

/** Whether `location` names a folder on this computer (not s3:…, lifeboat:… or another URL). */
export function isFolderLocation(location: string): boolean {
  return !isS3Url(location) && !isRemoteUrl(location) && !/^[a-z][a-z0-9+.-]*:\/\//i.test(location);
}

/** Opens the store at `location`; `remote` carries what a Lifeboat server needs (its token). */
export function openStoreAt(location: string, remote?: () => RemoteStoreOptions): Store {
  if (isS3Url(location)) return openS3Store(location);
  if (isRemoteUrl(location)) {
    if (!remote) throw new LifeboatError('usage', `"${location}" is a Lifeboat server; it cannot be used here.`);
    return openRemoteStore(location, remote());
  }
  if (!isFolderLocation(location)) {
    throw new LifeboatError(
      'usage',
      `Repository location "${location}" uses a kind of storage this version does not support; use a folder path, s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX] or lifeboat:http(s)://HOST:PORT/NAME.`,
    );
  }
  return new LocalStore(resolve(location));
}
