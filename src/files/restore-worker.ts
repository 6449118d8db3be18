/**
 * Worker thread of the restorer: decrypts, decompresses and checks one single-chunk file's blob,
 * creates the file (O_CREAT|O_EXCL|O_NOFOLLOW, at a path the main thread chose inside the target),
 * writes it and gives it its owner, mode, extended attributes and times, with synchronous calls.
 * A restore of many small files is bound by exactly this work; two workers do it on two cores.
 */
import { closeSync, constants as C, fchmodSync, fchownSync, openSync, writeSync } from 'node:fs';
import { workerData } from 'node:worker_threads';
import { createZstdCodec } from '../repo/compress.js';
import { chunkId, type MasterKeys } from '../repo/crypto.js';
import { decodePayload } from '../repo/envelope-file.js';
import { openBlob } from '../repo/pack.js';
import { LifeboatError, errnoCode } from '../util/errors.js';
import { serveBatches } from '../util/worker-pool.js';
import { platform } from './platform/platform.js';
import type { RestoreFileJob, RestoreFileReply } from './restore-workers.js';

const wd = workerData as { encKey: Uint8Array; idKey: Uint8Array };
const keys: MasterKeys = { encKey: Buffer.from(wd.encKey), idKey: Buffer.from(wd.idKey), macKey: Buffer.alloc(32) };
const codec = createZstdCodec();
const plat = platform();
const EMPTY: Uint8Array = new Uint8Array(0);

async function handle(m: RestoreFileJob): Promise<RestoreFileReply> {
  let data = EMPTY;
  if (m.blob) {
    const what = `A data block in pack ${m.blob.packName}`;
    try {
      const id = Buffer.from(m.blob.id, 'hex');
      data = await decodePayload(codec, openBlob(keys.encKey, m.blob.type, id, m.blob.env, what), what, m.blob.rawLength);
      if (!chunkId(keys, data).equals(id)) throw new LifeboatError('corrupt', `${what} does not match its id; the pack is damaged.`);
    } catch (e) {
      if (e instanceof LifeboatError) return { seq: m.seq, status: 'corrupt', message: e.message };
      throw e;
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
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off, off);
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

serveBatches<RestoreFileJob, RestoreFileReply>(
  async (m) => ({ reply: await handle(m), bytes: m.blob?.rawLength ?? 0 }),
  (m, e) => ({ seq: m.seq, status: 'failed', code: e instanceof Error ? e.message : String(e) }),
);
