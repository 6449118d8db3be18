/**
 * Reading file snapshots without restoring them: resolve a path, walk a tree, compare two trees,
 * stream one file. Shared by ls, find, diff and dump.
 */
import type { Writable } from 'node:stream';
import { fromHex, type Hex } from '../repo/ids.js';
import type { Repository } from '../repo/repository.js';
import type { Snapshot } from '../repo/snapshot.js';
import { LifeboatError } from '../util/errors.js';
import { fileContent, loadDir, sameMetadata, type TreeEntry } from './tree.js';

export interface Found {
  /** '/'-separated path inside the snapshot, starting with '/'. */
  readonly path: string;
  readonly entry: TreeEntry;
}

export function entryName(e: TreeEntry): string {
  return e.name.toString('utf8');
}

function splitPath(p: string): string[] {
  return p.split('/').filter((x) => x.length > 0 && x !== '.');
}

/** The entry at `path` ('/' or '' is the snapshot's root, which has no entry of its own). */
export async function resolvePath(repo: Repository, snapshot: Snapshot, path: string): Promise<{ entry?: TreeEntry; tree?: Hex }> {
  if (snapshot.kind !== 'files') throw new LifeboatError('usage', 'That is an image snapshot; use "lifeboat image" commands for it.');
  let tree: Hex | undefined = snapshot.root;
  let entry: TreeEntry | undefined;
  for (const part of splitPath(path)) {
    if (tree === undefined) throw new LifeboatError('not-found', `${path} is not in this snapshot (${entry ? entryName(entry) : ''} is not a folder).`);
    const want = Buffer.from(part, 'utf8');
    entry = (await loadDir(repo, tree)).find((e) => e.name.equals(want));
    if (!entry) throw new LifeboatError('not-found', `${path} is not in this snapshot. See "lifeboat ls".`);
    tree = entry.type === 'dir' ? entry.subtree : undefined;
  }
  return { ...(entry ? { entry } : {}), ...(tree !== undefined ? { tree } : {}) };
}

/** Every entry under `tree`, depth first in name order; `descend` may prune folders. */
export async function* walk(repo: Repository, tree: Hex, prefix: string, signal?: AbortSignal): AsyncGenerator<Found> {
  for (const e of await loadDir(repo, tree)) {
    signal?.throwIfAborted();
    const path = `${prefix}/${entryName(e)}`;
    yield { path, entry: e };
    if (e.type === 'dir' && e.subtree) yield* walk(repo, e.subtree, path, signal);
  }
}

export type ChangeKind = 'added' | 'removed' | 'modified' | 'metadata' | 'type';
export interface Change {
  readonly path: string;
  readonly kind: ChangeKind;
  readonly before?: TreeEntry;
  readonly after?: TreeEntry;
}

function sameContent(a: TreeEntry, b: TreeEntry): boolean {
  if (a.size !== b.size) return false;
  const ca = (a.content ?? a.contentParts ?? []).join(',');
  const cb = (b.content ?? b.contentParts ?? []).join(',');
  return ca === cb && (a.target?.equals(b.target ?? Buffer.alloc(0)) ?? b.target === undefined) && a.rdev === b.rdev;
}

/** Differences between two trees; identical subtrees (same id) are not opened. */
export async function* diffTrees(repo: Repository, a: Hex | undefined, b: Hex | undefined, prefix = ''): AsyncGenerator<Change> {
  if (a === b) return;
  const la = a ? await loadDir(repo, a) : [];
  const lb = b ? await loadDir(repo, b) : [];
  let i = 0;
  let j = 0;
  while (i < la.length || j < lb.length) {
    const ea = la[i];
    const eb = lb[j];
    const c = ea && eb ? Buffer.compare(ea.name, eb.name) : ea ? -1 : 1;
    if (c < 0) {
      yield { path: `${prefix}/${entryName(ea!)}`, kind: 'removed', before: ea! };
      if (ea!.type === 'dir') yield* diffTrees(repo, ea!.subtree, undefined, `${prefix}/${entryName(ea!)}`);
      i++;
    } else if (c > 0) {
      yield { path: `${prefix}/${entryName(eb!)}`, kind: 'added', after: eb! };
      if (eb!.type === 'dir') yield* diffTrees(repo, undefined, eb!.subtree, `${prefix}/${entryName(eb!)}`);
      j++;
    } else {
      const path = `${prefix}/${entryName(ea!)}`;
      if (ea!.type !== eb!.type) {
        yield { path, kind: 'type', before: ea!, after: eb! };
        yield* diffTrees(repo, ea!.type === 'dir' ? ea!.subtree : undefined, eb!.type === 'dir' ? eb!.subtree : undefined, path);
      } else if (ea!.type === 'dir') {
        if (!sameMetadata(ea!, eb!)) yield { path, kind: 'metadata', before: ea!, after: eb! };
        yield* diffTrees(repo, ea!.subtree, eb!.subtree, path);
      } else if (!sameContent(ea!, eb!)) yield { path, kind: 'modified', before: ea!, after: eb! };
      else if (!sameMetadata(ea!, eb!)) yield { path, kind: 'metadata', before: ea!, after: eb! };
      i++;
      j++;
    }
  }
}

/** Writes one file's content to `out`, respecting backpressure. */
export async function dumpFile(repo: Repository, e: TreeEntry, out: Writable, signal?: AbortSignal): Promise<number> {
  if (e.type !== 'file') throw new LifeboatError('usage', `${entryName(e)} is a ${e.type === 'dir' ? 'folder' : e.type}, not a file; "lifeboat dump" prints one file.`);
  let n = 0;
  for (const id of await fileContent(repo, e)) {
    signal?.throwIfAborted();
    const data = await repo.loadBlob(fromHex(id));
    n += data.length;
    if (!out.write(data)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  return n;
}

/** Formats a ns timestamp as ISO-8601 with nanoseconds. */
export function formatNs(ns: bigint): string {
  const ms = ns / 1_000_000n;
  const frac = ((ns % 1_000_000_000n) + 1_000_000_000n) % 1_000_000_000n;
  return new Date(Number(ms)).toISOString().replace(/\.\d+Z$/, `.${frac.toString().padStart(9, '0')}Z`);
}
