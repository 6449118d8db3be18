/**
 * Salvage of a pack whose header or trailer cannot be read and whose blobs no index names
 * (FORMAT.md §13, "repair index"): the blob boundaries are found again in the pack's bytes.
 *
 * A pack is blob envelopes back to back from offset 0 (nonce ‖ AES-GCM ciphertext ‖ tag, §6), so
 * the first blob starts at 0 and each confirmed blob gives the start of the next: only ends must
 * be found. What the envelope tells cheaply, before any decryption is tried:
 * - the first plaintext byte at every offset, from one AES block per offset (encrypted in large
 *   batches): a blob's payload starts with its codec byte (0 raw, 1 zstd, then the zstd magic
 *   28 B5 2F FD), the pack header's with "LBPH". Only such offsets can start a blob, so only they
 *   can end the one before (about 1 offset in 256 passes by chance);
 * - a zstd payload knows its own length: walking the frame's block headers gives the end exactly;
 * - a raw payload does not: its end is found by testing the GCM tag at each possible end in one
 *   pass over the blob (GHASH is linear, ghash.ts; the blob id that the tag depends on is an
 *   HMAC of the plaintext, kept as a running hash). A delta blob's change list gives its own length.
 * Nothing is trusted on these grounds alone: a blob counts only once node:crypto's AES-GCM opens
 * it with the id it hashes to (a delta once rebuilt from its base). If the pack's sealed header is
 * still intact somewhere (only the trailer was cut), it is found by its "LBPH" and used directly;
 * a damaged one still says (unauthenticated) where its blobs lie, and each such place is tried.
 *
 * Cost: linear in the pack's size for an intact run of blobs (a few seconds for 16 MiB on a slow
 * machine), and at most a few passes whatever the damage. After damaged bytes the scan picks up
 * again at the next zstd blob, a blob the old index names, or a place the damaged header names: a
 * raw blob that follows damage, in a pack whose header is lost too, stays lost.
 */
import { createCipheriv, createDecipheriv, createHash, type Cipher } from 'node:crypto';
import { LifeboatError } from '../util/errors.js';
import type { Codec } from './compress.js';
import { chunkId, NONCE_BYTES, TAG_BYTES, tryOpen, type MasterKeys } from './crypto.js';
import { parseDelta, applyDelta } from './delta.js';
import { AAD, CODEC_RAW, CODEC_ZSTD, decodePayload } from './envelope-file.js';
import { element, multiply, TimesH, xorInto, type Element } from './ghash.js';
import { BlobType, blobAad, PACK_MAGIC, PACK_TRAILER_BYTES, parsePackHeader, type PackEntry } from './pack.js';

const FLAG_RAW = 1;
const FLAG_ZSTD = 2;
const FLAG_HEADER = 4;
const MIN_ENVELOPE = NONCE_BYTES + 1 + TAG_BYTES;
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const HEADER_MAGIC = Buffer.from('LBPH');
const HEADER_ENTRY = 1 + 32 + 4 + 4;
/** A run of zeros this long marks bytes wiped by damage (a zeroed sector). */
const ZERO_RUN = Buffer.alloc(32);
const SECTOR = 4096;
/** Offsets whose first block is computed per AES call. */
const BATCH = 1 << 16;
/** How many passes over a pack the search for raw blobs' ends may take in all (see rawEnd). */
const RAW_PASSES = 4;
/** Ciphertext decrypted at a time while looking for a raw blob's end. */
const WINDOW = 1 << 16;

export interface SalvageOptions {
  /** Blobs known from elsewhere (old index entries that verified): taken as they are, and places to pick up after damage. */
  readonly known?: readonly PackEntry[];
  /** A full blob by id, to rebuild a delta blob found by the scan (undefined: not available). */
  readonly loadBase?: (id: Uint8Array) => Promise<Uint8Array | undefined>;
  readonly signal?: AbortSignal;
}

export interface SalvageResult {
  /** The blobs found and verified, in pack order. */
  readonly entries: PackEntry[];
  /** True when the pack's own sealed header was found intact (only the trailer was damaged). */
  readonly fromHeader: boolean;
  /** Delta blobs seen whose base could not be loaded (so not confirmed: try again once it can). */
  readonly missingBases: number;
}

