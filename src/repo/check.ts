/**
 * Repository verification. Structure: config, key slots, index files, packs present, every blob a
 * snapshot refers to is indexed. With readData: every file's bytes hash to its name, every blob
 * decrypts and hashes to its id (a delta blob once rebuilt from its base). Layers above supply how
 * to find the blobs a snapshot uses; a snapshot that needs a delta blob needs its base too
 * (walkSnapshot), so a lost base is reported as damage of every snapshot that needs the delta.
 */
import { availableParallelism } from 'node:os';
import { LifeboatError, type ErrorCode } from '../util/errors.js';
import { WorkerPool } from '../util/worker-pool.js';
import { sha256 } from './crypto.js';
import { ownsItsBuffer, startFullCollection } from '../util/memory.js';
import { Names, idOfName, toHex, type Hex } from './ids.js';
import { checkConfigs, CONFIG_NAMES } from './config.js';
import { listKeys } from './keys.js';
import { BlobType, PACK_TARGET_BYTES } from './pack.js';
import { PackedEntries } from './packed-entries.js';
import { checkParity } from './parity.js';
import { damagedPins } from './pins.js';
import { verifyPack, VerifyBuffers, type PackVerdict } from './pack-check.js';
import type { Repository } from './repository.js';
import { parseSignedJson, verifySignedJson } from './signed-json.js';
import type { Snapshot } from './snapshot.js';

export interface CheckProblem {
  /** The store object concerned ("data/ab/ab12…"), or a snapshot reference. */
  readonly file: string;
  readonly message: string;
}

/** A missing or damaged pack and the snapshots (and, where the walker names them, files) that need it. */
export interface AffectedPack {
  readonly file: string;
  readonly snapshots: { readonly id: Hex; readonly places: string[] }[];
}

export interface CheckReport {
  readonly errors: CheckProblem[];
  readonly warnings: CheckProblem[];
  readonly affected: AffectedPack[];
  readonly counts: { snapshots: number; indexFiles: number; packs: number; blobs: number; keys: number; bytesRead: number };
}

/**
 * Lists every blob id a snapshot needs, by following its root (files trees, image manifests).
 * `visit` returns false when the walker need not descend into that blob (seen before, or missing).
 * A walker may name the file (or other place) that needs the blob in `where`, so that check and
 * repair can report damaged files by path.
 */
export type ReferenceWalker = (repo: Repository, snapshot: Snapshot, visit: (id: Uint8Array, where?: string) => boolean) => Promise<void>;

/**
 * Runs a snapshot's walker so that every delta blob it needs also counts as needing the delta's base
 * (named by the index): `visit(base, where)` follows each indexed delta. Check, prune and repair
 * walk snapshots through this, so a base is kept, checked and repaired like the chunks it serves.
 */
export function walkSnapshot(repo: Repository, walker: ReferenceWalker, snapshot: Snapshot, visit: (id: Uint8Array, where?: string) => boolean): Promise<void> {
  return walker(repo, snapshot, (id, where) => {
    const descend = visit(id, where);
    const base = repo.index.baseOf(id);
    if (base) visit(base, where);
    return descend;
  });
}

export interface CheckOptions {
  readonly readData?: boolean;
  readonly walkers?: Partial<Record<Snapshot['kind'], ReferenceWalker>>;
  /** With readData: bytes of packs read so far, of all the packs' bytes, and the pack being read. */
  readonly onProgress?: (bytesDone: number, bytesTotal: number, what: string) => void;
  readonly signal?: AbortSignal;
}

function msg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * A pack for check-worker.ts: its bytes, read by the main thread through the store. `shared`: they
 * lie in one of the main thread's shared pack buffers, which it reuses once the reply has come.
 */
export interface PackCheckRequest {
  readonly seq: number;
  readonly packId: Hex;
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly shared: boolean;
}
export type PackCheckReply = { readonly seq: number; readonly verdict: PackVerdict } | { readonly seq: number; readonly error: { readonly code?: ErrorCode; readonly message: string } };

/** A pack buffer's size: a pack closes before it passes PACK_TARGET_BYTES, and its header adds a little. */
const PACK_BUFFER_BYTES = PACK_TARGET_BYTES + 1024 * 1024;

