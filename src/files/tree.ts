/**
 * Tree blobs (docs/FORMAT.md §10): one directory listing per tree-type blob, as UTF-8 JSON with a
 * fixed field order so that an unchanged directory encodes to the same bytes (and the same id) in
 * every backup. Big directories are split into parts; files with very many chunks keep their
 * chunk list in separate blobs. Parsing is strict: anything malformed is a 'corrupt' error, but
 * names are returned as stored — deciding whether a name is safe to create is the restorer's job.
 */
import { isUtf8 } from 'node:buffer';
import { LifeboatError } from '../util/errors.js';
import { pool } from '../util/concurrency.js';
import { BlobType, type Repository } from '../repo/repository.js';
import { runaway, runawayError } from '../tree/tree.js';
import { fromHex, isId, toHex, type Hex } from '../repo/ids.js';

export const TREE_VERSION = 1;
/** A leaf listing is closed once its JSON reaches this size; the directory then becomes parts. */
export const MAX_LEAF_BYTES = 1024 * 1024;
/** A file with more chunks than this stores its chunk list in content-list blobs. */
export const MAX_INLINE_CONTENT = 8192;

export type EntryType = 'file' | 'dir' | 'symlink' | 'fifo' | 'chardev' | 'blockdev';
const TYPES: ReadonlySet<string> = new Set(['file', 'dir', 'symlink', 'fifo', 'chardev', 'blockdev']);

/**
 * What restoring one file's contents and metadata needs of its entry: a restore from a remote
 * store plans up to 131,072 files before it reads (files/restore-plan.ts), and keeps this for each
 * rather than the whole entry (its ctime, inode and device as bigints, its content list).
 */
export interface FileAttributes {
  readonly name: Buffer;
  readonly size: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly user?: string | undefined;
  readonly group?: string | undefined;
  readonly mtime: bigint;
  readonly atime: bigint;
  readonly xattrs?: readonly (readonly [string, Buffer])[] | undefined;
}

/** Entry `e`'s FileAttributes, in an object of their own. */
export function fileAttributes(e: TreeEntry): FileAttributes {
  return { name: e.name, size: e.size, mode: e.mode, uid: e.uid, gid: e.gid, user: e.user, group: e.group, mtime: e.mtime, atime: e.atime, xattrs: e.xattrs };
}

export interface TreeEntry {
  /** The name's bytes exactly as the file system gave them. */
  name: Buffer;
  type: EntryType;
  /** Permission bits including setuid, setgid and sticky (st_mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  user?: string;
  group?: string;
  /** Nanoseconds since the epoch. */
  mtime: bigint;
  atime: bigint;
  ctime: bigint;
  size: number;
  inode: bigint;
  device: bigint;
  nlink: number;
  /** Symlink target bytes. */
  target?: Buffer;
  /** Device number (st_rdev) of chardev/blockdev entries, Linux encoding. */
  rdev?: bigint;
  /** Extended attributes, sorted by name. */
  xattrs?: [string, Buffer][];
  /** Holes of a sparse file as flat (offset, length) pairs. */
  holes?: number[];
  /** Data blob ids, in file order (files). */
  content?: Hex[];
  /** Content-list blob ids, used instead of `content` for files of more than MAX_INLINE_CONTENT chunks. */
  contentParts?: Hex[];
  /** The directory's own tree (dirs). */
  subtree?: Hex;
  /** Written by `repair snapshots`: this file's data (or this folder's listing) was lost. */
  damaged?: true;
  /** The file changed while it was read: its content is what was read (and `size` its length), possibly inconsistent. */
  changed?: true;
}

/** A bytes field as `"key":"utf8"` or `"keyB64":"base64"` when not valid UTF-8 (valid UTF-8 decodes and encodes back to the same bytes). */
function bytesField(key: string, b: Buffer): string {
  return isUtf8(b) ? `"${key}":${JSON.stringify(b.toString('utf8'))}` : `"${key}B64":"${b.toString('base64')}"`;
}