function counterBlock(bytes: Uint8Array, at: number, counter: number, out: Buffer, o: number): void {
  for (let i = 0; i < NONCE_BYTES; i++) out[o + i] = bytes[at + i]!;
  out[o + 12] = 0;
  out[o + 13] = 0;
  out[o + 14] = 0;
  out[o + 15] = counter;
}

/** For every offset, what its first plaintext block says if an envelope started there (FLAG_*). */
function firstBlockFlags(ecb: Cipher, bytes: Uint8Array): Uint8Array {
  const n = bytes.length;
  const flags = new Uint8Array(n + 1);
  const last = n - MIN_ENVELOPE; // the last offset an envelope fits at
  const counters = Buffer.allocUnsafe(BATCH * 16);
  for (let from = 0; from <= last; from += BATCH) {
    const count = Math.min(BATCH, last + 1 - from);
    for (let k = 0; k < count; k++) counterBlock(bytes, from + k, 2, counters, 16 * k);
    const ks = ecb.update(counters.subarray(0, count * 16));
    for (let k = 0; k < count; k++) {
      const p = from + k;
      const c = p + NONCE_BYTES; // first ciphertext byte
      const avail = n - TAG_BYTES - c; // ciphertext bytes at most
      const b0 = bytes[c]! ^ ks[16 * k]!;
      let f = 0;
      if (b0 === CODEC_RAW) f |= FLAG_RAW;
      if (avail >= 5 && b0 === CODEC_ZSTD) {
        let ok = true;
        for (let i = 0; i < 4 && ok; i++) ok = (bytes[c + 1 + i]! ^ ks[16 * k + 1 + i]!) === ZSTD_MAGIC[i];
        if (ok) f |= FLAG_ZSTD;
      }
      if (avail >= 9) {
        let ok = true;
        for (let i = 0; i < 4 && ok; i++) ok = (bytes[c + i]! ^ ks[16 * k + i]!) === HEADER_MAGIC[i];
        const v = bytes[c + 4]! ^ ks[16 * k + 4]!;
        if (ok && (v === 1 || v === 2)) f |= FLAG_HEADER;
      }
      flags[p] = f;
    }
  }
  return flags;
}

/** The length of the zstd frame at the start of `get(0…)`, walking its block headers; undefined if it is not one. */
function zstdFrameLength(get: (upTo: number) => Buffer | undefined): number | undefined {
  let b = get(6);
  if (!b || !b.subarray(0, 4).equals(ZSTD_MAGIC)) return undefined;
  const fhd = b[4]!;
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  if ((fhd >> 3) & 1) return undefined; // reserved bit
  const checksum = (fhd >> 2) & 1;
  const dictBytes = [0, 1, 2, 4][fhd & 3]!;
  const fcsBytes = fcsFlag === 0 ? single : [0, 2, 4, 8][fcsFlag]!;
  let o = 5 + (single ? 0 : 1) + dictBytes + fcsBytes;
  for (;;) {
    b = get(o + 3);
    if (!b) return undefined;
    const h = b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16);
    const last = h & 1;
    const type = (h >> 1) & 3;
    const size = h >>> 3;
    if (type === 3 || size > 128 * 1024) return undefined;
    o += 3 + (type === 1 ? 1 : size);
    if (last) break;
  }
  return o + (checksum ? 4 : 0);
}

/** A change list's own length (delta.ts), from its first bytes; undefined if it does not look like one. */
function deltaLength(get: (upTo: number) => Buffer | undefined): number | undefined {
  let b = get(41);
  if (!b || b[0] !== 1) return undefined;
  const bs = b.readUInt32LE(33);
  const length = b.readUInt32LE(37);
  if (bs < 512 || bs > 1 << 20 || (bs & (bs - 1)) !== 0 || length === 0 || length > 64 * 1024 * 1024) return undefined;
  const n = Math.ceil(length / bs);
  const bm = Math.ceil(n / 8);
  b = get(41 + bm);
  if (!b) return undefined;
  let total = 41 + bm;
  for (let j = 0; j < n; j++) if ((b[41 + (j >> 3)]! >> (j & 7)) & 1) total += Math.min(length, (j + 1) * bs) - j * bs;
  return total;
}

