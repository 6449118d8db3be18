/**
 * repo — the repository format on top of a Store, knowing nothing of files or disks: the config
 * (kept twice, config.ts), keys, chunk encoding (compress, then encrypt; id = keyed hash of
 * plaintext), packs, the index, snapshot manifests and locks; check and repair, which can find the
 * blobs of a pack that lost its header by scanning it (pack-scan.ts). May import store/ and util/. Invariant: write order is data (packs), then
 * index, then snapshot, and no object is ever rewritten in place, so a crash at any point leaves a
 * repository whose every snapshot is complete. A chunk may be stored as a delta (its changed blocks
 * against a full base blob, delta.ts); loadBlob rebuilds it and checks its id, so readers above
 * never see the difference.
 *
 * Sealed: keys, codecs and the envelope format never leave repo/. Worker threads of the layers
 * above seal and open blobs with worker-codec.ts (a WorkerCodec opened from workerCodec()'s opaque
 * handle); they get the bytes they open from the main thread, which reads them through the Store
 * (sealedBlob, packReader), so every store wrapper sees every read. Blobs sealed elsewhere come
 * back through saveSealedBlob: repo never calls up into a layer above.
 */
import { hostname } from 'node:os';
import { LifeboatError, errnoCode } from '../util/errors.js';
import { Semaphore, settledUnless } from '../util/concurrency.js';
import { ownsItsBuffer, release, YoungCollector } from '../util/memory.js';
import type { Store } from '../store/store.js';
import { ParityStore, type ParityReport, type ParitySettings } from '../store/parity.js';
import { createZstdCodec, type Codec } from './compress.js';
import { chunkId, mac, macEquals, newMasterKeys, sha256, type MasterKeys } from './crypto.js';
import { AAD, decodePayload, openFile, sealFile } from './envelope-file.js';
import { BlobEncoder } from './encoder.js';
import { codecHandle, type CodecHandle, type SealedBlob } from './worker-codec.js';
import { Names, idOfName, isId, toHex, fromHex, randomId, type Hex } from './ids.js';
import { decodeIndex, encodeIndex, type IndexPack } from './index-file.js';
import { PackedEntries } from './packed-entries.js';
import { applyDelta, parseDelta, type Delta } from './delta.js';
import { addKey, newRecoveryKey, unlockKeys, type KeySlot } from './keys.js';
import { conflicts, isStale, LOCK_REFRESH_MS, LOCK_STALE_MS, lockedError, newLockInfo, type LockInfo } from './lock.js';
import { MasterIndex } from './master-index.js';
import { ownCopy, PackReader, ReadAhead, type PackReaderOptions } from './pack-reader.js';
import { decodeSealedBlob } from './pack-check.js';
import { BlobType, headerLengthFromTrailer, openBlob, packKindOf, PACK_TRAILER_BYTES, PackWriter, parsePackHeader, StageBuffers, type PackEntry } from './pack.js';
import { encodeSignedJson } from './signed-json.js';
import { chooseConfig, FORMAT_VERSION, readConfigs, type ConfigReading, type RepoConfig } from './config.js';
import { validateSnapshot, type Snapshot } from './snapshot.js';
import { systemClock, type Clock } from '../util/clock.js';

export { FORMAT_VERSION, type RepoConfig } from './config.js';
export type { Lease, PackReader, PackReaderOptions, SpanOutcome, SpanRead } from './pack-reader.js';
export type { ReadAhead } from './pack-reader.js';

export interface SaveResult {
  readonly id: Buffer;
  /** False when the blob was already in the repository (deduplicated). */
  readonly added: boolean;
}

/**
 * How many blobs may be sealing at once (on the encoder's worker threads). Small image chunks need
 * a deep queue to keep two workers busy; callers with large chunks (file backup) bound themselves.
 */
const COMPRESS_IN_FLIGHT = 16;
/** Collect the young generation once per this many bytes of envelopes copied into packs (util/memory.ts). */
const COLLECT_EVERY = 4 * 1024 * 1024;
/** Write an index file after this many packs, so an interrupted backup keeps its progress. */
const PACKS_PER_INDEX = 32;
/**
 * How long a run whose write failed spends, on close, finishing its uploads in flight, indexing the
 * packs it finished and removing its lock: the store may be out of reach by then. Tests shorten it
 * (LIFEBOAT_TEST_CLOSE_MS), as they cannot wait out the real limit in every run.
 */
const closeAfterFailureMs = (): number => Number(process.env['LIFEBOAT_TEST_CLOSE_MS']) || 15_000;

/**
 * Signs and checks data that Lifeboat keeps outside the repository (the listing cache) with the
 * repository's MAC key, which never leaves repo/.
 */
export interface Authenticator {
  /** The tag of `data`. */
  sign(data: Uint8Array): Buffer;
  /** Whether `tag` is the tag of `data`. */
  verify(tag: Uint8Array, data: Uint8Array): boolean;
}

/** The chunker of a new repository (FORMAT.md §3). */
const DEFAULT_CHUNKER: RepoConfig['chunker'] = { algorithm: 'fastcdc-lb1', min: 512 * 1024, avg: 1024 * 1024, max: 8 * 1024 * 1024 };

export interface OpenOptions {
  readonly codec?: Codec;
  /** Where lock times come from; the system clock unless a test sets one. */
  readonly clock?: Clock;
  /** For init: protect every object with parity. */
  readonly parity?: ParitySettings;
  /**
   * For init: take another repository's chunker parameters and id key (init --copy-parameters-from),
   * so the same data gets the same chunk ids in both and a copy between them deduplicates
   * (FORMAT.md §2). The encryption and signing keys stay the new repository's own.
   */
  readonly copyParametersFrom?: Repository;
  /** Hears of damage that parity corrected on read (the CLI warns). */
  readonly onWarning?: (message: string) => void;
  /** The config as Repository.readConfig read it from this store a moment ago (one request less for a remote repository). */
  readonly configRead?: ConfigRead;
}

