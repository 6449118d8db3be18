/**
 * Worker thread of check --read-data (check.ts): verifies one whole pack per request, read by the
 * main thread through the store and handed over.
 */
import { workerData } from 'node:worker_threads';
import { LifeboatError } from '../util/errors.js';
import { release, YoungCollector } from '../util/memory.js';
import { serveBatches } from '../util/worker-pool.js';
import { WorkerCodec, type CodecHandle } from './worker-codec.js';
import type { PackCheckReply, PackCheckRequest } from './check.js';

const codec = new WorkerCodec((workerData as { codec: CodecHandle }).codec);
/**
 * One young-generation collection per pack of its own (not in a shared buffer), once it is
 * garbage: a collection while a pack is still being checked would move its buffer to the old
 * generation, which only a full collection frees. Blobs decode into buffers the codec keeps.
 */
const young = new YoungCollector(1);

async function handle(m: PackCheckRequest): Promise<PackCheckReply> {
  const bytes = m.bytes;
  try {
    const verdict = await codec.verifyPack(bytes, m.packId, m.name);
    return { seq: m.seq, verdict };
  } catch (e) {
    // Reported for this pack, as on the main thread: a damaged or unreadable pack is a finding.
    return { seq: m.seq, error: e instanceof LifeboatError ? { code: e.code, message: e.message } : { message: e instanceof Error ? e.message : String(e) } };
  } finally {
    // A shared buffer is the main thread's to reuse; any other is freed now.
    young.dropped(m.shared || release(bytes) ? 0 : bytes.length);
  }
}

serveBatches<PackCheckRequest, PackCheckReply>(
  async (m) => ({ reply: await handle(m) }),
  (m, e) => ({ seq: m.seq, error: { message: e instanceof Error ? e.message : String(e) } }),
);
