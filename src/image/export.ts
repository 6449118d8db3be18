/**
 * Exporting an image snapshot as a file other tools open: a sparse raw file, a dynamic VHD or a
 * dynamic VHDX. The drive is streamed once, in order, with a bounded number of chunks fetched
 * ahead; the file is written under a temporary name and renamed into place only when complete.
 */
import { promises as fs, constants as C } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { LifeboatError, errnoCode } from '../util/errors.js';
import type { Repository } from '../repo/repository.js';
import { forEachChunk, type ImageProgress } from './imager.js';
import type { ImageManifest } from './manifest.js';
import { VhdWriter, type BlockFormatWriter, type ByteSink } from './vhd.js';
import { VhdxWriter } from './vhdx.js';

export type ExportFormat = 'raw' | 'vhd' | 'vhdx';

export function formatFromName(path: string): ExportFormat | undefined {
  const m = /\.(vhdx|vhd|img|raw|bin)$/i.exec(path);
  if (!m) return undefined;
  const ext = m[1]!.toLowerCase();
  return ext === 'vhdx' ? 'vhdx' : ext === 'vhd' ? 'vhd' : 'raw';
}

/** Raw: blocks of zeros become holes of a file already sized to the disk. */
class RawWriter implements BlockFormatWriter {
  constructor(
    private readonly out: ByteSink,
    readonly size: number,
    readonly blockSize: number,
  ) {}
  async writeBlock(index: number, data: Buffer | undefined): Promise<void> {
    if (!data) return;
    const offset = index * this.blockSize;
    await this.out.write(offset, data.subarray(0, Math.min(this.blockSize, this.size - offset)));
  }
  async finish(): Promise<void> {}
}

