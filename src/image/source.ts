/**
 * Block sources: random-access, read-only views of a drive or a disk image file. Every parser of
 * the image layer reads through this interface, so the same code works on a device, an image file,
 * a buffer in a test, or (later) an image stored in the repository.
 */
import { promises as fs, constants as C } from 'node:fs';
import { LifeboatError, errnoCode } from '../util/errors.js';
import { currentPlatform, type Platform } from './platform/index.js';

export interface BlockSource {
  /** Size in bytes; fixed for the life of the source. */
  readonly size: number;
  /**
   * Exactly `length` bytes at `offset`, in a buffer that belongs to the caller (fresh for each
   * call: the imager hands it to a worker thread). The range must lie within [0, size); a range outside it
   * is a caller bug and rejects with an 'invalid-argument' error. A file or device source turns
   * unreadable sectors into zeros after retrying (see OpenSourceOptions.onUnreadable).
   */
  read(offset: number, length: number): Promise<Uint8Array>;
  /**
   * Optional: consecutive ranges from `offset` on, of the given lengths, each in a fresh buffer of
   * its own as read() gives, fetched with one request where the source can (a vectored read). The
   * imager reads runs of chunks this way: a request per 64 KiB chunk cost more than the copy.
   */
  readRun?(offset: number, lengths: readonly number[]): Promise<Uint8Array[]>;
  close(): Promise<void>;
}

export interface FileSource extends BlockSource {
  readonly path: string;
  readonly isDevice: boolean;
}

export interface OpenSourceOptions {
  readonly platform?: Platform;
  /** Called once per run of consecutive unreadable sectors, after retries; those bytes read as zeros. */
  readonly onUnreadable?: (start: number, length: number) => void;
  /** Attempts per sector before it counts as unreadable (default 3). */
  readonly attempts?: number;
  /** Sector size for the retry granularity (default 512). */
  readonly sectorSize?: number;
}

function checkRange(size: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new LifeboatError('invalid-argument', `Read of ${length} bytes at ${offset} is outside the source (${size} bytes).`);
  }
}

/** A source over a byte array (tests, fuzzing, small in-memory images). */
export function memorySource(bytes: Uint8Array): BlockSource {
  return {
    size: bytes.length,
    async read(offset, length) {
      checkRange(bytes.length, offset, length);
      return Uint8Array.prototype.slice.call(bytes, offset, offset + length); // a copy, also for a Buffer
    },
    close: async () => undefined,
  };
}

/** A window [offset, offset + size) of another source, presented as a source of its own. */
export function sliceSource(inner: BlockSource, offset: number, size: number): BlockSource {
  checkRange(inner.size, offset, size);
  return {
    size,
    read(o, l) {
      checkRange(size, o, l);
      return inner.read(offset + o, l);
    },
    close: async () => undefined,
  };
}

/**
 * A source over a positional read function `readAt(buf, position) → bytesRead`. A failed read is
 * retried sector by sector; sectors that stay unreadable are reported (adjacent ones as one range)
 * and come back as zeros, so one bad sector costs 512 bytes rather than the whole drive. With
 * `readvAt` (a positional vectored read into several buffers), readRun makes one request per run;
 * a run that fails or comes back short is read again piece by piece through read().
 */
export function sourceOverReadAt(
  path: string,
  size: number,
  isDevice: boolean,
  readAt: (buf: Uint8Array, position: number) => Promise<number>,
  close: () => Promise<void>,
  opts: OpenSourceOptions = {},
  readvAt?: (bufs: Uint8Array[], position: number) => Promise<number>,
): FileSource {
  const attempts = Math.max(1, opts.attempts ?? 3);
  const sector = opts.sectorSize ?? 512;
  const readExact = async (buf: Uint8Array, offset: number) => {
    let got = 0;
    while (got < buf.length) {
      const n = await readAt(buf.subarray(got), offset + got);
      if (n <= 0) throw new LifeboatError('io', `Short read from ${path} at byte ${offset + got}.`);
      got += n;
    }
  };
  const source: FileSource = {
    path,
    size,
    isDevice,
    async read(offset, length) {
      checkRange(size, offset, length);
      // Not zero-filled: every byte is read, or zeroed below when its sector cannot be read.
      const buf = Buffer.allocUnsafeSlow(length);
      try {
        await readExact(buf, offset);
        return buf;
      } catch {
        /* fall through to the per-sector retry */
      }
      let badStart = -1;
      const flush = (end: number) => {
        if (badStart >= 0) opts.onUnreadable?.(badStart, end - badStart);
        badStart = -1;
      };
      // Sector-aligned pieces (absolute alignment, so a bad sector is reported the same way by every read).
      let o = offset;
      while (o < offset + length) {
        const end = Math.min(offset + length, (Math.floor(o / sector) + 1) * sector);
        const part = buf.subarray(o - offset, end - offset);
        let ok = false;
        for (let a = 0; a < attempts && !ok; a++) {
          try {
            await readExact(part, o);
            ok = true;
          } catch {
            /* retry */
          }
        }
        if (ok) flush(o);
        else {
          part.fill(0);
          if (badStart < 0) badStart = o;
        }
        o = end;
      }
      flush(offset + length);
      return buf;
    },
    ...(readvAt ? { readRun } : {}),
    close,
  };
  return source;

  async function readRun(offset: number, lengths: readonly number[]): Promise<Uint8Array[]> {
    const total = lengths.reduce((a, b) => a + b, 0);
    checkRange(size, offset, total);
    const bufs = lengths.map((n) => Buffer.allocUnsafeSlow(n));
    try {
      if ((await readvAt!(bufs, offset)) === total) return bufs;
    } catch {
      /* read again below, piece by piece, with the per-sector retry */
    }
    let at = offset;
    return Promise.all(lengths.map((n) => source.read((at += n) - n, n)));
  }
}

function openError(e: unknown, path: string): LifeboatError {
  const code = errnoCode(e);
  if (code === 'ENOENT') return new LifeboatError('not-found', `${path} does not exist. Check the drive name (for example /dev/sdb) or the file path.`);
  if (code === 'EACCES' || code === 'EPERM') return new LifeboatError('io', `Lifeboat is not allowed to read ${path}. Run it as administrator (root).`);
  if (code === 'EBUSY') return new LifeboatError('io', `${path} is busy (in use by the system). Unmount its filesystems first.`);
  return new LifeboatError('io', `Cannot open ${path} (${code ?? String(e)}).`, { cause: e });
}

/** Opens a drive (block device) or a disk image file for reading. */
export async function openSource(path: string, opts: OpenSourceOptions = {}): Promise<FileSource> {
  const platform = opts.platform ?? currentPlatform();
  let h: fs.FileHandle;
  try {
    h = await fs.open(path, C.O_RDONLY);
  } catch (e) {
    throw openError(e, path);
  }
  try {
    const st = await h.stat();
    let size: number | undefined;
    if (st.isFile()) size = st.size;
    else if (st.isBlockDevice()) size = await platform.deviceSize(path);
    else throw new LifeboatError('invalid-argument', `${path} is neither a drive nor a disk image file.`);
    if (size === undefined) throw new LifeboatError('io', `Cannot find the size of ${path}.`);
    const handle = h;
    return sourceOverReadAt(
      path,
      size,
      st.isBlockDevice(),
      async (buf, pos) => (await handle.read(buf, 0, buf.length, pos)).bytesRead,
      () => handle.close(),
      opts,
      async (bufs, pos) => (await handle.readv(bufs, pos)).bytesRead,
    );
  } catch (e) {
    await h.close();
    throw e;
  }
}
