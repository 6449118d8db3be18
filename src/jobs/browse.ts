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
import { dumpFile, resolve, walk, type Tree, type TreeNode } from '../tree/tree.js';
import { reusingLargeBlocks } from '../util/memory.js';
import { PathMatcher } from '../files/pattern.js';
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

/** The highest partition number a path may name (GPT allows 128 by default). */
const MAX_PARTITION = 128;

export interface DumpOptions {
  readonly signal?: AbortSignal;
  /** Told about an entry a folder's archive leaves out, and why. */
  readonly onSkip?: (path: string, why: string) => void;
  /**
   * Called before a folder is written as a tar archive: it may refuse (a terminal cannot take an
   * archive) by throwing.
   */
  readonly beforeArchive?: () => void;
}

/**
 * Writes the file at `path` in snapshot `ref` to `out`, or a folder as a tar archive. Its chunks
 * are freed one after the other: the allocator keeps large blocks for reuse (reusingLargeBlocks),
 * or each chunk's buffers were fresh memory, faulted in page by page (a 512 MiB file: 532,000
 * page faults, 10 CPU-s; with the blocks reused 37,000 and 2.5 CPU-s).
 */
export async function dump(repo: Repository, ref: string, path: string, out: NodeJS.WritableStream, o: DumpOptions = {}): Promise<void> {
  const t = await openSnapshotTree(repo, ref, path);
  const at = await t.resolve(path);
  if (at.type !== 'file' && at.type !== 'dir') throw new LifeboatError('usage', `${path} is a ${at.type}, not a file or a folder.`);
  if (at.type === 'dir') o.beforeArchive?.();
  await reusingLargeBlocks(async () => {
    if (at.type === 'file') return void (await dumpFile(t.tree, at, out, o.signal));
    const { dumpTar } = await import('../tree/tar.js');
    await dumpTar(t.tree, at, out, { ...(o.signal ? { signal: o.signal } : {}), ...(o.onSkip ? { onSkip: o.onSkip } : {}) });
  });
}

/**
 * A file's content chunk by chunk (the dashboard's downloads), with large blocks reused while it
 * is read, as dump does; the generator's end (or its return, when the download is cancelled) ends that.
 */
export async function* readFile(t: OpenedTree, file: TreeNode, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  let done!: () => void;
  void reusingLargeBlocks(() => new Promise<void>((r) => (done = r)));
  try {
    yield* t.tree.read(file, signal);
  } finally {
    done();
  }
}

/**
 * Snapshot `ref` as a tree. With `forPath` (the path about to be opened in it), "latest" is the
 * latest snapshot of the kind that path names: a drive image for a partition's path ("2:/Users",
 * "/2/Users"; a folder named 2024 is no partition), a file backup for any other; the latest of any
 * kind when there is none of that kind.
 */
export async function openSnapshotTree(repo: Repository, ref: string, forPath?: string): Promise<OpenedTree> {
  let found: { id: Hex; snapshot: Snapshot } | undefined;
  if (ref === 'latest' && forPath !== undefined) {
    const partition = /^(\d+):|^\/?(\d+)(\/|$)/.exec(forPath);
    const kind = partition && Number(partition[1] ?? partition[2]) <= MAX_PARTITION ? 'image' : 'files';
    found = await repo.findSnapshot(ref, (s) => s.kind === kind).catch((e: unknown) => {
      if (e instanceof LifeboatError && e.code === 'not-found') return undefined;
      throw e;
    });
  }
  const { id, snapshot } = found ?? (await repo.findSnapshot(ref));
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
    const t = await openSnapshotTree(repo, ref, '/');
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
