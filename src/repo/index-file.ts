/**
 * Index files (docs/FORMAT.md §Index): for each pack, where each of its blobs is. Written after the
 * packs they describe and before any snapshot that needs them. Version 2 adds, after each delta
 * entry, the 32-byte id of the delta's base; writers use it only when some entry is a delta, so
 * repositories without deltas stay readable by older readers. Both versions are read.
 */
import { LifeboatError } from '../util/errors.js';
import { BlobType, type PackEntry } from './pack.js';

const MAGIC = Buffer.from('LBIX');
const ENTRY = 1 + 32 + 4 + 4 + 4;
const BASE = 32;

export interface IndexPack {
  readonly packId: Uint8Array;
  readonly entries: readonly PackEntry[];
}

/** A pack's entries as encodeIndex reads them: an array, or a packed list (PackedEntries). */
export interface IndexEntries extends Iterable<PackEntry> {
  readonly length: number;
}

export function encodeIndex(packs: readonly { readonly packId: Uint8Array; readonly entries: IndexEntries }[]): Buffer {
  let size = 9;
  let deltas = 0;
  for (const p of packs) {
    size += 36 + p.entries.length * ENTRY;
    for (const e of p.entries) if (e.type === BlobType.delta) deltas++;
  }
  const b = Buffer.alloc(size + deltas * BASE);
  MAGIC.copy(b, 0);
  b[4] = deltas > 0 ? 2 : 1;
  b.writeUInt32LE(packs.length, 5);
  let o = 9;
  for (const p of packs) {
    b.set(p.packId, o);
    b.writeUInt32LE(p.entries.length, o + 32);
    o += 36;
    for (const e of p.entries) {
      b[o] = e.type;
      b.set(e.id, o + 1);
      b.writeUInt32LE(e.offset, o + 33);
      b.writeUInt32LE(e.length, o + 37);
      b.writeUInt32LE(e.rawLength, o + 41);
      o += ENTRY;
      if (e.type === BlobType.delta) {
        if (e.base?.length !== BASE) throw new RangeError('A delta entry needs the 32-byte id of its base.');
        b.set(e.base, o);
        o += BASE;
      }
    }
  }
  return b;
}

/**
 * Calls `onEntry` for each entry without building objects per entry (10M-entry indexes). `id` and
 * `base` are views into the body, valid only during the call.
 */
export function decodeIndex(
  body: Uint8Array,
  name: string,
  onPack: (packId: Buffer, count: number) => void,
  onEntry: (type: BlobType, id: Buffer, offset: number, length: number, rawLength: number, base: Buffer | undefined) => void,
): void {
  const b = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const bad = () => new LifeboatError('corrupt', `The index file ${name} is damaged (its structure is inconsistent).`);
  if (b.length < 9 || !b.subarray(0, 4).equals(MAGIC)) throw bad();
  const version = b[4];
  if (version !== 1 && version !== 2) throw new LifeboatError('unsupported-version', `The index file ${name} has version ${version}, which this Lifeboat cannot read. Update Lifeboat.`);
  const packs = b.readUInt32LE(5);
  let o = 9;
  for (let i = 0; i < packs; i++) {
    if (o + 36 > b.length) throw bad();
    const packId = b.subarray(o, o + 32);
    const n = b.readUInt32LE(o + 32);
    o += 36;
    if (o + n * ENTRY > b.length) throw bad();
    onPack(packId, n);
    for (let j = 0; j < n; j++) {
      if (o + ENTRY > b.length) throw bad();
      const type = b[o] as BlobType;
      let base: Buffer | undefined;
      if (type === BlobType.delta) {
        if (version === 1 || o + ENTRY + BASE > b.length) throw bad(); // version 1 cannot name a base
        base = b.subarray(o + ENTRY, o + ENTRY + BASE);
      }
      onEntry(type, b.subarray(o + 1, o + 33), b.readUInt32LE(o + 33), b.readUInt32LE(o + 37), b.readUInt32LE(o + 41), base);
      o += ENTRY + (base ? BASE : 0);
    }
  }
  if (o !== b.length) throw bad();
}
