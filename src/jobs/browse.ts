/**
 * jobs — the application API: each use case as a function the CLI, the server and the scheduler
 * all call. May import every layer below (store, repo, chunking, tree, files, image, util); never
 * cli/ or server/. Messages name what a person does, not CLI flags where it can be helped.
 *
 * browse.ts: any snapshot (files or drive image) opened as one tree, with the paths people type
 * mapped into it, for ls, find, diff and dump; and a folder on this computer to diff against.
 */
import type { Hex } from '../repo/ids.js';
import type { Repository } from '../repo/repository.js';
import type { Snapshot } from '../repo/snapshot.js';
import { LifeboatError } from '../util/errors.js';
import { resolve, type Tree, type TreeNode } from '../tree/tree.js';
import { SnapshotTree } from '../files/snapshot-tree.js';
import { originalPath, snapshotPath } from '../files/browse.js';
import { ImageTree, imageTreePath } from '../image/image-tree.js';
import { LocalTree } from '../files/local-tree.js';
import { isAbsolute, resolve as resolvePath, sep } from 'node:path';

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

export interface DiffSide {
  readonly tree: Tree;
  readonly node: TreeNode;
  /** A snapshot's short id, or the folder's path. */
  readonly label: string;
}

/** A diff argument that names a folder on this computer rather than a snapshot (ids and "latest" hold no separator). */
function isFolderArg(arg: string): boolean {
  return arg.includes('/') || arg.includes(sep) || arg === '.' || arg === '..' || isAbsolute(arg);
}

/**
 * The two sides of a diff: two snapshots of one kind, or a file snapshot and a folder on this
 * computer ("what changed since that backup": the snapshot's copy of that folder against the live one).
 */
export async function openDiffSides(repo: Repository, a: string, b: string): Promise<{ a: DiffSide; b: DiffSide }> {
  if (isFolderArg(a) && isFolderArg(b)) throw new LifeboatError('usage', 'Name at least one snapshot to compare (an id or "latest").');
  if (isFolderArg(a) || isFolderArg(b)) {
    const [ref, folder] = isFolderArg(b) ? [a, b] : [b, a];
    const t = await openSnapshotTree(repo, ref);
    if (t.snapshot.kind !== 'files') throw new LifeboatError('usage', 'A drive image can be compared with another drive image, not with a folder.');
    const abs = resolvePath(folder);
    const node = await t.resolve(abs.split(sep).join('/')).catch((e: unknown) => {
      if (!(e instanceof LifeboatError) || e.code !== 'not-found') throw e;
      throw new LifeboatError('not-found', `Snapshot ${t.id.slice(0, 8)} does not hold ${abs}; it holds ${t.snapshot.paths.join(', ')}.`);
    });
    if (node.type !== 'dir') throw new LifeboatError('usage', `${abs} is not a folder in snapshot ${t.id.slice(0, 8)}; compare folders.`);
    const local = new LocalTree(abs);
    const live = await local.root().catch(() => {
      throw new LifeboatError('not-found', `The folder ${abs} cannot be read on this computer.`);
    });
    const s: DiffSide = { tree: t.tree, node, label: t.id.slice(0, 8) };
    const f: DiffSide = { tree: local, node: live, label: abs };
    return ref === a ? { a: s, b: f } : { a: f, b: s };
  }
  const ta = await openSnapshotTree(repo, a);
  const tb = await openSnapshotTree(repo, b);
  if (ta.snapshot.kind !== tb.snapshot.kind) throw new LifeboatError('usage', 'One of the two snapshots is a file backup and the other a drive image; compare two of the same kind.');
  return { a: { tree: ta.tree, node: await ta.tree.root(), label: ta.id.slice(0, 8) }, b: { tree: tb.tree, node: await tb.tree.root(), label: tb.id.slice(0, 8) } };
}
