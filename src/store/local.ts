/**
 * A repository in a local folder (an internal or external drive, a network share).
 *
 * Every put and every writer (createWriter) writes `.tmp/<random>` inside the root (same
 * filesystem, so the rename is atomic), writes all bytes, fsyncs the file, renames it to its final
 * name and fsyncs the folder, so a crash never
 * leaves a half-written object under its final name. Create-only puts use link(), which fails
 * atomically if the name exists, even between processes. `.tmp` is not an object: names under it are
 * refused and it is never listed. Temporaries left by a killed writer are harmless and removed by
 * `LocalStore.cleanTemporaries` once they are a day old.
 */
import { closeSync, fstatSync, openSync, promises as fs, readSync, constants as C } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { systemClock, type Clock } from '../util/clock.js';
import { LifeboatError, errnoCode, formatBytes } from '../util/errors.js';
import { dropCachedPages, readAhead } from '../util/memory.js';
import { assertValidPrefix, byteRange } from './names.js';
import { assertValidName, StoreError, type LeftoverRemover, type ObjectWriter, type OperationOptions, type PutOptions, type Store, type StoreProperties, type StoreStat } from './store.js';

/** Objects that never change once written: their descriptors may be kept open (readPackRange). */
const PACK_PREFIX = 'data/';
const OPEN_PACKS = 16;
/**
 * Reads up to this size use synchronous calls (see get). Bigger ones (a large file's chunks, a
 * pack range of many small blobs) go to the thread pool: the main thread, which reads every blob a
 * restore's workers open, would otherwise spend its time copying them out of the page cache.
 */
const SYNC_READ_MAX = 128 * 1024;

/** The folder of in-flight writes, documented in FORMAT.md §1. */
const TMP = '.tmp';
const HOUR_MS = 3600 * 1000;
const DAY_MS = 24 * HOUR_MS;
/** Objects are private: the repository is encrypted, but who may read it is still nobody's business. */
const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
const VALID_PART = /^[A-Za-z0-9._-]+$/;

/**
 * Errors of a folder that may go away if the call is made again: a busy or interrupted call, and a
 * network share's dropped or timed-out connection. Everything else (a full, read-only or failing
 * drive, a refused permission) stays.
 */
const TRANSIENT_ERRNO = new Set(['EAGAIN', 'EBUSY', 'EINTR', 'ETIMEDOUT', 'ECONNRESET', 'ECONNABORTED', 'EHOSTDOWN', 'EHOSTUNREACH', 'ENETDOWN', 'ENETUNREACH', 'ENETRESET']);

export function isTransientErrno(code: string | undefined): boolean {
  return code !== undefined && TRANSIENT_ERRNO.has(code);
}

function isNoSpace(e: unknown): boolean {
  const code = errnoCode(e);
  return code === 'ENOSPC' || code === 'EDQUOT';
}

async function fsyncDir(path: string): Promise<void> {
  let h: fs.FileHandle | undefined;
  try {
    h = await fs.open(path, C.O_RDONLY);
    await h.sync();
  } catch {
    // Some filesystems (Windows, some network shares) cannot fsync folders; the rename still happened.
  } finally {
    await h?.close().catch(() => undefined);
  }
}

/**
 * fs.mkdir with missing parents, failing with the real reason: Node's recursive mkdir says ENOENT
 * when a step fails for another one (EROFS on a read-only drive), so the outermost missing folder
 * is made again alone to learn it.
 */
async function mkdirs(dir: string): Promise<string | undefined> {
  try {
    return await fs.mkdir(dir, { recursive: true, mode: DIR_MODE });
  } catch (e) {
    if (errnoCode(e) !== 'ENOENT') throw e;
    let outer = resolve(dir);
    while (dirname(outer) !== outer && !(await fs.stat(dirname(outer)).then(() => true, () => false))) outer = dirname(outer);
    await fs.mkdir(outer, { mode: DIR_MODE }).catch((e2: unknown) => Promise.reject(errnoCode(e2) === 'ENOENT' || errnoCode(e2) === 'EEXIST' ? e : e2));
    throw e;
  }
}

