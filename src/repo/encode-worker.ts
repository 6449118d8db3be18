/** Worker thread of BlobEncoder: compresses and seals one blob per message. */
import { parentPort, workerData } from 'node:worker_threads';
import { createZstdCodec } from './compress.js';
import { sealBlobSync } from './encoder.js';

const encKey = Buffer.from((workerData as { encKey: Uint8Array }).encKey);
const codec = createZstdCodec();

parentPort!.on('message', (m: { seq: number; type: number; id: Uint8Array; data: Uint8Array }) => {
  try {
    const env = sealBlobSync(codec, encKey, m.type, m.id, m.data);
    parentPort!.postMessage({ seq: m.seq, env }, [env.buffer as ArrayBuffer]);
  } catch (e) {
    parentPort!.postMessage({ seq: m.seq, error: e instanceof Error ? e.message : String(e) });
  }
});
