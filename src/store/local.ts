/**
 * A repository in a local folder (an internal or external drive, a network share). Writes go to
 * `.tmp/` first, are fsynced, renamed into place, and the folder is fsynced, so a crash never leaves
 * a half-written object under its final name. Create-only puts use link(), which fails atomically
 * if the name exists, even between processes.
 */
import { promises as fs, constants as C } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join, sep } from 'node:path';
import { LifeboatError, errnoCode, formatBytes } from '../util/errors.js';
import { assertValidName, type PutOptions, type Store, type StoreStat } from './store.js';

const TMP = '.tmp';

function ioError(e: unknown, what: string, bytes?: number): LifeboatError {
  const code = errnoCode(e);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new LifeboatError('no-space', `The destination is full: ${what} needed ${bytes === undefined ? 'more space' : formatBytes(bytes) + ' more'}. Free some space or choose another drive; nothing half-written was kept.`, { cause: e });
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new LifeboatError('io', `Lifeboat may not write to the destination (${code}) while ${what}. Check that the drive is writable and that you have permission.`, { cause: e });
  }
  return new LifeboatError('io', `A read or write failed while ${what} (${code ?? String(e)}). Check that the drive is connected and healthy.`, { cause: e });
}

async function fsyncDir(path: string): Promise<void> {
  let h: fs.FileHandle | undefined;
  try {
    h = await fs.open(path, C.O_RDONLY);
    await h.sync();
  } catch {
    // Some filesystems (Windows, some network shares) cannot fsync folders; the rename still happened.
  } finally {
    await h?.close();
  }
}

export class LocalStore implements Store {
  readonly location: string;
  private readonly madeDirs = new Set<string>();

  constructor(readonly root: string) {
    this.location = `folder ${root}`;
  }

  private path(name: string): string {
    assertValidName(name);
    return join(this.root, ...name.split('/'));
  }

  private async mkdirp(dir: string): Promise<void> {
    if (this.madeDirs.has(dir)) return;
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    this.madeDirs.add(dir);
  }

  async put(name: string, data: Uint8Array, options: PutOptions = {}): Promise<void> {
    const final = this.path(name);
    const tmpDir = join(this.root, TMP);
    const tmp = join(tmpDir, randomBytes(16).toString('hex'));
    try {
      await this.mkdirp(tmpDir);
      const h = await fs.open(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL, 0o600);
      try {
        let off = 0;
        while (off < data.length) {
          const { bytesWritten } = await h.write(data, off, data.length - off, off);
          off += bytesWritten;
        }
        await h.sync();
      } finally {
        await h.close();
      }
      await this.mkdirp(dirname(final));
      if (options.ifAbsent) {
        try {
          await fs.link(tmp, final);
        } catch (e) {
          if (errnoCode(e) === 'EEXIST') throw new LifeboatError('conflict', `The object ${name} already exists.`);
          if (errnoCode(e) !== 'EPERM' && errnoCode(e) !== 'ENOTSUP' && errnoCode(e) !== 'ENOSYS') throw e;
          // Filesystems without hard links (FAT32, exFAT): exclusive create, then fill.
          const h2 = await fs.open(final, C.O_WRONLY | C.O_CREAT | C.O_EXCL, 0o600).catch((e2: unknown) => {
            if (errnoCode(e2) === 'EEXIST') throw new LifeboatError('conflict', `The object ${name} already exists.`);
            throw e2;
          });
          try {
            await h2.writeFile(data);
            await h2.sync();
          } finally {
            await h2.close();
          }
        }
        await fs.unlink(tmp).catch(() => undefined);
      } else {
        await fs.rename(tmp, final);
      }
      await fsyncDir(dirname(final));
    } catch (e) {
      await fs.unlink(tmp).catch(() => undefined);
      if (e instanceof LifeboatError) throw e;
      throw ioError(e, `saving ${name}`, data.length);
    }
  }

  async get(name: string, offset = 0, length?: number): Promise<Uint8Array> {
    const p = this.path(name);
    let h: fs.FileHandle;
    try {
      h = await fs.open(p, C.O_RDONLY);
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') throw new LifeboatError('not-found', `The repository file ${name} does not exist.`);
      throw ioError(e, `reading ${name}`);
    }
    try {
      const size = (await h.stat()).size;
      const len = length ?? size - offset;
      if (offset < 0 || len < 0 || offset + len > size) {
        throw new LifeboatError('corrupt', `The repository file ${name} is shorter (${size} bytes) than expected (${offset + len}); it is truncated or damaged.`);
      }
      const buf = Buffer.allocUnsafe(len);
      let got = 0;
      while (got < len) {
        const { bytesRead } = await h.read(buf, got, len - got, offset + got);
        if (bytesRead === 0) throw new LifeboatError('corrupt', `The repository file ${name} ended early; it is truncated.`);
        got += bytesRead;
      }
      return buf;
    } catch (e) {
      if (e instanceof LifeboatError) throw e;
      throw ioError(e, `reading ${name}`);
    } finally {
      await h.close();
    }
  }

  async stat(name: string): Promise<StoreStat | undefined> {
    try {
      const s = await fs.stat(this.path(name));
      return s.isFile() ? { name, size: s.size } : undefined;
    } catch (e) {
      if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') return undefined;
      throw ioError(e, `looking at ${name}`);
    }
  }

  async *list(prefix: string): AsyncIterable<StoreStat> {
    // List the deepest folder the prefix names, then filter by the rest of the prefix.
    const cut = prefix.lastIndexOf('/');
    const dirName = cut < 0 ? '' : prefix.slice(0, cut);
    const start = dirName === '' ? this.root : this.path(dirName);
    const stack: [string, string][] = [[start, dirName === '' ? '' : dirName + '/']];
    while (stack.length > 0) {
      const [dir, rel] = stack.pop()!;
      let entries;
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch (e) {
        if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') continue;
        throw ioError(e, `listing ${rel || 'the repository'}`);
      }
      for (const ent of entries) {
        const name = rel + ent.name;
        if (rel === '' && ent.name === TMP) continue;
        if (ent.isDirectory()) {
          if (prefix.startsWith(name + '/') || name.startsWith(prefix)) stack.push([dir + sep + ent.name, name + '/']);
        } else if (ent.isFile() && name.startsWith(prefix)) {
          try {
            const s = await fs.stat(dir + sep + ent.name);
            yield { name, size: s.size };
          } catch (e) {
            if (errnoCode(e) !== 'ENOENT') throw ioError(e, `listing ${name}`);
          }
        }
      }
    }
  }

  async delete(name: string): Promise<void> {
    try {
      await fs.unlink(this.path(name));
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw ioError(e, `deleting ${name}`);
    }
  }

  async close(): Promise<void> {}

  /** Removes temporaries older than `maxAgeMs` left by crashed writers. */
  async cleanTemporaries(maxAgeMs = 24 * 3600 * 1000): Promise<number> {
    const dir = join(this.root, TMP);
    let n = 0;
    for (const f of await fs.readdir(dir).catch(() => [] as string[])) {
      const p = join(dir, f);
      const s = await fs.stat(p).catch(() => undefined);
      if (s && Date.now() - s.mtimeMs > maxAgeMs) {
        await fs.unlink(p).catch(() => undefined);
        n++;
      }
    }
    return n;
  }
}
