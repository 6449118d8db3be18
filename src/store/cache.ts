/**
 * CacheStore wraps a store and keeps the bytes of reads of immutable objects, so a second read of
 * the same range is answered without asking the inner store: for a remote repository, whose every
 * read costs a round trip and often money. Read-through, bounded by `maxBytes`, least recently used
 * out first; held in memory (a cache on disk, as DESIGN.md promises for S3, would keep the same
 * rules). The store knows nothing of the repository's format, so the caller says which names are
 * immutable (for a repository: packs, index files, snapshots).
 *
 * Correctness never depends on the cache: a failed read is never kept, an entry is a copy (callers
 * own what get returns), and a put, commit or delete through this wrapper forgets every range of
 * that name, including one being read at that moment. Objects changed by another process are not
 * seen: which is why only immutable names may be cached.
 */
import type { ObjectWriter, OperationOptions, PutOptions, Store, StoreProperties, StoreStat, WriterOptions } from './store.js';

export interface CacheOptions {
  /** Whether `name` never changes once written, so its bytes may be served again without asking. */
  readonly immutable: (name: string) => boolean;
  /** The most bytes kept (default 64 MiB); a read larger than this is not kept. */
  readonly maxBytes?: number;
}

export class CacheStore implements Store {
  readonly location: string;
  readonly properties: StoreProperties;
  private readonly maxBytes: number;
  /** Kept reads by `${name} ${offset} ${length}`, least recently used first. */
  private readonly entries = new Map<string, Uint8Array>();
  /** Keys of each name's kept reads, to forget them all when the name changes. */
  private readonly keysOf = new Map<string, Set<string>>();
  /** Names being read now: `changed` once the name is written or deleted meanwhile, so the read is not kept. */
  private readonly reading = new Map<string, { count: number; changed: boolean }>();
  private bytes = 0;

  constructor(
    readonly inner: Store,
    private readonly options: CacheOptions,
  ) {
    this.location = inner.location;
    this.properties = inner.properties;
    this.maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
  }

  /** Bytes held now. */
  get cachedBytes(): number {
    return this.bytes;
  }

  async get(name: string, offset?: number, length?: number, options: OperationOptions = {}): Promise<Uint8Array> {
    if (!this.options.immutable(name)) return this.inner.get(name, offset, length, options);
    options.signal?.throwIfAborted();
    const key = `${name} ${offset ?? 0} ${length ?? ''}`;
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key); // re-inserted: the most recently used is last
      this.entries.set(key, hit);
      return Buffer.from(hit);
    }
    let r = this.reading.get(name);
    if (!r) this.reading.set(name, (r = { count: 0, changed: false }));
    r.count++;
    try {
      const bytes = await this.inner.get(name, offset, length, options);
      if (!r.changed && bytes.length <= this.maxBytes) this.keep(name, key, new Uint8Array(bytes));
      return bytes;
    } finally {
      if (--r.count === 0) this.reading.delete(name);
    }
  }

  private keep(name: string, key: string, bytes: Uint8Array): void {
    this.drop(key, name);
    while (this.bytes + bytes.length > this.maxBytes) {
      const [oldest] = this.entries.keys();
      this.drop(oldest!, oldest!.slice(0, oldest!.indexOf(' ')));
    }
    this.entries.set(key, bytes);
    this.bytes += bytes.length;
    let keys = this.keysOf.get(name);
    if (!keys) this.keysOf.set(name, (keys = new Set()));
    keys.add(key);
  }

  private drop(key: string, name: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.bytes -= e.length;
    const keys = this.keysOf.get(name)!;
    keys.delete(key);
    if (keys.size === 0) this.keysOf.delete(name);
  }

  /** Forgets every kept read of `name`, and any read of it in progress. */
  private forget(name: string): void {
    const r = this.reading.get(name);
    if (r) r.changed = true;
    for (const key of this.keysOf.get(name) ?? []) this.drop(key, name);
  }

  async put(name: string, data: Uint8Array, options?: PutOptions): Promise<void> {
    this.forget(name);
    try {
      await this.inner.put(name, data, options);
    } finally {
      this.forget(name);
    }
  }

  createWriter(options: WriterOptions = {}): ObjectWriter {
    const w = this.inner.createWriter(options);
    return {
      write: (data) => w.write(data),
      commit: async (name, o) => {
        this.forget(name);
        try {
          await w.commit(name, o);
        } finally {
          this.forget(name);
        }
      },
      abort: () => w.abort(),
    };
  }

  stat(name: string, options?: OperationOptions): Promise<StoreStat | undefined> {
    return this.inner.stat(name, options);
  }

  list(prefix: string, options?: OperationOptions): AsyncIterable<StoreStat> {
    return this.inner.list(prefix, options);
  }

  async delete(name: string, options?: OperationOptions): Promise<void> {
    this.forget(name);
    try {
      await this.inner.delete(name, options);
    } finally {
      this.forget(name);
    }
  }

  close(): Promise<void> {
    this.entries.clear();
    this.keysOf.clear();
    this.bytes = 0;
    return this.inner.close();
  }
}
