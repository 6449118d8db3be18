/**
 * Keeping a repository tidy and sound: forget snapshots by retention rules (or by id; pinned ones
 * are always kept), prune what no snapshot needs, pin and unpin, check, repair, add parity, stats. The scheduler applies a job's retention through the same
 * functions after each successful run.
 */
import { LifeboatError } from '../util/errors.js';
import { applyPolicy, type ForgetCandidate as PolicyCandidate, type ForgetGroup, type ForgetPolicy } from '../repo/forget.js';
import { Names, type Hex } from '../repo/ids.js';
import { loadPins, pinSnapshot, unpinSnapshot, type PinInfo } from '../repo/pins.js';
import { checkRepository, repositoryStats, type CheckReport, type RepoStats } from '../repo/check.js';
import { addParity, type ParityAddResult } from '../repo/parity.js';
import type { ParitySettings } from '../store/parity.js';
import { prune, type PruneReport } from '../repo/prune.js';
import type { Repository } from '../repo/repository.js';
import { repairConfig, repairIndex, repairSnapshots, type RepairIndexReport, type SnapshotRepairResult } from '../repo/repair.js';
import { referenceWalkers, snapshotRepairers } from './kinds.js';
import type { JobOptions } from './events.js';

/** A snapshot as the retention rules see it, with its pin's note when it has one. */
export interface ForgetCandidate extends PolicyCandidate {
  readonly id: Hex;
  readonly pinned: boolean;
  readonly note?: string;
}

export interface ForgetOptions {
  /** Snapshots to remove by id or prefix; when given, `policy` is not used. */
  readonly ids?: readonly string[];
  readonly policy?: ForgetPolicy;
  /** Only snapshots of these hosts are considered (all when empty). */
  readonly hosts?: readonly string[];
  /** Only snapshots carrying every one of these tags are considered (a scheduled job's own: job:NAME). */
  readonly tags?: readonly string[];
  /** Only snapshots of exactly this set of paths are considered (a continuous job thins its own). */
  readonly paths?: readonly string[];
  readonly dryRun?: boolean;
}

export interface ForgetResult {
  readonly groups: readonly ForgetGroup<ForgetCandidate>[];
  /** Ids removed (none on a dry run). */
  readonly removed: readonly Hex[];
  readonly wouldRemove: readonly Hex[];
}

/** Removes snapshots (only their snapshot files; prune frees the data) under the exclusive lock. */
export async function forgetSnapshots(repo: Repository, o: ForgetOptions): Promise<ForgetResult> {
  await repo.lock(true, 'forget');
  const pins = await loadPins(repo);
  const hosts = o.hosts ?? [];
  const tags = o.tags ?? [];
  const pathsKey = o.paths && JSON.stringify([...o.paths].sort());
  const all = (await repo.listSnapshots()).filter(
    (s) =>
      (hosts.length === 0 || hosts.includes(s.snapshot.host)) &&
      tags.every((t) => s.snapshot.tags.includes(t)) &&
      (pathsKey === undefined || JSON.stringify([...s.snapshot.paths].sort()) === pathsKey),
  );
  const candidates: ForgetCandidate[] = all.map(({ id, snapshot: s }) => {
    const note = pins.get(id)?.note;
    return { id, kind: s.kind, time: s.time, host: s.host, paths: s.paths, tags: s.tags, pinned: pins.has(id), ...(note ? { note } : {}) };
  });
  let groups: ForgetGroup<ForgetCandidate>[];
  if (o.ids !== undefined && o.ids.length > 0) {
    const ids = new Set<Hex>();
    for (const ref of o.ids) ids.add((await repo.findSnapshot(ref)).id);
    const pinned = [...ids].filter((id) => pins.has(id));
    if (pinned.length > 0) throw new LifeboatError('invalid-argument', `Snapshot ${pinned.map((id) => id.slice(0, 8)).join(', ')} is pinned. Unpin it first if you really want to remove it.`);
    groups = [{ kind: '', host: '', paths: [], keep: [], remove: candidates.filter((c) => ids.has(c.id)) }];
  } else {
    if (o.policy === undefined) throw new LifeboatError('usage', 'Say which snapshots to keep (a retention rule) or which to remove (their ids).');
    groups = applyPolicy(candidates, o.policy);
  }
  const wouldRemove = groups.flatMap((g) => g.remove.map((r) => r.id));
  if (!o.dryRun) for (const id of wouldRemove) await repo.store.delete(Names.snapshot(id));
  return { groups, removed: o.dryRun ? [] : wouldRemove, wouldRemove };
}

