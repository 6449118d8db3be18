/**
 * Opening image sources and restore targets with plain node:fs: regular files and block devices
 * alike (a device's size is found by reading its end, which works on Linux, macOS and Windows
 * raw paths without ioctls). Writes to files are sparse: only non-zero chunks are written.
 */
import { promises as fs, constants as C } from 'node:fs';
import { LifeboatError, errnoCode } from '../util/errors.js';
import type { ImageReader, ImageWriter } from './imager.js';

function openError(e: unknown, path: string, forWriting: boolean): LifeboatError {
  const code = errnoCode(e);
  if (code === 'ENOENT') return new LifeboatError('not-found', `${path} does not exist. Check the drive name (for example /dev/sdb) or the file path.`);
  if (code === 'EACCES' || code === 'EPERM') return new LifeboatError('io', `Lifeboat is not allowed to ${forWriting ? 'write to' : 'read'} ${path}. Run it as administrator (root).`);
  if (code === 'EBUSY') return new LifeboatError('io', `${path} is busy (in use by the system). Unmount its filesystems first.`);
  return new LifeboatError('io', `Cannot open ${path} (${code ?? String(e)}).`);
}

/** Size in bytes of an open file or block device. */
async function sizeOf(h: fs.FileHandle): Promise<number> {
  const st = await h.stat();
  if (st.isFile()) return st.size;
  // Block device: stat reports 0. Binary-search the end with 1-byte reads (about 40 reads).
  const one = Buffer.alloc(1);
  const readable = async (off: number) => (await h.read(one, 0, 1, off).catch(() => ({ bytesRead: 0 }))).bytesRead === 1;
  let lo = 0;
  let hi = 512;
  while (await readable(hi - 1)) {
    lo = hi;
    hi *= 2;
    if (hi > 2 ** 52) break;
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (await readable(mid - 1)) lo = mid;
    else hi = mid;
  }
  return lo;
}

export interface OpenedSource extends ImageReader {
  readonly path: string;
  readonly isDevice: boolean;
  close(): Promise<void>;
}

/**
 * Opens a drive or image file for reading. Read errors (bad sectors) are retried, then reported
 * through `onUnreadable` and returned as zeros so the rest of the drive is still saved.
 */
export async function openSource(path: string, onUnreadable?: (start: number, length: number) => void): Promise<OpenedSource> {
  let h: fs.FileHandle;
  try {
    h = await fs.open(path, C.O_RDONLY);
  } catch (e) {
    throw openError(e, path, false);
  }
  const st = await h.stat();
  if (!st.isFile() && !st.isBlockDevice()) {
    await h.close();
    throw new LifeboatError('invalid-argument', `${path} is neither a drive nor a disk image file.`);
  }
  const size = await sizeOf(h);
  return sourceOver(path, size, st.isBlockDevice(), (buf, pos) => h.read(buf, 0, buf.length, pos).then((r) => r.bytesRead), () => h.close(), onUnreadable);
}

/**
 * A source over a positional read function. Read errors (bad sectors) are retried sector by
 * sector, three times each; what stays unreadable is reported and returned as zeros.
 */
export function sourceOver(
  path: string,
  size: number,
  isDevice: boolean,
  readAt: (buf: Buffer, position: number) => Promise<number>,
  close: () => Promise<void>,
  onUnreadable?: (start: number, length: number) => void,
): OpenedSource {
  const readExact = async (buf: Buffer, offset: number) => {
    let got = 0;
    while (got < buf.length) {
      const n = await readAt(buf.subarray(got), offset + got);
      if (n === 0) throw Object.assign(new Error('short read'), { code: 'EIO' });
      got += n;
    }
  };
  return {
    path,
    size,
    isDevice,
    async read(offset: number, length: number): Promise<Uint8Array> {
      const buf = Buffer.alloc(length);
      try {
        await readExact(buf, offset);
        return buf;
      } catch {
        // Retry sector by sector so one bad sector costs 512 bytes, not the whole request.
        for (let o = 0; o < length; o += 512) {
          const n = Math.min(512, length - o);
          const part = buf.subarray(o, o + n);
          let ok = false;
          for (let attempt = 0; attempt < 3 && !ok; attempt++) {
            try {
              await readExact(part, offset + o);
              ok = true;
            } catch {
              /* retry */
            }
          }
          if (!ok) {
            part.fill(0);
            onUnreadable?.(offset + o, n);
          }
        }
        return buf;
      }
    },
    close,
  };
}

export interface OpenedTarget extends ImageWriter {
  readonly path: string;
  readonly isDevice: boolean;
  close(): Promise<void>;
}

/** Opens a restore target. A file is created (or emptied) and sized; a device keeps its size. */
export async function openTarget(path: string, size: number): Promise<OpenedTarget> {
  let isDevice = false;
  try {
    isDevice = (await fs.stat(path)).isBlockDevice();
  } catch (e) {
    if (errnoCode(e) !== 'ENOENT') throw openError(e, path, true);
  }
  let h: fs.FileHandle;
  try {
    h = await fs.open(path, isDevice ? C.O_RDWR : C.O_RDWR | C.O_CREAT, 0o600);
  } catch (e) {
    throw openError(e, path, true);
  }
  let targetSize: number;
  if (isDevice) targetSize = await sizeOf(h);
  else {
    await h.truncate(0); // old contents must not survive in the holes
    await h.truncate(size);
    targetSize = size;
  }
  return {
    path,
    isDevice,
    size: targetSize,
    sparse: !isDevice,
    async write(offset: number, data: Uint8Array) {
      let done = 0;
      while (done < data.length) {
        try {
          const { bytesWritten } = await h.write(data, done, data.length - done, offset + done);
          done += bytesWritten;
        } catch (e) {
          if (errnoCode(e) === 'ENOSPC') throw new LifeboatError('no-space', `The target ${path} is full at byte ${offset + done}. Use a larger drive.`);
          throw new LifeboatError('io', `Writing to ${path} failed at byte ${offset + done} (${errnoCode(e) ?? String(e)}). The drive may be failing.`);
        }
      }
    },
    async read(offset: number, length: number) {
      const buf = Buffer.alloc(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await h.read(buf, got, length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return buf;
    },
    sync: () => h.sync(),
    close: () => h.close(),
  };
}

/** Size of a device or file without keeping it open. */
export async function pathSize(path: string): Promise<number | undefined> {
  let h: fs.FileHandle;
  try {
    h = await fs.open(path, C.O_RDONLY);
  } catch {
    return undefined;
  }
  try {
    return await sizeOf(h);
  } finally {
    await h.close();
  }
}