/**
 * Finds and verifies the blobs of a damaged pack from its bytes alone (see the module comment).
 * Never throws for damage: what cannot be confirmed is simply not returned.
 */
export async function salvagePack(codec: Codec, keys: MasterKeys, bytes: Uint8Array, name: string, opts: SalvageOptions = {}): Promise<SalvageResult> {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = buf.length;
  const ecb = createCipheriv('aes-256-ecb', keys.encKey, null).setAutoPadding(false);
  const aes = (block: Buffer): Element => element(ecb.update(block));
  const H = aes(Buffer.alloc(16));
  const timesH = new TimesH(H);
  const flags = firstBlockFlags(ecb, buf);
  const scratch = Buffer.allocUnsafe(n);
  const ipad = Buffer.alloc(64, 0x36);
  const opad = Buffer.alloc(64, 0x5c);
  for (let i = 0; i < keys.idKey.length; i++) {
    ipad[i]! ^= keys.idKey[i]!;
    opad[i]! ^= keys.idKey[i]!;
  }
  const blobPrefix = element(AAD.blobPrefix);
  // T_t = (t at the AAD's 17th byte) · H^3: how the type changes the tag, before the final power.
  const typeTerm = (t: number): Element => {
    const x = Uint32Array.of(t << 24, 0, 0, 0);
    timesH.apply(x);
    timesH.apply(x);
    timesH.apply(x);
    return x;
  };
  const T1 = typeTerm(1);
  const T2 = typeTerm(2);

  /** Decrypts (without authenticating) the payload of an envelope starting at `s`, lazily, into scratch. */
  const stream = (s: number) => {
    const ctr = Buffer.alloc(16);
    counterBlock(buf, s, 2, ctr, 0);
    const d = createDecipheriv('aes-256-ctr', keys.encKey, ctr);
    const start = s + NONCE_BYTES;
    const max = n - start - TAG_BYTES; // ciphertext bytes at most
    let have = 0;
    return {
      max,
      get(upTo: number): Buffer | undefined {
        if (upTo > max) return undefined;
        if (upTo > have) {
          const want = Math.min(max, Math.max(upTo, have + WINDOW));
          const out = d.update(buf.subarray(start + have, start + want));
          out.copy(scratch, have);
          have = want;
        }
        return scratch;
      },
    };
  };

  let missingBases = 0;
  /** Confirms an envelope [s, e) with node:crypto: the blob it holds, or undefined. */
  const confirm = async (s: number, e: number): Promise<PackEntry | undefined> => {
    const env = buf.subarray(s, e);
    const what = `A data block in pack ${name}`;
    const payload = stream(s).get(e - s - NONCE_BYTES - TAG_BYTES);
    if (!payload) return undefined;
    let body: Uint8Array;
    try {
      body = await decodePayload(codec, Buffer.from(payload.subarray(0, e - s - NONCE_BYTES - TAG_BYTES)), what);
    } catch (err) {
      if (err instanceof LifeboatError) return undefined;
      throw err;
    }
    const id = chunkId(keys, body);
    for (const type of [BlobType.data, BlobType.tree, BlobType.snapshot]) {
      if (tryOpen(keys.encKey, env, blobAad(type, id))) return { type, id, offset: s, length: e - s, rawLength: body.length };
    }
    // A delta: its id is that of the chunk it rebuilds from its base.
    if (!opts.loadBase) return undefined;
    try {
      const d = parseDelta(body, what);
      const base = await opts.loadBase(d.base);
      if (!base) {
        missingBases++;
        return undefined;
      }
      const rebuilt = chunkId(keys, applyDelta(d, base, what));
      if (tryOpen(keys.encKey, env, blobAad(BlobType.delta, rebuilt))) return { type: BlobType.delta, id: rebuilt, offset: s, length: e - s, rawLength: d.length, base: d.base };
    } catch (err) {
      if (!(err instanceof LifeboatError)) throw err;
    }
    return undefined;
  };

  // Each raw blob tried costs a pass over the rest of the pack; damage in many places could make
  // that quadratic, so the blocks hashed while looking for raw ends are capped at a few passes.
  let budget = RAW_PASSES * Math.ceil(n / 16);
  /** A raw blob at s: tests the tag at every possible end in one pass (module comment). */
  const rawEnd = async (s: number): Promise<PackEntry | undefined> => {
    const j0 = Buffer.alloc(16);
    counterBlock(buf, s, 1, j0, 0);
    const ej0 = aes(j0);
    const st = stream(s);
    const ctStart = s + NONCE_BYTES;
    const inner = createHash('sha256').update(ipad);
    let hashed = 1; // the codec byte is not part of the id
    const g = new Uint32Array(4); // GHASH of the full ciphertext blocks so far
    const hp = Uint32Array.from(H); // H^(blocks + 1)
    let blocks = 0;
    for (let e = s + MIN_ENVELOPE; e <= n; e++) {
      if (!flags[e] && !extraEnds.has(e)) continue;
      opts.signal?.throwIfAborted();
      const c = e - ctStart - TAG_BYTES; // ciphertext length if the envelope ended at e
      const pt = st.get(c);
      if (!pt) break;
      const full = c >> 4;
      budget -= full - blocks;
      if (budget < 0) break;
      for (; blocks < full; blocks++) {
        xorInto(g, element(buf, ctStart + 16 * blocks));
        timesH.apply(g);
        timesH.apply(hp);
      }
      const gc = Uint32Array.from(g);
      const hv = Uint32Array.from(hp);
      if (c & 15) {
        xorInto(gc, element(buf, ctStart + 16 * full, c & 15));
        timesH.apply(gc);
        timesH.apply(hv);
      }
      inner.update(pt.subarray(hashed, c));
      hashed = c;
      const id = createHash('sha256').update(opad).update(inner.copy().digest()).digest();
      // The AAD: prefix ‖ type ‖ id, four blocks, by Horner's rule (type 0 here; T1, T2 add the others).
      const a2 = element(Buffer.concat([Buffer.of(0), id.subarray(0, 15)]));
      const a3 = element(id, 15, 16);
      const a4 = element(id, 31, 1);
      const acc = Uint32Array.from(blobPrefix);
      timesH.apply(acc);
      xorInto(acc, a2);
      timesH.apply(acc);
      xorInto(acc, a3);
      timesH.apply(acc);
      xorInto(acc, a4);
      timesH.apply(acc);
      const tag0 = multiply(acc, hv);
      timesH.apply(gc);
      xorInto(tag0, gc);
      const len = Uint32Array.of(0, 49 * 8, Math.floor((c * 8) / 2 ** 32), (c * 8) >>> 0);
      timesH.apply(len);
      xorInto(tag0, len);
      xorInto(tag0, ej0);
      const stored = element(buf, e - TAG_BYTES);
      const t1 = multiply(T1, hv);
      const t2 = multiply(T2, hv);
      const same = (x: Element) => x[0] === stored[0] && x[1] === stored[1] && x[2] === stored[2] && x[3] === stored[3];
      const t3 = Uint32Array.from(t1);
      xorInto(t3, t2);
      const candidates = [Uint32Array.from(tag0)];
      for (const t of [t1, t3]) {
        const x = Uint32Array.from(tag0);
        xorInto(x, t);
        candidates.push(x);
      }
      if (candidates.some(same)) {
        const found = await confirm(s, e);
        if (found) return found;
      }
    }
    return undefined;
  };

  /** The blob starting at s, if one can be confirmed. */
  const blobAt = async (s: number): Promise<PackEntry | undefined> => {
    const f = flags[s]!;
    if (f & FLAG_ZSTD) {
      const st = stream(s);
      const len = zstdFrameLength((upTo) => st.get(upTo + 1)?.subarray(1));
      if (len !== undefined) {
        const found = await confirm(s, s + NONCE_BYTES + 1 + len + TAG_BYTES);
        if (found) return found;
      }
    }
    if (f & FLAG_RAW) {
      const st = stream(s);
      const len = deltaLength((upTo) => st.get(upTo + 1)?.subarray(1));
      if (len !== undefined && s + MIN_ENVELOPE + len <= n) {
        const found = await confirm(s, s + NONCE_BYTES + 1 + len + TAG_BYTES);
        if (found) return found;
      }
      return rawEnd(s);
    }
    return undefined;
  };

  // Ends a blob may have besides offsets that could start another: the end of the file (a cut
  // pack), where the trailer says the header starts, and the last sector before a run of zeros
  // (a zeroed sector may have wiped the start of what follows).
  const extraEnds = new Set<number>([n, n - PACK_TRAILER_BYTES]);
  if (n >= PACK_TRAILER_BYTES && buf.subarray(n - 4).equals(PACK_MAGIC)) extraEnds.add(n - PACK_TRAILER_BYTES - buf.readUInt32LE(n - PACK_TRAILER_BYTES));
  for (let z = buf.indexOf(ZERO_RUN); z >= 0; ) {
    for (let e = Math.max(0, z - SECTOR); e <= z; e++) extraEnds.add(e);
    while (z < n && buf[z] === 0) z++;
    z = buf.indexOf(ZERO_RUN, z);
  }

  // The pack's own header, if it is intact where the scan finds its magic (only the trailer lost).
  // A header that no longer authenticates still gives hints: where its entries say blobs lie, each
  // tried (and confirmed like any other) where the scan would otherwise lose its way after damage.
  const hints = new Map<number, PackEntry>();
  for (let h = n - MIN_ENVELOPE; h >= 0; h--) {
    if (!(flags[h]! & FLAG_HEADER)) continue;
    // Its length, from its own (not yet authenticated) entries: a delta entry has 32 bytes more.
    const st = stream(h);
    const count = st.get(9)!.readUInt32LE(5);
    let o: number | undefined = 9;
    let offset = 0;
    for (let i = 0; i < count && o !== undefined; i++) {
      const pt = st.get(o + HEADER_ENTRY);
      if (!pt) o = undefined;
      else {
        const length = pt.readUInt32LE(o + 33);
        if (!hints.has(offset)) hints.set(offset, { type: pt[o] as BlobType, id: Buffer.from(pt.subarray(o + 1, o + 33)), offset, length, rawLength: pt.readUInt32LE(o + 37) });
        offset += length;
        o += HEADER_ENTRY + (pt[o] === BlobType.delta ? 32 : 0);
      }
    }
    if (o !== undefined) {
      const e = h + NONCE_BYTES + o + TAG_BYTES;
      if (e > n || !tryOpen(keys.encKey, buf.subarray(h, e), AAD.packHeader)) continue;
      try {
        const listed = parsePackHeader(keys.encKey, buf.subarray(h, e), h + (e - h) + PACK_TRAILER_BYTES, name);
        const entries: PackEntry[] = [];
        for (const entry of listed) {
          const ok = await confirm(entry.offset, entry.offset + entry.length);
          if (ok && Buffer.from(ok.id).equals(entry.id)) entries.push(entry);
        }
        return { entries, fromHeader: true, missingBases };
      } catch (err) {
        if (!(err instanceof LifeboatError)) throw err;
      }
    }
  }

  const known = new Map((opts.known ?? []).map((e) => [e.offset, e]));
  const entries: PackEntry[] = [];
  let s = 0;
  while (s + MIN_ENVELOPE <= n) {
    opts.signal?.throwIfAborted();
    const hint = hints.get(s);
    const hinted = hint && s + hint.length <= n ? await confirm(s, s + hint.length) : undefined;
    const found = known.get(s) ?? hinted ?? (await blobAt(s));
    if (found) {
      entries.push(found);
      s = found.offset + found.length;
      continue;
    }
    // Damage: pick up at the next blob that announces itself strongly.
    let next = s + 1;
    while (next + MIN_ENVELOPE <= n && !(flags[next]! & FLAG_ZSTD) && !known.has(next) && !hints.has(next)) next++;
    s = next;
  }
  return { entries, fromHeader: false, missingBases };
}
