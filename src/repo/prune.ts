/**
 * Prune: removes data that no snapshot needs, under an exclusive lock held by the caller.
 *
 * Safety rules, in order of importance:
 * 1. Decide from complete knowledge or not at all. Every snapshot is walked with the reference
 *    walker of its kind; a snapshot that cannot be read, a kind without a walker, a walk that fails,
 *    an index file that cannot be read, or a needed blob that is not indexed aborts prune before
 *    anything is written or deleted.
 * 2. Write before delete: used blobs of packs being repacked go to new packs; then new index files
 *    describing every pack that stays are written; only then are the old index files deleted, and
 *    only after that the old packs. A crash at any point leaves every snapshot complete (at worst
 *    extra packs or duplicate index entries, which the next prune removes).
 * 3. Packs that no index file mentions are deleted: they can only be left over by an interrupted
 *    writer, because every writer holds a shared lock while it writes packs and the index that
 *    describes them, and the caller's exclusive lock means no writer is running now.
 *    For the same reason what killed writers left outside the objects goes too (S3's unfinished
 *    multipart uploads, a folder's temporary files: store.ts removeLeftovers).
 * 4. A delta blob is only as good as its base. A snapshot that needs a delta needs its base
 *    (walkSnapshot), and every delta that stays in the repository, needed or not (an unused blob
 *    in a pack that is kept), keeps its base: a later backup may deduplicate against that delta.
 */
import { removeLeftovers } from '../store/store.js';
import { LifeboatError } from '../util/errors.js';
import { walkSnapshot, type ReferenceWalker } from './check.js';
import { sha256 } from './crypto.js';
import { AAD, sealFile } from './envelope-file.js';
import { Names, fromHex, idOfName, toHex, type Hex } from './ids.js';
import { encodeIndex, type IndexPack } from './index-file.js';
import { BlobType, openBlob, packKindOf, PackWriter, type PackEntry } from './pack.js';
import { removeDanglingPins } from './pins.js';
import type { Repository } from './repository.js';
import type { Snapshot } from './snapshot.js';

export type Walkers = Partial<Record<Snapshot['kind'], ReferenceWalker>>;

/** Index files are split so that none holds more than this many blob entries. */
export const MAX_INDEX_ENTRIES = 100_000;

export interface PruneOptions {
  /** Unused bytes tolerated in packs that stay, as a percentage of used bytes (default 5). */
  readonly maxUnusedPercent?: number;
  readonly dryRun?: boolean;
  readonly walkers: Walkers;
  readonly signal?: AbortSignal;
  readonly onProgress?: (phase: string, done: number, total: number) => void;
}

export interface PruneReport {
  readonly dryRun: boolean;
  readonly snapshots: number;
  readonly blobsUsed: number;
  readonly packs: { readonly total: number; readonly kept: number; readonly deleted: number; readonly repacked: number; readonly unindexed: number; readonly written: number };
  readonly bytes: {
    /** Bytes of all packs before. */
    readonly before: number;
    /** Bytes of blobs some snapshot needs (one copy each). */
    readonly used: number;
    /** Bytes of packs deleted (wholly unused, repacked or unindexed). */
    readonly deleted: number;
    /** Bytes of new packs written by repacking. */
    readonly written: number;
    /** deleted − written: what the repository shrinks by. */
    readonly freed: number;
    /** Unused bytes left in packs that stay. */
    readonly unusedRemaining: number;
  };
  readonly indexFiles: { readonly deleted: number; readonly written: number };
  readonly pinsRemoved: number;
  /** What killed writers left outside the objects and prune removed (S3's unfinished uploads, a folder's temporary files). */
  readonly leftoversRemoved: number;
}