/**
 * Packs read or verified at once, whatever the repository's size or the number of cores: one on
 * this thread and up to WORKER_QUEUE on the one worker thread, which verifies one while the next
 * waits in its queue, read already. With two at once (one each), the worker waited for each next
 * pack to be read, and this thread took as many packs as the worker on top of its own work: the
 * worker was idle ~40% of the time (copy of /usr, 238 packs: wall 0.87x, peak RSS +10 MiB for the
 * third pack buffer; bench/README.md, session 18). Each pack costs a buffer and the buffers its
 * blobs decode into; a worker also costs its own V8 heap (~15 MiB): two workers beside an idle main
 * thread peaked ~30 MiB higher for the same wall time on two cores (session 14).
 */
export const PACKS_AT_ONCE = 3;
export const CHECK_WORKERS = 1;
const WORKER_QUEUE = PACKS_AT_ONCE - 1;

/**
 * A full collection on this thread once per so many packs (and before the first): the index load
 * and the snapshot walk leave ~30 MiB of garbage in the old generation, and verifying promotes
 * ~1-2 MiB per 8 packs, which V8 would otherwise leave resident until a limit set by the walk.
 * Each takes ~30 ms with the ~10 MiB live here; every 8 packs peaked ~8 MiB lower than every 32.
 * V8's own kind (startFullCollection), not a forced one, which threw away optimised code each
 * time: a copy of /usr, 2 runs each, 14.7-15.3 -> 13.7-14.1 user CPU-s, peak RSS the same (150-155 MiB).
 */
const PACKS_PER_COLLECTION = 8;

/** Packs verified beyond the one reported next: their verdicts wait here (a few bytes per blob). */
const VERDICTS_AHEAD = 64;

/**
 * Bytes of blobs this thread verifies between turns of the event loop while a worker verifies
 * too, so that a worker done with its pack is handed the next one within about a millisecond
 * rather than when this thread's pack is done.
 */
const YIELD_EVERY = 1024 * 1024;

/**
 * Verifies whole packs (decrypt, decompress and hash every blob is check's work): on this thread
 * and on CHECK_WORKERS worker threads, or on this thread alone where there is one core.
 */
class PackVerifier {
  private readonly pool: WorkerPool<Omit<PackCheckRequest, 'seq'>, PackCheckReply> | undefined;
  /** Packs on the workers now. */
  private onWorkers = 0;
  /** This thread's decode buffers (verifyPack). */
  private readonly kept = new VerifyBuffers();
  /**
   * Buffers the packs are read into where the store can (Store.getInto), one per pack in flight,
   * each faulted in once: a fresh 8 MiB buffer per pack cost more than a second of system time per
   * 300 MiB of packs. They are shared with the workers, not moved there and back: a buffer moved
   * back is a new object holding 8 MiB, which once old counts towards V8's next full collection
   * (15 instead of 3 per check; bench/README.md, session 13). A pack larger than a buffer gets one
   * of its own.
   */
  private readonly buffers: SharedArrayBuffer[] = [];

  constructor(private readonly repo: Repository) {
    // A pool starts its workers on first use: on one core it is never used.
    const pool = new WorkerPool<Omit<PackCheckRequest, 'seq'>, PackCheckReply>(new URL('./check-worker.js', import.meta.url), { codec: repo.workerCodec() }, CHECK_WORKERS, { requests: 1 });
    if (availableParallelism() > 1) this.pool = pool;
  }

  async verify(packId: Hex, name: string): Promise<PackVerdict> {
    const { store, codec, keys } = this.repo;
    let buffer: SharedArrayBuffer | undefined;
    const take = (n: number): Uint8Array => {
      if (n > PACK_BUFFER_BYTES) return Buffer.allocUnsafeSlow(n);
      buffer = this.buffers.pop() ?? new SharedArrayBuffer(PACK_BUFFER_BYTES);
      return new Uint8Array(buffer, 0, n);
    };
    try {
      const bytes = store.getInto ? await store.getInto(name, take) : await store.get(name);
      // On this thread once the worker has a pack waiting: verifying is this thread's work too. It
      // lets the event loop run between blobs (yieldEvery), so that the worker's replies and the
      // reads of the next packs are seen meanwhile.
      const shared = buffer !== undefined && bytes.buffer === buffer;
      if (!this.pool || this.onWorkers >= WORKER_QUEUE) return await verifyPack(codec, keys, bytes, packId, name, { onThisThread: true, kept: this.kept, overwrite: shared, yieldEvery: YIELD_EVERY });
      this.onWorkers++;
      const r = await this.pool.call({ packId, name, bytes, shared }, !shared && ownsItsBuffer(bytes) ? [bytes.buffer as ArrayBuffer] : []).finally(() => this.onWorkers--);
      if ('error' in r) throw r.error.code ? new LifeboatError(r.error.code, r.error.message) : new Error(r.error.message);
      return r.verdict;
    } finally {
      if (buffer) this.buffers.push(buffer); // verified (or failed): nothing reads it now
    }
  }

