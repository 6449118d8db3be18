/**
 * Worker thread of SmallFileSaver: opens, reads, hashes, compresses and seals one small file per
 * message with synchronous calls (cheaper than a promise per syscall for thousands of small
 * files). Replies with the file's single chunk, or why it was not read.
 */
import { closeSync, constants as C, fstatSync, openSync, readSync } from 'node:fs';
import { workerData } from 'node:worker_threads';
import { serveBatches } from '../util/worker-pool.js';
import { WorkerCodec } from '../repo/worker-codec.js';
import { release } from '../util/memory.js';
import { RingWriter } from '../util/shared-ring.js';
import { ID_BYTES, type SealRequest, type SmallFileReply, type SmallFileRequest, type SmallFileWorkerData } from './small-files.js';

const data = workerData as SmallFileWorkerData;
const codec = new WorkerCodec(data.codec);
const ring = new RingWriter(data.ring);
/** An envelope's bytes beyond its plaintext at most: the codec byte, the nonce and the tag (docs/FORMAT.md §6). */
const ENVELOPE_MAX_EXTRA = 1 + 12 + 16;
const NOATIME = C.O_NOATIME ?? 0;
/** Every file is read into this one buffer (it is sealed, i.e. copied, before the next is read). */
let readBuffer = Buffer.allocUnsafeSlow(64 * 1024);

function errno(e: unknown): string {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : 'EIO';
}

function handle(m: SmallFileRequest): SmallFileReply {
  const path = Buffer.from(m.path, 'latin1');
  let fd: number;
  try {
    try {
      fd = openSync(path, C.O_RDONLY | C.O_NOFOLLOW | NOATIME);
    } catch (e) {
      if (errno(e) !== 'EPERM' || NOATIME === 0) throw e;
      fd = openSync(path, C.O_RDONLY | C.O_NOFOLLOW); // O_NOATIME needs ownership
    }
  } catch (e) {
    return { seq: m.seq, status: 'open-failed', code: errno(e) };
  }
  try {
    const before = fstatSync(fd, { bigint: true });
    if (before.ino !== BigInt(m.ino) || !before.isFile()) return { seq: m.seq, status: 'replaced' };
    const size = Number(before.size);
    // Sparse or grown past the small-file limit: the main thread's general path handles it.
    if (size >= m.limit || (size > 0 && Number(before.blocks) * 512 < size)) return { seq: m.seq, status: 'fallback' };
    if (readBuffer.length < size) readBuffer = Buffer.allocUnsafeSlow(Math.max(size, Math.min(m.limit, 2 * readBuffer.length)));
    const buf = readBuffer;
    let got = 0;
    try {
      while (got < size) {
        const n = readSync(fd, buf, got, size - got, got);
        if (n === 0) break;
        got += n;
      }
    } catch (e) {
      return { seq: m.seq, status: 'read-failed', code: errno(e) };
    }
    const after = fstatSync(fd, { bigint: true });
    const changed = after.size !== BigInt(m.size) || after.mtimeNs !== BigInt(m.mtimeNs) || got !== size;
    if (got === 0) return { seq: m.seq, status: 'ok', bytesRead: 0, changed };
    const plain = buf.subarray(0, got);
    const id = codec.chunkId(plain);
    // Into the shared ring when it has room (the id, then the envelope), else a buffer of its own.
    const r = ring.reserve(ID_BYTES + got + ENVELOPE_MAX_EXTRA);
    if (r === undefined) return { seq: m.seq, status: 'ok', bytesRead: got, changed, id, env: codec.seal(m.type, id, plain), rawLength: got };
    r.view.set(id);
    const env = codec.seal(m.type, id, plain, r.view.subarray(ID_BYTES));
    if (env.buffer !== r.view.buffer) throw new Error('an envelope outgrew its space in the shared ring');
    const slot = { from: r.from, end: ring.shrink(r, ID_BYTES + env.length), at: r.at, envLength: env.length };
    return { seq: m.seq, status: 'ok', bytesRead: got, changed, rawLength: got, slot };
  } finally {
    closeSync(fd);
  }
}

serveBatches<SmallFileRequest | SealRequest, SmallFileReply>(
  (m) => {
    if ('kind' in m) {
      const env = codec.seal(m.type, m.id, m.data, m.into);
      // Sealed into shared memory (BufferPool's `shared`): the main thread has it, only the length goes back.
      const inShared = m.into !== undefined && env.buffer === m.into.buffer && env.buffer instanceof SharedArrayBuffer;
      const sealed = inShared ? { envLength: env.length } : { env };
      const envTransfer = inShared ? [] : [env.buffer as ArrayBuffer];
      // Lent shared memory stays the main thread's; nothing to send back or free.
      if (m.data.buffer instanceof SharedArrayBuffer) return { reply: { seq: m.seq, status: 'sealed', ...sealed }, transfer: envTransfer };
      // A pooled chunk buffer goes back to its pool on the main thread (and `into` with the envelope).
      if (m.giveBack) return { reply: { seq: m.seq, status: 'sealed', ...sealed, data: m.data }, transfer: [...envTransfer, m.data.buffer] };
      // The chunk (moved here) is dropped: freed at once where the addon can (util/memory.ts).
      return { reply: { seq: m.seq, status: 'sealed', ...sealed }, transfer: envTransfer, dropped: release(m.data) ? 0 : m.data.length };
    }
    const r = handle(m);
    // Nothing to count as dropped: the file was read into the reused buffer, and seal() frees its
    // cipher output where the addon can (util/memory.ts; without it the 6 MiB young generation is
    // collected often anyway).
    return r.status === 'ok' && r.env ? { reply: r, transfer: [r.env.buffer as ArrayBuffer] } : { reply: r };
  },
  (_m, e) => {
    throw e; // a bug, not a file problem: the pool fails every request (the worker's 'error')
  },
);
