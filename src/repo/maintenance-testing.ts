/**
 * Test fixtures for forget, prune, repair and check: a small repository of "files" snapshots whose
 * root is a minimal tree blob (JSON: path → data blob ids), with the reference walker for it, and
 * helpers to break such a repository in the ways the tests need. The real file tree format is the
 * files layer's; this stand-in keeps repo/ tests independent of it.
 *
 * Test code (a *-testing.ts helper: the lint keeps product code from importing it, and
 * scripts/check-layers.mjs proves no entry point reaches it): loading it sets the insecure fast
 * key derivation for the tests.
 */
import { randomBytes } from 'node:crypto';
import type { Store } from '../store/store.js';
import { MemoryStore } from '../store/memory.js';
import type { ReferenceWalker } from './check.js';
import type { DamagedPlace, SnapshotRepairer } from './repair.js';
import { Names, idOfName, toHex, type Hex } from './ids.js';
import { BlobType, Repository } from './repository.js';
import type { Snapshot } from './snapshot.js';

process.env['LIFEBOAT_INSECURE_FAST_KDF'] = '1';

export const PASSWORD = 'fixture password';

interface FixtureTree {
  readonly files: { readonly path: string; readonly blobs: Hex[] }[];
}

/** Walks a fixture tree: the root, then each file's blobs, naming the file. */
export const fixtureWalker: ReferenceWalker = async (repo, snapshot, visit) => {
  if (!visit(Buffer.from(snapshot.root, 'hex'))) return;
  const tree = JSON.parse(Buffer.from(await repo.loadBlob(Buffer.from(snapshot.root, 'hex'))).toString('utf8')) as FixtureTree;
  for (const f of tree.files) for (const b of f.blobs) visit(Buffer.from(b, 'hex'), f.path);
};

export const fixtureWalkers = { files: fixtureWalker };

export async function newRepository(store: Store = new MemoryStore()): Promise<{ store: Store; repo: Repository }> {
  const { repo } = await Repository.init(store, PASSWORD);
  await repo.loadIndex();
  return { store, repo };
}

export async function reopen(store: Store): Promise<Repository> {
  const repo = await Repository.open(store, PASSWORD);
  await repo.loadIndex();
  return repo;
}

/** Random chunk content of a given size (incompressible, so sizes are predictable). */
export function chunk(size = 2000): Buffer {
  return randomBytes(size);
}

/** Stores the files (path → chunks) and a snapshot of them; returns the snapshot id. */
export async function backupFiles(repo: Repository, files: Record<string, readonly Uint8Array[]>, time: string, extra: Partial<Snapshot> = {}): Promise<Hex> {
  const tree: FixtureTree = { files: [] };
  for (const [path, chunks] of Object.entries(files)) {
    const blobs: Hex[] = [];
    for (const c of chunks) blobs.push(toHex((await repo.saveBlob(BlobType.data, c)).id));
    tree.files.push({ path, blobs });
  }
  const root = await repo.saveBlob(BlobType.tree, Buffer.from(JSON.stringify(tree)));
  return repo.saveSnapshot({ version: 1, kind: 'files', time, host: 'h', user: 'u', paths: ['/data'], tags: [], root: toHex(root.id), ...extra });
}

/** Every object name in the store with its bytes' size, sorted (to assert "nothing changed"). */
export async function listing(store: Store): Promise<string[]> {
  const out: string[] = [];
  for (const prefix of ['data/', 'index/', 'snapshots/', 'pins/', 'keys/']) for await (const o of store.list(prefix)) out.push(`${o.name} ${o.size}`);
  return out.sort();
}

export async function names(store: Store, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const o of store.list(prefix)) if (idOfName(o.name)) out.push(o.name);
  return out.sort();
}

/** Loads every blob every snapshot needs; returns how many, or throws naming what failed. */
export async function loadEverything(repo: Repository): Promise<number> {
  let n = 0;
  for (const { id, snapshot } of await repo.listSnapshots()) {
    const ids: Uint8Array[] = [];
    await fixtureWalker(repo, snapshot, (b) => {
      ids.push(b);
      return true;
    });
    for (const b of ids) {
      try {
        await repo.loadBlob(b);
      } catch (e) {
        throw new Error(`snapshot ${id.slice(0, 8)}: blob ${toHex(b).slice(0, 12)}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      }
      n++;
    }
  }
  return n;
}

/** The pack that holds a blob, by the index. */
export function packOf(repo: Repository, blob: Hex): string {
  const loc = repo.index.get(Buffer.from(blob, 'hex'));
  if (!loc) throw new Error(`blob ${blob} is not indexed`);
  return Names.pack(loc.packId);
}

/** Repairs fixture trees: drops lost blobs from each file and marks the file damaged. */
export const fixtureRepairer: SnapshotRepairer = {
  async repair(repo, snapshot, usable) {
    const rootId = Buffer.from(snapshot.root, 'hex');
    if (!usable(rootId)) return undefined;
    let tree: FixtureTree;
    try {
      tree = JSON.parse(Buffer.from(await repo.loadBlob(rootId)).toString('utf8')) as FixtureTree;
    } catch {
      return undefined;
    }
    const damaged: DamagedPlace[] = [];
    const files = tree.files.map((f) => {
      const ok = f.blobs.filter((b) => usable(Buffer.from(b, 'hex')));
      if (ok.length === f.blobs.length) return f;
      damaged.push({ where: f.path, message: `${f.blobs.length - ok.length} of ${f.blobs.length} blocks lost` });
      return { path: f.path, blobs: ok, damaged: true };
    });
    const root = await repo.saveBlob(BlobType.tree, Buffer.from(JSON.stringify({ files })));
    return { root: toHex(root.id), damaged };
  },
};