  close(): Promise<void> {
    return this.pool?.close() ?? Promise.resolve();
  }
}

/**
 * Packs verified from when it is made, the next one started as soon as any is done (packs differ
 * in size: waiting for them in order left a thread idle while the other finished a large one), and
 * their verdicts taken in order. Until `widen`, only as many at once as the worker takes, so that
 * this thread is left to walk the snapshots; then PACKS_AT_ONCE, one of them on this thread.
 */
class VerifyAhead {
  private readonly verdicts = new Map<number, Promise<PackVerdict>>();
  private atOnce = WORKER_QUEUE;
  private started = 0;
  private running = 0;
  private taken = 0;
  private stopped = false;

  constructor(
    private readonly verifier: PackVerifier,
    private readonly packs: readonly Hex[],
  ) {
    this.fill();
  }

  private fill(): void {
    const { packs } = this;
    for (; !this.stopped && this.running < this.atOnce && this.started < packs.length && this.started < this.taken + VERDICTS_AHEAD; this.started++) {
      this.running++;
      const p = this.verifier.verify(packs[this.started]!, Names.pack(packs[this.started]!)).finally(() => {
        this.running--;
        this.fill();
      });
      p.catch(() => undefined); // awaited (and reported) in its turn
      this.verdicts.set(this.started, p);
    }
  }

  /** Lets this thread verify packs too. */
  widen(): void {
    this.atOnce = PACKS_AT_ONCE;
    this.fill();
  }

  /** The verdict on the k-th pack, taken once, in order. */
  take(k: number): Promise<PackVerdict> {
    this.taken = k;
    this.fill();
    const p = this.verdicts.get(k)!;
    this.verdicts.delete(k);
    return p;
  }

  close(): Promise<void> {
    this.stopped = true;
    return this.verifier.close();
  }
}

type SnapshotList = Awaited<ReturnType<Repository['listSnapshots']>>;

/**
 * Every snapshot's references (walkSnapshot with `opts.walkers`): each needed blob must be indexed.
 * With readData, each snapshot file's bytes must hash to its name. Returns the snapshots read.
 */
async function checkReferences(repo: Repository, opts: CheckOptions, errors: CheckProblem[]): Promise<SnapshotList> {
  const missing = new Set<Hex>();
  // Blobs already visited, one bit per index entry: a Set of hex ids cost ~90 bytes per blob.
  const seen = new Uint8Array(Math.ceil(repo.index.size / 8));
  const snapshots = await repo.listSnapshots((id, e) => errors.push({ file: Names.snapshot(id), message: msg(e) }));
  for (const { id, snapshot } of snapshots) {
    if (opts.readData) {
      const bytes = await repo.store.get(Names.snapshot(id));
      if (toHex(sha256(bytes)) !== id) errors.push({ file: Names.snapshot(id), message: 'the file content does not match its name (damaged)' });
    }
    const walker = opts.walkers?.[snapshot.kind];
    if (!walker) {
      if (!repo.index.has(Buffer.from(snapshot.root, 'hex'))) errors.push({ file: Names.snapshot(id), message: `its root ${snapshot.root.slice(0, 12)} is missing` });
      continue;
    }
    try {
      await walkSnapshot(repo, walker, snapshot, (blob) => {
        const e = repo.index.entryNumber(blob);
        if (e < 0) {
          const hex = toHex(blob);
          if (!missing.has(hex)) {
            missing.add(hex);
            errors.push({ file: Names.snapshot(id), message: `needs data block ${hex.slice(0, 16)}, which is missing` });
          }
          return false;
        }
        if (seen[e >> 3]! & (1 << (e & 7))) return false;
        seen[e >> 3]! |= 1 << (e & 7);
        return true;
      });
    } catch (e) {
      errors.push({ file: Names.snapshot(id), message: `cannot be read completely: ${msg(e)}` });
    }
  }
  return snapshots;
}

