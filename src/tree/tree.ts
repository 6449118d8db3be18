/**
 * tree — one read-only interface for every tree Lifeboat shows a person: a file snapshot, a
 * filesystem inside a drive image (its partitions as the top folders), and a folder on this
 * computer. On top of it, once for all three: resolving a path, walking, comparing two trees,
 * and writing a file or a folder as a tar stream (tar.ts). Implementations live with what they
 * read (files/snapshot-tree.ts, image/image-tree.ts, files/local-tree.ts).
 *
 * May import util only. Everything a tree yields is untrusted: walk and diff refuse a folder that
 * holds itself on its own path and cap how many entries one traversal may yield, so a crafted or
 * damaged tree cannot make them run without end.
 */
import { LifeboatError } from '../util/errors.js';

export type NodeType = 'file' | 'dir' | 'symlink' | 'fifo' | 'chardev' | 'blockdev' | 'other';

/** One entry of a tree. Implementations add what they need to find its content again. */
export interface TreeNode {
  /** The name's bytes ('' for a root). */
  readonly name: Buffer;
  readonly type: NodeType;
  readonly size: number;
  /** Permission bits, with setuid/setgid/sticky. */
  readonly mode: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly user?: string;
  readonly group?: string;
  /** Modification time, nanoseconds since 1970. */
  readonly mtimeNs?: bigint;
  /** Access time, where the tree keeps it. */
  readonly atimeNs?: bigint;
  /** Device number of chardev/blockdev entries (Linux encoding). */
  readonly rdev?: bigint;
  /** Symlink target, when the tree has it at hand (otherwise ask readlink). */
  readonly target?: Buffer;
  /** Equal keys in two trees of one repository mean equal content (a file's data, a folder's whole subtree): diff skips them unopened. */
  readonly contentKey?: string;
  /** Equal keys mean equal extended attributes (absent: none). */
  readonly attributesKey?: string;
  /** Identifies a folder within its tree, so a folder that holds itself is noticed. */
  readonly folderKey?: string;
  /** Set on files with more than one name: equal keys within a tree are one file (a hard link). */
  readonly linkKey?: string;
  /** What a copy of this entry leaves behind, in words (for example NTFS alternate data streams). */
  readonly lossy?: string;
  /** The file changed while it was backed up: its content is what was read then. */
  readonly changedWhileRead?: boolean;
  /** Why this entry cannot be trusted or read (the rest of the tree is fine). */
  readonly damaged?: string;
}

export interface Tree {
  root(): Promise<TreeNode>;
  /** The entries of a folder in byte order of their names, without "." and "..". */
  list(dir: TreeNode): Promise<TreeNode[]>;
  /** A file's bytes in order; exactly `size` of them unless the tree's data is damaged. */
  read(file: TreeNode, signal?: AbortSignal): AsyncIterable<Uint8Array>;
  readlink(link: TreeNode): Promise<Buffer>;
  /** Whether an error thrown for one entry is damage confined to it (the rest of the tree reads on). */
  confined?(e: unknown): boolean;
  /** A folder's entries for paging, where the tree can give a range without decoding the whole folder. */
  listing?(dir: TreeNode): Promise<Listing>;
  /**
   * Entries the caller will read next, in that order: a tree that reads from a repository reads
   * their files ahead. Returns how many of them, from the first, it took (the rest did not fit yet).
   */
  prefetch?(entries: readonly TreeNode[]): number;
}

/** A folder's entries in the order of `list`, a range at a time (a page of a folder of 100,000 entries). */
export interface Listing {
  /** How many entries there are, when known without more work (a big folder is counted by `count`). */
  readonly length: number | undefined;
  count(): Promise<number>;
  /** Entries [from, to); fewer at the end. */
  slice(from: number, to: number): Promise<TreeNode[]>;
}

/** The folder's entries for paging: the tree's own `listing` where it has one, else its whole list. */
export async function openListing(tree: Tree, dir: TreeNode): Promise<Listing> {
  if (tree.listing) return tree.listing(dir);
  const all = await tree.list(dir);
  return { length: all.length, count: () => Promise.resolve(all.length), slice: (from, to) => Promise.resolve(all.slice(from, to)) };
}

/** Bytes of a file the tree knows are a hole (all zeros, never stored): a copy may skip writing them. */
export class Hole extends Uint8Array {}

/** More entries than any real tree a person backs up (restic's largest reported trees hold a few hundred million). */
export const MAX_WALK_ENTRIES = 1_000_000_000;

/**
 * A tree that repeats itself: a traversal has yielded `visited` entries though its distinct folders
 * hold only `distinct`. Real trees repeat some folders (empty ones, copies of a project), never a
 * hundredfold over 10,000 entries; a crafted snapshot whose folder holds the same sub-folder twice
 * at 40 levels would yield 2^40 paths from a few KiB.
 */
export function runaway(visited: number, distinct: number): boolean {
  return visited > 10_000 && visited > 100 * Math.max(1, distinct);
}

