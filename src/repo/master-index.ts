/**
 * The in-memory index of the whole repository: chunk id → (pack, offset, length, raw length,
 * type), plus the table of pack ids. Built from index files at open; grows as packs are written.
 * Backed by ChunkIndex's typed arrays (~56 bytes per blob), so 10 million blobs fit in ~600 MB.
 * Delta blobs also need their base's id; those few live in a side map keyed by entry number, so
 * ordinary entries cost nothing more.
 */
import { BlobType, checkEntryBase, type PackEntry } from './pack.js';
import { ChunkIndex } from './chunk-index.js';
import { toHex, type Hex } from './ids.js';

export interface BlobLocation {
  readonly packId: Hex;
  readonly type: BlobType;
  readonly offset: number;
  readonly length: number;
  readonly rawLength: number;
  /** Delta blobs only: the id of the full blob the delta applies to. */
  readonly base?: Uint8Array;
}

export class MasterIndex {
  private readonly packIds: Hex[] = [];
  private readonly packNumbers = new Map<Hex, number>();
  private readonly chunks = new ChunkIndex();
  /** Entry number of a delta blob → its base id. */
  private readonly bases = new Map<number, Buffer>();
  /** Index files already merged in (names). */
  readonly loadedFiles = new Set<string>();

  addPackEntries(packId: Hex, entries: readonly PackEntry[]): void {
    let n = this.packNumbers.get(packId);
    if (n === undefined) {
      n = this.packIds.length;
      this.packIds.push(packId);
      this.packNumbers.set(packId, n);
    }
    for (const e of entries) {
      checkEntryBase(e.type, e.base);
      // The first location of an id wins; only a delta that became that location keeps its base.
      if (this.chunks.add(e.id, { pack: n, type: e.type, offset: e.offset, length: e.length, rawLength: e.rawLength }) && e.base) {
        this.bases.set(this.chunks.size - 1, Buffer.from(e.base));
      }
    }
  }

  has(id: Uint8Array): boolean {
    return this.chunks.has(id);
  }

  get(id: Uint8Array): BlobLocation | undefined {
    const e = this.chunks.find(id);
    if (e < 0) return undefined;
    const c = this.chunks;
    const base = this.bases.get(e);
    return { packId: this.packIds[c.packAt(e)]!, type: c.typeAt(e) as BlobType, offset: c.offsetAt(e), length: c.lengthAt(e), rawLength: c.rawLengthAt(e), ...(base ? { base } : {}) };
  }

  /** The entry number of an indexed blob (0 .. size-1, fixed once added), or -1: a key for tables beside the index. */
  entryNumber(id: Uint8Array): number {
    return this.chunks.find(id);
  }

  /** The base of a delta blob; undefined for other blobs and for ids not indexed. */
  baseOf(id: Uint8Array): Buffer | undefined {
    if (this.bases.size === 0) return undefined;
    const e = this.chunks.find(id);
    return e < 0 ? undefined : this.bases.get(e);
  }

  /** Number of delta blobs indexed. */
  get deltaCount(): number {
    return this.bases.size;
  }

  get size(): number {
    return this.chunks.size;
  }

  get packCount(): number {
    return this.packIds.length;
  }

  hasPack(packId: Hex): boolean {
    return this.packNumbers.has(packId);
  }

  /** The packs that hold a blob of one of `types`: one pass over the index's arrays, no id or location object per blob. */
  packsHolding(types: readonly BlobType[]): Set<Hex> {
    const packs = new Set<number>();
    for (let e = 0; e < this.chunks.size; e++) if (types.includes(this.chunks.typeAt(e) as BlobType)) packs.add(this.chunks.packAt(e));
    return new Set([...packs].map((n) => this.packIds[n]!));
  }

  /** Every blob: id (hex) with its location. */
  *entries(): IterableIterator<[Hex, BlobLocation]> {
    let e = 0;
    for (const [id, loc] of this.chunks.entries()) {
      const base = this.bases.get(e++);
      yield [toHex(id), { packId: this.packIds[loc.pack]!, type: loc.type as BlobType, offset: loc.offset, length: loc.length, rawLength: loc.rawLength, ...(base ? { base } : {}) }];
    }
  }
}