/** What Repository.readConfig read: the config, and the reading open() continues from. */
export interface ConfigRead {
  readonly config: RepoConfig;
  readonly reading: ConfigReading;
}

/** Turns a read that parity corrected into a warning for the user. */
function parityWarning(warn: ((message: string) => void) | undefined): (r: ParityReport) => void {
  return (r) => warn?.(`${r.name} was damaged (${r.damagedShards} × 4 KiB); it was corrected from its parity. The drive may be failing: consider copying the repository to another drive.`);
}

export class Repository {
  readonly index = new MasterIndex();
  private readonly pending = new Set<string>();
  private readonly packers = new Map<BlobType, PackWriter>();
  private readonly compressSlots = new Semaphore(COMPRESS_IN_FLIGHT);
  /**
   * How many finished packs may be committing at once (their last writes, and for a folder the
   * fsync and rename) while the next one fills: the store's uploadsInFlight (1 for a local folder).
   */
  private readonly uploadSlots: Semaphore;
  private readonly uploads = new Set<Promise<void>>();
  /** Stages for the data and tree packs filling: each has up to three (one filling, two being written). */
  private readonly stages = new StageBuffers(6);
  private readonly young = new YoungCollector(COLLECT_EVERY);
  /**
   * Packs written and not yet in an index file (up to PACKS_PER_INDEX), their blob lists packed:
   * as PackEntry objects with id buffers they were ~7 MiB of a backup's live heap (~37,000 small
   * blobs; bench/README.md, session 15).
   */
  private unindexed: { readonly packId: Uint8Array; readonly entries: PackedEntries }[] = [];
  private writeError: unknown;
  /** Stops the pack uploads still in flight when a close after a failed write gives up on them. */
  private stopUploads = new AbortController();
  private locks = new Map<Hex, { info: LockInfo; timer: NodeJS.Timeout }>();
  private indexLoaded = false;
  private indexLoading: Promise<void> | undefined;
  private headersScanned = false;
  /** Index files found unreadable this session (told once, not read again). */
  private readonly unreadableIndexFiles = new Set<string>();
  /**
   * Packs that no readable index file names, indexed in memory from their own headers (a damaged
   * or deleted index file, or a writer that died before its index). Writers put them into a new
   * index file (repair.ts indexUnindexedPacks) before relying on them.
   */
  recoveredPacks: { pack: IndexPack; size: number }[] = [];
  /** Told of damage that reading worked around (an unreadable index file); the CLI prints it. */
  onWarning: ((message: string) => void) | undefined;
  /** The exact bytes of the config this repository opened with (their MAC verified). */
  configBytes: Uint8Array = new Uint8Array(0);
  /** Bytes of packs this session has written. */
  bytesWritten = 0;
  private readonly encoder: BlobEncoder;
  /** Where lock times come from (OpenOptions.clock; a test sets it). */
  private clock: Clock = systemClock;

  private constructor(
    readonly store: Store,
    readonly config: RepoConfig,
    readonly keys: MasterKeys,
    readonly keyId: Hex,
    readonly keySlot: KeySlot,
    readonly codec: Codec,
  ) {
    this.encoder = new BlobEncoder(codec, keys.encKey);
    this.uploadSlots = new Semaphore(Math.max(1, store.properties.uploadsInFlight));
  }

  /** Adds a key slot that opens the repository with `secret` (the master keys never leave repo/); returns its id. */
  addKeySlot(secret: string, kind: KeySlot['kind'], label: string): Promise<Hex> {
    return addKey(this.store, this.keys, secret, kind, label);
  }

  /** Creates a repository; returns it opened, with the recovery key to show the user once. */
  static async init(store: Store, password: string, options: OpenOptions = {}): Promise<{ repo: Repository; recoveryKey: string }> {
    if (await store.stat(Names.config)) {
      throw new LifeboatError('repository-exists', `There is already a Lifeboat repository at ${store.location}. Use it as it is, or choose another folder.`);
    }
    for await (const _ of store.list('keys/')) {
      throw new LifeboatError('repository-exists', `${store.location} already holds key files; it looks like a damaged repository. Choose an empty folder.`);
    }
    const from = options.copyParametersFrom;
    const master = from ? { ...newMasterKeys(), idKey: Buffer.from(from.keys.idKey) } : newMasterKeys();
    const config: RepoConfig = {
      format: 'lifeboat-repository',
      version: FORMAT_VERSION,
      id: randomId(),
      created: new Date((options.clock ?? systemClock).now()).toISOString(),
      chunker: from ? { ...from.config.chunker } : { ...DEFAULT_CHUNKER },
      ...(options.parity ? { parity: options.parity } : {}),
    };
    // With parity, the keys and the config get their sidecars too.
    const target = options.parity ? new ParityStore(store, options.parity) : store;
    const recoveryKey = newRecoveryKey();
    // Keys first, config last: a folder without config is not yet a repository.
    const keyId = await addKey(target, master, password, 'password', 'initial password').catch((e: unknown) =>
      Promise.reject(e instanceof LifeboatError && e.code === 'read-only' ? new LifeboatError('read-only', `No repository can be created at ${store.location}: the drive cannot be written (read-only or write-protected). Choose a writable drive or folder.`, { cause: e }) : e),
    );
    await addKey(target, master, recoveryKey, 'recovery', 'recovery key');
    // The copy first, the config last: one damaged config object then costs nothing (config.ts).
    const configBytes = encodeSignedJson(config, master.macKey);
    await target.put(Names.configCopy, configBytes);
    await target.put(Names.config, configBytes, { ifAbsent: true });
    const repo = await Repository.open(store, password, options);
    if (repo.keyId !== keyId) throw new Error('opened with an unexpected key slot');
    return { repo, recoveryKey };
  }

