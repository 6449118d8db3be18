/**
 * What to read from a drive: the partition table, each partition's filesystem and its allocated
 * blocks, and everything else (table structures, the gaps where boot loaders live, unknown
 * filesystems) in full. Never leaves out a byte that is not certainly free, except the partitions
 * the user chose to leave out (PartitionChoice): of those only the filesystem's name and label
 * are read, to describe them.
 */
import { LifeboatError } from '../util/errors.js';
import type { ByteRange, ImageReader } from './imager.js';
import type { ImageManifest, ImagePartition } from './manifest.js';
import { mergeRanges, subtractRanges } from './ranges.js';

/** Which partitions an image holds (by their numbers in the table): only these, or all but these. */
export type PartitionChoice = { readonly only: readonly number[] } | { readonly exclude: readonly number[] };

export interface DiskLayout {
  readonly table: ImageManifest['table'];
  readonly partitions: ImagePartition[];
  /** Byte ranges to read; everything outside them is free space restored as zeros. */
  readonly used: ByteRange[];
  readonly warnings: string[];
}

/** A filesystem analyser: given a partition, the byte ranges (relative to it) it allocates. */
export interface FilesystemProbe {
  readonly name: string;
  probe(reader: ImageReader, start: number, size: number): Promise<{ filesystem: string; label?: string; used: ByteRange[] } | undefined>;
  /** The filesystem's name and label only, reading no more than its superblock or boot sector. */
  identify?(reader: ImageReader, start: number, size: number): Promise<{ filesystem: string; label?: string } | undefined>;
}

export interface PartitionTableReader {
  read(reader: ImageReader): Promise<{ table: ImageManifest['table']; partitions: Omit<ImagePartition, 'usedBytes' | 'method'>[] }>;
}

type Probed = { result?: NonNullable<Awaited<ReturnType<FilesystemProbe['probe']>>>; warning?: string };

/** The first probe that knows the area's filesystem; damaged metadata is a warning (read it all). */
async function probeArea(reader: ImageReader, probes: readonly FilesystemProbe[], p: { index: number; start: number; size: number }): Promise<Probed> {
  for (const probe of probes) {
    try {
      const result = await probe.probe(reader, p.start, p.size);
      if (result) return { result };
    } catch (e) {
      return { warning: `partition ${p.index}: ${probe.name} metadata looks damaged (${e instanceof Error ? e.message : String(e)}); every block of it will be read` };
    }
  }
  return {};
}

/** What a left-out partition held, as far as a cheap look tells; a damaged one is just not named. */
async function identifyArea(reader: ImageReader, probes: readonly FilesystemProbe[], p: { start: number; size: number }): Promise<{ filesystem: string; label?: string } | undefined> {
  for (const probe of probes) {
    try {
      const r = await probe.identify?.(reader, p.start, p.size);
      if (r) return r;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** The numbers of the partitions `choice` leaves out; a number the table does not have is a usage error. */
function leftOut(choice: PartitionChoice | undefined, table: ImageManifest['table'], indexes: readonly number[]): Set<number> {
  if (!choice) return new Set();
  const named = 'only' in choice ? choice.only : choice.exclude;
  if (table.kind === 'none') throw new LifeboatError('usage', 'This drive has no partition table, so there are no partitions to choose from; image it whole (without --partitions or --exclude-partition).');
  const unknown = named.filter((n) => !indexes.includes(n));
  if (unknown.length > 0) {
    throw new LifeboatError('usage', `This drive has no partition ${unknown.join(' or ')}; its partitions are ${indexes.join(', ') || 'none'} (see "lifeboat image create --dry-run").`);
  }
  return new Set('only' in choice ? indexes.filter((i) => !choice.only.includes(i)) : choice.exclude);
}

export async function analyzeDisk(reader: ImageReader, tables: PartitionTableReader | undefined, probes: readonly FilesystemProbe[], choice?: PartitionChoice): Promise<DiskLayout> {
  const warnings: string[] = [];
  if (!tables) {
    leftOut(choice, { kind: 'none' }, []);
    return { table: { kind: 'none' }, partitions: [], used: [{ start: 0, end: reader.size }], warnings };
  }
  const { table, partitions: found } = await tables.read(reader);
  const excluded = leftOut(choice, table, found.map((p) => p.index));
  let parts = found;
  const probed = new Map<Omit<ImagePartition, 'usedBytes' | 'method'>, Probed>();
  if (table.kind === 'none' && found.length === 0) {
    // No partition table: a filesystem on the whole drive (a "superfloppy", as many USB sticks
    // and memory cards are formatted, or a partition imaged on its own) is read as partition 1.
    const whole = { index: 1, role: 'primary' as const, start: 0, size: reader.size, type: 'none', typeName: 'whole drive (no partition table)' };
    const r = await probeArea(reader, probes, whole);
    if (r.result || r.warning) {
      parts = [whole];
      probed.set(whole, r);
    }
  }
  const partitions: ImagePartition[] = [];
  // Start with the whole disk, then cut out the free space of partitions we understand, and the
  // partitions left out (but never what another partition claims, should the table overlap them).
  const free: ByteRange[] = [];
  const skipped: ByteRange[] = [];
  for (const p of parts) {
    if (excluded.has(p.index)) {
      // Left out: nothing of it is read but what names its filesystem; restored empty.
      const id = await identifyArea(reader, probes, p);
      skipped.push({ start: p.start, end: p.start + p.size });
      partitions.push({ ...p, ...(id ? { filesystem: id.filesystem, ...(id.label ? { label: id.label } : {}) } : {}), usedBytes: 0, method: 'excluded' });
      continue;
    }
    const { result, warning } = probed.get(p) ?? (await probeArea(reader, probes, p));
    if (warning) warnings.push(warning);
    if (result) {
      const used = result.used.map((r) => ({ start: p.start + r.start, end: p.start + r.end })).sort((a, b) => a.start - b.start);
      let cursor = p.start;
      for (const r of used) {
        if (r.start > cursor) free.push({ start: cursor, end: r.start });
        cursor = Math.max(cursor, r.end);
      }
      if (cursor < p.start + p.size) free.push({ start: cursor, end: p.start + p.size });
      const usedBytes = used.reduce((s, r) => s + Math.min(r.end, p.start + p.size) - Math.max(r.start, p.start), 0);
      partitions.push({ ...p, filesystem: result.filesystem, ...(result.label ? { label: result.label } : {}), usedBytes, method: 'allocation' });
    } else {
      partitions.push({ ...p, usedBytes: p.size, method: 'all', ...(warning ? { warning } : {}) });
    }
  }
  const kept = mergeRanges(parts.filter((p) => !excluded.has(p.index)).map((p) => ({ start: p.start, end: p.start + p.size })));
  free.push(...subtractRanges(mergeRanges(skipped), kept));
  free.sort((a, b) => a.start - b.start);
  const used: ByteRange[] = [];
  let cursor = 0;
  for (const f of free) {
    if (f.start > cursor) used.push({ start: cursor, end: f.start });
    cursor = Math.max(cursor, f.end);
  }
  if (cursor < reader.size) used.push({ start: cursor, end: reader.size });
  return { table, partitions, used, warnings };
}