export interface PruneOptions extends JobOptions {
  /** Unused space tolerated in packs, in percent of the used space. */
  readonly maxUnusedPercent: number;
  readonly dryRun?: boolean;
}

/** Deletes data no snapshot needs and repacks mostly unused packs, under the exclusive lock. */
export async function pruneRepository(repo: Repository, o: PruneOptions): Promise<PruneReport> {
  await repo.lock(true, 'prune');
  return prune(repo, {
    walkers: referenceWalkers,
    maxUnusedPercent: o.maxUnusedPercent,
    dryRun: o.dryRun === true,
    ...(o.signal ? { signal: o.signal } : {}),
    onProgress: (phase, done, total) => o.onEvent?.({ type: 'progress', phase, done, total, unit: 'items' }),
  });
}

/** Verifies the repository's structure (every object, pins included) and, with `readData`, every stored byte; progress has phase 'reading packs'. */
export async function checkRepositoryJob(repo: Repository, o: JobOptions & { readonly readData?: boolean } = {}): Promise<CheckReport> {
  await repo.lock(false, 'check', { reading: true });
  return checkRepository(repo, {
    readData: o.readData === true,
    walkers: referenceWalkers,
    ...(o.signal ? { signal: o.signal } : {}),
    onProgress: (done, total) => o.onEvent?.({ type: 'progress', phase: 'reading packs', done, total }),
  });
}

/** Gives the repository parity (or rewrites missing and damaged parity with the settings it has) under the exclusive lock. */
export async function addParityJob(repo: Repository, settings: ParitySettings | undefined, o: JobOptions = {}): Promise<ParityAddResult> {
  if (!repo.config.parity && settings === undefined) throw new LifeboatError('usage', 'This repository has no parity yet: say how much to add, for example "lifeboat parity add 10%".');
  await repo.lock(true, 'parity add');
  return addParity(repo, settings, (done, total) => o.onEvent?.({ type: 'progress', phase: 'protecting', done, total, unit: 'items' }));
}

/** Pins snapshot `ref` (forget and prune never remove it). */
export async function pin(repo: Repository, ref: string, note = ''): Promise<{ id: Hex; info: PinInfo }> {
  await repo.lock(false, 'pin');
  const { id } = await repo.findSnapshot(ref);
  return { id, info: await pinSnapshot(repo, id, note) };
}

/** Removes the pin of snapshot `ref`; false when it had none. */
export async function unpin(repo: Repository, ref: string): Promise<{ id: Hex; was: boolean }> {
  await repo.lock(false, 'unpin');
  const { id } = await repo.findSnapshot(ref);
  return { id, was: await unpinSnapshot(repo, id) };
}

/** Space used, deduplication and compression. */
export async function repositoryStatsJob(repo: Repository): Promise<RepoStats> {
  await repo.loadIndex();
  return repositoryStats(repo);
}

/** Writes the config file or its copy again from the sound one, under the exclusive lock. */
export async function repairConfigJob(repo: Repository, o: { readonly dryRun?: boolean } = {}): Promise<Awaited<ReturnType<typeof repairConfig>>> {
  await repo.lock(true, 'repair config');
  return repairConfig(repo, { dryRun: o.dryRun === true });
}

/** Rebuilds the index from the packs (keeping every blob that still verifies), under the exclusive lock. */
export async function repairIndexJob(repo: Repository, o: JobOptions & { readonly dryRun?: boolean } = {}): Promise<RepairIndexReport> {
  await repo.lock(true, 'repair index');
  return repairIndex(repo, {
    dryRun: o.dryRun === true,
    ...(o.signal ? { signal: o.signal } : {}),
    onProgress: (done, total) => o.onEvent?.({ type: 'progress', phase: 'reading packs', done, total, unit: 'items' }),
  });
}

/** For each snapshot with missing (or, with readData, damaged) data, writes a copy that keeps what is intact; under the exclusive lock. */
export async function repairSnapshotsJob(repo: Repository, o: JobOptions & { readonly forget?: boolean; readonly readData?: boolean; readonly dryRun?: boolean } = {}): Promise<SnapshotRepairResult[]> {
  await repo.lock(true, 'repair snapshots');
  return repairSnapshots(repo, { walkers: referenceWalkers, repairers: snapshotRepairers, forget: o.forget === true, readData: o.readData === true, dryRun: o.dryRun === true, ...(o.signal ? { signal: o.signal } : {}) });
}
