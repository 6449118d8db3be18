/**
 * Worker thread of the restorer (jobs in restore-workers.ts), with synchronous calls: opens a
 * sealed chunk (read from its pack through a LocalStore of its own, or handed over), decrypts, decompresses and checks it
 * against its id, then either creates a single-chunk file (O_CREAT|O_EXCL|O_NOFOLLOW, at a path
 * the main thread chose inside the target) and gives it its owner, mode, extended attributes and
 * times, or writes one chunk of a larger file into the descriptor the main thread opened.
 * A restore is bound by exactly this work; two workers do it on two cores.
 */
import { closeSync, constants as C, fchmodSync, fchownSync, openSync } from 'node:fs';
import { workerData } from 'node:worker_threads';
import { createZstdCodec } from '../repo/compress.js';
import type { MasterKeys } from '../repo/crypto.js';
import { decodeSealedBlob } from '../repo/pack-check.js';
import { LifeboatError, errnoCode } from '../util/errors.js';
import { serveBatches } from '../util/worker-pool.js';
import { LocalStore } from '../store/local.js';
import { platform } from './platform/platform.js';
import { writeSkippingHoles, type ChunkSource, type RestoreChunkJob, type RestoreFileJob, type RestoreFileReply } from './restore-workers.js';

const wd = workerData as { encKey: Uint8Array; idKey: Uint8Array };
const keys: MasterKeys = { encKey: Buffer.from(wd.encKey), idKey: Buffer.from(wd.idKey), macKey: Buffer.alloc(32) };
const codec = createZstdCodec();
const plat = platform();
const EMPTY: Uint8Array = new Uint8Array(0);

function envelope(src: ChunkSource): Promise<Uint8Array> | Uint8Array {
  return 'env' in src ? src.env : LocalStore.at(src.root).get(src.packName, src.offset, src.length);
}

/** The chunk's plaintext, checked against its id. */
async function open(src: ChunkSource): Promise<Uint8Array> {
  return decodeSealedBlob(codec, keys, src.type, Buffer.from(src.id, 'hex'), await envelope(src), src.rawLength, src.packName, true);
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
  async (m) => ({ reply: await (m.kind === 'chunk' ? writeChunk(m) : writeFile(m)), dropped: m.blob ? 2 * m.blob.rawLength : 0 }),
  (m, e) => ({ seq: m.seq, status: 'failed', code: e instanceof Error ? e.message : String(e) }),
);