/** Creates `dir` and missing parents, and makes the new folder entries durable (fsync of each parent). */
async function mkdirDurable(dir: string): Promise<void> {
  const created = await mkdirs(dir);
  if (created === undefined) return;
  // `created` is the outermost folder made; every folder from its parent down to dir's parent gained an entry.
  const first = resolve(created);
  const chain: string[] = [];
  for (let d = resolve(dir); d !== first && dirname(d) !== d; d = dirname(d)) chain.push(dirname(d));
  chain.push(dirname(first));
  for (const d of chain.reverse()) await fsyncDir(d);
}

export class LocalStore implements Store, LeftoverRemover {
  readonly location: string;
  readonly properties: StoreProperties = { uploadsInFlight: 1 };
  /** Packs with a descriptor kept open for small reads, least recently used first. */
  private readonly packFds = new Map<string, { fd: number; size: number }>();

  /** `root` is the repository folder; it is created (with its parents) by the first put. */
  constructor(readonly root: string) {
    this.location = `folder ${root}`;
  }

  private path(name: string): string {
    assertValidName(name);
    const parts = name.split('/');
    if (parts[0] === TMP) throw new Error(`invalid store object name: ${JSON.stringify(name)} (${TMP} holds temporary files)`);
    return join(this.root, ...parts);
  }

  private ioError(e: unknown, doing: string, name: string, bytes?: number): StoreError {
    const code = errnoCode(e);
    if (isNoSpace(e)) {
      const size = bytes === undefined ? '' : ` (${formatBytes(bytes)})`;
      return new StoreError(
        'no-space',
        `The drive holding ${this.location} is full: Lifeboat could not save ${name}${size}. Free some space on that drive or choose another destination. Nothing half-written was kept.`,
        false,
        { cause: e },
      );
    }
    if (code === 'EFBIG') {
      return new StoreError('io', `The drive holding ${this.location} cannot store a file as large as ${name}${bytes === undefined ? '' : ` (${formatBytes(bytes)})`}. Choose a destination formatted with a modern filesystem.`, false, { cause: e });
    }
    if (code === 'EROFS') {
      return new StoreError('read-only', `The drive holding ${this.location} is read-only, so Lifeboat could not ${doing} ${name}. Make the drive writable or choose another destination.`, false, { cause: e });
    }
    if ((code === 'EACCES' || code === 'EPERM') && (doing === 'save' || doing === 'delete')) {
      return new StoreError('read-only', `Lifeboat is not allowed to ${doing} ${name} in ${this.location} (${code}): the folder is write-protected. Check its permissions, or choose another destination.`, false, { cause: e });
    }
    if (code === 'EACCES' || code === 'EPERM') {
      return new StoreError('io', `Lifeboat is not allowed to ${doing} ${name} in ${this.location} (${code}). Check the folder's permissions.`, false, { cause: e });
    }
    return new StoreError('io', `Lifeboat could not ${doing} ${name} in ${this.location} (${code ?? String(e)}). Check that the drive is connected and healthy.`, isTransientErrno(code), { cause: e });
  }

  private notFound(name: string, folder = false): LifeboatError {
    return new LifeboatError('not-found', `The repository file ${name} does not exist in ${this.location}${folder ? ' (a folder has that name)' : ''}.`);
  }

  private endedEarly(name: string, at: number, end: number): LifeboatError {
    return new LifeboatError('corrupt', `The repository file ${name} ended after ${at} bytes while Lifeboat was reading up to byte ${end}; it has been truncated or damaged.`);
  }

  async put(name: string, data: Uint8Array, options: PutOptions = {}): Promise<void> {
    this.path(name); // an invalid name is refused before any I/O
    const w = this.writer(name, options.signal);
    await w.write(data);
    await w.commit(name, options);
  }

  createWriter(options: OperationOptions = {}): ObjectWriter {
    return this.writer('a new repository file', options.signal);
  }