/** Every blob id (hex) that some snapshot needs. Throws, naming the snapshot, on any doubt. */
export async function collectUsedBlobs(repo: Repository, snapshots: readonly { id: Hex; snapshot: Snapshot }[], walkers: Walkers, signal?: AbortSignal): Promise<Set<string>> {
  const used = new Set<string>();
  for (const { id, snapshot } of snapshots) {
    signal?.throwIfAborted();
    const walker = walkers[snapshot.kind];
    if (!walker) {
      throw new LifeboatError('corrupt', `Prune stopped without changing anything: this Lifeboat cannot tell which data the ${snapshot.kind} snapshot ${id.slice(0, 8)} needs. Use a Lifeboat that supports ${snapshot.kind} snapshots.`);
    }
    const missing: string[] = [];
    try {
      await walkSnapshot(repo, walker, snapshot, (blob) => {
        const hex = toHex(blob);
        if (used.has(hex)) return false;
        used.add(hex);
        if (!repo.index.has(blob)) {
          missing.push(hex);
          return false;
        }
        return true;
      });
    } catch (e) {
      throw new LifeboatError('corrupt', `Prune stopped without changing anything: the snapshot ${id.slice(0, 8)} cannot be read completely (${e instanceof Error ? e.message : String(e)}). Run "lifeboat check".`, { cause: e });
    }
    if (missing.length > 0) {
      throw new LifeboatError('corrupt', `Prune stopped without changing anything: the snapshot ${id.slice(0, 8)} needs ${missing.length} data block(s) that are not in the index (first ${missing[0]!.slice(0, 16)}). Run "lifeboat check", then "lifeboat repair index" or "lifeboat repair snapshots".`);
    }
  }
  return used;
}

/** Reads every index file, keeping every pack's entries (unlike the master index, duplicates too). */
export async function readAllIndexFiles(repo: Repository): Promise<{ names: string[]; packs: Map<Hex, PackEntry[]> }> {
  const names: string[] = [];
  for await (const o of repo.store.list('index/')) if (idOfName(o.name)) names.push(o.name);
  const packs = new Map<Hex, PackEntry[]>();
  for (const name of names) {
    try {
      await repo.readIndexFile(name, (packId, entries) => packs.set(packId, entries));
    } catch (e) {
      throw new LifeboatError('corrupt', `Prune stopped without changing anything: the index file ${name} cannot be read (${e instanceof Error ? e.message : String(e)}). Run "lifeboat repair index" first.`, { cause: e });
    }
  }
  return { names, packs };
}

/** Writes index files for the given packs (split by MAX_INDEX_ENTRIES); returns their names. */
export async function writeIndexFiles(repo: Repository, packs: readonly IndexPack[]): Promise<string[]> {
  const names: string[] = [];
  let batch: IndexPack[] = [];
  let entries = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const bytes = await sealFile(repo.codec, repo.keys.encKey, AAD.index, encodeIndex(batch));
    const name = Names.index(toHex(sha256(bytes)));
    await repo.store.put(name, bytes);
    names.push(name);
    batch = [];
    entries = 0;
  };
  for (const p of packs) {
    if (entries > 0 && entries + p.entries.length > MAX_INDEX_ENTRIES) await flush();
    batch.push(p);
    entries += p.entries.length;
  }
  await flush();
  return names;
}

interface PackPlan {
  readonly id: Hex;
  readonly size: number;
  readonly entries: readonly PackEntry[];
  /** Entries whose blob is used and whose copy is kept in this pack. */
  readonly used: PackEntry[];
  usedBytes: number;
}

/**
 * Which packs go, which are repacked and which stay, given the blobs to keep: each kept blob gets
 * one copy (the first present pack that holds it); packs without a kept copy go; partly used packs
 * are repacked, emptiest first, until the unused bytes left are within `maxUnused` percent.
 */