export function runawayError(where: string): LifeboatError {
  return new LifeboatError('corrupt', `The snapshot repeats the same folders so often that going through it would never end (stopped at ${where}); it was made on purpose or is damaged. "lifeboat check" reports it.`);
}

/** A name that can be a path component: not empty, ".", ".." and without "/" or NUL. */
export function isPlainName(name: Buffer): boolean {
  if (name.length === 0 || name.includes(0x2f) || name.includes(0)) return false;
  return !(name.length <= 2 && name.every((c) => c === 0x2e));
}

export function nodeName(n: TreeNode): string {
  return n.name.toString('utf8');
}

export function splitPath(p: string): string[] {
  return p.split('/').filter((x) => x.length > 0 && x !== '.');
}

/** The entry named `name` of a listing in byte order of names, found by halving (a few entries decoded, not the whole folder). */
async function search(l: Listing, name: Buffer): Promise<TreeNode | undefined> {
  let lo = 0;
  let hi = await l.count();
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const n = (await l.slice(mid, mid + 1))[0]!;
    const c = Buffer.compare(n.name, name);
    if (c === 0) return n;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return undefined;
}

/** The node at a '/'-separated path ('' or '/' is the root); ".." is refused so a path cannot climb out. */
export async function resolve(tree: Tree, path: string, hint = '"lifeboat ls"'): Promise<TreeNode> {
  const parts = splitPath(path);
  if (parts.includes('..')) throw new LifeboatError('usage', `${path}: ".." is not allowed; name the path as ${hint} shows it.`);
  let node = await tree.root();
  for (let i = 0; i < parts.length; i++) {
    if (node.type !== 'dir') throw new LifeboatError('not-found', `${path} is not there: /${parts.slice(0, i).join('/')} is not a folder.`);
    const want = Buffer.from(parts[i]!, 'utf8');
    const next = tree.listing ? await search(await tree.listing(node), want) : (await tree.list(node)).find((c) => c.name.equals(want));
    if (!next) throw new LifeboatError('not-found', `${path} is not there; see ${hint}.`);
    node = next;
  }
  return node;
}

export interface Found {
  /** '/'-separated, starting with '/'. */
  readonly path: string;
  readonly node: TreeNode;
}

export interface WalkOptions {
  readonly signal?: AbortSignal;
  /** Called for an entry that is left out: a name that is not plain, or a folder inside itself. */
  readonly onSkip?: (path: string, why: string) => void;
  readonly maxEntries?: number;
}

class Budget {
  left: number;
  private visited = 0;
  private distinct = 0;
  private readonly folders = new Set<string>();
  constructor(max: number) {
    this.left = max;
  }
  /** A folder's listing was read: its entries count once towards what the tree holds. */
  listed(dir: TreeNode, entries: number): void {
    if (dir.folderKey === undefined || this.folders.has(dir.folderKey)) return;
    this.folders.add(dir.folderKey);
    this.distinct += entries;
  }
  take(path: string): void {
    this.visited++;
    if (--this.left < 0 || (this.folders.size > 0 && runaway(this.visited, this.distinct))) throw runawayError(path);
  }
}

async function* walkIn(tree: Tree, dir: TreeNode, prefix: string, o: WalkOptions, budget: Budget, ancestors: Set<string>): AsyncGenerator<Found> {
  const nodes = await tree.list(dir);
  budget.listed(dir, nodes.length);
  for (const node of nodes) {
    o.signal?.throwIfAborted();
    const path = `${prefix}/${nodeName(node)}`;
    if (!isPlainName(node.name)) {
      o.onSkip?.(path, 'its name is not a plain name');
      continue;
    }
    budget.take(path);
    yield { path, node };
    if (node.type !== 'dir' || node.damaged !== undefined) continue;
    if (node.folderKey !== undefined && ancestors.has(node.folderKey)) {
      o.onSkip?.(path, 'the folder holds itself (the tree is damaged or crafted)');
      continue;
    }
    if (node.folderKey !== undefined) ancestors.add(node.folderKey);
    yield* walkIn(tree, node, path, o, budget, ancestors);
    if (node.folderKey !== undefined) ancestors.delete(node.folderKey);
  }
}

/** Every entry under folder `dir`, depth first in name order, paths starting with `prefix`. */
export function walk(tree: Tree, dir: TreeNode, prefix = '', o: WalkOptions = {}): AsyncGenerator<Found> {
  const ancestors = new Set<string>(dir.folderKey !== undefined ? [dir.folderKey] : []);
  return walkIn(tree, dir, prefix, o, new Budget(o.maxEntries ?? MAX_WALK_ENTRIES), ancestors);
}

export type ChangeKind = 'added' | 'removed' | 'modified' | 'metadata' | 'type';
export interface Change {
  readonly path: string;
  readonly kind: ChangeKind;
  readonly before?: TreeNode;
  readonly after?: TreeNode;
}