  /**
   * A repository that lives only in `store` and can never be opened again: fresh keys that are
   * saved nowhere, no key slot, no config written. The backup estimate's trial run measures this
   * machine's pace with one (jobs/setup.ts).
   */
  static scratch(store: Store): Repository {
    const now = new Date(systemClock.now()).toISOString();
    const config: RepoConfig = { format: 'lifeboat-repository', version: FORMAT_VERSION, id: randomId(), created: now, chunker: { ...DEFAULT_CHUNKER } };
    const slot: KeySlot = { version: 1, kind: 'password', label: 'scratch (never saved)', created: now, host: hostname(), user: '', kdf: { name: 'scrypt', N: 0, r: 0, p: 0, salt: '' }, masterKey: '' };
    return new Repository(store, config, newMasterKeys(), randomId(), slot, createZstdCodec());
  }

  /**
   * Reads and checks the config without a password (for "no repository" and version errors
   * before the prompt): `config`, or its copy when `config` is missing or damaged (config.ts).
   */
  /** The config without the password; pass the result to open (OpenOptions.configRead) and it is not read again. */
  static async readConfig(store: Store, onWarning?: (message: string) => void): Promise<ConfigRead> {
    const reading = await readConfigs(store, parityWarning(onWarning));
    return { config: reading.candidates[0]!.config, reading };
  }

  static async open(store: Store, password: string, options: OpenOptions = {}): Promise<Repository> {
    const reading = options.configRead?.reading ?? (await readConfigs(store, parityWarning(options.onWarning)));
    const first = reading.candidates[0]!.config;
    const withParity = (s: Store, c: RepoConfig): Store => (c.parity ? new ParityStore(s, c.parity, parityWarning(options.onWarning)) : s);
    const { master, keyId, slot } = await unlockKeys(withParity(store, first), password);
    const { chosen, warning } = await chooseConfig(store, reading, master.macKey, parityWarning(options.onWarning));
    if (warning) options.onWarning?.(warning);
    const repo = new Repository(withParity(store, chosen.config), chosen.config, master, keyId, slot, options.codec ?? createZstdCodec());
    repo.configBytes = chosen.bytes;
    if (options.clock) repo.clock = options.clock;
    return repo;
  }

  // ---------------------------------------------------------------- index

  /** A blob read before anyone loaded the index (browsing, dump) loads it, once. */
  private firstIndexLoad(): Promise<void> {
    return (this.indexLoading ??= this.loadIndex());
  }

  /**
   * Loads the index unless this session loaded it already: a backup after indexUnindexedPacks
   * (which loaded it a moment ago, under the same lock) does not list the index files again.
   */
  async ensureIndexLoaded(): Promise<void> {
    if (!this.indexLoaded) await this.firstIndexLoad();
  }

