/**
 * The in-memory index of the whole repository: chunk id → (pack, offset, length, raw length,
 * type), plus the table of pack ids. Built from index files at open; grows as packs are written.
 */
import type { BlobType, PackEntry } from './pack.js';
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
  private readonly map = new Map<string, { pack: number; type: BlobType; offset: number; length: number; rawLength: number }>();
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
      const k = toHex(e.id);
      if (!this.map.has(k)) this.map.set(k, { pack: n, type: e.type, offset: e.offset, length: e.length, rawLength: e.rawLength });
    }
  }

  has(id: Uint8Array): boolean {
    return this.map.has(toHex(id));
  }

  get(id: Uint8Array): BlobLocation | undefined {
    const v = this.map.get(toHex(id));
    return v && { packId: this.packIds[v.pack]!, type: v.type, offset: v.offset, length: v.length, rawLength: v.rawLength };
  }

  get size(): number {
    return this.map.size;
  }

  get packCount(): number {
    return this.packIds.length;
  }

  hasPack(packId: Hex): boolean {
    return this.packNumbers.has(packId);
  }

  /** Every blob: id (hex) with its location. */
  *entries(): IterableIterator<[Hex, BlobLocation]> {
    for (const [k, v] of this.map) yield [k, { packId: this.packIds[v.pack]!, type: v.type, offset: v.offset, length: v.length, rawLength: v.rawLength }];
  }
}
