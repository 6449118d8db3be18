/**
 * A BlockSource over an image snapshot stored in the repository: random-access reads that fetch
 * only the chunks they touch. Chunk map pages are loaded when first needed; absent chunks read as
 * zeros (FORMAT.md §11); decoded chunks are kept in a small LRU cache. The whole image is never
 * read or held in memory: memory is bounded by the cache (16 MiB of chunks) plus one read's range.
 */
import { LifeboatError } from '../util/errors.js';
import { decodePage, type ImageManifest } from './manifest.js';
import type { BlockSource } from './source.js';

/** The one thing this source needs from a repository (kept narrow: it cannot write by mistake). */
export interface BlobLoader {
  loadBlob(id: Uint8Array): Promise<Uint8Array>;
  /**
   * Blobs likely to be loaded soon (the chunks after one just missed: a file, an inode table, a
   * folder of small files lies in consecutive chunks), for a loader that reads them with the
   * miss at little cost (browse.ts: the same pack span, kept sealed until asked for).
   */
  prefetch?(ids: readonly Uint8Array[]): void;
}

/** Chunks after a missed one offered to the loader's prefetch. */
const PREFETCH_CHUNKS = 16;
/** Runs of chunks read in order followed at once (files copied side by side, their metadata). */
const PREFETCH_RUNS = 4;

/** Default cache: 16 MiB of decoded chunks (64 chunks of 256 KiB, 256 of 64 KiB). */
const CACHE_BYTES = 16 * 1024 * 1024;

export interface SnapshotSourceStats {
  /** Chunks fetched from the repository (cache misses on present chunks). */
  chunkLoads: number;
  /** Chunk map pages fetched. */
  pageLoads: number;
  /** Reads served from the cache. */
  cacheHits: number;
  /** Chunks of the whole image. */
  readonly chunkCount: number;
}

export interface SnapshotSource extends BlockSource {
  readonly stats: SnapshotSourceStats;
}

export function snapshotSource(repo: BlobLoader, m: ImageManifest, opts: { cacheChunks?: number } = {}): SnapshotSource {
  const chunkCount = Math.ceil(m.size / m.chunkSize);
  const cacheMax = Math.max(2, opts.cacheChunks ?? Math.max(16, Math.floor(CACHE_BYTES / m.chunkSize)));
  const pages = new Map<number, Promise<(Buffer | undefined)[]>>();
  // Insertion order of a Map is its LRU order: a hit is deleted and re-inserted.
  const cache = new Map<number, Promise<Uint8Array | undefined>>();
  const stats: SnapshotSourceStats = { chunkLoads: 0, pageLoads: 0, cacheHits: 0, chunkCount };
  // Where each run of chunks read in order has been offered to prefetch up to (exclusive).
  const aheadEnds: number[] = [];

  /**
   * The chunks after `i` to offer to prefetch. Offering the next PREFETCH_CHUNKS at every miss
   * would, once a run is under way, offer one new chunk per miss: each went out as a request of its
   * own whenever the loader's reads were idle (a request per chunk, 74 to 116 for the same copy-out
   * as timing varied). A run is topped up only once half of what was offered is used, so each
   * prefetch asks for about PREFETCH_CHUNKS / 2 chunks, read together.
   */
  const offerAfter = (i: number, ids: (Buffer | undefined)[]): Uint8Array[] => {
    const limit = Math.min(i + 1 + PREFETCH_CHUNKS, (Math.floor(i / m.chunksPerPage) + 1) * m.chunksPerPage, chunkCount);
    let from = i + 1;
    const k = aheadEnds.findIndex((e) => e > i && e <= limit);
    if (k >= 0) {
      if (aheadEnds[k]! - from > PREFETCH_CHUNKS / 2) return [];
      from = aheadEnds[k]!;
      aheadEnds.splice(k, 1);
    }
    aheadEnds.push(limit);
    if (aheadEnds.length > PREFETCH_RUNS) aheadEnds.shift();
    const next: Uint8Array[] = [];
    for (let j = from; j < limit; j++) {
      const nid = ids[j % m.chunksPerPage];
      if (nid && !cache.has(j)) next.push(nid);
    }
    return next;
  };

  const page = (p: number): Promise<(Buffer | undefined)[]> => {
    let got = pages.get(p);
    if (!got) {
      const first = p * m.chunksPerPage;
      const want = Math.min(m.chunksPerPage, chunkCount - first);
      const hex = m.pages[p];
      if (hex === undefined) throw new LifeboatError('corrupt', 'The image manifest lacks a chunk map page; the repository is damaged.');
      stats.pageLoads++;
      got = repo.loadBlob(Buffer.from(hex, 'hex')).then((b) => {
        const d = decodePage(b, first, m.chunksPerPage);
        if (d.ids.length !== want) throw new LifeboatError('corrupt', 'A chunk map page of this image has the wrong length.');
        return d.ids;
      });
      got.catch(() => pages.delete(p));
      pages.set(p, got);
      // Pages are small (an id per chunk, 2 GiB of drive each); keep at most a few hundred.
      if (pages.size > 256) pages.delete(pages.keys().next().value!);
    }
    return got;
  };

  const chunk = (i: number): Promise<Uint8Array | undefined> => {
    const hit = cache.get(i);
    if (hit) {
      stats.cacheHits++;
      cache.delete(i);
      cache.set(i, hit);
      return hit;
    }
    const len = Math.min(m.chunkSize, m.size - i * m.chunkSize);
    const p = page(Math.floor(i / m.chunksPerPage)).then(async (ids) => {
      const id = ids[i % m.chunksPerPage];
      if (!id) return undefined;
      if (repo.prefetch) {
        const next = offerAfter(i, ids);
        if (next.length > 0) repo.prefetch(next);
      }
      stats.chunkLoads++;
      const data = await repo.loadBlob(id);
      if (data.length !== len) throw new LifeboatError('corrupt', `A chunk of this image has ${data.length} bytes where ${len} were expected; the repository is damaged.`);
      return data;
    });
    p.catch(() => cache.delete(i));
    cache.set(i, p);
    while (cache.size > cacheMax) cache.delete(cache.keys().next().value!);
    return p;
  };

  return {
    size: m.size,
    stats,
    async read(offset, length) {
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > m.size) {
        throw new LifeboatError('invalid-argument', `Read of ${length} bytes at ${offset} is outside the image (${m.size} bytes).`);
      }
      const out = new Uint8Array(length);
      const end = offset + length;
      // Every chunk of the range is requested at once, so a long read fetches them in parallel.
      const parts: { pos: number; n: number; cStart: number; data: Promise<Uint8Array | undefined> }[] = [];
      for (let pos = offset; pos < end;) {
        const i = Math.floor(pos / m.chunkSize);
        const cStart = i * m.chunkSize;
        const n = Math.min(end, cStart + m.chunkSize) - pos;
        const data = chunk(i);
        data.catch(() => undefined);
        parts.push({ pos, n, cStart, data });
        pos += n;
      }
      for (const p of parts) {
        const data = await p.data;
        if (data) out.set(data.subarray(p.pos - p.cStart, p.pos - p.cStart + p.n), p.pos - offset);
      }
      return out;
    },
    close: async () => {
      cache.clear();
      pages.clear();
    },
  };
}
