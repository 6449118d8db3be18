/** Worker thread of BlobEncoder: compresses and seals blobs, one batch of requests per message. */
import { workerData } from 'node:worker_threads';
import { release } from '../util/memory.js';
import { serveBatches } from '../util/worker-pool.js';
import { createZstdCodec } from './compress.js';
import { sealBlobSync, type SealReply } from './encoder.js';

const wd = workerData as { encKey: Uint8Array; level: number };
const encKey = Buffer.from(wd.encKey);
const codec = createZstdCodec(wd.level);

serveBatches<{ seq: number; type: number; id: Uint8Array; data: Uint8Array }, SealReply>(
  (m) => {
    const env = sealBlobSync(codec, encKey, m.type, m.id, m.data);
    // The blob (moved here) is dropped: freed at once where the addon can (util/memory.ts).
    return { reply: { seq: m.seq, env }, transfer: [env.buffer as ArrayBuffer], dropped: release(m.data) ? 0 : m.data.length };
  },
  (m, e) => ({ seq: m.seq, error: e instanceof Error ? e.message : String(e) }),
);
