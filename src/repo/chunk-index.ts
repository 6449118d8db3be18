/**
 * The in-memory chunk index: 32-byte chunk id → location (pack number, offset, length, raw length,
 * type), built to hold tens of millions of entries in a few hundred MB with no object per entry.
 * A data structure only: no I/O, no knowledge of the index file format.
 *
 * Layout (about 49 bytes per entry plus 5.7–11.4 bytes of hash table, see npm run bench figures in
 * src/bench/index-scale.ts):
 * - an append-only entry store in fixed-size segments, so growth allocates one new segment and
 *   never copies what exists: per segment the ids (32 bytes each, as 8 little-endian u32 words), the four
 *   u32 fields interleaved (pack, offset, length, rawLength), and the type bytes;
 * - an open-addressing table of entry numbers + 1 (0 = empty), linear probing, doubled when the
 *   load would pass 0.7. A table of 2^b slots needs only b bits for the entry number, so the
 *   spare high bits of each slot hold a fingerprint (high bits of the id's second word): a probe
 *   past an occupied slot reads the entry's id only when the fingerprints agree, which keeps a
 *   miss at about one cache miss instead of one per occupied slot passed. The hash is the id's first 4 bytes, which are uniformly random for keyed
 *   hash ids, passed through a multiplicative (Fibonacci) step so that non-random ids in tests or
 *   tools still spread.
 * Invariant: an id is stored at most once; the first location added for it wins.
 */

export interface ChunkLocation {
  /** Index into the pack table the caller owns (u32). */
  readonly pack: number;
  readonly offset: number;
  readonly length: number;
  readonly rawLength: number;
  /** Blob type (u8). */
  readonly type: number;
}

export const CHUNK_ID_BYTES = 32;
const LOAD_FACTOR = 0.7;
const MAX_TABLE_BITS = 31;

// The id being looked up, as 8 little-endian words (module-level so the probe loop reads them
// without a call or an allocation). Ids are stored as the same words, whatever the host's byte
// order; 32 byte reads and shifts beat TypedArray.prototype.set for so few bytes. Words are
// int32, not uint32: values above 2^31 would be boxed as doubles in V8.
let K0 = 0, K1 = 0, K2 = 0, K3 = 0, K4 = 0, K5 = 0, K6 = 0, K7 = 0;

function word(id: Uint8Array, o: number): number {
  return id[o]! | (id[o + 1]! << 8) | (id[o + 2]! << 16) | (id[o + 3]! << 24);
}

function isU32(v: number): boolean {
  return v >>> 0 === v;
}

export class ChunkIndex {
  private readonly segBits: number;
  private readonly segMask: number;
  private readonly ids32: Int32Array[] = [];
  private readonly fields: Uint32Array[] = [];
  private readonly types: Uint8Array[] = [];
  /** Slots: 0 = empty, else (fingerprint in the bits above lowMask) | (entry number + 1). */
  private table: Int32Array;
  private tableBits: number;
  private lowMask: number;
  private count = 0;

  /**
   * @param opts.segmentBits entries per segment = 2^segmentBits (default 16: 65536 entries, 3.2 MB)
   * @param opts.initialCapacity expected number of entries, to size the table up front
   */
  constructor(opts: { readonly segmentBits?: number; readonly initialCapacity?: number } = {}) {
    const bits = opts.segmentBits ?? 16;
    if (!(Number.isInteger(bits) && bits >= 4 && bits <= 24)) throw new RangeError(`segmentBits ${bits} must be an integer in 4..24.`);
    this.segBits = bits;
    this.segMask = (1 << bits) - 1;
    const want = Math.max(16, Math.ceil((opts.initialCapacity ?? 0) / LOAD_FACTOR) + 1);
    this.tableBits = Math.max(4, Math.ceil(Math.log2(want)));
    if (this.tableBits > MAX_TABLE_BITS) throw new RangeError(`initialCapacity ${opts.initialCapacity} is too large.`);
    this.table = new Int32Array(2 ** this.tableBits);
    this.lowMask = 2 ** this.tableBits - 1;
  }

  /** Number of distinct ids stored. */
  get size(): number {
    return this.count;
  }

  /** Bytes held by the typed arrays (entry segments and hash table). */
  get byteSize(): number {
    const perSegment = (1 << this.segBits) * (CHUNK_ID_BYTES + 16 + 1);
    return this.ids32.length * perSegment + this.table.byteLength;
  }