export async function checkRepository(repo: Repository, opts: CheckOptions = {}): Promise<CheckReport> {
  const errors: CheckProblem[] = [];
  const warnings: CheckProblem[] = [];
  const counts = { snapshots: 0, indexFiles: 0, packs: 0, blobs: 0, keys: 0, bytesRead: 0 };
  const store = repo.store;

  // The config and its copy: the one this repository opened with must be under both names.
  for (const p of await checkConfigs(store, repo.configBytes, repo.keys.macKey)) (p.severity === 'error' ? errors : warnings).push({ file: p.file, message: p.message });

  // Locks: one that cannot be read blocks nobody (lock.ts ignores it) but stays until removed.
  for (const l of await repo.listLocks()) {
    if (!l.info) warnings.push({ file: Names.lock(l.id), message: 'the lock file cannot be read (damaged); it blocks nothing, and "lifeboat unlock" removes it' });
  }

  // Key slots: every slot's signature, with the master MAC key we already hold.
  for (const k of await listKeys(store)) {
    counts.keys++;
    try {
      const bytes = await store.get(k.name);
      if (!verifySignedJson(parseSignedJson(bytes, `The key file ${k.name}`), repo.keys.macKey)) errors.push({ file: k.name, message: 'the key file was modified or damaged (signature mismatch)' });
      else if (opts.readData && toHex(sha256(bytes)) !== k.id) errors.push({ file: k.name, message: 'the file content does not match its name (damaged)' });
    } catch (e) {
      errors.push({ file: k.name, message: msg(e) });
    }
  }

  // Pins: one that cannot be read still protects its snapshot (pins.ts), but the user must know.
  for (const p of await damagedPins(repo)) errors.push({ file: p.file, message: p.message });

  // Index files, each read once: into the repository's index, and each pack's list held packed here
  // (check holds every pack's at once).
  const indexed = new Map<Hex, PackedEntries>();
  const indexNames: string[] = [];
  for await (const o of store.list('index/')) {
    if (!idOfName(o.name)) {
      warnings.push({ file: o.name, message: 'unexpected file in the index folder' });
      continue;
    }
    indexNames.push(o.name);
  }
  for (const name of indexNames) {
    counts.indexFiles++;
    try {
      if (opts.readData) {
        const bytes = await store.get(name);
        counts.bytesRead += bytes.length;
        if (toHex(sha256(bytes)) !== idOfName(name)) {
          errors.push({ file: name, message: 'the file content does not match its name (damaged)' });
          continue;
        }
      }
      await repo.loadIndexFile(name, (packId, entries) => {
        const prev = indexed.get(packId);
        if (prev && prev.length !== entries.length) errors.push({ file: name, message: `lists pack ${packId.slice(0, 12)} differently from another index file` });
        indexed.set(packId, PackedEntries.pack(entries));
      });
    } catch (e) {
      errors.push({ file: name, message: msg(e) });
    }
  }

  // Packs present.
  const packSizes = new Map<Hex, number>();
  const badPacks = new Set<Hex>();
  /** `pack:blob` of single damaged copies found by reading data. */
  const badBlobs = new Set<string>();
  for await (const o of store.list('data/')) {
    const id = idOfName(o.name);
    if (!id || o.name !== Names.pack(id)) {
      warnings.push({ file: o.name, message: 'unexpected file in the data folder' });
      continue;
    }
    packSizes.set(id, o.size);
  }
  counts.packs = packSizes.size;
  for (const [packId, entries] of indexed) {
    const size = packSizes.get(packId);
    if (size === undefined) {
      errors.push({ file: Names.pack(packId), message: 'the pack is missing, but the index refers to it' });
      badPacks.add(packId);
      continue;
    }
    const end = entries.end();
    if (end > size) {
      errors.push({ file: Names.pack(packId), message: `the pack is truncated (${size} bytes, but blobs reach byte ${end})` });
      badPacks.add(packId);
    }
  }
  for (const packId of packSizes.keys()) {
    if (!indexed.has(packId)) warnings.push({ file: Names.pack(packId), message: 'pack not referenced by any index (left by an interrupted backup; "lifeboat repair index" adds it, "lifeboat prune" removes it)' });
  }

  // Snapshots and what they reference (through the index as readers see it; damaged index files
  // were reported above, and loadIndex indexes the packs they named from the packs' headers).
  await repo.loadIndex(() => undefined);
  // With readData, packs are read and verified from here on, beside the snapshot walk: the worker
  // thread verifies while this thread walks the listings. Their verdicts are taken in order after it.
  const packs = [...packSizes.keys()];
  const ahead = opts.readData ? new VerifyAhead(new PackVerifier(repo), packs) : undefined;
  let snapshots: SnapshotList;
  try {
    snapshots = await checkReferences(repo, opts, errors);
    counts.snapshots = snapshots.length;
    if (ahead) {
      ahead.widen();
      const bytesTotal = [...packSizes.values()].reduce((a, b) => a + b, 0);
      let bytesDone = 0;
      for (const [k, packId] of packs.entries()) {
        opts.signal?.throwIfAborted();
        const name = Names.pack(packId);
        opts.onProgress?.(bytesDone, bytesTotal, name);
        if (k % PACKS_PER_COLLECTION === 0) startFullCollection();
        try {
          const v = await ahead.take(k);
          counts.bytesRead += v.size;
          bytesDone += packSizes.get(packId)!;
          if (!v.hashOk) errors.push({ file: name, message: 'the file content does not match its name (damaged)' });
          const entries = PackedEntries.of(v.entries);
          const fromIndex = indexed.get(packId);
          if (fromIndex && !fromIndex.equals(entries)) errors.push({ file: name, message: 'the pack header and the index disagree about its contents' });
          const badAt = new Map(v.bad.map((b) => [b.i, b.message]));
          for (let i = 0; i < entries.length; i++) {
            const e = entries.at(i);
            counts.blobs++;
            const bad = (message: string) => {
              errors.push({ file: name, message });
              badBlobs.add(`${packId}:${toHex(e.id)}`);
            };
            const problem = badAt.get(i);
            if (problem !== undefined) bad(problem);
            if (e.type !== BlobType.delta) continue;
            // A delta: its own bytes, then its base, then the rebuilt chunk against its id. A base
            // that cannot be loaded is reported here for the delta, and as its own pack's damage
            // (which names the snapshots) where that pack is read or found missing.
            const env = await store.get(name, e.offset, e.length);
            const d = await repo.openDelta(e.id, env, e.rawLength, name, e.base).catch((err: unknown) => bad(msg(err)));
            if (!d) continue;
            let base: Uint8Array;
            try {
              base = await repo.loadBase(d.base);
            } catch (err) {
              errors.push({ file: name, message: `the data block ${toHex(e.id).slice(0, 16)} is stored as changes to the data block ${toHex(d.base).slice(0, 16)}, which cannot be read: ${msg(err)}` });
              continue;
            }
            try {
              repo.rebuildDelta(e.id, d, base, name);
            } catch (err) {
              bad(msg(err));
            }
          }
        } catch (e) {
          if (e instanceof LifeboatError && e.code === 'not-found') errors.push({ file: name, message: 'the pack disappeared during the check' });
          else errors.push({ file: name, message: msg(e) });
          // A pack whose header or trailer is damaged may still hold every blob the index names:
          // only those that fail to read are lost, so only their snapshots are affected.
          const fromIndex = e instanceof LifeboatError && e.code === 'corrupt' ? indexed.get(packId) : undefined;
          if (!fromIndex) badPacks.add(packId);
          else {
            for (const b of fromIndex) {
              const ok = await store.get(name, b.offset, b.length).then(
                (env) => repo.decodeBlob(b.type, b.id, env, b.rawLength, name, b.base).then(() => true),
                () => false,
              ).catch(() => false);
              if (!ok) badBlobs.add(`${packId}:${toHex(b.id)}`);
            }
          }
        }
      }
      opts.onProgress?.(bytesTotal, bytesTotal, '');
    } else {
      for (const entries of indexed.values()) counts.blobs += entries.length;
    }
  } finally {
    await ahead?.close();
  }
  warnings.push(...(await checkParity(repo, opts.readData === true)));
  const affected = badPacks.size > 0 || badBlobs.size > 0 ? await findAffected(repo, snapshots, indexed, badPacks, badBlobs, opts.walkers ?? {}) : [];
  for (const a of affected) {
    for (const s of a.snapshots) {
      const places = s.places.length > 0 ? `: ${s.places.slice(0, 10).join(', ')}${s.places.length > 10 ? ` and ${s.places.length - 10} more` : ''}` : '';
      errors.push({ file: Names.snapshot(s.id), message: `is affected by the damaged or missing pack ${a.file}${places}` });
    }
  }
  return { errors, warnings, affected, counts };
}