  /**
   * Writes to `.tmp/<random>`, created on the first write; commit fsyncs it and gives it its name.
   * Any failure removes the temporary. `label` names the object in errors before commit names it.
   * An abort is seen before each write and before the rename that makes the object visible.
   */
  private writer(label: string, signal: AbortSignal | undefined): ObjectWriter {
    let h: fs.FileHandle | undefined;
    let tmp: string | undefined;
    let size = 0;
    const abort = async (): Promise<void> => {
      await h?.close().catch(() => undefined);
      h = undefined;
      if (tmp !== undefined) await fs.unlink(tmp).catch(() => undefined);
      tmp = undefined;
    };
    const open = async (): Promise<fs.FileHandle> => {
      if (h) return h;
      const tmpDir = join(this.root, TMP);
      await mkdirs(tmpDir);
      const path = join(tmpDir, randomBytes(16).toString('hex'));
      h = await fs.open(path, C.O_WRONLY | C.O_CREAT | C.O_EXCL, FILE_MODE);
      tmp = path;
      return h;
    };
    const fail = async (e: unknown, name: string, bytes: number): Promise<never> => {
      await abort();
      if (signal?.aborted) throw signal.reason;
      throw e instanceof LifeboatError ? e : this.ioError(e, 'save', name, bytes);
    };
    return {
      write: async (data) => {
        const before = size;
        try {
          signal?.throwIfAborted();
          const fh = await open();
          for (let off = 0; off < data.length; ) {
            signal?.throwIfAborted();
            const { bytesWritten } = await fh.write(data, off, data.length - off, size);
            off += bytesWritten;
            size += bytesWritten;
          }
        } catch (e) {
          await fail(e, label, before + data.length);
        }
      },
      commit: async (name, options = {}) => {
        let final: string;
        try {
          final = this.path(name);
        } catch (e) {
          await abort();
          throw e;
        }
        const stop = options.signal ?? signal;
        try {
          stop?.throwIfAborted();
          const fh = await open();
          await fh.sync();
          dropCachedPages(fh.fd);
          h = undefined;
          await fh.close();
          await mkdirDurable(dirname(final));
          stop?.throwIfAborted(); // the last moment: after the rename the object is stored
          if (options.ifAbsent) {
            if ((await this.linkExclusive(tmp!, final, name)) === 'linked') {
              // The object is stored; a temporary that cannot be removed now is cleaned up later.
              await fs.unlink(tmp!).catch(() => undefined);
            }
          } else {
            await fs.rename(tmp!, final);
          }
          tmp = undefined;
          await fsyncDir(dirname(final));
        } catch (e) {
          if (stop?.aborted) {
            await abort();
            throw stop.reason;
          }
          await fail(e, name, size);
        }
      },
      abort,
    };
  }

  /** Makes `final` a second name of the complete file `tmp`, failing with 'conflict' if `final` exists. */
  private async linkExclusive(tmp: string, final: string, name: string): Promise<'linked' | 'renamed'> {
    const conflict = (): LifeboatError => new LifeboatError('conflict', `The repository file ${name} already exists, so Lifeboat left it as it was.`);
    try {
      await fs.link(tmp, final);
      return 'linked';
    } catch (e) {
      const code = errnoCode(e);
      if (code === 'EEXIST') throw conflict();
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw e;
    }
    // Filesystems without hard links (FAT32, exFAT): claim the name with an exclusive create, then
    // rename the complete temporary over the claim. Between the two, and after a crash between them,
    // the name holds an empty file (never a partial one); the repository treats a short object as corrupt.
    let claim: fs.FileHandle;
    try {
      claim = await fs.open(final, C.O_WRONLY | C.O_CREAT | C.O_EXCL, FILE_MODE);
    } catch (e) {
      if (errnoCode(e) === 'EEXIST') throw conflict();
      throw e;
    }
    await claim.close();
    try {
      await fs.rename(tmp, final);
    } catch (e) {
      await fs.unlink(final).catch(() => undefined);
      throw e;
    }
    return 'renamed';
  }

  get(name: string, offset = 0, length?: number, options?: OperationOptions): Promise<Uint8Array> {
    return this.read(name, offset, length, options, (n) => Buffer.allocUnsafe(n));
  }

  getInto(name: string, take: (size: number) => Uint8Array, options?: OperationOptions, range?: { readonly offset: number; readonly length?: number }): Promise<Uint8Array> {
    return this.read(name, range?.offset ?? 0, range?.length, options, take);
  }