  /**
   * Adds an id with its location. Returns false, and keeps the location already stored, when the
   * id is present. Throws RangeError for an id that is not 32 bytes or a field out of range.
   */
  add(id: Uint8Array, loc: ChunkLocation): boolean {
    if (!(isU32(loc.pack) && isU32(loc.offset) && isU32(loc.length) && isU32(loc.rawLength) && Number.isInteger(loc.type) && loc.type >= 0 && loc.type <= 255)) {
      throw new RangeError(`Chunk location out of range: pack ${loc.pack}, offset ${loc.offset}, length ${loc.length}, raw length ${loc.rawLength}, type ${loc.type}.`);
    }
    this.loadKey(id);
    const slot = this.probe();
    if (slot >= 0) return false; // present: the first location stays
    if (this.count + 1 > this.table.length * LOAD_FACTOR) {
      this.grow();
      return this.insertNew(this.emptySlotFor(K0), loc);
    }
    return this.insertNew(slot, loc);
  }

  has(id: Uint8Array): boolean {
    return this.find(id) >= 0;
  }

  get(id: Uint8Array): ChunkLocation | undefined {
    const e = this.find(id);
    return e < 0 ? undefined : this.locationAt(e);
  }

  /** The entry number (0 .. size-1, in insertion order) of an id, or -1. Allocates nothing. */
  find(id: Uint8Array): number {
    this.loadKey(id);
    const slot = this.probe();
    return slot >= 0 ? (this.table[slot]! & this.lowMask) - 1 : -1;
  }

  // Allocation-free accessors by entry number, for hot paths that call find().
  packAt(e: number): number { return this.fields[e >>> this.segBits]![(e & this.segMask) * 4]!; }
  offsetAt(e: number): number { return this.fields[e >>> this.segBits]![(e & this.segMask) * 4 + 1]!; }
  lengthAt(e: number): number { return this.fields[e >>> this.segBits]![(e & this.segMask) * 4 + 2]!; }
  rawLengthAt(e: number): number { return this.fields[e >>> this.segBits]![(e & this.segMask) * 4 + 3]!; }
  typeAt(e: number): number { return this.types[e >>> this.segBits]![e & this.segMask]!; }

  locationAt(e: number): ChunkLocation {
    this.checkEntry(e);
    const f = this.fields[e >>> this.segBits]!;
    const b = (e & this.segMask) * 4;
    return { pack: f[b]!, offset: f[b + 1]!, length: f[b + 2]!, rawLength: f[b + 3]!, type: this.types[e >>> this.segBits]![e & this.segMask]! };
  }

  /** A copy of the id of entry e. */
  idAt(e: number): Uint8Array {
    this.checkEntry(e);
    return this.copyId(e, new Uint8Array(CHUNK_ID_BYTES));
  }

  private copyId(e: number, out: Uint8Array): Uint8Array {
    const seg = this.ids32[e >>> this.segBits]!;
    const b = (e & this.segMask) << 3;
    for (let w = 0; w < 8; w++) {
      const v = seg[b + w]!;
      out[w * 4] = v;
      out[w * 4 + 1] = v >>> 8;
      out[w * 4 + 2] = v >>> 16;
      out[w * 4 + 3] = v >>> 24;
    }
    return out;
  }

  /** All entries in insertion order; each id is a fresh copy. */
  *entries(): Generator<[Uint8Array, ChunkLocation], void, undefined> {
    for (let e = 0; e < this.count; e++) yield [this.idAt(e), this.locationAt(e)];
  }

  [Symbol.iterator](): Generator<[Uint8Array, ChunkLocation], void, undefined> {
    return this.entries();
  }

  /**
   * Calls fn for every entry in insertion order. `id` is one scratch buffer refilled for each
   * entry, valid only during the call (copy it to keep it): no allocation per entry over millions
   * of entries.
   */
  forEach(fn: (id: Uint8Array, entry: number) => void): void {
    const scratch = new Uint8Array(CHUNK_ID_BYTES);
    const n = this.count;
    for (let e = 0; e < n; e++) fn(this.copyId(e, scratch), e);
  }

  private checkEntry(e: number): void {
    if (!(Number.isInteger(e) && e >= 0 && e < this.count)) throw new RangeError(`Entry ${e} is not in an index of ${this.count} entries.`);
  }

