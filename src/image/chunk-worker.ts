/** Worker thread of ChunkSealer (chunk-sealer.ts): zero test, chunk id, comparison with the parent, delta or whole-chunk seal. */
import { workerData } from 'node:worker_threads';
import { createZstdCodec } from '../repo/compress.js';
import { chunkId, type MasterKeys } from '../repo/crypto.js';
import { encodeDelta } from '../repo/delta.js';
import { sealBlobSync } from '../repo/encoder.js';
import { openSealedBlob } from '../repo/pack-check.js';
import { BlobType } from '../repo/pack.js';
import { LocalStore } from '../store/local.js';
import { release } from '../util/memory.js';
import { serveBatches, type Served } from '../util/worker-pool.js';
import { isZero, own, type ChunkJob, type ChunkReply } from './chunk-sealer.js';
import { IMAGE_CHUNK_SIZE } from './manifest.js';

const wd = workerData as { encKey: Uint8Array; idKey: Uint8Array; level: number };
const keys: MasterKeys = { encKey: Buffer.from(wd.encKey), idKey: Buffer.from(wd.idKey), macKey: Buffer.alloc(32) };
const codec = createZstdCodec(wd.level);
const ZERO = new Uint8Array(IMAGE_CHUNK_SIZE);

/** Bytes of `bufs` that release() could not free at once: left to the collector (util/memory.ts). */
function drop(...bufs: Uint8Array[]): number {
  let n = 0;
  for (const b of bufs) if (!release(b)) n += b.length;
  return n;
}

/** The delta of `data` against its base, or undefined to store it whole (too different, or the base is unreadable or damaged). */
async function deltaOf(m: ChunkJob, data: Uint8Array): Promise<{ delta: Buffer | undefined; dropped: number }> {
  const src = m.base!.source!;
  try {
    const env = 'env' in src ? src.env : await LocalStore.at(src.root).get(src.packName, src.offset, src.length);
    const { plain, owner } = await openSealedBlob(codec, keys, src.type, m.base!.id, env, src.rawLength, src.packName, true);
    const delta = encodeDelta(m.base!.id, plain, data);
    return { delta, dropped: drop(env, owner) };
  } catch {
    return { delta: undefined, dropped: 0 }; // stored whole, which heals the next image too
  }
}

async function handle(m: ChunkJob): Promise<Served<ChunkReply>> {
  const data = m.data;
  const rawLength = data.length; // read now: data is released below
  if (isZero(data, ZERO)) return { reply: { seq: m.seq, kind: 'zero' }, dropped: drop(data) };
  const digest = chunkId(keys, data);
  const id = own(digest);
  if (m.parentId && digest.equals(m.parentId)) return { reply: { seq: m.seq, kind: 'same', id }, dropped: drop(data) };
  if (m.base && !m.base.source) return { reply: { seq: m.seq, kind: 'changed', id, data }, transfer: [data.buffer as ArrayBuffer] };
  let dropped = 0;
  if (m.base) {
    const d = await deltaOf(m, data);
    dropped += d.dropped;
    if (d.delta) {
      const env = sealBlobSync(codec, keys.encKey, BlobType.delta, id, d.delta);
      dropped += drop(data, d.delta);
      return { reply: { seq: m.seq, kind: 'sealed', id, type: BlobType.delta, env, rawLength, base: m.base.id }, transfer: [env.buffer as ArrayBuffer], dropped };
    }
  }
  const env = sealBlobSync(codec, keys.encKey, BlobType.data, id, data);
  dropped += drop(data);
  return { reply: { seq: m.seq, kind: 'sealed', id, type: BlobType.data, env, rawLength }, transfer: [env.buffer as ArrayBuffer], dropped };
}

serveBatches<ChunkJob, ChunkReply>(handle, (m, e) => ({ seq: m.seq, kind: 'error', message: e instanceof Error ? e.message : String(e) }));