  /**
   * Loads every index file into memory. Safe to call again (reloads what is new). An index file
   * that cannot be read costs only time: it is skipped (told to `onError`, else to onWarning), and
   * the packs that no readable index file names are indexed from their own headers instead.
   */
  async loadIndex(onError?: (name: string, e: unknown) => void): Promise<void> {
    const names: string[] = [];
    for await (const o of this.store.list('index/')) if (idOfName(o.name)) names.push(o.name);
    const seen = this.index.loadedFiles;
    let damaged = 0;
    let next = 0;
    const worker = async () => {
      while (next < names.length) {
        const name = names[next++]!;
        if (seen.has(name) || this.unreadableIndexFiles.has(name)) continue;
        try {
          await this.loadIndexFile(name);
        } catch (e) {
          if (!(e instanceof LifeboatError)) throw e;
          this.unreadableIndexFiles.add(name);
          damaged++;
          if (onError) onError(name, e);
          else this.onWarning?.(`The index file ${name} cannot be read (${e.message}) Lifeboat reads the packs' own headers instead, which takes longer; "lifeboat repair index" rewrites the index.`);
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    this.indexLoaded = true;
    if (damaged > 0 || !this.headersScanned) await this.indexPacksFromHeaders();
  }

  /**
   * Reads one index file into the in-memory index, as loadIndex does (which then skips it), telling
   * `onPack` of each pack it lists: check reads every index file itself and loads the index once.
   */
  async loadIndexFile(name: string, onPack?: (packId: Hex, entries: PackEntry[]) => void): Promise<void> {
    await this.readIndexFile(name, (packId, entries) => {
      onPack?.(packId, entries);
      this.index.addPackEntries(packId, entries);
    });
    this.index.loadedFiles.add(name);
  }

  /**
   * Indexes in memory, from their own headers, the packs that no loaded index file names (see
   * recoveredPacks). A pack whose header cannot be read is left out (check reports it).
   */
  private async indexPacksFromHeaders(): Promise<void> {
    this.headersScanned = true;
    for await (const o of this.store.list('data/')) {
      const id = idOfName(o.name);
      if (!id || o.name !== Names.pack(id) || this.index.hasPack(id)) continue;
      try {
        const pack = await this.readPackHeader(id, o.size);
        this.index.addPackEntries(id, pack.entries);
        this.recoveredPacks.push({ pack, size: o.size });
      } catch (e) {
        if (!(e instanceof LifeboatError)) throw e;
      }
    }
  }

  /** Reads one pack's header with ranged reads (trailer, then header). */
  async readPackHeader(packId: Hex, size: number): Promise<IndexPack> {
    const name = Names.pack(packId);
    if (size < PACK_TRAILER_BYTES) throw new LifeboatError('corrupt', `The pack ${name} is damaged: it is only ${size} bytes long.`);
    const trailer = await this.store.get(name, size - PACK_TRAILER_BYTES, PACK_TRAILER_BYTES);
    const hl = headerLengthFromTrailer(trailer, size, name);
    const sealed = await this.store.get(name, size - PACK_TRAILER_BYTES - hl, hl);
    return { packId: fromHex(packId), entries: parsePackHeader(this.keys.encKey, sealed, size, name) };
  }

  /** Decrypts one index file and hands its packs to `onPack`. */
  async readIndexFile(name: string, onPack: (packId: Hex, entries: PackEntry[]) => void): Promise<void> {
    const body = await openFile(this.codec, this.keys.encKey, AAD.index, await this.store.get(name), `The index file ${name}`);
    let cur: { packId: Hex; entries: PackEntry[]; count: number } | undefined;
    const flushPack = () => {
      if (cur) onPack(cur.packId, cur.entries);
    };
    decodeIndex(
      body,
      name,
      (packId, count) => {
        flushPack();
        cur = { packId: toHex(packId), entries: [], count };
      },
      (type, id, offset, length, rawLength, base) => {
        cur!.entries.push({ type, id: Buffer.from(id), offset, length, rawLength, ...(base ? { base: Buffer.from(base) } : {}) });
      },
    );
    flushPack();
  }

  /** True if the blob is stored or being stored by this session. */
  hasBlob(id: Uint8Array): boolean {
    return this.index.has(id) || this.pending.has(toHex(id));
  }

  /**
   * Whether the same data gets the same chunks and chunk ids here and in `other` (same id key and
   * chunker parameters: one made with init --copy-parameters-from the other), so blobs can be
   * copied between them as they are.
   */
  sharesChunkParameters(other: Repository): boolean {
    const a = this.config.chunker;
    const b = other.config.chunker;
    return this.keys.idKey.equals(other.keys.idKey) && a.algorithm === b.algorithm && a.min === b.min && a.avg === b.avg && a.max === b.max;
  }

  blobId(data: Uint8Array): Buffer {
    return chunkId(this.keys, data);
  }

  // ---------------------------------------------------------------- writing

  private assertWritable(): void {
    if (this.writeError !== undefined) throw this.writeError;
  }

  /**
   * Stores a blob unless it is already there. Resolves once the blob is in a pack being written (so the
   * caller may reuse nothing: `data` must not be modified afterwards); call flush() before writing
   * a snapshot that refers to it. Applies backpressure through bounded compression and uploads.
   *
   * A delta blob (type delta) is given as its encoded changes (delta.ts) with `knownId`, the id
   * of the whole chunk, and `delta.base`/`delta.length`: its base's id and the chunk's length. The
   * caller made the changes from the base's plaintext, so the id is right by construction.
   */
  async saveBlob(type: BlobType, data: Uint8Array, knownId?: Uint8Array, delta?: { readonly base: Uint8Array; readonly length: number }): Promise<SaveResult> {
    this.assertWritable();
    if (!this.indexLoaded) throw new Error('loadIndex() must run before saveBlob()');
    if ((type === BlobType.delta) !== (delta !== undefined) || (delta && !knownId)) throw new Error('a delta blob needs its chunk id and base, and only a delta has a base');
    const id = knownId ? Buffer.from(knownId) : chunkId(this.keys, data);
    const rawLength = delta ? delta.length : data.length; // read now: an encoder may take `data`
    const hex = toHex(id);
    if (this.index.has(id) || this.pending.has(hex)) return { id, added: false };
    this.pending.add(hex);
    await this.compressSlots.acquire();
    let env: Uint8Array;
    try {
      env = await this.encoder.encode(type, id, data);
    } catch (e) {
      this.pending.delete(hex);
      throw e;
    } finally {
      this.compressSlots.release();
    }
    await this.addToPack(type, id, env, rawLength, delta ? Buffer.from(delta.base) : undefined);
    return { id, added: true };
  }

  /**
   * What a worker thread of a layer above needs to seal and open this repository's blobs: pass it
   * through workerData and open it there with worker-codec.ts's WorkerCodec. Opaque: the keys stay
   * out of reach of the code that carries it. `level`: the zstd level to seal with.
   */
  workerCodec(level?: number): CodecHandle {
    return codecHandle(this.keys, level);
  }

  /** Signs and checks files kept outside the repository (see Authenticator). */
  readonly authenticator: Authenticator = {
    sign: (data) => mac(this.keys.macKey, data),
    verify: (tag, data) => macEquals(tag, mac(this.keys.macKey, data)),
  };

  /**
   * Stores a blob that a worker already sealed (id computed by the worker with this repository's
   * WorkerCodec). Returns added: false, discarding the envelope, if the blob is already stored. Takes
   * the envelope: once copied into a pack its buffer may be freed (util/memory.ts release), so the
   * caller must not use it after the call. A delta blob names its `base` (rawLength is then the
   * length of the chunk it rebuilds), as in saveBlob.
   */
  async saveSealedBlob(type: BlobType, id: Uint8Array, envelope: Uint8Array, rawLength: number, base?: Uint8Array): Promise<SaveResult> {
    this.assertWritable();
    if (!this.indexLoaded) throw new Error('loadIndex() must run before saveSealedBlob()');
    if ((type === BlobType.delta) !== (base !== undefined)) throw new Error('a delta blob needs its base, and only a delta has a base');
    const idBuf = Buffer.from(id.buffer, id.byteOffset, id.byteLength);
    const hex = toHex(idBuf);
    if (this.index.has(idBuf) || this.pending.has(hex)) return { id: idBuf, added: false };
    this.pending.add(hex);
    await this.addToPack(type, idBuf, envelope, rawLength, base ? Buffer.from(base) : undefined);
    return { id: idBuf, added: true };
  }

  private async addToPack(type: BlobType, id: Buffer, env: Uint8Array, rawLength: number, base?: Buffer): Promise<void> {
    const packType = packKindOf(type);
    let packer = this.packers.get(packType);
    // A pack closes before the blob that would take it past its target (docs/FORMAT.md §7).
    let closed: PackWriter | undefined;
    if (packer && !packer.fits(env.length)) {
      closed = packer;
      packer = undefined;
    }
    if (!packer) {
      packer = new PackWriter(this.keys.encKey, this.store.createWriter({ metadata: packType === BlobType.tree, signal: this.stopUploads.signal }), this.stages);
      this.packers.set(packType, packer);
    }
    packer.addSealed(type, id, env, rawLength, base);
    // Copied into the pack: ours to drop, unless it is a view of memory shared with a worker (util/shared-ring.ts).
    if (!release(env) && !(env.buffer instanceof SharedArrayBuffer)) this.young.dropped(env.length);
    const full = packer.full;
    if (full) this.packers.delete(packType);
    if (closed) await this.uploadPack(closed);
    if (full) await this.uploadPack(packer);
    else await this.paced(packer);
  }

  /**
   * After a failed write (a full drive, one unplugged mid-backup), makes this repository writable
   * again for a process that goes on using it (continuous protection retries a minute later):
   * waits for the writes in flight, drops the packs left open, indexes those that were finished
   * (as close does), and forgets the error. The dropped packs' blobs are no longer pending, so the
   * next backup stores them again; nothing refers to them yet (no snapshot was written).
   */
  async recoverWriting(): Promise<void> {
    if (this.writeError === undefined) return;
    await this.endWrites(AbortSignal.timeout(closeAfterFailureMs()));
    this.stopUploads = new AbortController();
    this.pending.clear();
    this.writeError = undefined;
  }

  /**
   * Waits for the uploads in flight, drops the packs left open and indexes the finished ones, all
   * within `deadline` (none: as long as it takes). Uploads still in flight at the deadline are given
   * up on: stopped where the store can, ended by its close where not (a request whose body was
   * sent), their packs not indexed.
   */
  private async endWrites(deadline: AbortSignal | undefined): Promise<void> {
    await settledUnless(this.uploads, deadline);
    if (this.uploads.size > 0) this.stopUploads.abort(deadline?.reason);
    for (const packer of this.packers.values()) await packer.abort();
    this.packers.clear();
    if (this.unindexed.length > 0) await this.writeIndex(deadline).catch(() => undefined);
  }

  /** Waits while the packer's writes fall behind; a failed write fails the repository's writing. */
  private async paced(packer: PackWriter): Promise<void> {
    try {
      await packer.keepUp();
    } catch (e) {
      this.writeError ??= e;
      this.assertWritable();
    }
  }

  private async uploadPack(packer: PackWriter): Promise<void> {
    await this.uploadSlots.acquire();
    const p = (async () => {
      try {
        const { id, bytes } = await packer.finish();
        this.bytesWritten += bytes;
        this.index.addPackEntries(id, packer.entries);
        for (const e of packer.entries) this.pending.delete(toHex(e.id));
        this.unindexed.push({ packId: fromHex(id), entries: PackedEntries.pack(packer.entries) });
        if (this.unindexed.length >= PACKS_PER_INDEX) await this.writeIndex();
      } catch (e) {
        this.writeError ??= e;
        await packer.abort();
      } finally {
        this.uploadSlots.release();
      }
    })();
    this.uploads.add(p);
    void p.finally(() => this.uploads.delete(p));
    this.assertWritable();
  }

  /**
   * A writer whose lock went stale (the computer slept for half an hour mid-backup) may have had
   * its unindexed packs removed by a prune meanwhile; it must not write an index or snapshot that
   * refers to them. Checked before every index and snapshot write.
   */
  private async assertLocksHeld(signal?: AbortSignal): Promise<void> {
    for (const [id, l] of this.locks) {
      const age = this.clock.now() - Date.parse(l.info.time);
      if (age > LOCK_STALE_MS || !(await this.store.stat(Names.lock(id), signal ? { signal } : {}))) {
        throw new LifeboatError('locked', 'This run paused so long that its lock on the repository expired, so maintenance may have changed the repository meanwhile. Nothing was lost; run it again.');
      }
    }
  }

  /** Writes the index of the packs written since the last one; `signal` bounds its tries. */
  private async writeIndex(signal?: AbortSignal): Promise<void> {
    if (this.unindexed.length === 0) return;
    await this.assertLocksHeld(signal);
    const packs = this.unindexed;
    this.unindexed = [];
    if (packs.length === 0) return; // another upload's writeIndex took them meanwhile
    try {
      const bytes = await sealFile(this.codec, this.keys.encKey, AAD.index, encodeIndex(packs));
      const hash = toHex(sha256(bytes));
      const name = Names.index(hash);
      await this.store.put(name, bytes, { sha256: hash, ...(signal ? { signal } : {}) });
      this.index.loadedFiles.add(name);
    } catch (e) {
      // Still to index (close tries again): listing a pack in two index files is allowed (FORMAT.md §7).
      this.unindexed.unshift(...packs);
      throw e;
    }
  }

  /** Writes every open pack and the index for them. After it resolves, saved blobs are durable. */
  async flush(): Promise<void> {
    for (const [type, packer] of [...this.packers]) {
      this.packers.delete(type);
      if (packer.entries.length > 0) await this.uploadPack(packer);
    }
    // Once a write failed the run fails: the uploads still in flight are close's to wait for, with its limit.
    while (this.uploads.size > 0 && this.writeError === undefined) await Promise.race([...this.uploads]);
    this.assertWritable();
    await this.writeIndex();
  }

  // ---------------------------------------------------------------- reading

  /**
   * A stored full blob's sealed envelope, read now through the store, for a worker thread to open
   * (worker-codec.ts). Its id and envelope are buffers of their own: they cross threads without
   * dragging a shared slab along. Undefined for a delta blob or one missing from the index (loadBlob handles both).
   */
  async sealedBlob(id: Uint8Array): Promise<SealedBlob | undefined> {
    if (!this.indexLoaded) await this.firstIndexLoad();
    const loc = this.index.get(id);
    if (!loc || loc.type === BlobType.delta) return undefined;
    const packName = Names.pack(loc.packId);
    const got = await this.store.get(packName, loc.offset, loc.length);
    return { type: loc.type, id: new Uint8Array(id), rawLength: loc.rawLength, packName, env: ownsItsBuffer(got) ? got : ownCopy(got) };
  }

  /**
   * Whether the store lies behind a network (it wants several uploads in flight, see
   * StoreProperties): a request there costs milliseconds, so readers ask further ahead.
   */
  get remote(): boolean {
    return this.store.properties.uploadsInFlight > 1;
  }

  /**
   * A restore planner over this repository's store and index (pack-reader.ts): blobs asked for
   * meanwhile are read together, pack by pack, within a memory budget.
   */
  packReader(options?: PackReaderOptions): PackReader {
    return new PackReader(this.store, this.index, options);
  }

  /**
   * Blobs loaded as loadBlob does, through a restore planner of their own with a read-ahead
   * (pack-reader.ts ReadAhead): blobs the caller expects to need soon are read with one request per
   * pack span and kept sealed, at most `keep` bytes of them, until loaded.
   */
  readAhead(options: { readonly budget: number; readonly keep: number }): ReadAhead {
    const reader = this.packReader({ budget: options.budget });
    return new ReadAhead(reader, this.index, options.keep, (b) => this.decodeBlob(b.type, b.id, b.env, b.rawLength, b.packName), (id) => this.loadBlob(id));
  }

  /**
   * Loads, decrypts, decompresses and verifies one blob as loadBlob does, reading it through the
   * restore planner `reader` (with the other blobs asked for meanwhile, pack by pack).
   */
  async loadPlanned(reader: PackReader, id: Uint8Array): Promise<Uint8Array> {
    if (!this.indexLoaded) await this.firstIndexLoad();
    const lease = await reader.get(id);
    if (!lease) return this.loadBlob(id); // a delta, or not indexed: loadBlob rebuilds it or says what is wrong
    try {
      const b = lease.blob;
      return await this.decodeBlob(b.type, b.id, b.env, b.rawLength, b.packName);
    } finally {
      lease.release();
    }
  }

  /**
   * Loads, decrypts, decompresses and verifies one blob. A delta blob is rebuilt from its base
   * (FORMAT.md §6) and the result checked against its id like any other blob.
   */
  async loadBlob(id: Uint8Array): Promise<Uint8Array> {
    if (!this.indexLoaded) await this.firstIndexLoad();
    const loc = this.index.get(id);
    if (!loc) throw this.notIndexed(id);
    const packName = Names.pack(loc.packId);
    const env = await this.store.get(packName, loc.offset, loc.length);
    return this.decodeBlob(loc.type, id, env, loc.rawLength, packName, loc.base);
  }

  /** The error for a blob the index does not hold (the repository is damaged). */
  notIndexed(id: Uint8Array): LifeboatError {
    return new LifeboatError('corrupt', `The data block ${toHex(id).slice(0, 16)} is missing from the repository index. Run "lifeboat check" to see what is affected.`);
  }

  /**
   * Decodes an envelope read from a pack and verifies its id. For a delta blob this loads its base
   * (through the index) and returns the rebuilt chunk; `base`, when given (from an index or a pack
   * header), must be the base the delta names.
   */
  async decodeBlob(type: number, id: Uint8Array, envelope: Uint8Array, rawLength: number, packName: string, base?: Uint8Array): Promise<Uint8Array> {
    if (type === BlobType.delta) {
      const d = await this.openDelta(id, envelope, rawLength, packName, base);
      return this.rebuildDelta(id, d, await this.loadBase(d.base), packName);
    }
    return decodeSealedBlob(this.codec, this.keys, type, id, envelope, rawLength, packName);
  }

  /**
   * Decrypts and parses a delta blob's change list, without its base. Checks what can be checked
   * alone: the envelope, the structure, the length, and that it names the expected base.
   */
  async openDelta(id: Uint8Array, envelope: Uint8Array, rawLength: number, packName: string, expectedBase?: Uint8Array): Promise<Delta> {
    const what = `A data block in pack ${packName}`;
    // The change list is at most a few bytes more than the chunk it rebuilds (all blocks changed).
    const plain = await decodePayload(this.codec, openBlob(this.keys.encKey, BlobType.delta, id, envelope, what), what);
    const d = parseDelta(plain, what);
    if (d.length !== rawLength) throw new LifeboatError('corrupt', `${what} rebuilds ${d.length} bytes instead of ${rawLength}; it is damaged.`);
    if (expectedBase && !d.base.equals(expectedBase)) throw new LifeboatError('corrupt', `${what} is stored as changes to another block than the index says; the pack or the index is damaged.`);
    return d;
  }

  /** Loads the base of a delta: a full blob (deltas are never based on deltas). */
  async loadBase(base: Uint8Array): Promise<Uint8Array> {
    const loc = this.index.get(base);
    if (!loc) throw this.notIndexed(base);
    if (loc.type === BlobType.delta) {
      throw new LifeboatError('corrupt', `The data block ${toHex(base).slice(0, 16)} is the base of a delta but is itself stored as a delta; the repository is damaged.`);
    }
    return this.loadBlob(base);
  }

  /** Applies a delta to its base's plaintext and checks that the result has the delta's id. */
  rebuildDelta(id: Uint8Array, d: Delta, base: Uint8Array, packName: string): Buffer {
    const what = `A data block in pack ${packName}`;
    const plain = applyDelta(d, base, what);
    if (!chunkId(this.keys, plain).equals(id)) {
      throw new LifeboatError('corrupt', `${what} does not match its id once its changes are applied to its base ${toHex(d.base).slice(0, 16)}; the pack is damaged.`);
    }
    return plain;
  }

  // ---------------------------------------------------------------- snapshots

  /**
   * Writes a snapshot file. Its exact bytes are stored first as a blob of type snapshot (in the tree
   * pack, so before the index and the file, FORMAT.md §8): "repair snapshots" rebuilds the file
   * from that copy if the file is ever damaged.
   */
  async saveSnapshot(s: Snapshot): Promise<Hex> {
    const bytes = await sealFile(this.codec, this.keys.encKey, AAD.snapshot, Buffer.from(JSON.stringify(s)));
    await this.saveBlob(BlobType.snapshot, bytes);
    await this.flush();
    await this.assertLocksHeld();
    const id = toHex(sha256(bytes));
    await this.store.put(Names.snapshot(id), bytes);
    return id;
  }

  async loadSnapshot(id: Hex): Promise<Snapshot> {
    const name = Names.snapshot(id);
    const body = await openFile(this.codec, this.keys.encKey, AAD.snapshot, await this.store.get(name), `The snapshot ${id.slice(0, 8)}`);
    let v: unknown;
    try {
      v = JSON.parse(Buffer.from(body).toString('utf8'));
    } catch {
      throw new LifeboatError('corrupt', `The snapshot ${id.slice(0, 8)} is damaged (not valid JSON).`);
    }
    return validateSnapshot(v, id);
  }

  /** Every snapshot, oldest first. Damaged ones go to onError (or throw without it). */
  async listSnapshots(onError?: (id: Hex, e: unknown) => void): Promise<{ id: Hex; snapshot: Snapshot }[]> {
    const ids: Hex[] = [];
    for await (const o of this.store.list('snapshots/')) {
      const id = idOfName(o.name);
      if (id) ids.push(id);
    }
    const out: { id: Hex; snapshot: Snapshot }[] = [];
    await Promise.all(
      ids.map(async (id) => {
        try {
          out.push({ id, snapshot: await this.loadSnapshot(id) });
        } catch (e) {
          if (!onError) throw e;
          onError(id, e);
        }
      }),
    );
    return out.sort((a, b) => (a.snapshot.time < b.snapshot.time ? -1 : a.snapshot.time > b.snapshot.time ? 1 : a.id < b.id ? -1 : 1));
  }

  /** Resolves "latest", a full id or an unambiguous prefix; `filter` narrows "latest". */
  async findSnapshot(ref: string, filter?: (s: Snapshot) => boolean): Promise<{ id: Hex; snapshot: Snapshot }> {
    if (ref === 'latest') {
      const all = (await this.listSnapshots(() => undefined)).filter((s) => !filter || filter(s.snapshot));
      const last = all[all.length - 1];
      if (!last) throw new LifeboatError('not-found', 'There are no snapshots yet. Make one with "lifeboat backup".');
      return last;
    }
    if (!/^[0-9a-f]{1,64}$/.test(ref)) throw new LifeboatError('invalid-argument', `"${ref}" is not a snapshot id. Use an id from "lifeboat snapshots", a prefix of one, or "latest".`);
    if (isId(ref)) return { id: ref, snapshot: await this.loadSnapshot(ref) };
    const matches: Hex[] = [];
    for await (const o of this.store.list('snapshots/')) {
      const id = idOfName(o.name);
      if (id?.startsWith(ref)) matches.push(id);
    }
    if (matches.length === 0) throw new LifeboatError('invalid-argument', `No snapshot id starts with "${ref}". List them with "lifeboat snapshots".`);
    if (matches.length > 1) {
      const shown: string[] = [];
      for (const id of matches.sort().slice(0, 10)) {
        const s = await this.loadSnapshot(id).catch(() => undefined);
        shown.push(`  ${id.slice(0, 12)}  ${s ? `${s.time}  ${s.host}  ${s.paths.join(', ')}` : '(cannot be read)'}`);
      }
      if (matches.length > 10) shown.push(`  … and ${matches.length - 10} more`);
      throw new LifeboatError('invalid-argument', `"${ref}" matches ${matches.length} snapshots; type more of the id:\n${shown.join('\n')}`);
    }
    return { id: matches[0]!, snapshot: await this.loadSnapshot(matches[0]!) };
  }

  // ---------------------------------------------------------------- locks

  /** Every lock in the repository but those `skip` names (not read: for a remote repository each read is a request). */
  async listLocks(skip?: (id: Hex) => boolean): Promise<{ id: Hex; info: LockInfo | undefined }[]> {
    const out: { id: Hex; info: LockInfo | undefined }[] = [];
    for await (const o of this.store.list('locks/')) {
      const id = idOfName(o.name);
      if (!id || skip?.(id)) continue;
      try {
        const body = await openFile(this.codec, this.keys.encKey, AAD.lock, await this.store.get(o.name), 'A lock');
        out.push({ id, info: JSON.parse(Buffer.from(body).toString('utf8')) as LockInfo });
      } catch (e) {
        if (e instanceof LifeboatError && e.code === 'not-found') continue; // released meanwhile
        out.push({ id, info: undefined });
      }
    }
    return out;
  }

  private async writeLock(info: LockInfo): Promise<Hex> {
    const bytes = await sealFile(this.codec, this.keys.encKey, AAD.lock, Buffer.from(JSON.stringify(info)));
    const id = toHex(sha256(bytes));
    await this.store.put(Names.lock(id), bytes);
    return id;
  }

  /** Reading commands take no lock (restic's --no-lock); set by the caller before locking. */
  noLock = false;
  /** Told once when a reading command goes on without a lock: asked to (--no-lock), or the store cannot be written. */
  onUnlocked: ((why: 'asked' | 'read-only') => void) | undefined;
  private unlockedTold = false;

  /**
   * Takes a shared (backup, restore) or exclusive (prune) lock. Stale locks are removed; a live
   * conflicting lock → LifeboatError('locked'). The lock refreshes itself until released.
   * A `reading` lock (restore, check, browsing: nothing is written to the repository) is skipped
   * with `noLock`, and when the store is read-only (an old backup on a write-protected drive or a
   * DVD): then nobody can be writing to it either. Returns the lock's id, or undefined without one.
   */
  async lock(exclusive: boolean, purpose: string, o: { reading?: boolean } = {}): Promise<Hex | undefined> {
    const reading = o.reading === true && !exclusive;
    if (reading && this.noLock) return this.unlocked('asked');
    try {
      return await this.takeLock(exclusive, purpose);
    } catch (e) {
      if (e instanceof LifeboatError && e.code === 'read-only') {
        if (reading) {
          // The drive is read-only here, but may be writable elsewhere (a read-only bind mount, a
          // share): a live exclusive lock (prune) still means the repository is being changed.
          for (const l of await this.listLocks()) if (l.info?.exclusive && !isStale(l.info, this.clock)) throw lockedError(l.info);
          return this.unlocked('read-only');
        }
        throw new LifeboatError('read-only', `The repository at ${this.store.location} is on a drive that cannot be written (read-only or write-protected), so the ${purpose} cannot run. Make the drive writable, or restore and browse from it as it is.`, { cause: e });
      }
      throw e;
    }
  }

  private unlocked(why: 'asked' | 'read-only'): undefined {
    if (!this.unlockedTold) this.onUnlocked?.(why);
    this.unlockedTold = true;
    return undefined;
  }

  private async takeLock(exclusive: boolean, purpose: string): Promise<Hex> {
    const info = newLockInfo(exclusive, purpose, this.clock);
    const check = async (mine?: Hex) => {
      for (const l of await this.listLocks((id) => id === mine || this.locks.has(id))) {
        if (!l.info) continue; // unreadable lock of another repository key? ignored, check reports it
        if (isStale(l.info, this.clock)) {
          // A stale lock holds nobody back; one this client may not remove (a Lifeboat server
          // keeps each computer's locks its own until 30 minutes old) is left for its owner.
          await this.store.delete(Names.lock(l.id)).catch((e: unknown) => {
            if (!(e instanceof LifeboatError && e.code === 'read-only')) throw e;
          });
          continue;
        }
        if (conflicts(info, l.info)) return l.info;
      }
      return undefined;
    };
    const before = await check();
    if (before) throw lockedError(before);
    let id = await this.writeLock(info);
    // Someone may have locked between our check and our write: look again, back off if so.
    const after = await check(id);
    if (after) {
      await this.store.delete(Names.lock(id));
      throw lockedError(after);
    }
    const timer = setInterval(() => {
      void (async () => {
        const entry = this.locks.get(id);
        if (!entry) return;
        const fresh = { ...entry.info, time: new Date(this.clock.now()).toISOString() };
        const newId = await this.writeLock(fresh);
        this.locks.delete(id);
        this.locks.set(newId, { info: fresh, timer: entry.timer });
        await this.store.delete(Names.lock(id));
        id = newId;
      })().catch(() => undefined);
    }, LOCK_REFRESH_MS);
    timer.unref();
    this.locks.set(id, { info, timer });
    return id;
  }

  /** Removes this session's locks; `signal` bounds the tries (a lock left behind goes stale in 30 minutes). */
  async unlockAll(signal?: AbortSignal): Promise<void> {
    for (const [id, l] of this.locks) {
      clearInterval(l.timer);
      await this.store.delete(Names.lock(id), signal ? { signal } : {}).catch(() => undefined);
    }
    this.locks.clear();
  }

  /** Removes stale locks (or all locks with `all`), returning how many were removed. */
  async removeLocks(all: boolean): Promise<number> {
    let n = 0;
    for (const l of await this.listLocks()) {
      if (this.locks.has(l.id)) continue;
      if (all || !l.info || isStale(l.info, this.clock)) {
        await this.store.delete(Names.lock(l.id));
        n++;
      }
    }
    return n;
  }

  /**
   * Ends the session. A run that stops early (interrupted, or failed: a full drive, a server that
   * went away) still indexes the packs it finished writing, and only those: each one's put resolved,
   * so it is whole and durable, while open packs and a pack whose write failed are dropped. The next
   * run then reuses that data at no cost. After a failed write the store may be out of reach, so
   * waiting for the uploads in flight, the index and the lock's removal get closeAfterFailureMs in
   * all, not the store's whole retry schedule each. Should the index not land (the store
   * unreachable, the lock expired), the next writer's indexUnindexedPacks (repair.ts) finds the
   * packs by listing data/ and reading their headers, two ranged reads each; a lock left behind
   * goes stale in 30 minutes (FORMAT.md §9).
   */
  async close(): Promise<void> {
    const deadline = this.writeError === undefined ? undefined : AbortSignal.timeout(closeAfterFailureMs());
    await this.endWrites(deadline);
    await this.encoder.close();
    await this.unlockAll(deadline);
    await this.store.close();
  }

  static hostname(): string {
    return hostname();
  }
}

export { BlobType, errnoCode };