  private loadKey(id: Uint8Array): void {
    if (id.length !== CHUNK_ID_BYTES) throw new RangeError(`A chunk id has ${CHUNK_ID_BYTES} bytes, not ${id.length}.`);
    K0 = word(id, 0); K1 = word(id, 4); K2 = word(id, 8); K3 = word(id, 12);
    K4 = word(id, 16); K5 = word(id, 20); K6 = word(id, 24); K7 = word(id, 28);
  }

  private home(k0: number): number {
    return Math.imul(k0, 0x9e3779b1) >>> (32 - this.tableBits);
  }

  /** Looks up KEY: the slot holding it (>= 0), or -(empty slot where it would go) - 1. */
  private probe(): number {
    const k0 = K0, k1 = K1, k2 = K2, k3 = K3, k4 = K4, k5 = K5, k6 = K6, k7 = K7;
    const table = this.table;
    const mask = table.length - 1;
    const low = this.lowMask;
    const fp = k1 & ~low;
    const segBits = this.segBits;
    const segMask = this.segMask;
    const ids = this.ids32;
    let s = this.home(k0);
    for (;;) {
      const v = table[s]!;
      if (v === 0) return -s - 1;
      // Only a slot whose fingerprint matches costs a (likely uncached) read of the entry's id.
      if (((v & ~low) ^ fp) !== 0) { s = (s + 1) & mask; continue; }
      const e = (v & low) - 1;
      const seg = ids[e >>> segBits]!;
      const b = (e & segMask) << 3;
      if (seg[b] === k0 && seg[b + 1] === k1 && seg[b + 2] === k2 && seg[b + 3] === k3 &&
          seg[b + 4] === k4 && seg[b + 5] === k5 && seg[b + 6] === k6 && seg[b + 7] === k7) return s;
      s = (s + 1) & mask;
    }
  }

  /** The empty slot for a key known to be absent, encoded as in probe(). */
  private emptySlotFor(k0: number): number {
    const table = this.table;
    const mask = table.length - 1;
    let s = this.home(k0);
    while (table[s] !== 0) s = (s + 1) & mask;
    return -s - 1;
  }

  /** Stores KEY with loc as a new entry in the empty slot encoded as -(slot) - 1. */
  private insertNew(encodedSlot: number, loc: ChunkLocation): true {
    const e = this.count;
    const si = e >>> this.segBits;
    if (si === this.ids32.length) this.addSegment();
    const i = e & this.segMask;
    const ids = this.ids32[si]!;
    const b = i << 3;
    ids[b] = K0; ids[b + 1] = K1; ids[b + 2] = K2; ids[b + 3] = K3;
    ids[b + 4] = K4; ids[b + 5] = K5; ids[b + 6] = K6; ids[b + 7] = K7;
    const f = this.fields[si]!;
    f[i * 4] = loc.pack;
    f[i * 4 + 1] = loc.offset;
    f[i * 4 + 2] = loc.length;
    f[i * 4 + 3] = loc.rawLength;
    this.types[si]![i] = loc.type;
    this.table[-encodedSlot - 1] = (K1 & ~this.lowMask) | (e + 1);
    this.count = e + 1;
    return true;
  }

  private addSegment(): void {
    const n = 1 << this.segBits;
    this.ids32.push(new Int32Array(n * 8));
    this.fields.push(new Uint32Array(n * 4));
    this.types.push(new Uint8Array(n));
  }

  /** Doubles the table and re-places every entry (ids are unique, so no comparisons). */
  private grow(): void {
    if (this.tableBits >= MAX_TABLE_BITS) throw new RangeError(`The chunk index is full (${this.count} entries).`);
    this.tableBits++;
    const table = new Int32Array(2 ** this.tableBits);
    const mask = table.length - 1;
    const low = 2 ** this.tableBits - 1;
    const shift = 32 - this.tableBits;
    const segBits = this.segBits;
    const segMask = this.segMask;
    for (let e = 0; e < this.count; e++) {
      const seg = this.ids32[e >>> segBits]!;
      const b = (e & segMask) << 3;
      let s = Math.imul(seg[b]!, 0x9e3779b1) >>> shift;
      while (table[s] !== 0) s = (s + 1) & mask;
      table[s] = (seg[b + 1]! & ~low) | (e + 1);
    }
    this.table = table;
    this.lowMask = low;
  }
}
