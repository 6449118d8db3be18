/**
 * jobs — the application API: each use case as a function the CLI, the server and the scheduler
 * all call. May import every layer below (store, repo, chunking, tree, files, image, util); never
 * cli/ or server/. Messages name what a person does, not CLI flags where it can be helped.
 *
 * browse.ts: any snapshot (files or drive image) opened as one tree, with the paths people type
 * mapped into it, for ls, find, diff and dump.
 */
import type { Hex } from '../repo/ids.js';
import type { Repository } from '../repo/repository.js';
import type { Snapshot } from '../repo/snapshot.js';
import { LifeboatError } from '../util/errors.js';
import { resolve, walk, type Tree, type TreeNode } from '../tree/tree.js';
import { PathMatcher } from '../files/pattern.js';
import { SnapshotTree } from '../files/snapshot-tree.js';
import { originalPath, snapshotPath } from '../files/browse.js';
import { ImageTree, imageTreePath } from '../image/image-tree.js';

export interface OpenedTree {
  readonly id: Hex;
  readonly snapshot: Snapshot;
  readonly tree: Tree;
  /** A path as typed (an original absolute path, the snapshot's own form, or PARTITION:PATH of an image) in the tree's form. */
  treePath(typed: string): string;
  /** A path of the tree as people know it: the original absolute path for file snapshots. */
  shownPath(treePath: string): string;
  /** The node at a typed path. */
  resolve(typed: string): Promise<TreeNode>;
}

export async function openSnapshotTree(repo: Repository, ref: string): Promise<OpenedTree> {
  const { id, snapshot } = await repo.findSnapshot(ref);
  return treeOf(repo, id, snapshot);
}

export async function treeOf(repo: Repository, id: Hex, snapshot: Snapshot): Promise<OpenedTree> {
  if (snapshot.kind === 'files') {
    const tree = new SnapshotTree(repo, snapshot);
    const treePath = (p: string) => snapshotPath(snapshot, p);
    return { id, snapshot, tree, treePath, shownPath: (p) => originalPath(snapshot, p), resolve: (p) => resolve(tree, treePath(p)) };
  }
  if (snapshot.kind === 'image') {
    const tree = await ImageTree.open(repo, id);
    return { id, snapshot, tree, treePath: imageTreePath, shownPath: (p) => p, resolve: (p) => resolve(tree, imageTreePath(p), '"lifeboat image ls"') };
  }
  throw new LifeboatError('unsupported-version', `Snapshot ${id.slice(0, 8)} is of a kind this version cannot open.`);
}

export interface FoundEntry {
  readonly id: Hex;
  readonly snapshot: Snapshot;
  /** The path in the tree's form, and as people know it (the original absolute path of a file backup). */
  readonly path: string;
  readonly shown: string;
  readonly node: TreeNode;
}

export interface FindOptions {
  /** Only these snapshots (ids or prefixes); default every file backup (and drive image with `images`). */
  readonly snapshots?: readonly string[];
  readonly images?: boolean;
  /** Only snapshots for which this is true (a scheduled job's own, say). */
  readonly filter?: (s: Snapshot) => boolean;
  readonly signal?: AbortSignal;
  readonly onSkip?: (id: Hex, path: string, why: string) => void;
  /** Told how many snapshots are searched, before the first result. */
  readonly onSearching?: (count: number) => void;
}

/** Every entry of the chosen snapshots whose path matches `pattern`, as backed up or in the snapshot's own form: all versions of a file, across snapshots. */
export async function* findInSnapshots(repo: Repository, pattern: string, o: FindOptions = {}): AsyncGenerator<FoundEntry> {
  const matcher = new PathMatcher([pattern]);
  const snaps =
    o.snapshots !== undefined && o.snapshots.length > 0
      ? await Promise.all(o.snapshots.map((r) => repo.findSnapshot(r)))
      : (await repo.listSnapshots(() => undefined)).filter((s) => (s.snapshot.kind === 'files' || o.images === true) && (o.filter?.(s.snapshot) ?? true));
  o.onSearching?.(snaps.length);
  for (const { id, snapshot } of snaps) {
    const t = await treeOf(repo, id, snapshot);
    const onSkip = (p: string, why: string) => o.onSkip?.(id, p, why);
    for await (const f of walk(t.tree, await t.tree.root(), '', { ...(o.signal ? { signal: o.signal } : {}), onSkip })) {
      const shown = t.shownPath(f.path);
      if (matcher.matches(f.path) || matcher.matches(shown)) yield { id, snapshot, path: f.path, shown, node: f.node };
    }
  }
}
