/**
 * Pack files (docs/FORMAT.md §Packs): blob envelopes back to back, then the sealed header listing
 * them, then the header's length and a magic. Self-describing, so the index can be rebuilt from
 * packs alone: the header names each blob's type, id and lengths, and for a delta blob (a chunk
 * stored as its changes to another, see delta.ts) also the id of its base. Header version 1 has
 * no delta entries; writers use version 2 only for packs that hold a delta. A pack's name is the
 * SHA-256 of its bytes.
 */
import { LifeboatError } from '../util/errors.js';
import { createHash } from 'node:crypto';
import type { ObjectWriter } from '../store/store.js';
import { ENVELOPE_OVERHEAD, open, seal } from './crypto.js';
import { AAD } from './envelope-file.js';
import { Names, toHex, type Hex } from './ids.js';

/**
 * data: file or disk chunks; tree: metadata; delta: a disk chunk stored as the blocks in which it
 * differs from a base chunk stored in full (its id is the id of the whole chunk); snapshot: a copy
 * of a snapshot file's bytes, from which "repair snapshots" rebuilds a damaged snapshot file.
 */
export const BlobType = { data: 0, tree: 1, delta: 2, snapshot: 3 } as const;
export type BlobType = (typeof BlobType)[keyof typeof BlobType];

/** Which packs a blob type goes to: snapshot copies are small metadata and share the tree packs. */
export function packKindOf(type: BlobType): BlobType {
  return type === BlobType.snapshot ? BlobType.tree : type;
}

export function blobTypeName(t: number): string {
  return t === BlobType.data ? 'data' : t === BlobType.tree ? 'tree' : t === BlobType.delta ? 'delta' : t === BlobType.snapshot ? 'snapshot copy' : `type-${t}`;
}

/**
 * Target size of a pack. The repository closes a pack before the blob that would take it past the
 * target (a blob as large as the target gets a pack of its own); prune closes one at the first
 * blob that reaches it.
 */
export const PACK_TARGET_BYTES = 8 * 1024 * 1024;
export const PACK_MAGIC = Buffer.from('LBP1');
const HEADER_MAGIC = Buffer.from('LBPH');
const ENTRY_BYTES = 1 + 32 + 4 + 4;
/** A pack is never larger than this (far below FAT32's 4 GiB); readers reject larger headers. */
export const MAX_PACK_BYTES = 64 * 1024 * 1024;

export interface PackEntry {
  readonly type: BlobType;
  readonly id: Uint8Array;
  readonly offset: number;
  /** Bytes stored in the pack (the envelope). */
  readonly length: number;
  /**
   * Bytes of plaintext before compression: for a delta blob, of the whole chunk it rebuilds (the
   * bytes its id is computed over), not of its change list.
   */
  readonly rawLength: number;
  /** Delta blobs only: the id of the full blob the changes apply to. */
  readonly base?: Uint8Array;
}

/** Throws unless a delta entry has a 32-byte base and other entries have none. */
export function checkEntryBase(type: number, base: Uint8Array | undefined): void {
  if ((type === BlobType.delta) !== (base !== undefined) || (base !== undefined && base.length !== 32)) {
    throw new RangeError(type === BlobType.delta ? 'A delta blob needs the 32-byte id of its base.' : 'Only delta blobs have a base.');
  }
}

export function blobAad(type: number, id: Uint8Array): Buffer {
  return Buffer.concat([AAD.blobPrefix, Uint8Array.of(type), id]);
}

/** Bytes gathered before one write to the pack's ObjectWriter. */
const STAGE_BYTES = 1024 * 1024;
/** A writer with more than this waiting to be written makes its caller wait (PackWriter.keepUp). */
const MAX_BACKLOG = 2 * STAGE_BYTES;

/**
 * Staging buffers kept for reuse by a repository's pack writers: a backup stages hundreds of MiB,
 * and a fresh buffer for each piece costs the allocator a mapping and its page faults every time.
 */
export class StageBuffers {
  private readonly free: Buffer[] = [];
  constructor(private readonly keep: number) {}

  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(STAGE_BYTES);
  }

  give(b: Buffer): void {
    if (this.free.length < this.keep) this.free.push(b);
  }
}