  private async read(name: string, offset: number, length: number | undefined, options: OperationOptions | undefined, take: (size: number) => Uint8Array): Promise<Uint8Array> {
    const p = this.path(name);
    const signal = options?.signal; // no default object: a restore makes this call per blob
    signal?.throwIfAborted();
    // Small reads (a blob, an index file) use synchronous calls: a restore makes thousands of
    // them, and a thread-pool round trip per call costs several times the read itself.
    const sync = length !== undefined && length <= SYNC_READ_MAX;
    if (sync && name.startsWith(PACK_PREFIX)) return this.readPackRange(name, p, offset, length);
    let fd: number | undefined;
    let h: fs.FileHandle | undefined;
    try {
      if (sync) fd = openSync(p, C.O_RDONLY);
      else h = await fs.open(p, C.O_RDONLY);
    } catch (e) {
      const code = errnoCode(e);
      if (code === 'ENOENT' || code === 'ENOTDIR') throw this.notFound(name);
      throw this.ioError(e, 'read', name);
    }
    try {
      const s = fd !== undefined ? fstatSync(fd) : await h!.stat();
      if (!s.isFile()) throw this.notFound(name, true);
      const [start, end] = byteRange(name, s.size, offset, length);
      const buf = take(end - start);
      let got = 0;
      while (got < buf.length) {
        if (h) signal?.throwIfAborted(); // a long read stops between its pieces
        const bytesRead = fd !== undefined ? readSync(fd, buf, got, buf.length - got, start + got) : (await h!.read(buf, got, buf.length - got, start + got)).bytesRead;
        if (bytesRead === 0) {
          throw this.endedEarly(name, start + got, end);
        }
        got += bytesRead;
      }
      return buf;
    } catch (e) {
      if (e instanceof LifeboatError || e instanceof RangeError || (signal?.aborted && e === signal.reason)) throw e;
      throw this.ioError(e, 'read', name);
    } finally {
      if (fd !== undefined) closeSync(fd);
      else await h?.close().catch(() => undefined);
    }
  }

  /**
   * A small range of a pack through a descriptor kept open (packs never change once written): a
   * restore reads thousands of blobs from a few packs, and open/fstat/close per blob cost more
   * than the read. The descriptor is closed before this store deletes the pack, and by close().
   */
  private readPackRange(name: string, p: string, offset: number, length: number): Uint8Array {
    let f = this.packFds.get(name);
    if (f) {
      this.packFds.delete(name); // re-inserted below: the most recently used is last
    } else {
      let fd: number;
      try {
        fd = openSync(p, C.O_RDONLY);
      } catch (e) {
        const code = errnoCode(e);
        if (code === 'ENOENT' || code === 'ENOTDIR') throw this.notFound(name);
        throw this.ioError(e, 'read', name);
      }
      try {
        const s = fstatSync(fd);
        if (!s.isFile()) throw this.notFound(name, true);
        f = { fd, size: s.size };
        // The blobs after this one are likely to be read next (a restore, a check): have the
        // system read the rest of the pack at once, not blob by blob.
        readAhead(fd, offset);
      } catch (e) {
        closeSync(fd);
        if (e instanceof LifeboatError) throw e;
        throw this.ioError(e, 'read', name);
      }
      if (this.packFds.size >= OPEN_PACKS) {
        const [oldest, o] = this.packFds.entries().next().value as [string, { fd: number }];
        this.packFds.delete(oldest);
        closeSync(o.fd);
      }
    }
    this.packFds.set(name, f);
    const [start, end] = byteRange(name, f.size, offset, length);
    const buf = Buffer.allocUnsafe(end - start);
    let got = 0;
    try {
      while (got < buf.length) {
        const n = readSync(f.fd, buf, got, buf.length - got, start + got);
        if (n === 0) throw this.endedEarly(name, start + got, end);
        got += n;
      }
    } catch (e) {
      this.forgetPack(name);
      if (e instanceof LifeboatError) throw e;
      throw this.ioError(e, 'read', name);
    }
    return buf;
  }

  private forgetPack(name: string): void {
    const f = this.packFds.get(name);
    if (!f) return;
    this.packFds.delete(name);
    try {
      closeSync(f.fd);
    } catch {
      // already closed
    }
  }

