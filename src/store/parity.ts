/**
 * Parity for bit rot (FORMAT.md §parity): a Store wrapper that writes a Reed–Solomon sidecar
 * `parity/<name>` after each object it protects, and on every read checks the bytes against the
 * sidecar's CRC32 of each 4 KiB shard, rebuilding damaged shards from parity before the caller sees
 * them. Bytes only: knows nothing of encryption or packs. Invariant: the object is written first,
 * its sidecar after it (never the other way), and neither is rewritten; a missing or damaged
 * sidecar leaves the object readable as it is (the repository's own checks still verify it).
 */
import { crc32 } from 'node:zlib';
import { LifeboatError } from '../util/errors.js';
import { ReedSolomon } from '../util/reed-solomon.js';
import type { ObjectWriter, OperationOptions, PutOptions, Store, StoreStat, WriterOptions } from './store.js';

/** k data shards and m parity shards per stripe. */
export interface ParityShape {
  readonly k: number;
  readonly m: number;
}

/** The parity setting recorded in the repository config. */
export interface ParitySettings {
  /** Shard size in bytes; one CRC32 each. */
  readonly shard: number;
  /** Data packs. */
  readonly data: ParityShape;
  /** Everything else: index, snapshots, keys, config, pins, and packs holding only trees. */
  readonly meta: ParityShape;
}

export const PARITY_PREFIX = 'parity/';
const SHARD = 4096;
const MAGIC = Buffer.from('LBPARITY');
const HEADER = 28;

/**
 * The setting for `--parity <percent>`: data stripes of m = 4 parity shards for k = 400 / percent
 * data shards (10 % → 40 + 4 shards of 4 KiB, a 160 KiB stripe); metadata 8 + 4 shards (50 %).
 */
export function paritySettings(percent: number): ParitySettings {
  if (!Number.isFinite(percent) || percent < 2 || percent > 100) {
    throw new LifeboatError('usage', `The parity must be between 2% and 100% (10% is a good choice); ${String(percent)}% is not possible.`);
  }
  return { shard: SHARD, data: { k: Math.round(400 / percent), m: 4 }, meta: { k: 8, m: 4 } };
}

/** Parses "10%" or "10". */
export function parseParity(text: string): ParitySettings {
  const m = /^\s*(\d+(?:\.\d+)?)\s*%?\s*$/.exec(text);
  if (!m) throw new LifeboatError('usage', `"${text}" is not a parity amount; give a percentage such as 10%.`);
  return paritySettings(Number(m[1]));
}

/** True for a shape usable by the codec (also checks a config read from disk). */
export function validParitySettings(s: unknown): s is ParitySettings {
  const ok = (v: unknown): boolean => {
    const x = v as Partial<ParityShape> | null;
    return !!x && Number.isInteger(x.k) && Number.isInteger(x.m) && x.k! >= 1 && x.m! >= 1 && x.k! + x.m! <= 256;
  };
  const p = s as Partial<ParitySettings> | null;
  return !!p && typeof p === 'object' && p.shard === SHARD && ok(p.data) && ok(p.meta);
}

/** Which objects get parity: not locks (short-lived), not the sidecars themselves. */
function protectedName(name: string): boolean {
  return !name.startsWith('locks/') && !name.startsWith(PARITY_PREFIX);
}

/** A parsed sidecar head: the object's size, its shape and the CRC32 of every shard. */
interface SidecarInfo {
  readonly size: number;
  readonly shard: number;
  readonly k: number;
  readonly m: number;
  readonly dataCrc: Uint32Array;
  readonly parityCrc: Uint32Array;
  readonly headLength: number;
}

function shardCount(size: number, shard: number): number {
  return Math.ceil(size / shard);
}

/** Builds a sidecar from the object's shard CRCs and its parity shards (stripe by stripe, m each). */
function buildSidecar(size: number, shape: ParityShape, dataCrc: number[], parity: Uint8Array[]): Buffer {
  const head = Buffer.alloc(HEADER + 4 * (dataCrc.length + parity.length) + 4);
  MAGIC.copy(head, 0);
  head.writeUInt32LE(1, 8);
  head.writeUInt32LE(SHARD, 12);
  head.writeUInt16LE(shape.k, 16);
  head.writeUInt16LE(shape.m, 18);
  head.writeUInt32LE(size % 2 ** 32, 20);
  head.writeUInt32LE(Math.floor(size / 2 ** 32), 24);
  let o = HEADER;
  for (const c of dataCrc) o = head.writeUInt32LE(c, o);
  for (const p of parity) o = head.writeUInt32LE(crc32(p), o);
  head.writeUInt32LE(crc32(head.subarray(0, o)), o);
  const tail = Buffer.alloc(4);
  tail.writeUInt32LE(head.length, 0);
  return Buffer.concat([head, ...parity, head, tail]);
}