/**
 * For each bad pack, the snapshots that need a blob whose every indexed copy is bad,
 * with the places the walker names. Walks each snapshot on its own (no sharing of "seen").
 */
async function findAffected(
  repo: Repository,
  snapshots: readonly { id: Hex; snapshot: Snapshot }[],
  indexed: ReadonlyMap<Hex, PackedEntries>,
  badPacks: ReadonlySet<Hex>,
  badBlobs: ReadonlySet<string>,
  walkers: Partial<Record<Snapshot['kind'], ReferenceWalker>>,
): Promise<AffectedPack[]> {
  const goodCopy = new Set<string>();
  const badCopy = new Map<string, Hex>();
  for (const [packId, entries] of indexed) {
    for (const e of entries) {
      const hex = toHex(e.id);
      if (badPacks.has(packId) || badBlobs.has(`${packId}:${hex}`)) {
        if (!badCopy.has(hex)) badCopy.set(hex, packId);
      } else goodCopy.add(hex);
    }
  }
  for (const hex of goodCopy) badCopy.delete(hex);
  const byPack = new Map<Hex, Map<Hex, Set<string>>>();
  for (const { id, snapshot } of snapshots) {
    const walker = walkers[snapshot.kind];
    const note = (hex: string, where: string | undefined) => {
      const pack = badCopy.get(hex);
      if (!pack) return false;
      let snaps = byPack.get(pack);
      if (!snaps) byPack.set(pack, (snaps = new Map()));
      let places = snaps.get(id);
      if (!places) snaps.set(id, (places = new Set()));
      if (where !== undefined) places.add(where);
      return true;
    };
    if (!walker) {
      note(snapshot.root, undefined);
      continue;
    }
    const seen = new Set<string>();
    await walkSnapshot(repo, walker, snapshot, (blob, where) => {
      const hex = toHex(blob);
      if (note(hex, where)) return false;
      if (seen.has(hex)) return false;
      seen.add(hex);
      return true;
    }).catch(() => undefined); // what the walk cannot reach was reported above
  }
  return [...byPack].map(([pack, snaps]) => ({ file: Names.pack(pack), snapshots: [...snaps].map(([id, places]) => ({ id, places: [...places].sort() })) }));
}