/** `["a","b"]` of ids (hex, nothing to escape): entries' content lists, parts and content-list blobs. */
function idList(ids: readonly Hex[]): string {
  return ids.length === 0 ? '[]' : `["${ids.join('","')}"]`;
}

/** Encodes one entry; the field order is part of the format (same entry → same bytes). */
export function encodeEntry(e: TreeEntry): string {
  let s = `{${bytesField('name', e.name)},"type":"${e.type}","mode":${e.mode},"uid":${e.uid},"gid":${e.gid}`;
  if (e.user !== undefined) s += `,"user":${JSON.stringify(e.user)}`;
  if (e.group !== undefined) s += `,"group":${JSON.stringify(e.group)}`;
  s += `,"mtime":"${e.mtime}","atime":"${e.atime}","ctime":"${e.ctime}","size":${e.size},"inode":"${e.inode}","device":"${e.device}","nlink":${e.nlink}`;
  if (e.target !== undefined) s += `,${bytesField('target', e.target)}`;
  if (e.rdev !== undefined) s += `,"rdev":"${e.rdev}"`;
  if (e.xattrs && e.xattrs.length > 0) s += `,"xattrs":{${e.xattrs.map(([k, v]) => `${JSON.stringify(k)}:"${v.toString('base64')}"`).join(',')}}`;
  if (e.holes && e.holes.length > 0) s += `,"holes":[${e.holes.join(',')}]`;
  if (e.content !== undefined) s += `,"content":${idList(e.content)}`;
  if (e.contentParts !== undefined) s += `,"contentParts":${idList(e.contentParts)}`;
  if (e.subtree !== undefined) s += `,"subtree":"${e.subtree}"`;
  if (e.damaged) s += ',"damaged":true';
  if (e.changed) s += ',"changed":true';
  return s + '}';
}

function sameList<T>(a: readonly T[] | undefined, b: readonly T[] | undefined, eq: (x: T, y: T) => boolean): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!eq(a[i]!, b[i]!)) return false;
  return true;
}
const sameBytes = (a: Buffer | undefined, b: Buffer | undefined): boolean => a === b || (a !== undefined && b !== undefined && a.equals(b));

/** Whether two entries have the same metadata as `lifeboat diff` compares it (a folder whose metadata differs is a changed folder). */
export function sameMetadata(a: TreeEntry, b: TreeEntry): boolean {
  const x = (e: TreeEntry) => JSON.stringify([e.mode, e.uid, e.gid, String(e.mtime), (e.xattrs ?? []).map(([k, v]) => k + '=' + v.toString('base64'))]);
  return x(a) === x(b);
}

/**
 * Whether two entries encode to the same bytes (every field equal). Lets the backup keep a folder's
 * previous listing id without encoding and hashing it again when nothing in it changed.
 */
export function sameEntry(a: TreeEntry, b: TreeEntry): boolean {
  return (
    a.type === b.type && a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.user === b.user && a.group === b.group &&
    a.mtime === b.mtime && a.atime === b.atime && a.ctime === b.ctime && a.size === b.size && a.inode === b.inode &&
    a.device === b.device && a.nlink === b.nlink && a.rdev === b.rdev && a.subtree === b.subtree && a.damaged === b.damaged && a.changed === b.changed &&
    a.name.equals(b.name) && sameBytes(a.target, b.target) &&
    sameList(a.xattrs?.length ? a.xattrs : undefined, b.xattrs?.length ? b.xattrs : undefined, (x, y) => x[0] === y[0] && x[1].equals(y[1])) &&
    sameList(a.holes?.length ? a.holes : undefined, b.holes?.length ? b.holes : undefined, (x, y) => x === y) &&
    sameList(a.content, b.content, (x, y) => x === y) && sameList(a.contentParts, b.contentParts, (x, y) => x === y)
  );
}

function corrupt(what: string): never {
  throw new LifeboatError('corrupt', `A directory listing in the repository is damaged (${what}). Run "lifeboat check" to see what is affected.`);
}

const INT = /^-?[0-9]{1,25}$/;

