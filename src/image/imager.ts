/**
 * The imager: turns a drive (through a BlockSource) into data blobs and an image manifest, and
 * writes a manifest back onto a target. Only the byte ranges it is given as used are read; the rest
 * of each chunk is zeros, and chunks that are entirely zero are not stored at all.
 *
 * Given the parent image (the previous image of the same drive), a chunk that is new but differs
 * from the parent's chunk at the same offset in at most half of its 4 KiB blocks is stored as a
 * delta blob: only those blocks, against the parent's chunk (or, if that is a delta itself, against
 * its base, so a delta never needs more than one full blob). Its id is still the chunk's id, so the
 * manifest is the same either way and repo.loadBlob rebuilds it.
 *
 * The main thread reads and packs; hashing, comparing and sealing run on worker threads
 * (chunk-sealer.ts).
 */
import { randomBytes } from 'node:crypto';
import { LifeboatError } from '../util/errors.js';
import { reusingLargeBlocks } from '../util/memory.js';
import { BlobType, type Repository } from '../repo/repository.js';
import type { Snapshot } from '../repo/snapshot.js';
import { toHex, type Hex } from '../repo/ids.js';
import { ChunkSealer } from './chunk-sealer.js';
import { CHUNKS_PER_PAGE, IMAGE_CHUNK_SIZE, decodePage, encodePage, validateManifest, type ImageManifest, type ImagePartition } from './manifest.js';
import { writeEmptyFat32 } from './fat-writer.js';

export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/** The minimal reading interface the imager needs (implemented by image/source.ts). */
export interface ImageReader {
  readonly size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  readRun?(offset: number, lengths: readonly number[]): Promise<Uint8Array[]>;
}

export interface ImageProgress {
  readonly bytesDone: number;
  readonly bytesTotal: number;
  readonly bytesStored: number;
}

export interface CreateImageResult {
  readonly manifestId: Hex;
  readonly manifest: ImageManifest;
  readonly bytesRead: number;
  readonly chunksStored: number;
  readonly chunksNew: number;
  /** Of the new chunks, those stored as changes to the parent image's chunk. */
  readonly chunksDelta: number;
  readonly bytesAdded: number;
}

/** Sorts and merges ranges, clipped to [0, size). */
export function normalizeRanges(ranges: readonly ByteRange[], size: number): ByteRange[] {
  const sorted = ranges
    .map((r) => ({ start: Math.max(0, r.start), end: Math.min(size, r.end) }))
    .filter((r) => r.end > r.start)
    .sort((a, b) => a.start - b.start);
  const out: ByteRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end) out[out.length - 1] = { start: last.start, end: Math.max(last.end, r.end) };
    else out.push(r);
  }
  return out;
}

export function totalBytes(ranges: readonly ByteRange[]): number {
  return ranges.reduce((s, r) => s + (r.end - r.start), 0);
}

/**
 * The parent image's chunk size and its chunk ids, page by page, for choosing delta bases.
 * Anything unreadable about the parent (a damaged manifest or page) only means no deltas there.
 */
async function parentImage(repo: Repository, parentRoot: string | undefined): Promise<{ chunkSize: number; page: (first: number) => Promise<(Buffer | undefined)[] | undefined> } | undefined> {
  if (parentRoot === undefined) return undefined;
  let m: ImageManifest;
  try {
    m = await loadManifest(repo, parentRoot);
  } catch {
    return undefined;
  }
  if (m.chunksPerPage !== CHUNKS_PER_PAGE) return undefined;
  const chunkCount = Math.ceil(m.size / m.chunkSize);
  const page = async (first: number) => {
    const hex = m.pages[first / CHUNKS_PER_PAGE];
    if (hex === undefined) return undefined;
    try {
      return decodePage(await repo.loadBlob(Buffer.from(hex, 'hex')), first, Math.min(CHUNKS_PER_PAGE, chunkCount - first)).ids;
    } catch {
      return undefined;
    }
  };
  return { chunkSize: m.chunkSize, page };
}

