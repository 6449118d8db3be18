/**
 * Snapshot manifests (docs/FORMAT.md §Snapshots): one small encrypted JSON object per backup,
 * written last. A snapshot of files points at its root tree; a snapshot of a drive points at its
 * image manifest. Both live in the same list.
 */
import { LifeboatError } from '../util/errors.js';
import { isId, type Hex } from './ids.js';

export type SnapshotKind = 'files' | 'image';

export interface Snapshot {
  readonly version: 1;
  readonly kind: SnapshotKind;
  /** ISO-8601 with up to nanosecond precision, UTC. */
  readonly time: string;
  readonly host: string;
  readonly user: string;
  /** Backed-up paths (files) or the source device/file (image), as given. */
  readonly paths: readonly string[];
  readonly tags: readonly string[];
  /** The root blob: a tree (files) or an image manifest (image), as a tree-type blob id. */
  readonly root: Hex;
  readonly parent?: Hex;
  /** Set when some sources could not be read; the snapshot holds everything else. */
  readonly incomplete?: { readonly count: number; readonly paths: readonly string[] };
  /** Counters of the run that made it (files new/changed/unchanged, bytes read/added, seconds). */
  readonly summary?: Readonly<Record<string, number>>;
  /** Free-form, namespaced extras from the layer that made it (e.g. image source description). */
  readonly meta?: Readonly<Record<string, unknown>>;
}

export function validateSnapshot(v: unknown, id: string): Snapshot {
  const s = v as Partial<Snapshot> | null;
  const ok =
    s !== null && typeof s === 'object' && s.version === 1 && (s.kind === 'files' || s.kind === 'image') &&
    typeof s.time === 'string' && typeof s.host === 'string' && typeof s.root === 'string' && isId(s.root) && (s.parent === undefined || (typeof s.parent === 'string' && isId(s.parent))) &&
    Array.isArray(s.paths) && Array.isArray(s.tags);
  if (!ok) throw new LifeboatError('corrupt', `The snapshot ${id.slice(0, 8)} is damaged or of an unknown kind.`);
  return s as Snapshot;
}