function bigField(o: Record<string, unknown>, k: string): bigint {
  const v = o[k];
  if (typeof v !== 'string' || !INT.test(v)) corrupt(`field ${k}`);
  return BigInt(v);
}
function numField(o: Record<string, unknown>, k: string): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) corrupt(`field ${k}`);
  return v;
}
function bytesOf(o: Record<string, unknown>, k: string): Buffer | undefined {
  const s = o[k];
  if (typeof s === 'string') return Buffer.from(s, 'utf8');
  const b = o[k + 'B64'];
  if (typeof b === 'string') return Buffer.from(b, 'base64');
  return undefined;
}
function ids(v: unknown, k: string): Hex[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && isId(x))) corrupt(`field ${k}`);
  return v;
}

export function decodeEntry(v: unknown): TreeEntry {
  if (!v || typeof v !== 'object' || Array.isArray(v)) corrupt('an entry is not an object');
  const o = v as Record<string, unknown>;
  const name = bytesOf(o, 'name');
  if (!name) corrupt('an entry has no name');
  const type = o['type'];
  if (typeof type !== 'string' || !TYPES.has(type)) corrupt(`unknown entry type ${String(type)}`);
  const e: TreeEntry = {
    name,
    type: type as EntryType,
    mode: numField(o, 'mode') & 0o7777,
    uid: numField(o, 'uid'),
    gid: numField(o, 'gid'),
    mtime: bigField(o, 'mtime'),
    atime: bigField(o, 'atime'),
    ctime: bigField(o, 'ctime'),
    size: numField(o, 'size'),
    inode: bigField(o, 'inode'),
    device: bigField(o, 'device'),
    nlink: numField(o, 'nlink'),
  };
  if (typeof o['user'] === 'string') e.user = o['user'];
  if (typeof o['group'] === 'string') e.group = o['group'];
  const target = bytesOf(o, 'target');
  if (target) e.target = target;
  if (o['rdev'] !== undefined) e.rdev = bigField(o, 'rdev');
  const x = o['xattrs'];
  if (x !== undefined) {
    if (!x || typeof x !== 'object' || Array.isArray(x)) corrupt('field xattrs');
    e.xattrs = Object.entries(x as Record<string, unknown>).map(([k, val]) => {
      if (typeof val !== 'string') corrupt('field xattrs');
      return [k, Buffer.from(val, 'base64')];
    });
  }
  const h = o['holes'];
  if (h !== undefined) {
    if (!Array.isArray(h) || h.length % 2 !== 0 || !h.every((n) => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0)) corrupt('field holes');
    e.holes = h as number[];
  }
  if (o['content'] !== undefined) e.content = ids(o['content'], 'content');
  if (o['contentParts'] !== undefined) e.contentParts = ids(o['contentParts'], 'contentParts');
  if (o['subtree'] !== undefined) {
    const s = o['subtree'];
    if (typeof s !== 'string' || !isId(s)) corrupt('field subtree');
    e.subtree = s;
  }
  if (e.type === 'dir' && e.subtree === undefined) corrupt('a folder without a listing');
  if (o['damaged'] === true) e.damaged = true;
  if (o['changed'] === true) e.changed = true;
  return e;
}

function parseJson(bytes: Uint8Array): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    corrupt('not valid JSON');
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) corrupt('not an object');
  const o = v as Record<string, unknown>;
  if (o['version'] !== TREE_VERSION) corrupt(`unknown listing version ${String(o['version'])}`);
  return o;
}

/** Compares names as bytes: the order of entries in a listing. */
export function compareNames(a: Buffer, b: Buffer): number {
  return Buffer.compare(a, b);
}

/** Anything that can store tree blobs (a Repository, or a test double). */
export interface TreeSink {
  saveBlob(type: BlobType, data: Uint8Array): Promise<{ id: Buffer; added: boolean }>;
}
export interface TreeSource {
  loadBlob(id: Uint8Array): Promise<Uint8Array>;
  /** Where known, the stored type of a blob (data, tree, delta), to refuse a listing named as file data. */
  readonly index?: { get(id: Uint8Array): { readonly type: number } | undefined };
}