/**
 * Bytes of chunks on their way through the workers at once, and of chunks whose reads are started
 * ahead of the one being handed over (at least MIN_SAVES and MIN_READ_AHEAD chunks). Every chunk
 * crosses to a worker and back, so the pipeline must be deep enough to keep both workers and the
 * reads busy: with 64 KiB chunks an incremental image of a 3.2 GB disk took 3.5 s with 32 and 8
 * chunks, 3.0 s with 128 and 32 (8 and 2 MiB). With 1 MiB chunks, 8 and 2 of them are as fast as
 * 16 and 4 and hold less memory (bench/README.md, session 14).
 */
const SAVES_IN_FLIGHT_BYTES = 8 * 1024 * 1024;
const READ_AHEAD_BYTES = 2 * 1024 * 1024;
const MIN_SAVES = 8;
const MIN_READ_AHEAD = 2;
/** Consecutive wholly used chunks read with one request (BlockSource.readRun): 1 MiB of them. */
const RUN_BYTES = 1024 * 1024;
/**
 * zstd level 3, as file backups. Level 1 was chosen for 64 KiB chunks (a quarter less CPU, images
 * 1–3% larger); with 1 MiB chunks and buffers reused (reusingLargeBlocks) level 3 costs about what
 * level 1 did, and the first image of the benchmark's drive is 0.99× restic's, not 1.07×.
 */
const IMAGE_ZSTD_LEVEL = 3;

/**
 * The full blob a new chunk can be stored against, given the parent's chunk at its offset: that
 * chunk, or its base if it is a delta. Undefined when the index does not know it.
 */
function deltaBase(repo: Repository, parentId: Uint8Array): Uint8Array | undefined {
  const loc = repo.index.get(parentId);
  if (!loc) return undefined;
  if (loc.type === BlobType.data) return parentId;
  if (loc.type === BlobType.delta && loc.base && repo.index.get(loc.base)?.type === BlobType.data) return loc.base;
  return undefined;
}

/**
 * Stores a changed chunk that has a base: the base's envelope is read through the repository's
 * store and the chunk goes back to a worker with it, to be sealed as a delta when at most half of
 * its blocks differ from the base, else whole (also when the base cannot be read: storing the
 * chunk whole heals the next image too).
 */
async function saveChanged(repo: Repository, sealer: ChunkSealer, data: Uint8Array, id: Uint8Array, baseId: Uint8Array): Promise<{ added: boolean; delta: boolean }> {
  if (repo.hasBlob(id)) return { added: false, delta: false };
  const blob = await repo.sealedBlob(baseId).catch(() => undefined);
  const r = await sealer.seal({ data, id, ...(blob ? { base: { id: baseId, blob } } : {}) });
  if (r.kind !== 'sealed') throw new Error('a changed chunk came back unsealed');
  return { added: (await repo.saveSealedBlob(r.type, r.id, r.env, r.rawLength, r.base)).added, delta: r.type === BlobType.delta };
}

/**
 * Reads the used ranges of `source` chunk by chunk and stores each non-zero chunk. `describe`
 * gives the manifest fields that come from the layout (table, partitions, source). `parent`, the
 * manifest id of the previous image of the same drive, lets changed chunks be stored as deltas.
 */
export async function createImage(
  repo: Repository,
  source: ImageReader,
  used: readonly ByteRange[],
  describe: Pick<ImageManifest, 'table' | 'partitions' | 'source' | 'unreadable'>,
  opts: { chunkSize?: number; parent?: string | undefined; signal?: AbortSignal; onProgress?: (p: ImageProgress) => void } = {},
): Promise<CreateImageResult> {
  // Blocks reused from before the sealer starts its workers.
  return reusingLargeBlocks(async () => {
    const sealer = new ChunkSealer(repo.workerCodec(IMAGE_ZSTD_LEVEL));
    try {
      return await storeImage(repo, sealer, source, used, describe, opts);
    } finally {
      await sealer.close();
    }
  });
}

