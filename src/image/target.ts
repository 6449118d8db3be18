/**
 * Opening restore targets with plain node:fs: regular files and block devices alike (a device's
 * size is found by reading its end, which works on any OS's raw device paths without ioctls).
 * Writes to files are sparse: only non-zero chunks are written. Sources are in source.ts.
 */
import { promises as fs, constants as C } from 'node:fs';
import { LifeboatError, errnoCode } from '../util/errors.js';
import type { ImageWriter } from './imager.js';
import { probeSizeByReading } from './platform/index.js';

function openError(e: unknown, path: string, forWriting: boolean): LifeboatError {
  const code = errnoCode(e);
  if (code === 'ENOENT') return new LifeboatError('not-found', `${path} does not exist. Check the drive name (for example /dev/sdb) or the file path.`);
  if (code === 'EACCES' || code === 'EPERM') return new LifeboatError('io', `Lifeboat is not allowed to ${forWriting ? 'write to' : 'read'} ${path}. Run it as administrator (root).`);
  if (code === 'EBUSY') return new LifeboatError('io', `${path} is busy (in use by the system). Unmount its filesystems first.`);
  return new LifeboatError('io', `Cannot open ${path} (${code ?? String(e)}).`);
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
  if (isDevice) targetSize = await probeSizeByReading(h);
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
