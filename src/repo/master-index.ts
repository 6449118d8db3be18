/**
 * The in-memory index of the whole repository: chunk id → (pack, offset, length, raw length,
 * type), plus the table of pack ids. Built from index files at open; grows as packs are written.
 * Backed by ChunkIndex's typed arrays (~56 bytes per blob), so 10 million blobs fit in ~600 MB.
 */
import type { BlobType, PackEntry } from './pack.js';
import { ChunkIndex } from './chunk-index.js';
import { toHex, type Hex } from './ids.js';

export interface BlobLocation {
  readonly packId: Hex;
  readonly type: BlobType;
  readonly offset: number;
  readonly length: number;
  readonly rawLength: number;
}

export class MasterIndex {
  private readonly packIds: Hex[] = [];
  private readonly packNumbers = new Map<Hex, number>();
  private readonly chunks = new ChunkIndex();
  /** Index files already merged in (names). */
  readonly loadedFiles = new Set<string>();

  addPackEntries(packId: Hex, entries: readonly PackEntry[]): void {
    let n = this.packNumbers.get(packId);
    if (n === undefined) {
      n = this.packIds.length;
      this.packIds.push(packId);
      this.packNumbers.set(packId, n);
    }
    for (const e of entries) this.chunks.add(e.id, { pack: n, type: e.type, offset: e.offset, length: e.length, rawLength: e.rawLength });
  }

  has(id: Uint8Array): boolean {
    return this.chunks.has(id);
  }

  get(id: Uint8Array): BlobLocation | undefined {
    const e = this.chunks.find(id);
    if (e < 0) return undefined;
    const c = this.chunks;
    return { packId: this.packIds[c.packAt(e)]!, type: c.typeAt(e) as BlobType, offset: c.offsetAt(e), length: c.lengthAt(e), rawLength: c.rawLengthAt(e) };
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

  /** Every blob: id (hex) with its location. */
  *entries(): IterableIterator<[Hex, BlobLocation]> {
    for (const [id, loc] of this.chunks.entries()) {
      yield [toHex(id), { packId: this.packIds[loc.pack]!, type: loc.type as BlobType, offset: loc.offset, length: loc.length, rawLength: loc.rawLength }];
    }
  }
}
