/**
 * Repair, under an exclusive lock held by the caller.
 *
 * `repairIndex` rebuilds the index from the packs (each pack's header, read with two ranged reads),
 * writes the new index files, then deletes the old ones. It never turns a readable blob into a
 * lost one: for a pack whose header or trailer cannot be read, it keeps each entry of the old index
 * whose blob still decrypts and verifies, and finds the blobs no sound entry names by scanning the
 * pack (pack-scan.ts).
 *
 * `repairSnapshots` finds snapshots that need blobs which are missing (or, with readData, damaged),
 * and writes for each a new snapshot that keeps everything intact and marks what is not. How to
 * cut a snapshot's contents down is the business of the layer that owns its kind (files trees,
 * image manifests): each supplies a SnapshotRepairer. The old snapshot stays unless `forget`.
 * A delta blob whose base is missing or damaged counts as lost itself.
 *
 * `repairConfig` writes the config or its copy again from the sound one the repository opened
 * with (config.ts).
 */
import { LifeboatError } from '../util/errors.js';
import { BlobType, type PackEntry } from './pack.js';
import { salvagePack } from './pack-scan.js';
import { sha256 } from './crypto.js';
import { Names, fromHex, idOfName, toHex, type Hex } from './ids.js';
import type { IndexPack } from './index-file.js';
import { walkSnapshot } from './check.js';
import { repairConfigs, type RepairConfigResult } from './config.js';
import { writeIndexFiles, type Walkers } from './prune.js';
import type { Repository } from './repository.js';
import type { Snapshot, SnapshotKind } from './snapshot.js';
import { systemClock } from '../util/clock.js';

export interface RepairIndexReport {
  readonly packs: number;
  readonly indexedPacks: number;
  readonly blobs: number;
  /**
   * Packs whose header could not be read: left in place; indexed with `keptBlobs` blobs, those of
   * the old index that still verify and (`salvagedBlobs` of them) those found by scanning the
   * pack's bytes (pack-scan.ts); none: not indexed.
   */
  readonly damagedPacks: { readonly file: string; readonly message: string; readonly keptBlobs: number; readonly salvagedBlobs: number }[];
  readonly indexFilesWritten: number;
  readonly indexFilesDeleted: number;
}

function msg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Reads one pack's header with ranged reads (trailer, then header). */
export function readPackHeader(repo: Repository, packId: Hex, size: number): Promise<IndexPack> {
  return repo.readPackHeader(packId, size);
}

