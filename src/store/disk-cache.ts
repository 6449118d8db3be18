/**
 * DiskCacheStore wraps a (remote) store and keeps reads of objects that never change in a folder
 * on this computer, so the next command answers them without a request: what makes a repository
 * in S3 feel local (`snapshots`, `ls`, `find` and a no-change backup read index files, snapshots and
 * trees, and all of them are immutable). The caller says which reads may be kept (`cacheable`:
 * for a repository, index files, snapshots, keys and the packs holding trees), and gives each
 * repository its own folder (by repository id), as restic and borg do.
 *
 * Correctness never depends on the cache: an entry is stored with the SHA-256 of its bytes and a
 * damaged or unreadable entry is read again from the store (and replaced); a failure to write the
 * cache is ignored; a put or delete through this wrapper forgets every entry of that name, and a
 * read that raced with it is not kept. An object deleted by another computer is never asked for
 * (names come from listings, which are not cached), so its stale entry only takes room. Whole
 * objects and byte ranges are kept apart; an open-ended range is not kept. Writes of cacheable
 * whole objects are kept too (the index file and snapshot a backup just wrote). When the folder
 * holds more than `maxBytes`, close() removes the least recently used entries.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import { systemClock, type Clock } from '../util/clock.js';
import { byteRange } from './names.js';
import { assertValidName, type ObjectWriter, type OperationOptions, type PutOptions, type Store, type StoreProperties, type StoreStat, type WriterOptions } from './store.js';

export interface DiskCacheOptions {
  /** The folder of this repository's cache (made when first needed); entries go to its objects/ and ranges/. */
  readonly dir: string;
  /** Whether reads of `name` may be kept: the object never changes once written. */
  readonly cacheable: (name: string) => boolean;
  /**
   * Cacheable objects read in many small pieces (a pack of folder listings, which a restore reads
   * one listing at a time): the first ranged read fetches and keeps the whole object, and the
   * ranges are cut from it, so a thousand listings cost one request, not a thousand.
   */
  readonly whole?: (name: string) => boolean;
  /** The most bytes kept in `dir` after close (default 2 GiB). */
  readonly maxBytes?: number;
  /** For the time an entry was last used. */
  readonly clock?: Clock;
}

const HASH_BYTES = 32;
/** Whole objects (see DiskCacheOptions.whole) kept in memory too, at most this many bytes. */
const WHOLE_IN_MEMORY = 32 * 1024 * 1024;

export class DiskCacheStore implements Store {
  readonly location: string;
  readonly properties: StoreProperties;
  private readonly maxBytes: number;
  private readonly clock: Clock;
  /** Bumped by each put or delete of a name: a read that saw another value is not kept. */
  private readonly versions = new Map<string, number>();
  /** Cacheable reads answered from the folder, and those that had to ask the store. */
  hits = 0;
  misses = 0;
  /** Whole objects read for their ranges, most recently used last (see DiskCacheOptions.whole). */
  private readonly wholes = new Map<string, { readonly bytes: Promise<Uint8Array>; size: number }>();
  private wholeBytes = 0;

  constructor(
    readonly inner: Store,
    private readonly options: DiskCacheOptions,
  ) {
    this.location = inner.location;
    this.properties = inner.properties;
    this.maxBytes = options.maxBytes ?? 2 * 1024 * 1024 * 1024;
    this.clock = options.clock ?? systemClock;
  }

  /** The file of a whole object or of one range of it. */
  private fileOf(name: string, offset: number | undefined, length: number | undefined): string {
    return offset === undefined ? join(this.options.dir, 'objects', name) : join(this.options.dir, 'ranges', name, `${offset}-${length}`);
  }

  async get(name: string, offset?: number, length?: number, options: OperationOptions = {}): Promise<Uint8Array> {
    assertValidName(name);
    if ((offset !== undefined && length === undefined) || !this.options.cacheable(name)) return this.inner.get(name, offset, length, options);
    options.signal?.throwIfAborted();
    if (offset !== undefined && length !== undefined && this.options.whole?.(name)) {
      const all = await this.wholeObject(name, options);
      byteRange(name, all.length, offset, length);
      return Buffer.from(all.subarray(offset, offset + length)); // the caller owns it
    }
    const file = this.fileOf(name, offset, length);
    const hit = await this.readEntry(file);
    if (hit) {
      this.hits++;
      return hit;
    }
    this.misses++;
    const version = this.versions.get(name) ?? 0;
    const bytes = await this.inner.get(name, offset, length, options);
    if ((this.versions.get(name) ?? 0) === version) await this.writeEntry(file, bytes);
    return bytes;
  }

  /** The whole of `name`, from memory, the folder or the store (one read at a time per name). */
  private wholeObject(name: string, options: OperationOptions): Promise<Uint8Array> {
    const held = this.wholes.get(name);
    if (held) {
      this.wholes.delete(name); // most recently used: last
      this.wholes.set(name, held);
      return held.bytes;
    }
    const entry = { bytes: this.get(name, undefined, undefined, options), size: 0 };
    this.wholes.set(name, entry);
    entry.bytes.then(
      (bytes) => {
        if (this.wholes.get(name) !== entry) return;
        entry.size = bytes.length;
        this.wholeBytes += bytes.length;
        for (const [n, e] of this.wholes) {
          if (this.wholeBytes <= WHOLE_IN_MEMORY || n === name) break;
          this.dropWhole(n, e);
        }
      },
      () => {
        if (this.wholes.get(name) === entry) this.wholes.delete(name);
      },
    );
    return entry.bytes;
  }