async function storeImage(
  repo: Repository,
  sealer: ChunkSealer,
  source: ImageReader,
  used: readonly ByteRange[],
  describe: Pick<ImageManifest, 'table' | 'partitions' | 'source' | 'unreadable'>,
  opts: { chunkSize?: number; parent?: string | undefined; signal?: AbortSignal; onProgress?: (p: ImageProgress) => void } = {},
): Promise<CreateImageResult> {
  // An image keeps its parent's chunk size, so that its chunks compare with the parent's (a drive
  // first imaged with 64 KiB chunks goes on with them rather than storing everything again).
  const parent = await parentImage(repo, opts.parent);
  const chunkSize = opts.chunkSize ?? parent?.chunkSize ?? IMAGE_CHUNK_SIZE;
  const parentPage = parent?.chunkSize === chunkSize ? parent.page : undefined;
  const savesInFlight = Math.max(MIN_SAVES, Math.floor(SAVES_IN_FLIGHT_BYTES / chunkSize));
  const readAheadChunks = Math.max(MIN_READ_AHEAD, Math.floor(READ_AHEAD_BYTES / chunkSize));
  const runChunks = Math.max(1, Math.floor(RUN_BYTES / chunkSize));
  const size = source.size;
  const ranges = normalizeRanges(used, size);
  const bytesTotal = totalBytes(ranges);
  const chunkCount = Math.ceil(size / chunkSize);
  const pages: Hex[] = [];
  let bytesRead = 0;
  let chunksStored = 0;
  let chunksNew = 0;
  let chunksDelta = 0;
  const written0 = repo.bytesWritten;
  // Each chunk's used bytes are read (all its pieces at once) READ_AHEAD chunks before it is
  // stored, so the drive works while earlier chunks are hashed and sealed.
  const reads = new Map<number, Promise<{ buf: Buffer; bytes: number }>>();
  let aheadNext = 0;
  let ra = 0; // first range that may overlap chunk aheadNext
  const asChunk = (d: Uint8Array) => ({ buf: Buffer.from(d.buffer, d.byteOffset, d.byteLength), bytes: d.length });
  const readChunk = (ci: number): Promise<{ buf: Buffer; bytes: number }> | undefined => {
    const s = ci * chunkSize;
    const e = Math.min(size, s + chunkSize);
    while (ra < ranges.length && ranges[ra]!.end <= s) ra++;
    if (ra >= ranges.length || ranges[ra]!.start >= e) return undefined; // nothing used here
    if (ranges[ra]!.start <= s && ranges[ra]!.end >= e) {
      // The whole chunk is used (the common case): the read is the chunk, no copy. So are the
      // ones after it up to the end of this range: up to RUN of them are read with one request.
      if (source.readRun && ci + 1 < chunkCount && ranges[ra]!.end >= e + chunkSize) {
        const n = Math.min(runChunks, Math.floor((Math.min(size, ranges[ra]!.end) - s) / chunkSize));
        const run = source.readRun(s, new Array<number>(n).fill(chunkSize));
        run.catch(() => undefined); // each chunk's promise below carries the failure
        for (let k = 1; k < n; k++) {
          const p = run.then((bufs) => asChunk(bufs[k]!));
          p.catch(() => undefined);
          reads.set(ci + k, p);
        }
        aheadNext = ci + n; // readAhead goes on after the run
        return run.then((bufs) => asChunk(bufs[0]!));
      }
      return source.read(s, e - s).then(asChunk);
    }
    const pieces: Promise<{ at: number; data: Uint8Array }>[] = [];
    for (let j = ra; j < ranges.length && ranges[j]!.start < e; j++) {
      const ps = Math.max(s, ranges[j]!.start);
      const pe = Math.min(e, ranges[j]!.end);
      pieces.push(source.read(ps, pe - ps).then((data) => ({ at: ps - s, data })));
    }
    return Promise.all(pieces).then((parts) => {
      const buf = Buffer.alloc(e - s);
      let bytes = 0;
      for (const part of parts) {
        buf.set(part.data, part.at);
        bytes += part.data.length;
      }
      return { buf, bytes };
    });
  };
  const readAhead = (upTo: number) => {
    while (aheadNext < Math.min(upTo, chunkCount)) {
      const ci = aheadNext++;
      const p = readChunk(ci); // a run moves aheadNext past itself
      if (!p) continue;
      p.catch(() => undefined); // awaited (and rethrown) when its chunk comes
      reads.set(ci, p);
    }
  };

  for (let first = 0; first < chunkCount; first += CHUNKS_PER_PAGE) {
    const count = Math.min(CHUNKS_PER_PAGE, chunkCount - first);
    const ids: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(Math.max(0, count));
    const saves: Promise<unknown>[] = [];
    const parentIds = parentPage ? await parentPage(first) : undefined;
    for (let i = 0; i < count; i++) {
      opts.signal?.throwIfAborted();
      readAhead(first + i + 1 + readAheadChunks);
      const pending = reads.get(first + i);
      if (!pending) continue; // nothing used here
      reads.delete(first + i);
      const { buf, bytes } = await pending;
      bytesRead += bytes;
      // The worker tells zero, unchanged and changed chunks apart and seals what must be stored
      // (chunk-sealer.ts); the chunk's buffer moves to it. A parent chunk that is not stored (a
      // damaged repository) is no comparison: the chunk is stored again, which heals it.
      const parentId = parentIds?.[i];
      const known = parentId !== undefined && repo.hasBlob(parentId);
      const baseId = known ? deltaBase(repo, parentId) : undefined;
      const save = sealer.seal({ data: buf, ...(known ? { parentId } : {}), ...(baseId ? { base: { id: baseId } } : {}) }).then(async (r) => {
        if (r.kind === 'zero') return;
        ids[i] = r.id;
        chunksStored++;
        if (r.kind === 'same') return;
        const s =
          r.kind === 'sealed'
            ? { added: (await repo.saveSealedBlob(r.type, r.id, r.env, r.rawLength, r.base)).added, delta: r.type === BlobType.delta }
            : await saveChanged(repo, sealer, r.data, r.id, baseId!);
        if (s.added) chunksNew++;
        if (s.added && s.delta) chunksDelta++;
      });
      // A failed save (destination full, crash) is rethrown where it is awaited; the others in
      // flight fail the same way and must not become unhandled rejections that kill the process.
      save.catch(() => undefined);
      saves.push(save);
      if (saves.length >= savesInFlight) await saves.shift();
      opts.onProgress?.({ bytesDone: bytesRead, bytesTotal, bytesStored: repo.bytesWritten - written0 });
    }
    await Promise.all(saves);
    const page = await repo.saveBlob(BlobType.tree, encodePage(first, ids));
    pages.push(toHex(page.id));
  }

  const manifest: ImageManifest = {
    version: 1,
    kind: 'disk-image',
    size,
    chunkSize,
    chunksPerPage: CHUNKS_PER_PAGE,
    pages,
    ...describe,
    bytesUsed: bytesTotal,
  };
  const m = await repo.saveBlob(BlobType.tree, Buffer.from(JSON.stringify(manifest)));
  await repo.flush();
  return { manifestId: toHex(m.id), manifest, bytesRead, chunksStored, chunksNew, chunksDelta, bytesAdded: repo.bytesWritten - written0 };
}