/**
 * Makes one pack, written to the store as it fills (Store.createWriter): envelopes are copied into
 * a staging buffer, and each full stage is hashed and written in order while the next one fills.
 * A pack is never whole in memory (restic does the same with a temporary file). Adding is
 * synchronous, so blobs from concurrent callers never interleave; callers pace themselves with
 * keepUp(). After a failure, abort() discards the partial object.
 */
export class PackWriter {
  readonly entries: PackEntry[] = [];
  /** Bytes added so far. */
  size = 0;
  private readonly hash = createHash('sha256');
  private stage: Buffer | undefined;
  private staged = 0;
  /** Bytes flushed and not yet written. */
  private queued = 0;
  private writing: Promise<void> = Promise.resolve();
  private error: unknown;

  constructor(
    readonly encKey: Buffer,
    private readonly out: ObjectWriter,
    private readonly stages?: StageBuffers,
  ) {}

  /** Adds a blob whose plaintext payload (codec byte ‖ body) is given in parts. */
  add(type: BlobType, id: Uint8Array, payload: Uint8Array[], rawLength: number, base?: Uint8Array): PackEntry {
    return this.addSealed(type, id, seal(this.encKey, payload, blobAad(type, id)), rawLength, base);
  }

  /** Adds an already sealed blob envelope (see encoder.ts), copying it. `base`: for delta blobs only. */
  addSealed(type: BlobType, id: Uint8Array, env: Uint8Array, rawLength: number, base?: Uint8Array): PackEntry {
    checkEntryBase(type, base);
    const e: PackEntry = { type, id, offset: this.size, length: env.length, rawLength, ...(base ? { base } : {}) };
    this.append(env);
    this.entries.push(e);
    return e;
  }

  private append(bytes: Uint8Array): void {
    for (let off = 0; off < bytes.length; ) {
      const stage = (this.stage ??= this.stages?.take() ?? Buffer.allocUnsafeSlow(STAGE_BYTES));
      const n = Math.min(bytes.length - off, stage.length - this.staged);
      stage.set(bytes.subarray(off, off + n), this.staged);
      this.staged += n;
      off += n;
      if (this.staged === stage.length) this.flush();
    }
    this.size += bytes.length;
  }

  /** Hashes the staged bytes and queues their write; the stage goes back to the pool once written. */
  private flush(): void {
    if (this.staged === 0) return;
    const stage = this.stage!;
    const piece = stage.subarray(0, this.staged);
    this.stage = undefined;
    this.staged = 0;
    this.hash.update(piece);
    this.queued += piece.length;
    this.writing = this.writing.then(async () => {
      try {
        if (this.error === undefined) await this.out.write(piece);
      } catch (e) {
        this.error = e;
      } finally {
        this.queued -= piece.length;
        this.stages?.give(stage);
      }
    });
  }

  /** Waits while more than a few stages are waiting to be written; rejects once a write failed. */
  async keepUp(): Promise<void> {
    if (this.queued > MAX_BACKLOG || this.error !== undefined) await this.drain();
  }

  private async drain(): Promise<void> {
    await this.writing;
    if (this.error !== undefined) throw this.error;
  }

  get full(): boolean {
    return this.size >= PACK_TARGET_BYTES;
  }

  /** Whether a blob of `length` bytes keeps this pack within its target (an empty pack takes any). */
  fits(length: number): boolean {
    return this.size === 0 || this.size + length <= PACK_TARGET_BYTES;
  }

  /**
   * Writes the header and trailer, waits for every write, and stores the pack under its name (the
   * SHA-256 of its bytes). Returns its id and size. On failure, call abort().
   */
  async finish(): Promise<{ id: Hex; bytes: number }> {
    const deltas = this.entries.filter((e) => e.base).length;
    const header = Buffer.alloc(HEADER_MAGIC.length + 1 + 4 + this.entries.length * ENTRY_BYTES + deltas * 32);
    HEADER_MAGIC.copy(header, 0);
    header[4] = deltas > 0 ? 2 : 1;
    header.writeUInt32LE(this.entries.length, 5);
    let o = 9;
    for (const e of this.entries) {
      header[o] = e.type;
      header.set(e.id, o + 1);
      header.writeUInt32LE(e.length, o + 33);
      header.writeUInt32LE(e.rawLength, o + 37);
      o += ENTRY_BYTES;
      if (e.base) {
        header.set(e.base, o);
        o += 32;
      }
    }
    const sealed = seal(this.encKey, header, AAD.packHeader);
    const trailer = Buffer.alloc(8);
    trailer.writeUInt32LE(sealed.length, 0);
    PACK_MAGIC.copy(trailer, 4);
    this.append(sealed);
    this.append(trailer);
    this.flush();
    await this.drain();
    const id = toHex(this.hash.digest());
    // A pack of trees is metadata: a store with parity protects it more strongly.
    const trees = this.entries.length > 0 && this.entries.every((e) => e.type === BlobType.tree);
    await this.out.commit(Names.pack(id), { sha256: id, ...(trees ? { metadata: true } : {}) });
    return { id, bytes: this.size };
  }