/**
 * Stores one directory listing (entries sorted by name) and returns its id. Small listings are one
 * leaf blob; bigger ones become leaves of at most MAX_LEAF_BYTES plus a parts blob.
 * `onBlob` counts blobs actually added.
 */
export async function saveDir(repo: TreeSink, entries: readonly TreeEntry[], onBlob?: (bytes: number, added: boolean) => void): Promise<Hex> {
  const listing = new ListingWriter(repo, onBlob);
  for (const e of entries) {
    const saving = listing.add(e);
    if (saving) await saving;
  }
  return listing.finish();
}

/**
 * saveDir's listing, given an entry at a time (in name order): each full leaf is saved before the
 * next is encoded, so a huge folder's listing is never held encoded whole, and its entries need
 * not be held at all (the walker adds a huge folder's entries a window at a time).
 */
export class ListingWriter {
  private readonly partIds: Hex[] = [];
  private cur: string[] = [];
  private curLen = 0;

  constructor(
    private readonly repo: TreeSink,
    private readonly onBlob?: (bytes: number, added: boolean) => void,
  ) {}

  /** Adds `e`; when that fills a leaf, returns the saving of the leaf before it, to be awaited before the next add. */
  add(e: TreeEntry): Promise<void> | undefined {
    const s = encodeEntry(e);
    let saving: Promise<void> | undefined;
    if (this.cur.length > 0 && this.curLen + s.length > MAX_LEAF_BYTES) {
      const leaf = `{"version":1,"entries":[${this.cur.join(',')}]}`;
      this.cur = [];
      this.curLen = 0;
      saving = this.save(leaf).then((id) => void this.partIds.push(id));
    }
    this.cur.push(s);
    this.curLen += s.length + 1;
    return saving;
  }

  /** Saves what is left and returns the listing's id. */
  async finish(): Promise<Hex> {
    const last = `{"version":1,"entries":[${this.cur.join(',')}]}`;
    this.cur = [];
    if (this.partIds.length === 0) return this.save(last);
    this.partIds.push(await this.save(last));
    return this.save(`{"version":1,"parts":${idList(this.partIds)}}`);
  }

  private async save(json: string): Promise<Hex> {
    const bytes = Buffer.from(json, 'utf8');
    const length = bytes.length; // saveBlob may hand the buffer to a worker
    const r = await this.repo.saveBlob(BlobType.tree, bytes);
    this.onBlob?.(length, r.added);
    return toHex(r.id);
  }
}

/**
 * Loads a directory listing (following parts). `onParts` hears of the parts' ids, when it has
 * them, before they are loaded.
 */
export async function loadDir(repo: TreeSource, id: Hex, onParts?: (parts: readonly Hex[]) => void): Promise<TreeEntry[]> {
  const o = parseJson(await repo.loadBlob(fromHex(id)));
  if (Array.isArray(o['entries'])) return (o['entries'] as unknown[]).map(decodeEntry);
  const parts = o['parts'] === undefined ? corrupt('neither entries nor parts') : ids(o['parts'], 'parts');
  onParts?.(parts);
  const out: TreeEntry[] = [];
  for (const p of parts) {
    const leaf = parseJson(await repo.loadBlob(fromHex(p)));
    if (!Array.isArray(leaf['entries'])) corrupt('a part without entries');
    for (const e of leaf['entries'] as unknown[]) out.push(decodeEntry(e));
  }
  return out;
}

/**
 * How many entries a leaf listing's JSON holds, counted from its bytes without decoding them: the
 * objects one level inside the outer object's array. Several times cheaper than JSON.parse; the
 * count is checked when the leaf is decoded (DirPages.slice), so a malformed leaf is still refused.
 * Unbalanced brackets or an open string are refused here.
 */
function countEntries(b: Uint8Array): number {
  let depth = 0;
  let n = 0;
  let inString = false;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (depth === 2 && c === 0x7b) n++;
      depth++;
    } else if ((c === 0x7d || c === 0x5d) && --depth < 0) break;
  }
  if (depth !== 0 || inString) corrupt('not valid JSON');
  return n;
}