function planPacks(present: ReadonlyMap<Hex, { size: number; entries: readonly PackEntry[] }>, used: ReadonlySet<string>, maxUnused: number) {
  const plans: PackPlan[] = [];
  const keeper = new Set<string>();
  for (const [id, { size, entries }] of present) {
    const plan: PackPlan = { id, size, entries, used: [], usedBytes: 0 };
    plans.push(plan);
    for (const e of entries) {
      const hex = toHex(e.id);
      if (used.has(hex) && !keeper.has(hex)) {
        keeper.add(hex);
        plan.used.push(e);
        plan.usedBytes += e.length;
      }
    }
  }
  const toDelete = plans.filter((p) => p.used.length === 0);
  const partial = plans.filter((p) => p.used.length > 0 && p.used.length < p.entries.length);
  const usedBytes = plans.reduce((s, p) => s + p.usedBytes, 0);
  const limit = (usedBytes * maxUnused) / 100;
  let unusedRemaining = partial.reduce((s, p) => s + (p.size - p.usedBytes), 0);
  // Repack the emptiest packs first until what stays unused is within the limit.
  const toRepack: PackPlan[] = [];
  for (const p of [...partial].sort((a, b) => a.usedBytes / a.size - b.usedBytes / b.size)) {
    if (unusedRemaining <= limit) break;
    toRepack.push(p);
    unusedRemaining -= p.size - p.usedBytes;
  }
  const gone = new Set<PackPlan>([...toDelete, ...toRepack]);
  return { plans, toDelete, toRepack, kept: plans.filter((p) => !gone.has(p)), usedBytes, unusedRemaining };
}