  /** Discards a pack that will not be finished (a write or the commit failed). Never rejects. */
  async abort(): Promise<void> {
    await this.writing;
    if (this.stage) this.stages?.give(this.stage);
    this.stage = undefined;
    await this.out.abort();
  }
}

/** Bytes at the end of a pack that hold the header length and magic. */
export const PACK_TRAILER_BYTES = 8;

/** Given the pack's trailer, how many bytes before it hold the sealed header. */
export function headerLengthFromTrailer(trailer: Uint8Array, packSize: number, name: string): number {
  const b = Buffer.from(trailer);
  if (b.length !== PACK_TRAILER_BYTES || !b.subarray(4).equals(PACK_MAGIC)) {
    throw new LifeboatError('corrupt', `The pack ${name} is damaged: its trailer is not a Lifeboat pack trailer (truncated or overwritten).`);
  }
  const len = b.readUInt32LE(0);
  if (len < ENVELOPE_OVERHEAD + 9 || len + PACK_TRAILER_BYTES > packSize) {
    throw new LifeboatError('corrupt', `The pack ${name} is damaged: its header length (${len}) does not fit in the file.`);
  }
  return len;
}

/** Decrypts and parses a pack header; checks that the blobs tile the space before it. */
export function parsePackHeader(encKey: Buffer, sealed: Uint8Array, packSize: number, name: string): PackEntry[] {
  const h = open(encKey, sealed, AAD.packHeader, `The header of pack ${name}`);
  const version = h[4];
  if (h.length < 9 || !h.subarray(0, 4).equals(HEADER_MAGIC) || (version !== 1 && version !== 2)) {
    throw new LifeboatError('corrupt', `The pack ${name} has a header of an unknown version.`);
  }
  const n = h.readUInt32LE(5);
  const wrongLength = () => new LifeboatError('corrupt', `The header of pack ${name} has the wrong length.`);
  if (h.length < 9 + n * ENTRY_BYTES) throw wrongLength();
  const out: PackEntry[] = [];
  let offset = 0;
  let o = 9;
  for (let i = 0; i < n; i++) {
    if (o + ENTRY_BYTES > h.length) throw wrongLength();
    const type = h[o] as BlobType;
    const length = h.readUInt32LE(o + 33);
    const e = { type, id: Buffer.from(h.subarray(o + 1, o + 33)), offset, length, rawLength: h.readUInt32LE(o + 37) };
    o += ENTRY_BYTES;
    if (type === BlobType.delta) {
      // Version 1 has no bases, so it cannot describe a delta.
      if (version === 1) throw new LifeboatError('corrupt', `The header of pack ${name} lists a delta blob without its base; it is damaged.`);
      if (o + 32 > h.length) throw wrongLength();
      out.push({ ...e, base: Buffer.from(h.subarray(o, o + 32)) });
      o += 32;
    } else out.push(e);
    offset += length;
  }
  if (o !== h.length) throw wrongLength();
  if (offset + sealed.length + PACK_TRAILER_BYTES !== packSize) {
    throw new LifeboatError('corrupt', `The pack ${name} is damaged: its blobs do not add up to its size.`);
  }
  return out;
}

export function parsePack(encKey: Buffer, bytes: Uint8Array, name: string): PackEntry[] {
  const hl = headerLengthFromTrailer(bytes.subarray(bytes.length - PACK_TRAILER_BYTES), bytes.length, name);
  return parsePackHeader(encKey, bytes.subarray(bytes.length - PACK_TRAILER_BYTES - hl, bytes.length - PACK_TRAILER_BYTES), bytes.length, name);
}

/** Decrypts one blob envelope to its payload (codec byte ‖ body). */
export function openBlob(encKey: Buffer, type: number, id: Uint8Array, envelope: Uint8Array, what: string): Buffer {
  return open(encKey, envelope, blobAad(type, id), what);
}
