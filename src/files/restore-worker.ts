/**
 * Worker thread of the restorer (jobs in restore-workers.ts), with synchronous calls: opens each
 * sealed blob of a pack span the main thread read and handed over, in place (repo's WorkerCodec
 * decrypts, decompresses and checks it against its id), then creates every single-chunk file made
 * of it (O_CREAT|O_EXCL|O_NOFOLLOW, at a path the main thread chose inside the target) with its
 * owner, mode, extended attributes and times, and writes it into every descriptor and place of a
 * larger file that needs it (the main thread opened them). The span's buffer is freed once done.
 * A restore is bound by exactly this work; two workers do it on two cores.
 */
import { closeSync, constants as C, fchmodSync, fchownSync, openSync } from 'node:fs';
import { workerData } from 'node:worker_threads';
import { WorkerCodec, type CodecHandle, type SealedBlob } from '../repo/worker-codec.js';
import { release } from '../util/memory.js';
import { LifeboatError, errnoCode } from '../util/errors.js';
import { serveBatches } from '../util/worker-pool.js';
import { platform } from './platform/platform.js';
import { writeSkippingHoles, type ChunkTarget, type RestoreFileJob, type RestoreFileReply, type RestoreOutcome, type RestoreSpanJob, type RestoreSpanReply, type SpanFile } from './restore-workers.js';

const codec = new WorkerCodec((workerData as { codec: CodecHandle }).codec);
const plat = platform();
const EMPTY: Uint8Array = new Uint8Array(0);

/** Bytes dropped since the last reply that release() could not free (small reads share Node's pool): left to the collector. */
let unreleased = 0;

function damaged(e: unknown): RestoreOutcome {
  if (e instanceof LifeboatError) return { status: 'corrupt', message: e.message, ...(e.code === 'not-found' ? { notFound: true } : {}) };
  throw e;
}

/** Writes `plain` to every place in `to`. */
function writePlaces(to: readonly ChunkTarget[], plain: Uint8Array): RestoreOutcome {
  try {
    for (const t of to) writeSkippingHoles(t.fd, plain, t.pos, t.holes);
  } catch (e) {
    return { status: 'failed', code: errnoCode(e) ?? String(e) };
  }
  return { status: 'ok', bytes: plain.length, xattrErrors: [] };
}

/** Creates single-chunk file `m` with `data`, then its owner, mode, extended attributes and times. */
async function createFile(m: SpanFile, data: Uint8Array): Promise<RestoreOutcome> {
  const path = Buffer.from(m.path, 'latin1');
  let fd: number;
  try {
    fd = openSync(path, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
  } catch (e) {
    return { status: 'failed', code: errnoCode(e) ?? String(e) };
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
    return { status: 'failed', code: errnoCode(e) ?? String(e) };
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
    return { status: 'failed', code: errnoCode(e) ?? String(e) };
  }
  return { status: 'ok', bytes: data.length, ...(chownError !== undefined ? { chownError } : {}), xattrErrors };
}

/** Every blob of a span, opened in place in the span's bytes and written to all its files and places (RestoreSpanReply's order). */
async function writeSpan(m: RestoreSpanJob): Promise<RestoreOutcome[]> {
  const outcomes: RestoreOutcome[] = [];
  for (const [i, it] of m.items.entries()) {
    const src: SealedBlob = { type: it.type, id: m.ids.subarray(32 * i, 32 * i + 32), env: m.bytes.subarray(it.offset, it.offset + it.length), rawLength: it.rawLength, packName: m.packName };
    let opened: { plain: Uint8Array; owner: Uint8Array };
    try {
      opened = await codec.open(src);
    } catch (e) {
      const d = damaged(e);
      for (let n = it.files.length + (it.to.length > 0 ? 1 : 0); n > 0; n--) outcomes.push(d);
      continue;
    }
    try {
      for (const f of it.files) outcomes.push(await createFile(f, opened.plain));
      if (it.to.length > 0) outcomes.push(writePlaces(it.to, opened.plain));
    } finally {
      // Decompressed into a buffer of its own: freed now. Stored plain, it lies in the span, freed below.
      if (opened.owner.buffer !== m.bytes.buffer && !release(opened.owner)) unreleased += opened.owner.length;
    }
  }
  if (!release(m.bytes)) unreleased += m.bytes.length;
  return outcomes;
}

serveBatches<RestoreFileJob | RestoreSpanJob, RestoreFileReply | RestoreSpanReply>(
  async (m) => {
    const reply: RestoreFileReply | RestoreSpanReply = m.kind === 'span' ? { seq: m.seq, status: 'span', outcomes: await writeSpan(m) } : { seq: m.seq, ...(await createFile(m, EMPTY)) };
    const dropped = unreleased;
    unreleased = 0;
    return { reply, dropped };
  },
  (m, e) => ({ seq: m.seq, status: 'failed', code: e instanceof Error ? e.message : String(e) }),
);
