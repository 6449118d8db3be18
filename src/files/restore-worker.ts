/**
 * Worker thread of the restorer (jobs in restore-workers.ts), with synchronous calls: opens a
 * sealed chunk (read from its pack file, or handed over), decrypts, decompresses and checks it
 * against its id, then either creates a single-chunk file (O_CREAT|O_EXCL|O_NOFOLLOW, at a path
 * the main thread chose inside the target) and gives it its owner, mode, extended attributes and
 * times, or writes one chunk of a larger file into the descriptor the main thread opened.
 * A restore is bound by exactly this work; two workers do it on two cores.
 */
import { closeSync, constants as C, fchmodSync, fchownSync, openSync, readSync } from 'node:fs';
import { workerData } from 'node:worker_threads';
import { createZstdCodec } from '../repo/compress.js';
import { chunkId, type MasterKeys } from '../repo/crypto.js';
import { decodePayload } from '../repo/envelope-file.js';
import { openBlob } from '../repo/pack.js';
import { LifeboatError, errnoCode } from '../util/errors.js';
import { serveBatches } from '../util/worker-pool.js';
import { platform } from './platform/platform.js';
import { writeSkippingHoles, type ChunkSource, type RestoreChunkJob, type RestoreFileJob, type RestoreFileReply } from './restore-workers.js';

const wd = workerData as { encKey: Uint8Array; idKey: Uint8Array };
const keys: MasterKeys = { encKey: Buffer.from(wd.encKey), idKey: Buffer.from(wd.idKey), macKey: Buffer.alloc(32) };
const codec = createZstdCodec();
const plat = platform();
const EMPTY: Uint8Array = new Uint8Array(0);

/** Pack files kept open, least recently used first (packs never change once written). */
const OPEN_PACKS = 16;
const packFds = new Map<string, number>();

function packFd(file: string, packName: string): number {
  let fd = packFds.get(file);
  if (fd !== undefined) {
    packFds.delete(file);
  } else {
    try {
      fd = openSync(file, C.O_RDONLY);
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') throw new LifeboatError('not-found', `The repository file ${packName} does not exist; run "lifeboat check" to see what is affected.`);
      throw e;
    }
    if (packFds.size >= OPEN_PACKS) {
      const [oldest, ofd] = packFds.entries().next().value as [string, number];
      packFds.delete(oldest);
      closeSync(ofd);
    }
  }
  packFds.set(file, fd);
  return fd;
}

function envelope(src: ChunkSource): Uint8Array {
  if ('env' in src) return src.env;
  const fd = packFd(src.file, src.packName);
  const buf = Buffer.allocUnsafeSlow(src.length);
  let got = 0;
  while (got < src.length) {
    const n = readSync(fd, buf, got, src.length - got, src.offset + got);
    if (n === 0) {
      throw new LifeboatError('corrupt', `The repository file ${src.packName} ended after ${src.offset + got} bytes while Lifeboat was reading up to byte ${src.offset + src.length}; it has been truncated or damaged.`);
    }
    got += n;
  }
  return buf;
}

/** The chunk's plaintext, checked against its id. */
async function open(src: ChunkSource): Promise<Uint8Array> {
  const what = `A data block in pack ${src.packName}`;
  const id = Buffer.from(src.id, 'hex');
  const data = await decodePayload(codec, openBlob(keys.encKey, src.type, id, envelope(src), what), what, src.rawLength);
  if (!chunkId(keys, data).equals(id)) throw new LifeboatError('corrupt', `${what} does not match its id; the pack is damaged.`);
  return data;
}

function damaged(seq: number, e: unknown): RestoreFileReply {
  if (e instanceof LifeboatError) return { seq, status: 'corrupt', message: e.message, ...(e.code === 'not-found' ? { notFound: true } : {}) };
  throw e;
}

async function writeChunk(m: RestoreChunkJob): Promise<RestoreFileReply> {
  let data: Uint8Array;
  try {
    data = await open(m.blob);
  } catch (e) {
    return damaged(m.seq, e);
  }
  try {
    writeSkippingHoles(m.fd, data, m.pos, m.holes);
  } catch (e) {
    return { seq: m.seq, status: 'failed', code: errnoCode(e) ?? String(e) };
  }
  return { seq: m.seq, status: 'ok', bytes: data.length, xattrErrors: [] };
}

async function writeFile(m: RestoreFileJob): Promise<RestoreFileReply> {
  let data = EMPTY;
  if (m.blob) {
    try {
      data = await open(m.blob);
    } catch (e) {
      return damaged(m.seq, e);
    }
  }
  const path = Buffer.from(m.path, 'latin1');
  let fd: number;
  try {
    fd = openSync(path, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
  } catch (e) {
    return { seq: m.seq, status: 'failed', code: errnoCode(e) ?? String(e) };
  }
  let chownError: string | undefined;
  try {
    writeSkippingHoles(fd, data, 0, []);
    if (m.owner) {
      try {
        fchownSync(fd, m.owner.uid, m.owner.gid);
      } catch (e) {
        chownError = errnoCode(e) ?? String(e);
      }
    }
    fchmodSync(fd, m.mode);
  } catch (e) {
    return { seq: m.seq, status: 'failed', code: errnoCode(e) ?? String(e) };
  } finally {
    closeSync(fd);
  }
  const xattrErrors: [string, string][] = [];
  for (const [name, value] of m.xattrs) {
    try {
      plat.setXattr(path, name, Buffer.from(value, 'latin1'));
    } catch (e) {
      xattrErrors.push([name, errnoCode(e) ?? String(e)]);
    }
  }
  try {
    await plat.setTimes(path, m.atime, m.mtime);
  } catch (e) {
    return { seq: m.seq, status: 'failed', code: errnoCode(e) ?? String(e) };
  }
  return { seq: m.seq, status: 'ok', bytes: data.length, ...(chownError !== undefined ? { chownError } : {}), xattrErrors };
}

serveBatches<RestoreFileJob | RestoreChunkJob, RestoreFileReply>(
  async (m) => ({ reply: await (m.kind === 'chunk' ? writeChunk(m) : writeFile(m)), bytes: m.blob?.rawLength ?? 0 }),
  (m, e) => ({ seq: m.seq, status: 'failed', code: e instanceof Error ? e.message : String(e) }),
);
