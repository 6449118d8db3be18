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
import { resolve, type Tree, type TreeNode } from '../tree/tree.js';
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