export async function repairIndex(repo: Repository, opts: { dryRun?: boolean; signal?: AbortSignal; onProgress?: (done: number, total: number) => void } = {}): Promise<RepairIndexReport> {
  const oldNames: string[] = [];
  for await (const o of repo.store.list('index/')) if (idOfName(o.name)) oldNames.push(o.name);
  const packs: { id: Hex; size: number }[] = [];
  for await (const o of repo.store.list('data/')) {
    const id = idOfName(o.name);
    if (id && o.name === Names.pack(id)) packs.push({ id, size: o.size });
  }
  packs.sort((a, b) => (a.id < b.id ? -1 : 1));
  // What the old index says, as far as it can be read: the fallback for packs with a damaged header.
  await repo.loadIndex(() => undefined);
  const old = new Map<Hex, PackEntry[]>();
  for (const n of oldNames) {
    await repo.readIndexFile(n, (packId, entries) => old.has(packId) || old.set(packId, entries)).catch((e: unknown) => {
      if (!(e instanceof LifeboatError)) throw e;
    });
  }
  const good: IndexPack[] = [];
  const damaged: { id: Hex; message: string; entries: PackEntry[]; salvaged: number; retry: boolean }[] = [];
  let done = 0;
  for (const p of packs) {
    opts.signal?.throwIfAborted();
    opts.onProgress?.(done++, packs.length);
    try {
      good.push(await readPackHeader(repo, p.id, p.size));
    } catch (e) {
      if (!(e instanceof LifeboatError && (e.code === 'corrupt' || e.code === 'io'))) throw e;
      damaged.push({ id: p.id, message: msg(e), entries: [], salvaged: 0, retry: false });
    }
  }
  // Damaged packs: the old entries that still verify, then what a scan of the pack finds beyond
  // them (pack-scan.ts). What is found joins the in-memory index at once, so that a delta in
  // another damaged pack finds its base; a pack where a delta's base was missing is scanned again
  // once every other pack has been.
  const salvage = async (d: (typeof damaged)[number]) => {
    const name = Names.pack(d.id);
    const found = await salvagePack(repo.codec, repo.keys, await repo.store.get(name), name, {
      known: d.entries,
      loadBase: (id) => repo.loadBase(id).catch((err: unknown) => (err instanceof LifeboatError ? undefined : Promise.reject(err))),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const before = new Set(d.entries.map((e) => e.offset));
    const added = found.entries.filter((e) => !before.has(e.offset));
    repo.index.addPackEntries(d.id, added);
    d.salvaged += added.length;
    d.entries = found.entries;
    d.retry = found.missingBases > 0;
  };
  for (const d of damaged) {
    const listed = old.get(d.id) ?? [];
    d.entries = await verifiedEntries(repo, d.id, listed);
    if (d.entries.length < listed.length || listed.length === 0) await salvage(d);
  }
  for (const d of damaged) if (d.retry) await salvage(d);
  for (const d of damaged) if (d.entries.length > 0) good.push({ packId: fromHex(d.id), entries: d.entries });
  const damagedPacks = damaged.map((d) => ({ file: Names.pack(d.id), message: d.message, keptBlobs: d.entries.length, salvagedBlobs: d.salvaged }));
  opts.onProgress?.(done, packs.length);
  let written: string[] = [];
  let deleted = 0;
  if (!opts.dryRun) {
    written = await writeIndexFiles(repo, good);
    const keep = new Set(written);
    for (const n of oldNames) {
      if (keep.has(n)) continue;
      await repo.store.delete(n);
      deleted++;
    }
  }
  return {
    packs: packs.length,
    indexedPacks: good.length,
    blobs: good.reduce((s, p) => s + p.entries.length, 0),
    damagedPacks,
    indexFilesWritten: written.length,
    indexFilesDeleted: deleted,
  };
}

/** Writes every config object that is damaged, missing or different, from the sound config in use. */
export function repairConfig(repo: Repository, opts: { dryRun?: boolean } = {}): Promise<RepairConfigResult> {
  return repairConfigs(repo.store, repo.configBytes, repo.keys.macKey, opts.dryRun === true);
}

/** The entries whose blob can still be read from the pack, decrypted and verified against its id. */
async function verifiedEntries(repo: Repository, packId: Hex, entries: readonly PackEntry[]): Promise<PackEntry[]> {
  const name = Names.pack(packId);
  const kept: PackEntry[] = [];
  for (const e of entries) {
    try {
      const env = await repo.store.get(name, e.offset, e.length);
      if (env.length !== e.length) continue;
      await repo.decodeBlob(e.type, e.id, env, e.rawLength, name, e.base);
      kept.push(e);
    } catch (err) {
      if (!(err instanceof LifeboatError)) throw err;
    }
  }
  return kept;
}

/**
 * Indexes the packs no index file lists: those left by a backup, image or prune that died before
 * writing its index (an index is written every 32 packs and at the end, also of a run that failed:
 * Repository.close; so this finds packs only after a crash or when that index could not be written
 * either, and otherwise costs one listing of data/). Called by writers under
 * their lock before they start, so an interrupted backup's uploaded data is reused instead of
 * uploaded again. Each pack's header is read with two ranged reads; a damaged one is left for
 * check and prune. A pack that a running writer has stored but not indexed yet may be indexed
 * twice, by it and by us: index files may list the same pack identically (FORMAT.md §7).
 */
export async function indexUnindexedPacks(repo: Repository): Promise<{ packs: number; bytes: number }> {
  await repo.loadIndex(); // indexes such packs in memory from their headers (repo.recoveredPacks)
  const found = repo.recoveredPacks;
  if (found.length === 0) return { packs: 0, bytes: 0 };
  repo.recoveredPacks = [];
  await writeIndexFiles(repo, found.map((f) => f.pack));
  await repo.loadIndex();
  return { packs: found.length, bytes: found.reduce((s, f) => s + f.size, 0) };
}

/** A place in a snapshot (a file path, a byte range of a drive) whose data is lost. */
export interface DamagedPlace {
  readonly where: string;
  readonly message: string;
}

/**
 * Implemented by the layer that owns a snapshot kind. Given a predicate that says which blobs
 * are intact, it saves (with repo.saveBlob) a new root that needs only intact blobs, keeping all
 * it can and marking each damaged place in its own format, and returns that root and the places.
 * Returns undefined when nothing can be saved (e.g. the root itself is lost).
 */
export interface SnapshotRepairer {
  repair(repo: Repository, snapshot: Snapshot, usable: (id: Uint8Array) => boolean): Promise<{ root: Hex; damaged: DamagedPlace[] } | undefined>;
}

export type Repairers = Partial<Record<SnapshotKind, SnapshotRepairer>>;

export interface RepairSnapshotsOptions {
  readonly walkers: Walkers;
  readonly repairers: Repairers;
  /** Also load every needed blob, so damaged (not only missing) data counts. */
  readonly readData?: boolean;
  /** Delete each damaged snapshot once its repaired copy is written (and unrecoverable ones). */
  readonly forget?: boolean;
  readonly dryRun?: boolean;
  readonly signal?: AbortSignal;
  readonly now?: Date;
}

export interface SnapshotRepairResult {
  readonly id: Hex;
  readonly kind: SnapshotKind;
  readonly status: 'repaired' | 'unrecoverable' | 'unsupported';
  /** The new snapshot's id (not in a dry run). */
  readonly newId?: Hex;
  /** Blobs the snapshot needs that are missing or damaged. */
  readonly badBlobs: number;
  readonly damaged: DamagedPlace[];
  readonly message?: string;
  readonly removed: boolean;
}

/**
 * Rewrites each damaged snapshot file from the copy of its bytes kept in the packs (FORMAT.md §8):
 * the same bytes under the same name. A snapshot file that is missing is not brought back (forget
 * deletes them, and prune then drops their copies).
 */
async function rebuildSnapshotFiles(repo: Repository, dryRun: boolean): Promise<SnapshotRepairResult[]> {
  const out: SnapshotRepairResult[] = [];
  for (const [hex, loc] of repo.index.entries()) {
    if (loc.type !== BlobType.snapshot) continue;
    let bytes: Uint8Array;
    try {
      bytes = await repo.loadBlob(fromHex(hex));
    } catch (e) {
      if (e instanceof LifeboatError) continue; // the copy is damaged too: check reports its pack
      throw e;
    }
    const id = toHex(sha256(bytes));
    const name = Names.snapshot(id);
    const now = await repo.store.get(name).catch((e: unknown) => {
      if (e instanceof LifeboatError) return undefined;
      throw e;
    });
    if (!now || Buffer.from(now).equals(bytes)) continue;
    if (!dryRun) await repo.store.put(name, bytes);
    const snapshot = await repo.loadSnapshot(id).catch(() => undefined);
    out.push({ id, kind: snapshot?.kind ?? 'files', status: 'repaired', newId: id, badBlobs: 0, damaged: [], message: 'its file was damaged and is rebuilt from its copy in the packs', removed: false });
  }
  return out;
}

/** The blobs a snapshot needs that are not usable, with where (if the walker says), without deduplicating across snapshots. */
export async function findBadBlobs(repo: Repository, snapshot: Snapshot, walker: NonNullable<Walkers[SnapshotKind]>, usable: (id: Uint8Array) => boolean): Promise<{ bad: Map<string, string[]>; walkError?: string }> {
  const bad = new Map<string, string[]>();
  const seen = new Set<string>();
  try {
    await walkSnapshot(repo, walker, snapshot, (id, where) => {
      const hex = toHex(id);
      if (!usable(id)) {
        let w = bad.get(hex);
        if (!w) bad.set(hex, (w = []));
        if (where !== undefined && !w.includes(where)) w.push(where);
        return false;
      }
      if (seen.has(hex)) return false;
      seen.add(hex);
      return true;
    });
  } catch (e) {
    return { bad, walkError: msg(e) };
  }
  return { bad };
}

export async function repairSnapshots(repo: Repository, opts: RepairSnapshotsOptions): Promise<SnapshotRepairResult[]> {
  await repo.loadIndex();
  // A blob is usable only if its pack is there: the index may still list a deleted pack's blobs
  // (before "repair index"), and such a snapshot must not be reported as needing no repair.
  const packsPresent = new Set<string>();
  for await (const o of repo.store.list('data/')) {
    const id = idOfName(o.name);
    if (id && o.name === Names.pack(id)) packsPresent.add(id);
  }
  const damagedBlobs = new Set<string>();
  const checked = new Set<string>();
  const intact = (id: Uint8Array): boolean => {
    const loc = repo.index.get(id);
    return loc !== undefined && packsPresent.has(loc.packId) && !damagedBlobs.has(toHex(id));
  };
  // A delta is usable only with its base (bases are full blobs, so one step is enough).
  const usable = (id: Uint8Array): boolean => {
    if (!intact(id)) return false;
    const base = repo.index.baseOf(id);
    return base === undefined || intact(base);
  };
  const verify = async (snapshot: Snapshot, walker: NonNullable<Walkers[SnapshotKind]>) => {
    // Load every needed blob once; what fails to load is damaged.
    const ids: Uint8Array[] = [];
    await walkSnapshot(repo, walker, snapshot, (id) => {
      const hex = toHex(id);
      if (checked.has(hex) || !repo.index.has(id)) return false;
      checked.add(hex);
      ids.push(id);
      return true;
    }).catch(() => undefined);
    for (const id of ids) {
      await repo.loadBlob(id).catch(() => damagedBlobs.add(toHex(id)));
    }
  };
  const results = await rebuildSnapshotFiles(repo, opts.dryRun === true);
  // A snapshot file that cannot be read has nothing to repair from (check names it); it must not
  // stop the repair of the others.
  for (const { id, snapshot } of await repo.listSnapshots(() => undefined)) {
    opts.signal?.throwIfAborted();
    const walker = opts.walkers[snapshot.kind];
    if (!walker) {
      results.push({ id, kind: snapshot.kind, status: 'unsupported', badBlobs: 0, damaged: [], message: `this Lifeboat cannot read ${snapshot.kind} snapshots`, removed: false });
      continue;
    }
    if (opts.readData) await verify(snapshot, walker);
    const { bad, walkError } = await findBadBlobs(repo, snapshot, walker, usable);
    if (bad.size === 0 && walkError === undefined) continue;
    const repairer = opts.repairers[snapshot.kind];
    if (!repairer) {
      results.push({ id, kind: snapshot.kind, status: 'unsupported', badBlobs: bad.size, damaged: [], message: `this Lifeboat cannot repair ${snapshot.kind} snapshots yet`, removed: false });
      continue;
    }
    if (opts.dryRun) {
      const places = [...new Set([...bad.values()].flat())].map((where) => ({ where, message: 'data is missing or damaged' }));
      results.push({ id, kind: snapshot.kind, status: 'repaired', badBlobs: bad.size, damaged: places, ...(walkError ? { message: walkError } : {}), removed: false });
      continue;
    }
    const fixed = await repairer.repair(repo, snapshot, usable);
    if (!fixed) {
      let removed = false;
      if (opts.forget) {
        await repo.store.delete(Names.snapshot(id));
        removed = true;
      }
      results.push({ id, kind: snapshot.kind, status: 'unrecoverable', badBlobs: bad.size, damaged: [], message: 'nothing of it can be read (its root is lost)', removed });
      continue;
    }
    let removed = false;
    {
      const meta = { ...(snapshot.meta ?? {}), repaired: { from: id, time: (opts.now ?? new Date(systemClock.now())).toISOString(), damaged: fixed.damaged.map((d) => d.where) } };
      const tags = snapshot.tags.includes('repaired') ? snapshot.tags : [...snapshot.tags, 'repaired'];
      const newId = await repo.saveSnapshot({ ...snapshot, root: fixed.root, tags, meta });
      if (opts.forget) {
        await repo.store.delete(Names.snapshot(id)); // the repaired copy is durable first
        removed = true;
      }
      results.push({ id, kind: snapshot.kind, status: 'repaired', newId, badBlobs: bad.size, damaged: fixed.damaged, removed });
    }
  }
  return results;
}