/**
 * A directory listing opened for paging: entries are decoded only when asked for, a 1 MiB part at
 * a time (the one last decoded is kept for the next page), so the first page of a folder of 100,000
 * entries costs one part whatever the folder's size. Counting the entries loads every part but
 * does not decode it.
 */
export class DirPages {
  private last: { part: number; entries: unknown[] } | undefined;
  private counting: Promise<number> | undefined;

  private constructor(
    private readonly repo: TreeSource,
    /** Each part's id (none: the listing is one leaf, kept in `last`) and, once known, how many entries it holds. */
    private readonly parts: { readonly id?: Hex; count?: number }[],
  ) {}

  static async open(repo: TreeSource, id: Hex): Promise<DirPages> {
    const o = parseJson(await repo.loadBlob(fromHex(id)));
    if (Array.isArray(o['entries'])) {
      const d = new DirPages(repo, [{ count: o['entries'].length }]);
      d.last = { part: 0, entries: o['entries'] as unknown[] };
      return d;
    }
    const partIds = o['parts'] === undefined ? corrupt('neither entries nor parts') : ids(o['parts'], 'parts');
    return new DirPages(repo, partIds.map((p) => ({ id: p })));
  }

  /** How many entries, when every part has been counted (else undefined: see count). */
  get length(): number | undefined {
    let n = 0;
    for (const p of this.parts) {
      if (p.count === undefined) return undefined;
      n += p.count;
    }
    return n;
  }

  /** Counts the entries (4 parts loaded at a time); once. */
  count(): Promise<number> {
    this.counting ??= pool(this.parts.length, 4, async (k) => void (await this.countOf(k))).then(() => this.length!);
    return this.counting;
  }

  /** Entries [from, to) decoded (strictly, as loadDir does); fewer at the end of the listing. */
  async slice(from: number, to: number): Promise<TreeEntry[]> {
    const out: TreeEntry[] = [];
    for (let k = 0, start = 0; k < this.parts.length && start < to; k++) {
      const count = await this.countOf(k);
      if (from < start + count) {
        const entries = await this.entriesOf(k);
        for (let i = Math.max(from, start); i < Math.min(to, start + count); i++) out.push(decodeEntry(entries[i - start]));
      }
      start += count;
    }
    return out;
  }

  private async countOf(k: number): Promise<number> {
    const part = this.parts[k]!;
    part.count ??= countEntries(await this.repo.loadBlob(fromHex(part.id!)));
    return part.count;
  }

  private async entriesOf(k: number): Promise<unknown[]> {
    if (this.last?.part === k) return this.last.entries;
    const part = this.parts[k]!;
    const leaf = parseJson(await this.repo.loadBlob(fromHex(part.id!)));
    if (!Array.isArray(leaf['entries'])) corrupt('a part without entries');
    const entries = leaf['entries'] as unknown[];
    if (entries.length !== (await this.countOf(k))) corrupt('a part whose entries cannot be counted');
    this.last = { part: k, entries };
    return entries;
  }
}

/** Stores a long chunk list as content-list blobs. */
export async function saveContentParts(repo: TreeSink, content: readonly Hex[]): Promise<Hex[]> {
  const out: Hex[] = [];
  for (let i = 0; i < content.length; i += MAX_INLINE_CONTENT) {
    const json = `{"version":1,"content":${idList(content.slice(i, i + MAX_INLINE_CONTENT))}}`;
    out.push(toHex((await repo.saveBlob(BlobType.tree, Buffer.from(json, 'utf8'))).id));
  }
  return out;
}

/** A file's data blob ids in order, loading content-list blobs when needed. */
export async function fileContent(repo: TreeSource, e: TreeEntry): Promise<Hex[]> {
  if (e.content) return e.content;
  if (!e.contentParts) return [];
  const out: Hex[] = [];
  for (const p of e.contentParts) {
    const o = parseJson(await repo.loadBlob(fromHex(p)));
    for (const id of ids(o['content'], 'content')) out.push(id);
  }
  return out;
}

/** Listings fileTreeReferences loads between turns of the event loop. */
const YIELD_LISTINGS = 32;

