/**
 * Reading a file a person names (a password file, an exclude file) whole, with a size limit: a
 * wrong path such as /dev/zero or a huge file must give a plain error, not exhaust the memory.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { LifeboatError, errnoCode, formatBytes } from './errors.js';

/** Reads at most `limit` bytes of `path` as UTF-8; more is an error naming `what` the file should hold. */
export function readSmallFile(path: string, limit: number, what: string): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new LifeboatError('usage', `Cannot read the ${what} file ${path} (${errnoCode(e) ?? 'error'}). Check the path.`);
  }
  try {
    const buf = Buffer.alloc(limit + 1);
    let got = 0;
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, got, buf.length - got, null);
      } catch (e) {
        throw new LifeboatError('usage', `Cannot read the ${what} file ${path} (${errnoCode(e) ?? 'error'}). Check the path.`);
      }
      if (n === 0) break;
      got += n;
      if (got > limit) throw new LifeboatError('usage', `${path} is not ${/^[aeiou]/.test(what) ? 'an' : 'a'} ${what} file: it holds more than ${formatBytes(limit)}. Check the path.`);
    }
    return buf.subarray(0, got).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** Passwords and recovery keys are short; a few KiB leaves room for any passphrase. */
export const PASSWORD_FILE_LIMIT = 4096;
/** Exclude lists can be long, but not this long. */
export const PATTERN_FILE_LIMIT = 4 * 1024 * 1024;