/** Parses a sidecar head region; undefined when it is damaged. */
function parseHead(b: Uint8Array): SidecarInfo | undefined {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (buf.length < HEADER + 4 || !buf.subarray(0, 8).equals(MAGIC) || buf.readUInt32LE(8) !== 1) return undefined;
  const shard = buf.readUInt32LE(12);
  const k = buf.readUInt16LE(16);
  const m = buf.readUInt16LE(18);
  const size = buf.readUInt32LE(20) + buf.readUInt32LE(24) * 2 ** 32;
  if (shard !== SHARD || k < 1 || m < 1 || k + m > 256) return undefined;
  const n = shardCount(size, shard);
  const stripes = Math.ceil(n / k);
  const headLength = HEADER + 4 * (n + stripes * m) + 4;
  if (buf.length < headLength || buf.readUInt32LE(headLength - 4) !== crc32(buf.subarray(0, headLength - 4))) return undefined;
  const dataCrc = new Uint32Array(n);
  for (let i = 0; i < n; i++) dataCrc[i] = buf.readUInt32LE(HEADER + 4 * i);
  const parityCrc = new Uint32Array(stripes * m);
  for (let i = 0; i < parityCrc.length; i++) parityCrc[i] = buf.readUInt32LE(HEADER + 4 * (n + i));
  return { size, shard, k, m, dataCrc, parityCrc, headLength };
}

/** Computes parity stripe by stripe as an object's bytes arrive, never holding more than one stripe. */
class ParityEncoder {
  readonly crcs: number[] = [];
  readonly parity: Uint8Array[] = [];
  size = 0;
  private readonly rs: ReedSolomon;
  private readonly stripe: Buffer;
  private filled = 0;

  constructor(readonly shape: ParityShape) {
    this.rs = new ReedSolomon(shape.k, shape.m);
    this.stripe = Buffer.allocUnsafe(shape.k * SHARD);
  }

  write(data: Uint8Array): void {
    this.size += data.length;
    for (let off = 0; off < data.length; ) {
      const n = Math.min(data.length - off, this.stripe.length - this.filled);
      this.stripe.set(data.subarray(off, off + n), this.filled);
      this.filled += n;
      off += n;
      if (this.filled === this.stripe.length) this.encodeStripe();
    }
  }

  finish(): Buffer {
    if (this.filled > 0) this.encodeStripe();
    return buildSidecar(this.size, this.shape, this.crcs, this.parity);
  }

  private encodeStripe(): void {
    const shards: Uint8Array[] = [];
    for (let o = 0; o < this.filled; o += SHARD) {
      const s = this.stripe.subarray(o, Math.min(o + SHARD, this.filled));
      this.crcs.push(crc32(s));
      shards.push(s);
    }
    this.parity.push(...this.rs.encode(shards, shards[0]!.length));
    this.filled = 0;
  }
}

/** The sidecar of `data` with the given shape. */
export function encodeSidecar(data: Uint8Array, shape: ParityShape): Buffer {
  const e = new ParityEncoder(shape);
  e.write(data);
  return e.finish();
}

/** What one read found and fixed. */
export interface ParityReport {
  readonly name: string;
  /** Shards (of the object or its parity) that failed their CRC and were rebuilt or were not needed. */
  readonly damagedShards: number;
}

const CACHE_LIMIT = 8192;

/**
 * A Store that protects what it writes with parity (when `settings` is given) and corrects what it
 * reads from any sidecar it finds. `onCorrected` hears of every repaired read (the CLI warns).
 */
export class ParityStore implements Store {
  readonly location: string;
  private readonly cache = new Map<string, SidecarInfo | null>();

  constructor(
    readonly inner: Store,
    readonly settings: ParitySettings | undefined,
    private readonly onCorrected: (r: ParityReport) => void = () => undefined,
  ) {
    this.location = inner.location;
  }

  get properties(): Store['properties'] {
    return this.inner.properties;
  }

  private shapeFor(name: string, options?: PutOptions): ParityShape | undefined {
    if (!this.settings || !protectedName(name)) return undefined;
    return name.startsWith('data/') && !options?.metadata ? this.settings.data : this.settings.meta;
  }

  async put(name: string, data: Uint8Array, options?: PutOptions): Promise<void> {
    await this.inner.put(name, data, options);
    const shape = this.shapeFor(name, options);
    if (shape) await this.putSidecar(name, encodeSidecar(data, shape));
  }

  private async putSidecar(name: string, sidecar: Buffer): Promise<void> {
    await this.inner.put(PARITY_PREFIX + name, sidecar);
    this.cache.delete(name);
  }