/** The partition table's disk id (MBR signature or GPT disk GUID) when it names a drive: not all zeros. */
function diskIdOf(table: ImageManifest['table']): string | undefined {
  return table.id !== undefined && /[1-9a-f]/i.test(table.id) ? table.id : undefined;
}

/**
 * The previous image of a drive, whose chunks are the bases of the next image's deltas: the latest
 * image from this computer of the same path, or else the latest of a drive of the same size with
 * the same partition table id (an external drive that came back under another name). Only the
 * newest few candidates' manifests are read for the second rule. With `before` (an import of an older backup), only images taken before that time count.
 */
export async function previousImage(repo: Repository, host: string, path: string, size: number, table: ImageManifest['table'], before?: string): Promise<{ id: Hex; snapshot: Snapshot } | undefined> {
  const images = (await repo.listSnapshots(() => undefined)).filter((s) => s.snapshot.kind === 'image' && s.snapshot.host === host && (before === undefined || s.snapshot.time < before));
  const samePath = images.filter((s) => s.snapshot.paths[0] === path).pop();
  const diskId = diskIdOf(table);
  if (samePath || diskId === undefined) return samePath;
  for (const s of images.filter((c) => c.snapshot.summary?.['size'] === size).reverse().slice(0, 5)) {
    try {
      const m = await loadManifest(repo, s.snapshot.root);
      if (m.table.kind === table.kind && diskIdOf(m.table) === diskId) return s;
    } catch {
      // an unreadable candidate is no parent
    }
  }
  return undefined;
}

export async function loadManifest(repo: Repository, rootHex: string): Promise<ImageManifest> {
  const raw = await repo.loadBlob(Buffer.from(rootHex, 'hex'));
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(raw).toString('utf8'));
  } catch {
    throw new LifeboatError('corrupt', 'The image manifest is damaged (not valid JSON).');
  }
  return validateManifest(v);
}

