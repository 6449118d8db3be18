/** Worker thread of ChunkSealer (chunk-sealer.ts): zero test, chunk id, comparison with the parent, delta or whole-chunk seal. */
import { workerData } from 'node:worker_threads';
import { BlobType, WorkerCodec, type CodecHandle } from '../repo/worker-codec.js';
import { release } from '../util/memory.js';
import { serveBatches, type Served } from '../util/worker-pool.js';
import { isZero, own, type ChunkJob, type ChunkReply } from './chunk-sealer.js';
import { IMAGE_CHUNK_SIZE } from './manifest.js';

const codec = new WorkerCodec((workerData as { codec: CodecHandle }).codec);
const ZERO = new Uint8Array(IMAGE_CHUNK_SIZE);

/** Bytes of `bufs` that release() could not free at once: left to the collector (util/memory.ts). */
function drop(...bufs: Uint8Array[]): number {
  let n = 0;
  for (const b of bufs) if (!release(b)) n += b.length;
  return n;
}

/** The sealed delta of `data` against its base, or undefined to store it whole (too different, or the base is damaged). */
async function deltaOf(id: Uint8Array, base: NonNullable<ChunkJob['base']>, data: Uint8Array): Promise<{ env: Buffer | undefined; dropped: number }> {
  const blob = base.blob!;
  try {
    const { plain, owner } = await codec.open(blob);
    const env = codec.sealDelta(id, { id: base.id, plain }, data);
    return { env, dropped: drop(blob.env, owner) };
  } catch {
    return { env: undefined, dropped: 0 }; // stored whole, which heals the next image too
  }
}

async function handle(m: ChunkJob): Promise<Served<ChunkReply>> {
  const data = m.data;
  const rawLength = data.length; // read now: data is released below
  let id = m.id;
  if (!id) {
    if (isZero(data, ZERO)) return { reply: { seq: m.seq, kind: 'zero' }, dropped: drop(data) };
    const digest = codec.chunkId(data);
    id = own(digest);
    if (m.parentId && digest.equals(m.parentId)) return { reply: { seq: m.seq, kind: 'same', id }, dropped: drop(data) };
  }
  if (m.base && !m.base.blob) return { reply: { seq: m.seq, kind: 'changed', id, data }, transfer: [data.buffer as ArrayBuffer] };
  let dropped = 0;
  if (m.base) {
    const d = await deltaOf(id, m.base, data);
    dropped += d.dropped;
    if (d.env) {
      dropped += drop(data);
      return { reply: { seq: m.seq, kind: 'sealed', id, type: BlobType.delta, env: d.env, rawLength, base: m.base.id }, transfer: [d.env.buffer as ArrayBuffer], dropped };
    }
  }
  const env = codec.seal(BlobType.data, id, data);
  dropped += drop(data);
  return { reply: { seq: m.seq, kind: 'sealed', id, type: BlobType.data, env, rawLength }, transfer: [env.buffer as ArrayBuffer], dropped };
}

serveBatches<ChunkJob, ChunkReply>(handle, (m, e) => ({ seq: m.seq, kind: 'error', message: e instanceof Error ? e.message : String(e) }));