  createWriter(options?: WriterOptions): ObjectWriter {
    const out = this.inner.createWriter(options);
    if (!this.settings) return out;
    const enc = new ParityEncoder(this.settings.data);
    return {
      write: async (data) => {
        enc.write(data);
        await out.write(data);
      },
      commit: async (name, options) => {
        await (options === undefined ? out.commit(name) : out.commit(name, options));
        const shape = this.shapeFor(name, options);
        if (!shape) return;
        // Tree packs get the stronger metadata shape: encoded again from the stored bytes (they are small).
        const sidecar = shape === enc.shape ? enc.finish() : encodeSidecar(await this.inner.get(name), shape);
        await this.putSidecar(name, sidecar);
      },
      abort: () => out.abort(),
    };
  }

  stat(name: string, options?: OperationOptions): Promise<StoreStat | undefined> {
    return this.inner.stat(name, options);
  }

  list(prefix: string, options?: OperationOptions): AsyncIterable<StoreStat> {
    return this.inner.list(prefix, options);
  }

  async delete(name: string, options?: OperationOptions): Promise<void> {
    await this.inner.delete(name, options);
    if (protectedName(name)) await this.inner.delete(PARITY_PREFIX + name, options);
    this.cache.delete(name);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /**
   * Whether `name` has a sound sidecar: 'missing', 'damaged' (its head or a parity shard fails its
   * CRC, or it no longer fits the object's size), or 'ok'. Reads the whole sidecar.
   */
  async verifyParity(name: string): Promise<'ok' | 'missing' | 'damaged'> {
    const side = PARITY_PREFIX + name;
    const st = await this.inner.stat(side);
    if (!st) return 'missing';
    const bytes = Buffer.from(await this.inner.get(side));
    const info = parseHead(bytes);
    const obj = await this.inner.stat(name);
    if (!info || obj?.size !== info.size) return 'damaged';
    const S = info.shard;
    const stripes = Math.ceil(info.dataCrc.length / info.k);
    let at = info.headLength;
    for (let j = 0; j < stripes; j++) {
      const len = Math.min(S, info.size - j * info.k * S);
      for (let p = 0; p < info.m; p++, at += len) {
        if (at + len > bytes.length || crc32(bytes.subarray(at, at + len)) !== info.parityCrc[j * info.m + p]) return 'damaged';
      }
    }
    const tail = bytes.subarray(at);
    return tail.length === info.headLength + 4 && tail.subarray(0, info.headLength).equals(bytes.subarray(0, info.headLength)) ? 'ok' : 'damaged';
  }

  /**
   * Writes the sidecar of an existing object (one written without parity, or whose sidecar is
   * missing or damaged), from its bytes as read through any parity it still has. The sidecar is a
   * function of the object's bytes, so rewriting a damaged one puts back the bytes it was written with.
   */
  async protect(name: string, options?: PutOptions): Promise<void> {
    const info = protectedName(name) ? await this.info(name) : null;
    const shape = info ? { k: info.k, m: info.m } : this.shapeFor(name, options);
    if (!shape) return;
    await this.putSidecar(name, encodeSidecar(await this.get(name), shape));
  }

  /** The sidecar head of `name`, or null when it has none or it is damaged (then reads are unchecked). */
  private async info(name: string): Promise<SidecarInfo | null> {
    const cached = this.cache.get(name);
    if (cached !== undefined) return cached;
    let info: SidecarInfo | null = null;
    const side = PARITY_PREFIX + name;
    const st = await this.inner.stat(side);
    if (st && st.size >= HEADER + 8) {
      const first = await this.inner.get(side, 0, Math.min(st.size, HEADER));
      const n = parseHeadLength(first);
      info = (n !== undefined && n <= st.size && parseHead(await this.inner.get(side, 0, n))) || null;
      if (!info) {
        // The head is damaged: use its copy at the end (its length is in the last 4 bytes).
        const len = Buffer.from(await this.inner.get(side, st.size - 4, 4)).readUInt32LE(0);
        if (len + 4 <= st.size) info = parseHead(await this.inner.get(side, st.size - 4 - len, len)) ?? null;
      }
    }
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(name, info);
    return info;
  }

  async get(name: string, offset?: number, length?: number, options?: OperationOptions): Promise<Uint8Array> {
    options?.signal?.throwIfAborted();
    const info = protectedName(name) ? await this.info(name) : null;
    if (!info) return this.inner.get(name, offset, length, options);
    const start = offset ?? 0;
    const end = length !== undefined ? start + length : offset !== undefined ? Math.max(start, info.size) : info.size;
    if (end > info.size) return this.inner.get(name, offset, length); // beyond what the sidecar covers: the store says why
    const S = info.shard;
    const a = Math.floor(start / S) * S;
    const b = Math.min(info.size, Math.ceil(end / S) * S);
    const bytes = await this.readAvailable(name, a, b);
    const bad = new Set<number>();
    for (let o = a; o < b; o += S) {
      const e = Math.min(o + S, b); // a whole shard: b is a shard boundary or the object's end
      if (e - a > bytes.valid || crc32(bytes.data.subarray(o - a, e - a)) !== info.dataCrc[o / S]) bad.add(Math.floor(o / S / info.k));
    }
    if (bad.size === 0) return bytes.data.subarray(start - a, end - a);
    let damaged = 0;
    for (const stripe of bad) {
      const lo = stripe * info.k * S;
      const hi = Math.min(info.size, lo + info.k * S);
      const fixed = await this.repairStripe(name, info, stripe);
      damaged += fixed.damaged;
      // Copy the rebuilt stripe over the part of the range it covers.
      const from = Math.max(lo, a);
      const to = Math.min(hi, b);
      bytes.data.set(fixed.bytes.subarray(from - lo, to - lo), from - a);
    }
    this.onCorrected({ name, damagedShards: damaged });
    return bytes.data.subarray(start - a, end - a);
  }

  /** Reads [a, b) of an object that may have been cut short or deleted: the missing part reads as zeros. */
  private async readAvailable(name: string, a: number, b: number): Promise<{ data: Buffer; valid: number }> {
    try {
      const got = await this.inner.get(name, a, b - a);
      return { data: Buffer.from(got.buffer, got.byteOffset, got.byteLength), valid: b - a };
    } catch (e) {
      if (!(e instanceof LifeboatError) || (e.code !== 'corrupt' && e.code !== 'not-found')) throw e;
    }
    const data = Buffer.alloc(b - a);
    const st = await this.inner.stat(name);
    const have = Math.max(0, Math.min(b, st?.size ?? 0) - a);
    if (have > 0) data.set(await this.inner.get(name, a, have), 0);
    return { data, valid: have };
  }

  /** Rebuilds one stripe of `name` from its parity; throws 'corrupt' when too much of it is damaged. */
  private async repairStripe(name: string, info: SidecarInfo, stripe: number): Promise<{ bytes: Buffer; damaged: number }> {
    const S = info.shard;
    const lo = stripe * info.k * S;
    const hi = Math.min(info.size, lo + info.k * S);
    const got = await this.readAvailable(name, lo, hi);
    const n = Math.ceil((hi - lo) / S);
    const len = Math.min(S, hi - lo);
    const shards: Uint8Array[] = [];
    const lost: number[] = [];
    for (let i = 0; i < info.k; i++) {
      const s = new Uint8Array(len);
      if (i < n) {
        const piece = got.data.subarray(i * S, Math.min((i + 1) * S, hi - lo));
        s.set(piece);
        if (i * S + piece.length > got.valid || crc32(piece) !== info.dataCrc[lo / S + i]) lost.push(i);
      }
      shards.push(s);
    }
    const side = PARITY_PREFIX + name;
    const parity: Uint8Array[] = [];
    const lostParity: number[] = [];
    for (let p = 0; p < info.m; p++) {
      const at = info.headLength + stripe * info.m * S + p * len;
      let s: Uint8Array = new Uint8Array(len);
      try {
        s = await this.inner.get(side, at, len);
      } catch {
        // a cut or missing sidecar: this parity shard is lost too
      }
      if (s.length !== len || crc32(s) !== info.parityCrc[stripe * info.m + p]) {
        lostParity.push(p);
        s = new Uint8Array(len);
      }
      parity.push(s);
    }
    const rs = new ReedSolomon(info.k, info.m);
    if (!rs.reconstruct(shards, parity, lost, lostParity, len)) {
      throw new LifeboatError('corrupt', `${name} is damaged in ${lost.length + lostParity.length} places of 4 KiB within one stripe, more than its parity can repair (${info.m}). Run "lifeboat check" to see what is affected.`);
    }
    const out = Buffer.alloc(hi - lo);
    for (let i = 0; i < n; i++) out.set(shards[i]!.subarray(0, Math.min(S, hi - lo - i * S)), i * S);
    return { bytes: out, damaged: lost.length + lostParity.length };
  }
}

function parseHeadLength(first: Uint8Array): number | undefined {
  const buf = Buffer.from(first.buffer, first.byteOffset, first.byteLength);
  if (buf.length < HEADER || !buf.subarray(0, 8).equals(MAGIC)) return undefined;
  const k = buf.readUInt16LE(16);
  const m = buf.readUInt16LE(18);
  const size = buf.readUInt32LE(20) + buf.readUInt32LE(24) * 2 ** 32;
  if (k < 1 || m < 1 || buf.readUInt32LE(12) !== SHARD) return undefined;
  const n = shardCount(size, SHARD);
  return HEADER + 4 * (n + Math.ceil(n / k) * m) + 4;
}