/** Calls `onChunk(index, id | undefined)` for every chunk of the drive, in order. */
export async function forEachChunk(
  repo: Repository,
  m: ImageManifest,
  onChunk: (index: number, id: Buffer | undefined) => Promise<void> | void,
): Promise<void> {
  const chunkCount = Math.ceil(m.size / m.chunkSize);
  for (let p = 0; p < m.pages.length; p++) {
    const first = p * m.chunksPerPage;
    const page = decodePage(await repo.loadBlob(Buffer.from(m.pages[p]!, 'hex')), first, m.chunksPerPage);
    if (page.ids.length !== Math.min(m.chunksPerPage, chunkCount - first)) throw new LifeboatError('corrupt', 'A chunk map page of this image has the wrong length.');
    for (let i = 0; i < page.ids.length; i++) await onChunk(first + i, page.ids[i]);
  }
}

/** Blob ids an image snapshot needs (for check and prune). */
export async function imageReferences(repo: Repository, rootHex: string, visit: (id: Uint8Array) => boolean): Promise<void> {
  if (!visit(Buffer.from(rootHex, 'hex'))) return;
  const m = await loadManifest(repo, rootHex);
  const chunkCount = Math.ceil(m.size / m.chunkSize);
  for (let p = 0; p < m.pages.length; p++) {
    const pid = Buffer.from(m.pages[p]!, 'hex');
    if (!visit(pid)) continue;
    const page = decodePage(await repo.loadBlob(pid), p * m.chunksPerPage, Math.min(m.chunksPerPage, chunkCount - p * m.chunksPerPage));
    for (const id of page.ids) if (id) visit(id);
  }
}

/** Where an image is written: a file (written sparse) or a block device. */
export interface ImageWriter {
  readonly size: number;
  /** True for plain files: chunks that are zero are left as holes instead of written. */
  readonly sparse: boolean;
  write(offset: number, data: Uint8Array): Promise<void>;
  read(offset: number, length: number): Promise<Uint8Array>;
  sync(): Promise<void>;
}

export interface RestoreImageResult {
  readonly bytesWritten: number;
  readonly chunksWritten: number;
  readonly verified: boolean;
}

/** A partition left out of an image, as restored: empty, and formatted when Lifeboat can write its filesystem. */
export interface LeftOutPartition {
  readonly partition: ImagePartition;
  /** The filesystem it now holds, empty; undefined: none (its first and last MiB are zeros). */
  readonly formatted?: 'fat32';
}

/**
 * After writeImage: each partition the image left out that held FAT gets an empty FAT32 with its
 * label (fat-writer.ts), so it mounts at once, ready for the files of a file backup; the others
 * stay blank. FAT on 512-byte sectors only, from about 33 MB to 2 TB (what FAT32 spans).
 */
export async function formatLeftOut(m: Pick<ImageManifest, 'partitions' | 'table'>, target: ImageWriter): Promise<LeftOutPartition[]> {
  const out: LeftOutPartition[] = [];
  const sectorSize = typeof m.table['sectorSize'] === 'number' ? m.table['sectorSize'] : 512;
  for (const p of m.partitions) {
    if (p.method !== 'excluded') continue;
    const fat = p.filesystem?.startsWith('fat') === true && sectorSize === 512 && p.start % 512 === 0 && p.start + p.size <= target.size;
    const done =
      fat &&
      (await writeEmptyFat32({ size: p.size, hiddenSectors: p.start / 512, label: p.label ?? '', volumeId: randomBytes(4).readUInt32LE(0) }, async (offset, data) => {
        // A fresh file is zeros already; a device may hold anything, so its zeros are written too.
        if (!target.sparse || data.some((b) => b !== 0)) await target.write(p.start + offset, data);
      }));
    out.push({ partition: p, ...(done ? { formatted: 'fat32' as const } : {}) });
  }
  await target.sync();
  return out;
}

/** Bytes zeroed at each end of a left-out partition on restore, so no filesystem signature of the target's old contents survives there. */
const LEFT_OUT_EDGE = 1024 * 1024;