  async stat(name: string, options: OperationOptions = {}): Promise<StoreStat | undefined> {
    const p = this.path(name);
    options.signal?.throwIfAborted();
    try {
      const s = await fs.stat(p);
      return s.isFile() ? { name, size: s.size } : undefined;
    } catch (e) {
      if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') return undefined;
      throw this.ioError(e, 'look at', name);
    }
  }

  /**
   * Walks the deepest folder the prefix names. Only regular files and folders whose names are valid
   * object names are reported (so `.tmp`, stray files such as "desktop.ini " or symbolic links never
   * are); each file is reported once because every folder is read once.
   */
  async *list(prefix: string, options: OperationOptions = {}): AsyncIterable<StoreStat> {
    assertValidPrefix(prefix);
    const cut = prefix.lastIndexOf('/');
    const base = prefix.slice(0, cut + 1); // "" or "a/b/"
    const stack: string[] = [base];
    while (stack.length > 0) {
      options.signal?.throwIfAborted();
      const rel = stack.pop()!;
      const dir = rel === '' ? this.root : join(this.root, ...rel.slice(0, -1).split('/'));
      let entries;
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch (e) {
        if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') continue;
        throw this.ioError(e, 'list', rel === '' ? 'the top folder' : rel);
      }
      for (const ent of entries) {
        if (!VALID_PART.test(ent.name) || ent.name === '.' || ent.name === '..') continue;
        if (rel === '' && ent.name === TMP) continue;
        const name = rel + ent.name;
        if (ent.isDirectory()) {
          // Descend only where names can still match: below the prefix, or on the way to it.
          if (name.startsWith(prefix) || prefix.startsWith(name + '/')) stack.push(name + '/');
        } else if (ent.isFile() && name.startsWith(prefix)) {
          let size: number;
          try {
            size = (await fs.stat(join(dir, ent.name))).size;
          } catch (e) {
            if (errnoCode(e) === 'ENOENT') continue; // deleted while listing
            throw this.ioError(e, 'list', name);
          }
          yield { name, size };
        }
      }
    }
  }

  async delete(name: string, options: OperationOptions = {}): Promise<void> {
    const p = this.path(name);
    options.signal?.throwIfAborted();
    this.forgetPack(name); // Windows cannot delete a file that is open
    try {
      await fs.unlink(p);
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT' && errnoCode(e) !== 'ENOTDIR') throw this.ioError(e, 'delete', name);
    }
  }

  async close(): Promise<void> {
    for (const name of [...this.packFds.keys()]) this.forgetPack(name);
  }

  /**
   * Prune's cleanup (store.ts LeftoverRemover): temporaries an hour old. No pack writer runs then,
   * and the other writes (a lock taken meanwhile) take milliseconds.
   */
  async removeLeftovers(): Promise<number> {
    return LocalStore.cleanTemporaries(this.root, HOUR_MS);
  }

  /** Removes this store's temporaries older than `maxAgeMs` (default a day); returns how many. */
  async cleanTemporaries(maxAgeMs = DAY_MS): Promise<number> {
    return LocalStore.cleanTemporaries(this.root, maxAgeMs);
  }

  /**
   * Removes temporaries older than `maxAgeMs` (default a day) that killed writers left in the
   * repository folder `root`; returns how many. A day is far longer than any single put, so a
   * write in progress in another process is never touched.
   */
  static async cleanTemporaries(root: string, maxAgeMs = DAY_MS, clock: Clock = systemClock): Promise<number> {
    const now = clock.now();
    const dir = join(root, TMP);
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return 0;
      throw new LifeboatError('io', `Lifeboat could not look for leftover temporary files in ${dir} (${errnoCode(e) ?? String(e)}).`, { cause: e });
    }
    let removed = 0;
    for (const f of names) {
      const p = join(dir, f);
      const s = await fs.lstat(p).catch(() => undefined);
      if (!s?.isFile() || now - s.mtimeMs < maxAgeMs) continue;
      try {
        await fs.unlink(p);
        removed++;
      } catch (e) {
        if (errnoCode(e) !== 'ENOENT') throw new LifeboatError('io', `Lifeboat could not remove the leftover temporary file ${p} (${errnoCode(e) ?? String(e)}).`, { cause: e });
      }
    }
    return removed;
  }
}
