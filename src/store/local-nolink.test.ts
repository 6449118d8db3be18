/**
 * LocalStore on a filesystem without hard links (FAT32, exFAT: link() fails with EPERM), simulated by
 * replacing fs.promises.link for the duration of each test; the create-only fallback must pass the
 * whole conformance suite too.
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { storeConformanceSuite } from './conformance.js';
import { LocalStore } from './local.js';

const realLink = fs.link;

storeConformanceSuite('local folder without hard links', async () => {
  const dir = await fs.mkdtemp(join(tmpdir(), 'lifeboat-nolink-'));
  fs.link = async () => {
    throw Object.assign(new Error('EPERM: operation not permitted, link'), { code: 'EPERM' });
  };
  return {
    store: new LocalStore(join(dir, 'repo')),
    cleanup: async () => {
      fs.link = realLink;
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
});