export async function prune(repo: Repository, opts: PruneOptions): Promise<PruneReport> {
  const maxUnused = opts.maxUnusedPercent ?? 5;
  if (!(maxUnused >= 0)) throw new LifeboatError('invalid-argument', 'The unused-space limit must be a percentage of 0 or more.');
  const signal = opts.signal;

  // 1. Know everything: index files, packs, snapshots and what they need.
  const { names: oldIndexNames, packs: indexed } = await readAllIndexFiles(repo);
  await repo.loadIndex();
  const stored = new Map<Hex, number>();
  for await (const o of repo.store.list('data/')) {
    const id = idOfName(o.name);
    if (id && o.name === Names.pack(id)) stored.set(id, o.size);
  }
  const snapshots = await repo.listSnapshots((id, e) => {
    throw new LifeboatError('corrupt', `Prune stopped without changing anything: the snapshot ${id.slice(0, 8)} cannot be read (${e instanceof Error ? e.message : String(e)}).`);
  });
  const used = await collectUsedBlobs(repo, snapshots, opts.walkers, signal);
  // The copy of each snapshot file that stays (FORMAT.md §8); copies of forgotten snapshots go.
  for (const { id } of snapshots) {
    const copy = repo.blobId(await repo.store.get(Names.snapshot(id)));
    if (repo.index.has(copy)) used.add(toHex(copy));
  }

  // 2. Plan: each used blob keeps exactly one copy, preferring packs that are present.
  const present = new Map<Hex, { size: number; entries: readonly PackEntry[] }>();
  const available = new Set<string>();
  for (const [id, entries] of indexed) {
    const size = stored.get(id);
    if (size === undefined) continue; // indexed but missing: dropped from the new index
    const end = entries.reduce((m, e) => Math.max(m, e.offset + e.length), 0);
    if (end > size) continue; // truncated: treated as missing, so its blobs must be found elsewhere
    present.set(id, { size, entries });
    for (const e of entries) available.add(toHex(e.id));
  }
  for (const hex of used) {
    if (!available.has(hex)) {
      throw new LifeboatError('corrupt', `Prune stopped without changing anything: the data block ${hex.slice(0, 16)} that a snapshot needs is only in a pack that is missing or truncated. Run "lifeboat check".`);
    }
  }
  // Every delta that stays (in a kept pack, or copied by repacking) keeps its base, which may keep
  // or repack more packs; bases are never deltas, so this settles after a round or two.
  let plan = planPacks(present, used, maxUnused);
  for (;;) {
    const more = new Set<string>();
    const need = (e: PackEntry) => {
      if (!e.base) return;
      const hex = toHex(e.base);
      if (!used.has(hex) && available.has(hex)) more.add(hex); // a base lost already: check reports it
    };
    for (const p of plan.kept) p.entries.forEach(need);
    for (const p of plan.toRepack) p.used.forEach(need);
    if (more.size === 0) break;
    for (const hex of more) used.add(hex);
    plan = planPacks(present, used, maxUnused);
  }
  const { plans, toDelete, toRepack, kept, usedBytes, unusedRemaining } = plan;
  const unindexed = [...stored.entries()].filter(([id]) => !indexed.has(id));
  const removed = new Set<Hex>([...toDelete, ...toRepack].map((p) => p.id));
  const deletedBytes = [...toDelete, ...toRepack].reduce((s, p) => s + p.size, 0) + unindexed.reduce((s, [, size]) => s + size, 0);
  // Packs the index lists that are missing or truncated: the new index leaves them out.
  const staleIndexEntries = indexed.size !== plans.length;
  const repackBytes = toRepack.reduce((s, p) => s + p.usedBytes, 0);

  let written = 0;
  let writtenBytes = 0;
  let newIndexNames: string[] = [];
  let pinsRemoved = 0;
  let leftoversRemoved = 0;
  let indexDeleted = 0;
  if (!opts.dryRun) {
    // 3. Repack: used blobs of the chosen packs into new packs (decrypted, verified, re-sealed).
    const newPacks: IndexPack[] = [];
    const writers = new Map<BlobType, PackWriter>();
    const finish = async (w: PackWriter) => {
      try {
        const { id, bytes } = await w.finish();
        newPacks.push({ packId: fromHex(id), entries: w.entries });
        written++;
        writtenBytes += bytes;
      } catch (e) {
        await w.abort();
        throw e;
      }
    };
    let done = 0;
    for (const p of toRepack) {
      signal?.throwIfAborted();
      opts.onProgress?.('repack', done++, toRepack.length);
      const name = Names.pack(p.id);
      const bytes = await repo.store.get(name);
      for (const e of p.used) {
        const env = bytes.subarray(e.offset, e.offset + e.length);
        await repo.decodeBlob(e.type, e.id, env, e.rawLength, name, e.base); // never copy a damaged blob silently (a delta: rebuilt from its base)
        const payload = openBlob(repo.keys.encKey, e.type, e.id, env, `A data block in pack ${name}`);
        let w = writers.get(packKindOf(e.type));
        if (!w) writers.set(packKindOf(e.type), (w = new PackWriter(repo.keys.encKey, repo.store.createWriter())));
        w.add(e.type, e.id, [payload], e.rawLength, e.base);
        await w.keepUp();
        if (w.full) {
          writers.delete(e.type);
          await finish(w);
        }
      }
    }
    for (const w of writers.values()) if (w.entries.length > 0) await finish(w);
    opts.onProgress?.('repack', done, toRepack.length);

    // 4. New index files for every pack that stays, then the old ones go, then the old packs.
    const changed = removed.size > 0 || newPacks.length > 0 || staleIndexEntries;
    if (changed) {
      signal?.throwIfAborted();
      newIndexNames = await writeIndexFiles(repo, [...kept.map((p) => ({ packId: fromHex(p.id), entries: p.entries })), ...newPacks]);
      const keepNames = new Set(newIndexNames);
      for (const n of oldIndexNames) {
        if (keepNames.has(n)) continue;
        await repo.store.delete(n);
        indexDeleted++;
      }
    }
    for (const p of [...toDelete, ...toRepack]) await repo.store.delete(Names.pack(p.id));
    for (const [id] of unindexed) await repo.store.delete(Names.pack(id));
    pinsRemoved = await removeDanglingPins(repo, new Set(snapshots.map((s) => s.id)));
    leftoversRemoved = await removeLeftovers(repo.store, signal ? { signal } : {});
  }
  const totalBytes = [...stored.values()].reduce((s, n) => s + n, 0);
  return {
    dryRun: opts.dryRun === true,
    snapshots: snapshots.length,
    blobsUsed: used.size,
    packs: { total: stored.size, kept: kept.length, deleted: toDelete.length, repacked: toRepack.length, unindexed: unindexed.length, written },
    bytes: (() => {
      const w = opts.dryRun ? repackBytes : writtenBytes; // a dry run estimates the new packs by the blobs they would hold
      return { before: totalBytes, used: usedBytes, deleted: deletedBytes, written: w, freed: deletedBytes - w, unusedRemaining };
    })(),
    indexFiles: { deleted: indexDeleted, written: newIndexNames.length },
    pinsRemoved,
    leftoversRemoved,
  };
}
