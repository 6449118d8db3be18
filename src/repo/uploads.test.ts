import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { MemoryStore } from '../store/memory.js';
import type { ObjectWriter, OperationOptions, StoreProperties } from '../store/store.js';
import { BlobType, Repository } from './repository.js';

process.env['LIFEBOAT_INSECURE_FAST_KDF'] = '1';

/** A store that asks for `uploadsInFlight` uploads and whose commits take 40 ms, counting how many overlap. */
class SlowCommitStore extends MemoryStore {
  override readonly properties: StoreProperties;
  committing = 0;
  most = 0;
  constructor(uploadsInFlight: number) {
    super();
    this.properties = { uploadsInFlight };
  }
  override createWriter(options?: OperationOptions): ObjectWriter {
    const w = super.createWriter(options);
    return {
      write: (d) => w.write(d),
      commit: async (name, o) => {
        this.most = Math.max(this.most, ++this.committing);
        try {
          await new Promise((r) => setTimeout(r, 40));
          await w.commit(name, o);
        } finally {
          this.committing--;
        }
      },
      abort: () => w.abort(),
    };
  }
}

for (const uploads of [1, 3]) {
  test(`the repository finishes as many packs at once as the store's uploadsInFlight (${uploads})`, async () => {
    const store = new SlowCommitStore(uploads);
    const { repo } = await Repository.init(store, 'pw');
    await repo.loadIndex();
    // 48 MiB of incompressible blobs: six 8 MiB packs, filled faster than a commit takes.
    await Promise.all(Array.from({ length: 48 }, () => repo.saveBlob(BlobType.data, randomBytes(1024 * 1024))));
    await repo.flush();
    assert.equal(store.most, uploads);
    await repo.close();
  });
}
