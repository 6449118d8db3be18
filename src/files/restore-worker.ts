/**
 * Worker thread of the restorer (jobs in restore-workers.ts), with synchronous calls: opens a
 * sealed chunk the main thread read and handed over (repo's WorkerCodec decrypts, decompresses and
 * checks it against its id), then either creates a single-chunk file (O_CREAT|O_EXCL|O_NOFOLLOW, at a path
 * the main thread chose inside the target) and gives it its owner, mode, extended attributes and
 * times, or writes one chunk of larger files into every descriptor and place that needs it (the
 * main thread opened them).
 * A restore is bound by exactly this work; two workers do it on two cores.
 */
import { closeSync, constants as C, fchmodSync, fchownSync, openSync } from 'node:fs';
import { workerData } from 'node:worker_threads';
import { WorkerCodec, type CodecHandle } from '../repo/worker-codec.js';
import { release } from '../util/memory.js';
import { LifeboatError, errnoCode } from '../util/errors.js';
import { serveBatches } from '../util/worker-pool.js';
import { platform } from './platform/platform.js';
import { writeSkippingHoles, type ChunkSource, type RestoreChunkJob, type RestoreFileJob, type RestoreFileReply } from './restore-workers.js';

const codec = new WorkerCodec((workerData as { codec: CodecHandle }).codec);
const plat = platform();
const EMPTY: Uint8Array = new Uint8Array(0);

/** Bytes dropped since the last reply that release() could not free (small reads share Node's pool): left to the collector. */
let unreleased = 0;

/**
 * The chunk's plaintext, checked against its id, and a function that frees the buffers read and
 * decoded for it (util/memory.ts release) once it is written: a restore passes every byte of the
 * repository through these, and left to the collector they piled up to ~50 MiB per worker.
 */
async function open(src: ChunkSource): Promise<{ plain: Uint8Array; free: () => void }> {
  const env = src.env;
  const { plain, owner } = await codec.open(src);
  return { plain, free: () => (unreleased += (release(env) ? 0 : env.length) + (release(owner) ? 0 : owner.length)) };
}

function damaged(seq: number, e: unknown): RestoreFileReply {
  if (e instanceof LifeboatError) return { seq, status: 'corrupt', message: e.message, ...(e.code === 'not-found' ? { notFound: true } : {}) };
  throw e;
}

async function writeChunk(m: RestoreChunkJob): Promise<RestoreFileReply> {
  let chunk: Awaited<ReturnType<typeof open>>;
  try {
    chunk = await open(m.blob);
  } catch (e) {
    return damaged(m.seq, e);
  }
  const bytes = chunk.plain.length;
  try {
    for (const t of m.to) writeSkippingHoles(t.fd, chunk.plain, t.pos, t.holes);
  } catch (e) {
    return { seq: m.seq, status: 'failed', code: errnoCode(e) ?? String(e) };
  } finally {
    chunk.free();
  }
  return { seq: m.seq, status: 'ok', bytes, xattrErrors: [] };
}

async function writeFile(m: RestoreFileJob): Promise<RestoreFileReply> {
  let data = EMPTY;
  let free = () => {};
  if (m.blob) {
    try {
      ({ plain: data, free } = await open(m.blob));
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
  const bytes = data.length;
  free();
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
  return { seq: m.seq, status: 'ok', bytes, ...(chownError !== undefined ? { chownError } : {}), xattrErrors };
}

serveBatches<RestoreFileJob | RestoreChunkJob, RestoreFileReply>(
  async (m) => {
    const reply = await (m.kind === 'chunk' ? writeChunk(m) : writeFile(m));
    const dropped = unreleased;
    unreleased = 0;
    return { reply, dropped };
  },
  (m, e) => ({ seq: m.seq, status: 'failed', code: e instanceof Error ? e.message : String(e) }),
);