/**
 * Visits every blob a file snapshot's root tree reaches (for check): listings, their parts,
 * content lists and data. `visit` returns false for ids already seen, which are not descended.
 * `where` names the place in the snapshot that needs the blob ("/name/sub/file", or a folder as
 * "/name/sub/"), so check and repair can report damaged files by path.
 */
export async function fileTreeReferences(repo: TreeSource, root: Hex, visit: (id: Uint8Array, where?: string) => boolean): Promise<void> {
  const shape = shapeOf(repo);
  const stack: { id: Hex; path: string }[] = [{ id: root, path: '' }];
  let loaded = 0;
  while (stack.length > 0) {
    const { id, path } = stack.pop()!;
    const here = `${path}/`;
    if (!visit(fromHex(id), here)) continue;
    // Listings read from a folder come back without a turn of the event loop: it gets one every
    // so many, so that work beside the walk goes on (check reads and verifies packs meanwhile).
    if (++loaded % YIELD_LISTINGS === 0) await new Promise<void>((r) => setImmediate(r));
    // Each part is visited before it is loaded, so a missing one is reported as missing.
    const entries = await loadDir(repo, id, (parts) => parts.forEach((p) => visit(fromHex(p), here)));
    shape.set(id, { entries: entries.length, subtrees: entries.flatMap((e) => (e.subtree !== undefined ? [e.subtree] : [])) });
    for (const e of entries) {
      const where = `${path}/${e.name.toString('utf8')}`;
      if (e.contentParts) for (const p of e.contentParts) visit(fromHex(p), where);
      for (const d of await fileContent(repo, e)) {
        const blob = fromHex(d);
        if (repo.index?.get(blob)?.type === BlobType.tree) throw new LifeboatError('corrupt', `${where} names a folder listing as its data; the snapshot was made on purpose or is damaged, and restore refuses that file`);
        visit(blob, where);
      }
      if (e.subtree) stack.push({ id: e.subtree, path: where });
    }
  }
  // Listings are shared, so a tree of a few KiB can stand for 2^40 paths: say so before anyone lists it.
  let distinct = 0;
  const reached = new Set<Hex>();
  for (const todo = [root]; todo.length > 0; ) {
    const id = todo.pop()!;
    if (reached.has(id)) continue;
    reached.add(id);
    const s = shape.get(id);
    if (s) {
      distinct += s.entries;
      todo.push(...s.subtrees);
    }
  }
  if (runaway(expandedEntries(shape, root), distinct)) throw runawayError('/');
}

/** What check has learnt of each listing (entry count, sub-listings), per repository: listings never change, so none is loaded twice. */
const shapes = new WeakMap<object, Map<Hex, { readonly entries: number; readonly subtrees: readonly Hex[] }>>();

function shapeOf(repo: TreeSource): Map<Hex, { readonly entries: number; readonly subtrees: readonly Hex[] }> {
  let m = shapes.get(repo);
  if (!m) shapes.set(repo, (m = new Map()));
  return m;
}

/** How many entries a full walk from `root` yields (capped far above any real tree), from the recorded shape. */
function expandedEntries(shape: ReadonlyMap<Hex, { readonly entries: number; readonly subtrees: readonly Hex[] }>, root: Hex): number {
  const CAP = 1e15;
  const memo = new Map<Hex, number>();
  const stack: { id: Hex; open: boolean }[] = [{ id: root, open: false }];
  while (stack.length > 0) {
    const top = stack.pop()!;
    if (memo.has(top.id)) continue;
    const s = shape.get(top.id);
    if (!s) {
      memo.set(top.id, 0);
      continue;
    }
    if (top.open) {
      let n = s.entries;
      for (const c of s.subtrees) n = Math.min(CAP, n + (memo.get(c) ?? 0));
      memo.set(top.id, n);
      continue;
    }
    stack.push({ id: top.id, open: true });
    for (const c of s.subtrees) if (!memo.has(c)) stack.push({ id: c, open: false });
  }
  return memo.get(root) ?? 0;
}

export { BlobType };
export type { Repository };