/**
 * Whether chunk `i` of `m` is left unwritten on restore: absent, and wholly inside a left-out
 * partition away from its first and last LEFT_OUT_EDGE bytes. Its content on the target does not
 * matter (the partition is restored empty), so a 600 GB partition left out costs no 600 GB of zeros.
 */
export function unwrittenChunk(m: Pick<ImageManifest, 'partitions' | 'chunkSize'>): (i: number, id: Uint8Array | undefined) => boolean {
  const inner = m.partitions.filter((p) => p.method === 'excluded').map((p) => ({ start: p.start + LEFT_OUT_EDGE, end: p.start + p.size - LEFT_OUT_EDGE }));
  return (i, id) => id === undefined && inner.some((r) => i * m.chunkSize >= r.start && (i + 1) * m.chunkSize <= r.end);
}

/**
 * Writes every chunk of the image at its offset; zero chunks become holes (files) or zeros
 * (devices), except the inside of left-out partitions (unwrittenChunk), which a device keeps as it
 * was. With verify, reads back what was written and compares ids.
 */
export async function writeImage(
  repo: Repository,
  m: ImageManifest,
  target: ImageWriter,
  opts: { verify?: boolean; signal?: AbortSignal; onProgress?: (p: ImageProgress) => void } = {},
): Promise<RestoreImageResult> {
  let bytesWritten = 0;
  let chunksWritten = 0;
  const zero = Buffer.alloc(m.chunkSize);
  // Progress counts the work: every chunk, or on a sparse target only the stored ones (counted
  // first from the chunk map, so that skipped zeros neither jump the percentage nor the rate).
  const unwritten = unwrittenChunk(m);
  let bytesTotal = m.size;
  let bytesDone = 0;
  if (opts.onProgress) {
    bytesTotal = 0;
    await forEachChunk(repo, m, (i, id) => {
      if (id || (!target.sparse && !unwritten(i, id))) bytesTotal += Math.min(m.chunkSize, m.size - i * m.chunkSize);
    });
  }
  // Fetch a few chunks ahead while the target is written in order.
  const loads: { offset: number; len: number; data: Promise<Uint8Array> | undefined }[] = [];
  const drain = async (keep: number) => {
    while (loads.length > keep) {
      const l = loads.shift()!;
      opts.signal?.throwIfAborted();
      if (l.data) {
        const d = await l.data;
        if (d.length !== l.len) throw new LifeboatError('corrupt', `A chunk of this image has ${d.length} bytes where ${l.len} were expected; the repository is damaged.`);
        await target.write(l.offset, d);
        bytesWritten += d.length;
        bytesDone += l.len;
        chunksWritten++;
      } else if (!target.sparse) {
        await target.write(l.offset, zero.subarray(0, l.len));
        bytesWritten += l.len;
        bytesDone += l.len;
      } else continue;
      opts.onProgress?.({ bytesDone, bytesTotal, bytesStored: bytesWritten });
    }
  };
  // Read through the restore planner: the chunks asked for meanwhile come pack by pack. From a
  // network store many are asked ahead (16 MiB), so each pack costs a request or two, not one per chunk.
  const reader = repo.packReader({ budget: 32 * 1024 * 1024 });
  const ahead = repo.remote ? 256 : 6;
  await forEachChunk(repo, m, async (i, id) => {
    const offset = i * m.chunkSize;
    const len = Math.min(m.chunkSize, m.size - offset);
    if (unwritten(i, id)) return;
    const data = id ? repo.loadPlanned(reader, id) : undefined;
    data?.catch(() => undefined); // awaited (and rethrown) in turn by drain
    loads.push({ offset, len, data });
    await drain(ahead);
  });
  await drain(0);
  await target.sync();

  if (opts.verify) {
    await forEachChunk(repo, m, async (i, id) => {
      opts.signal?.throwIfAborted();
      if (unwritten(i, id)) return;
      const offset = i * m.chunkSize;
      const len = Math.min(m.chunkSize, m.size - offset);
      const back = Buffer.from(await target.read(offset, len));
      const ok = id ? repo.blobId(back).equals(id) : back.equals(zero.subarray(0, len));
      if (!ok) {
        throw new LifeboatError('io', `Verification failed: the target does not hold what was written at byte ${offset}. The drive may be failing; try another one.`);
      }
    });
  }
  return { bytesWritten, chunksWritten, verified: opts.verify === true };
}
