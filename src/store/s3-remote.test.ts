import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RepoServer } from '../server/repo-server.js';
import { storeConformanceSuite } from './conformance.js';
import { openRemoteStore } from './remote.js';
import { emptyS3, freshS3Url, testS3 } from './s3-testing.js';

// The server keeps its repositories in S3 (radosgw): one prefix per repository.
storeConformanceSuite('Lifeboat server over S3 (radosgw)', async () => {
  Object.assign(process.env, testS3().env);
  const state = mkdtempSync(join(tmpdir(), 'lifeboat-remote-s3-'));
  const data = freshS3Url();
  const server = new RepoServer({ data, stateDir: state });
  const token = server.tokens.add('admin', 'admin');
  const { port } = await server.listen('127.0.0.1', 0);
  return {
    store: openRemoteStore(`lifeboat:http://127.0.0.1:${port}/repo`, { token }),
    cleanup: async () => {
      await server.close();
      await emptyS3(`${data}/repo`);
      rmSync(state, { recursive: true, force: true });
    },
  };
});
