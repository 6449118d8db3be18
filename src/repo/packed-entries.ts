/**
 * A pack's blob list (PackEntry[]) packed into one buffer, for check, which holds the list of every
 * pack at once: a PackEntry with its id Buffer costs ~170 bytes of V8 heap, a packed entry 45
 * (bench/README.md, session 14). The buffer is self-describing, so it can travel between threads
 * as plain bytes: byte 0 says whether entries carry a base (packs holding a delta blob), then fixed
 * records of type (u8), id (32), offset, length, raw length (u32 LE each) and, if so, base (32; zeros
 * for a blob that has none).
 */
import { BlobType, type PackEntry } from './pack.js';

const RECORD = 1 + 32 + 4 + 4 + 4;
const BASE = 32;

export class PackedEntries implements Iterable<PackEntry> {
  private readonly stride: number;

  private constructor(readonly bytes: Buffer) {
    this.stride = bytes[0] === 1 ? RECORD + BASE : RECORD;
  }

  static pack(entries: readonly PackEntry[]): PackedEntries {
    const bases = entries.some((e) => e.base !== undefined);
    const stride = bases ? RECORD + BASE : RECORD;
    const b = Buffer.alloc(1 + entries.length * stride);
    b[0] = bases ? 1 : 0;
    let o = 1;
    for (const e of entries) {
      b[o] = e.type;
      b.set(e.id, o + 1);
      b.writeUInt32LE(e.offset, o + 33);
      b.writeUInt32LE(e.length, o + 37);
      b.writeUInt32LE(e.rawLength, o + 41);
      if (e.base) b.set(e.base, o + RECORD);
      o += stride;
    }
    return new PackedEntries(b);
  }

  /** The list `bytes` (PackedEntries.bytes, for example sent by another thread) holds. */
  static of(bytes: Uint8Array): PackedEntries {
    return new PackedEntries(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  }

  get length(): number {
    return (this.bytes.length - 1) / this.stride;
  }

  /** Entry i, as a fresh object. */
  at(i: number): PackEntry {
    const b = this.bytes;
    const o = 1 + i * this.stride;
    const type = b[o] as BlobType;
    const e = { type, id: Buffer.from(b.subarray(o + 1, o + 33)), offset: b.readUInt32LE(o + 33), length: b.readUInt32LE(o + 37), rawLength: b.readUInt32LE(o + 41) };
    return type === BlobType.delta ? { ...e, base: Buffer.from(b.subarray(o + RECORD, o + RECORD + BASE)) } : e;
  }

  *[Symbol.iterator](): Iterator<PackEntry> {
    for (let i = 0; i < this.length; i++) yield this.at(i);
  }

  /** The byte after the blob that ends last. */
  end(): number {
    let end = 0;
    for (let o = 1; o < this.bytes.length; o += this.stride) end = Math.max(end, this.bytes.readUInt32LE(o + 33) + this.bytes.readUInt32LE(o + 37));
    return end;
  }

  /** Whether both list the same blobs (type, id, offset, lengths, base) in the same order. */
  equals(other: PackedEntries): boolean {
    return this.length === other.length && (this.stride === other.stride ? this.bytes.equals(other.bytes) : [...this].every((e, i) => sameEntry(e, other.at(i))));
  }
}

function sameEntry(a: PackEntry, b: PackEntry): boolean {
  const sameBase = a.base === undefined ? b.base === undefined : b.base !== undefined && Buffer.from(a.base).equals(b.base);
  return a.type === b.type && Buffer.from(a.id).equals(b.id) && a.offset === b.offset && a.length === b.length && a.rawLength === b.rawLength && sameBase;
}