export interface RepoStats {
  snapshots: number;
  packs: number;
  blobs: number;
  /** Bytes of all files in the repository folder. */
  storedBytes: number;
  /** Plaintext bytes of all unique blobs (of a delta blob, the chunk it rebuilds). */
  uniqueBytes: number;
  /** Blobs stored as changes to another (delta blobs). */
  deltaBlobs: number;
  /** Bytes of unique blobs as stored (after compression, with encryption overhead). */
  blobStoredBytes: number;
  /** Sum of the sizes of everything the snapshots hold, counted once per snapshot. */
  logicalBytes: number;
  compressionRatio: number;
  dedupRatio: number;
}

export async function repositoryStats(repo: Repository): Promise<RepoStats> {
  let storedBytes = 0;
  for (const prefix of ['keys/', 'data/', 'index/', 'snapshots/', 'locks/']) for await (const o of repo.store.list(prefix)) storedBytes += o.size;
  for (const name of CONFIG_NAMES) storedBytes += (await repo.store.stat(name))?.size ?? 0;
  let uniqueBytes = 0;
  let blobStoredBytes = 0;
  for (const [, loc] of repo.index.entries()) {
    uniqueBytes += loc.rawLength;
    blobStoredBytes += loc.length;
  }
  const snaps = await repo.listSnapshots(() => undefined);
  const logicalBytes = snaps.reduce((s, x) => s + (x.snapshot.summary?.['totalBytes'] ?? 0), 0);
  return {
    snapshots: snaps.length,
    packs: repo.index.packCount,
    blobs: repo.index.size,
    deltaBlobs: repo.index.deltaCount,
    storedBytes,
    uniqueBytes,
    blobStoredBytes,
    logicalBytes,
    compressionRatio: blobStoredBytes > 0 ? uniqueBytes / blobStoredBytes : 1,
    dedupRatio: uniqueBytes > 0 ? logicalBytes / uniqueBytes : 1,
  };
}
