/** Small files only the server's user may read (tokens, lock owners, the TLS key). */
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

/** Writes `text` to `path` atomically (temporary file, fsync, rename), readable by its owner only. */
export function writePrivateFile(path: string, text: string): void {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