  private dropWhole(name: string, e: { size: number }): void {
    this.wholes.delete(name);
    this.wholeBytes -= e.size;
  }

  /** The bytes of an entry, or undefined if it is missing, unreadable or damaged (then it is removed). */
  private async readEntry(file: string): Promise<Buffer | undefined> {
    let raw: Buffer;
    try {
      raw = await fs.readFile(file);
    } catch {
      return undefined;
    }
    const bytes = raw.subarray(HASH_BYTES);
    if (raw.length < HASH_BYTES || !createHash('sha256').update(bytes).digest().equals(raw.subarray(0, HASH_BYTES))) {
      await fs.rm(file, { force: true }).catch(() => undefined);
      return undefined;
    }
    await this.touch(file); // recently used: trimmed last
    return Buffer.from(bytes); // the caller owns it
  }

  /** Dates an entry's last use (its modification time) by the clock. */
  private async touch(file: string): Promise<void> {
    const now = this.clock.now() / 1000;
    await fs.utimes(file, now, now).catch(() => undefined);
  }

  /** Stores an entry atomically (a temporary file renamed); a failure only means no entry. */
  private async writeEntry(file: string, bytes: Uint8Array): Promise<void> {
    const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await fs.mkdir(dirname(file), { recursive: true, mode: 0o700 });
      await fs.writeFile(tmp, Buffer.concat([createHash('sha256').update(bytes).digest(), bytes]), { mode: 0o600 });
      await fs.rename(tmp, file);
      await this.touch(file);
    } catch {
      await fs.rm(tmp, { force: true }).catch(() => undefined);
    }
  }

  /** Forgets every entry of `name` (the whole object and its ranges). */
  private async forget(name: string): Promise<void> {
    assertValidName(name);
    const held = this.wholes.get(name);
    if (held) this.dropWhole(name, held);
    this.versions.set(name, (this.versions.get(name) ?? 0) + 1);
    await fs.rm(this.fileOf(name, undefined, undefined), { force: true }).catch(() => undefined);
    await fs.rm(join(this.options.dir, 'ranges', name), { recursive: true, force: true }).catch(() => undefined);
  }

  async put(name: string, data: Uint8Array, options?: PutOptions): Promise<void> {
    const cacheable = this.options.cacheable(name);
    if (cacheable) await this.forget(name);
    const version = this.versions.get(name) ?? 0;
    await this.inner.put(name, data, options);
    if (cacheable && (this.versions.get(name) ?? 0) === version) await this.writeEntry(this.fileOf(name, undefined, undefined), data);
  }

  createWriter(options: WriterOptions = {}): ObjectWriter {
    const w = this.inner.createWriter(options);
    // A writer of metadata (a pack of trees) keeps a copy of its bytes, cached when it commits: the
    // next command (a no-change backup, ls, restore) reads them from here, not from the store.
    let kept: Buffer[] | undefined = options.metadata ? [] : undefined;
    return {
      write: async (data) => {
        await w.write(data);
        kept?.push(Buffer.from(data));
      },
      commit: async (name, o) => {
        const keep = kept !== undefined;
        if (keep || this.options.cacheable(name)) await this.forget(name);
        const version = this.versions.get(name) ?? 0;
        await w.commit(name, o);
        if (keep && (this.versions.get(name) ?? 0) === version) await this.writeEntry(this.fileOf(name, undefined, undefined), Buffer.concat(kept!));
        kept = undefined;
      },
      abort: async () => {
        kept = undefined;
        await w.abort();
      },
    };
  }

  stat(name: string, options?: OperationOptions): Promise<StoreStat | undefined> {
    return this.inner.stat(name, options);
  }

  list(prefix: string, options?: OperationOptions): AsyncIterable<StoreStat> {
    return this.inner.list(prefix, options);
  }

  async delete(name: string, options?: OperationOptions): Promise<void> {
    await this.forget(name);
    await this.inner.delete(name, options);
  }

  /** Closes the inner store, then trims the folder to maxBytes, least recently used entries first. */
  async close(): Promise<void> {
    await this.inner.close();
    await this.trim().catch(() => undefined);
  }

  /** Removes the least recently used entries until the folder holds at most maxBytes. */
  async trim(): Promise<void> {
    const entries: { path: string; size: number; used: number }[] = [];
    const walk = async (dir: string): Promise<void> => {
      let names;
      try {
        names = await fs.readdir(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const d of names) {
        const p = join(dir, d.name);
        if (d.isDirectory()) await walk(p);
        else {
          const st = await fs.stat(p).catch(() => undefined);
          if (st) entries.push({ path: p, size: st.size, used: st.mtimeMs });
        }
      }
    };
    // Only the cache's own folders: `dir` may hold other files of the repository's (listing caches).
    await walk(join(this.options.dir, 'objects'));
    await walk(join(this.options.dir, 'ranges'));
    let total = entries.reduce((a, e) => a + e.size, 0);
    if (total <= this.maxBytes) return;
    entries.sort((a, b) => a.used - b.used);
    for (const e of entries) {
      if (total <= this.maxBytes) break;
      await fs.rm(e.path, { force: true });
      total -= e.size;
    }
  }
}