function sameContent(a: TreeNode, b: TreeNode): boolean {
  if (a.size !== b.size || a.rdev !== b.rdev) return false;
  if (a.type === 'symlink' && !(a.target ?? Buffer.alloc(0)).equals(b.target ?? Buffer.alloc(0))) return false;
  // Without content keys (a filesystem in an image), a file is taken as unchanged when its size and time are.
  if (a.contentKey !== undefined && b.contentKey !== undefined) return a.contentKey === b.contentKey;
  return a.mtimeNs === b.mtimeNs;
}

function sameMeta(a: TreeNode, b: TreeNode): boolean {
  return a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.mtimeNs === b.mtimeNs && a.attributesKey === b.attributesKey;
}

/** Differences between folders `a` and `b` (of two trees, or one); equal folder content keys are not opened. */
export async function* diff(ta: Tree, a: TreeNode | undefined, tb: Tree, b: TreeNode | undefined, prefix = '', o: WalkOptions = {}): AsyncGenerator<Change> {
  yield* diffIn(ta, a, tb, b, prefix, o, new Budget(o.maxEntries ?? MAX_WALK_ENTRIES), new Set());
}

async function* diffIn(ta: Tree, a: TreeNode | undefined, tb: Tree, b: TreeNode | undefined, prefix: string, o: WalkOptions, budget: Budget, ancestors: Set<string>): AsyncGenerator<Change> {
  if (a && b && a.contentKey !== undefined && a.contentKey === b.contentKey) return;
  const key = `${a?.folderKey ?? ''}|${b?.folderKey ?? ''}`;
  if (ancestors.has(key)) {
    o.onSkip?.(prefix, 'the folder holds itself (the tree is damaged or crafted)');
    return;
  }
  const la = (a && a.damaged === undefined ? await ta.list(a) : []).filter((n) => isPlainName(n.name));
  const lb = (b && b.damaged === undefined ? await tb.list(b) : []).filter((n) => isPlainName(n.name));
  if (a) budget.listed(a, la.length);
  if (b) budget.listed(b, lb.length);
  ancestors.add(key);
  let i = 0;
  let j = 0;
  while (i < la.length || j < lb.length) {
    o.signal?.throwIfAborted();
    const ea = la[i];
    const eb = lb[j];
    const c = ea && eb ? Buffer.compare(ea.name, eb.name) : ea ? -1 : 1;
    const path = `${prefix}/${nodeName((c <= 0 ? ea : eb)!)}`;
    budget.take(path);
    if (c < 0) {
      yield { path, kind: 'removed', before: ea! };
      if (ea!.type === 'dir') yield* diffIn(ta, ea, tb, undefined, path, o, budget, ancestors);
      i++;
    } else if (c > 0) {
      yield { path, kind: 'added', after: eb! };
      if (eb!.type === 'dir') yield* diffIn(ta, undefined, tb, eb, path, o, budget, ancestors);
      j++;
    } else {
      if (ea!.type !== eb!.type) {
        yield { path, kind: 'type', before: ea!, after: eb! };
        yield* diffIn(ta, ea!.type === 'dir' ? ea : undefined, tb, eb!.type === 'dir' ? eb : undefined, path, o, budget, ancestors);
      } else if (ea!.type === 'dir') {
        if (!sameMeta(ea!, eb!)) yield { path, kind: 'metadata', before: ea!, after: eb! };
        yield* diffIn(ta, ea, tb, eb, path, o, budget, ancestors);
      } else if (!sameContent(ea!, eb!)) yield { path, kind: 'modified', before: ea!, after: eb! };
      else if (!sameMeta(ea!, eb!)) yield { path, kind: 'metadata', before: ea!, after: eb! };
      i++;
      j++;
    }
  }
  ancestors.delete(key);
}

/** Writes a file's bytes to `out`, respecting backpressure; returns how many were written. */
export async function dumpFile(tree: Tree, file: TreeNode, out: NodeJS.WritableStream, signal?: AbortSignal): Promise<number> {
  if (file.type !== 'file') throw new LifeboatError('usage', `${nodeName(file) || '/'} is a ${file.type === 'dir' ? 'folder' : file.type}, not a file.`);
  let n = 0;
  for await (const data of tree.read(file, signal)) {
    n += data.length;
    if (!out.write(data)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  return n;
}

/** `-rw-r--r--` style, for listings. */
export function modeString(n: Pick<TreeNode, 'type' | 'mode'>): string {
  const t = { file: '-', dir: 'd', symlink: 'l', fifo: 'p', chardev: 'c', blockdev: 'b', other: '?' }[n.type];
  const m = n.mode;
  const rwx = (shift: number, special: number, ch: string) =>
    `${m & (4 << shift) ? 'r' : '-'}${m & (2 << shift) ? 'w' : '-'}${m & special ? (m & (1 << shift) ? ch : ch.toUpperCase()) : m & (1 << shift) ? 'x' : '-'}`;
  return t + rwx(6, 0o4000, 's') + rwx(3, 0o2000, 's') + rwx(0, 0o1000, 't');
}