function isZero(b: Buffer): boolean {
  // Compare 4 bytes at a time; a stored chunk is almost never zero, so this exits early.
  const v = new Uint32Array(b.buffer, b.byteOffset, (b.byteOffset & 3) === 0 ? b.length >>> 2 : 0);
  for (let i = 0; i < v.length; i++) if (v[i] !== 0) return false;
  for (let i = v.length * 4; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * Feeds `writer` every block of the image in order. Chunks are fetched a few ahead (bounded by
 * bytes, not count, so huge chunk sizes cannot blow memory up) and copied into one reused block
 * buffer; a block no stored chunk touches is passed as undefined.
 */
export async function streamBlocks(
  repo: Repository,
  m: ImageManifest,
  writer: BlockFormatWriter,
  opts: { signal?: AbortSignal; onProgress?: (p: ImageProgress) => void; onWritten?: () => number } = {},
): Promise<void> {
  const bs = writer.blockSize;
  const blockCount = Math.ceil(m.size / bs);
  const block = Buffer.alloc(bs);
  let blockIndex = 0;
  let dirty = false;
  const emit = async (upTo: number) => {
    while (blockIndex < upTo) {
      opts.signal?.throwIfAborted();
      await writer.writeBlock(blockIndex, dirty && !isZero(block) ? block : undefined);
      if (dirty) block.fill(0);
      dirty = false;
      blockIndex++;
      opts.onProgress?.({ bytesDone: Math.min(m.size, blockIndex * bs), bytesTotal: m.size, bytesStored: opts.onWritten?.() ?? 0 });
    }
  };
  const place = async (offset: number, len: number, data: Uint8Array | undefined) => {
    if (data && data.length !== len) throw new LifeboatError('corrupt', `A chunk of this image has ${data.length} bytes where ${len} were expected; the repository is damaged.`);
    let pos = offset;
    while (pos < offset + len) {
      const b = Math.floor(pos / bs);
      await emit(b);
      const end = Math.min((b + 1) * bs, offset + len);
      if (data) {
        block.set(data.subarray(pos - offset, end - offset), pos - b * bs);
        dirty = true;
      }
      pos = end;
    }
  };
  const maxAheadBytes = 8 * 1024 * 1024;
  const ahead = Math.max(2, Math.floor(maxAheadBytes / m.chunkSize));
  const loads: { offset: number; len: number; data: Promise<Uint8Array> | undefined }[] = [];
  const drain = async (keep: number) => {
    while (loads.length > keep) {
      const l = loads.shift()!;
      await place(l.offset, l.len, l.data ? await l.data : undefined);
    }
  };
  try {
    await forEachChunk(repo, m, async (i, id) => {
      const offset = i * m.chunkSize;
      const len = Math.min(m.chunkSize, m.size - offset);
      const data = id ? repo.loadBlob(id) : undefined;
      data?.catch(() => undefined); // awaited in drain; keep an early failure from going unhandled
      loads.push({ offset, len, data });
      await drain(ahead);
    });
    await drain(0);
  } finally {
    // Chunks fetched ahead of an error are dropped; their promises already have a handler.
    loads.length = 0;
  }
  await emit(blockCount);
}

export interface ExportResult {
  readonly path: string;
  readonly format: ExportFormat;
  readonly size: number;
  /** Bytes the written file occupies (allocated blocks and structures; raw holes excluded). */
  readonly bytesWritten: number;
  readonly fileSize: number;
}

/** Writes the image as `out`. Refuses to replace an existing file unless `overwrite`. */
export async function exportImage(
  repo: Repository,
  m: ImageManifest,
  format: ExportFormat,
  out: string,
  opts: { overwrite?: boolean; signal?: AbortSignal; onProgress?: (p: ImageProgress) => void } = {},
): Promise<ExportResult> {
  const existing = await fs.stat(out).catch(() => undefined);
  if (existing) {
    if (!existing.isFile()) throw new LifeboatError('invalid-argument', `${out} exists and is not a regular file; choose a file name to export to.`);
    if (!opts.overwrite) throw new LifeboatError('invalid-argument', `${out} already exists. Choose another name, or use --force to replace it.`);
  }
  const tmp = join(dirname(out), `.${basename(out)}.lifeboat-partial`);
  let h: fs.FileHandle;
  try {
    h = await fs.open(tmp, C.O_RDWR | C.O_CREAT | C.O_TRUNC, 0o644);
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'ENOENT') throw new LifeboatError('not-found', `The folder ${dirname(out)} does not exist. Create it first or choose another place.`);
    throw new LifeboatError('io', `Cannot create ${out} (${code ?? String(e)}).`);
  }
  let bytesWritten = 0;
  const sink: ByteSink = {
    async write(offset: number, data: Uint8Array) {
      let done = 0;
      while (done < data.length) {
        try {
          done += (await h.write(data, done, data.length - done, offset + done)).bytesWritten;
        } catch (e) {
          if (errnoCode(e) === 'ENOSPC') throw new LifeboatError('no-space', `The drive holding ${out} is full. Free space or export to another drive.`);
          if (errnoCode(e) === 'EFBIG') throw new LifeboatError('no-space', `The drive holding ${out} cannot hold a file this large (FAT32 allows 4 GiB). Export to an NTFS, exFAT or ext4 drive.`);
          throw new LifeboatError('io', `Writing ${out} failed at byte ${offset + done} (${errnoCode(e) ?? String(e)}).`);
        }
      }
      bytesWritten += data.length;
    },
  };
  let ok = false;
  try {
    let writer: BlockFormatWriter;
    if (format === 'vhd') writer = new VhdWriter(sink, m.size);
    else if (format === 'vhdx') writer = new VhdxWriter(sink, m.size);
    else {
      await h.truncate(m.size);
      writer = new RawWriter(sink, m.size, m.chunkSize);
    }
    await streamBlocks(repo, m, writer, { ...opts, onWritten: () => bytesWritten });
    await writer.finish();
    await h.sync();
    const fileSize = (await h.stat()).size;
    await h.close();
    await fs.rename(tmp, out);
    ok = true;
    return { path: out, format, size: m.size, bytesWritten, fileSize };
  } finally {
    if (!ok) {
      await h.close().catch(() => undefined);
      await fs.rm(tmp, { force: true }).catch(() => undefined);
    }
  }
}
