/**
 * A folder of any tree as a POSIX tar stream (`lifeboat dump SNAPSHOT /Documents > docs.tar`),
 * as `restic dump` does: ustar headers, with pax extended headers where ustar cannot say it
 * exactly (names or link targets over 100 bytes, sizes of 8 GiB and more, large ids, nanosecond
 * times). Folders, files, symlinks, FIFOs and device nodes; a hard-linked file is stored as a
 * file each time. Names inside the archive are relative (`Documents/notes.txt`), never absolute.
 */
import { nodeName, walk, type Tree, type TreeNode } from './tree.js';

const BLOCK = 512;
const TYPEFLAG = { file: '0', symlink: '2', chardev: '3', blockdev: '4', dir: '5', fifo: '6', other: '0' } as const;
const MAX_OCTAL_11 = 0o77777777777;
const MAX_OCTAL_7 = 0o7777777;

function write(out: NodeJS.WritableStream, data: Uint8Array): Promise<void> | undefined {
  if (out.write(data)) return undefined;
  return new Promise<void>((r) => out.once('drain', () => r()));
}

function octal(h: Buffer, off: number, len: number, v: number): void {
  h.write(v.toString(8).padStart(len - 1, '0'), off, len - 1, 'ascii');
}

/** One pax record: "LEN key=value\n", where LEN counts the whole record, itself included. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function header(name: Buffer, typeflag: string, size: number, e: TreeNode, link?: Buffer): Buffer {
  const h = Buffer.alloc(BLOCK);
  name.copy(h, 0, 0, Math.min(100, name.length));
  octal(h, 100, 8, e.mode & 0o7777);
  octal(h, 108, 8, Math.min(e.uid ?? 0, MAX_OCTAL_7));
  octal(h, 116, 8, Math.min(e.gid ?? 0, MAX_OCTAL_7));
  octal(h, 124, 12, Math.min(size, MAX_OCTAL_11));
  octal(h, 136, 12, Math.max(0, Math.min(Number((e.mtimeNs ?? 0n) / 1_000_000_000n), MAX_OCTAL_11)));
  h.write(typeflag, 156, 1, 'ascii');
  link?.copy(h, 157, 0, Math.min(100, link.length));
  h.write('ustar\x0000', 257, 8, 'binary');
  h.write((e.user ?? '').slice(0, 31), 265, 32, 'utf8');
  h.write((e.group ?? '').slice(0, 31), 297, 32, 'utf8');
  if (e.rdev !== undefined) {
    // Linux's encoding of st_rdev.
    const r = e.rdev;
    octal(h, 329, 8, Number(((r >> 8n) & 0xfffn) | ((r >> 32n) & ~0xfffn)) & MAX_OCTAL_7);
    octal(h, 337, 8, Number((r & 0xffn) | ((r >> 12n) & ~0xffn)) & MAX_OCTAL_7);
  }
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i]!;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return h;
}

function padding(n: number): Buffer {
  return Buffer.alloc((BLOCK - (n % BLOCK)) % BLOCK);
}

/** The headers of one entry: a pax header first when ustar's fields cannot hold it exactly. */
function headers(name: Buffer, e: TreeNode, size: number, link: Buffer | undefined): Buffer {
  const records: Buffer[] = [];
  const ascii = (b: Buffer) => b.every((c) => c >= 0x20 && c < 0x7f);
  if (name.length > 100 || !ascii(name)) records.push(paxRecord('path', name));
  if (link && (link.length > 100 || !ascii(link))) records.push(paxRecord('linkpath', link));
  if (size > MAX_OCTAL_11) records.push(paxRecord('size', Buffer.from(String(size))));
  if ((e.uid ?? 0) > MAX_OCTAL_7) records.push(paxRecord('uid', Buffer.from(String(e.uid))));
  if ((e.gid ?? 0) > MAX_OCTAL_7) records.push(paxRecord('gid', Buffer.from(String(e.gid))));
  const mtime = e.mtimeNs ?? 0n;
  const frac = mtime % 1_000_000_000n;
  if (frac !== 0n || mtime < 0n) {
    const s = mtime / 1_000_000_000n;
    records.push(paxRecord('mtime', Buffer.from(`${s}.${(frac < 0n ? -frac : frac).toString().padStart(9, '0')}`)));
  }
  const main = header(name, TYPEFLAG[e.type], size, e, link);
  if (records.length === 0) return main;
  const body = Buffer.concat(records);
  const paxName = Buffer.from(`PaxHeader/${name.subarray(Math.max(0, name.length - 80)).toString('latin1')}`, 'latin1');
  return Buffer.concat([header(paxName, 'x', body.length, e), body, padding(body.length), main]);
}

async function writeEntry(tree: Tree, name: Buffer, e: TreeNode, out: NodeJS.WritableStream, o: DumpTarOptions): Promise<void> {
  o.signal?.throwIfAborted();
  if (e.damaged !== undefined || e.type === 'other') {
    o.onSkip?.(name.toString('utf8'), e.damaged ?? 'it is a kind of file tar cannot hold');
    return;
  }
  const size = e.type === 'file' ? e.size : 0;
  const link = e.type === 'symlink' ? (e.target ?? (await tree.readlink(e))) : undefined;
  await write(out, headers(e.type === 'dir' ? Buffer.concat([name, Buffer.from('/')]) : name, e, size, link));
  if (e.type === 'file') {
    // Exactly `size` bytes, whatever the stored content holds, so the archive stays well formed.
    let left = size;
    for await (const data of tree.read(e, o.signal)) {
      if (left === 0) break;
      const part = data.length > left ? data.subarray(0, left) : data;
      left -= part.length;
      await write(out, part);
    }
    while (left > 0) {
      const z = Buffer.alloc(Math.min(left, 1 << 20));
      left -= z.length;
      await write(out, z);
    }
    await write(out, padding(size));
  }
}

export interface DumpTarOptions {
  readonly signal?: AbortSignal;
  /** An entry left out of the archive: a name that is not plain ('..', or holding '/'), damaged metadata, a socket. */
  readonly onSkip?: (path: string, why: string) => void;
}

/** Entries walked ahead of the one written, so the tree can read their files ahead (Tree.prefetch). */
const LOOKAHEAD = 1024;
/** Entries offered to the read-ahead at a time. */
const PREFETCH_BATCH = 64;

/** Writes `node` (a folder's contents when `node` is the tree's root) and everything below as a tar stream, then its end marker. */
export async function dumpTar(tree: Tree, node: TreeNode, out: NodeJS.WritableStream, o: DumpTarOptions = {}): Promise<void> {
  const top = node.name.length === 0 ? '' : nodeName(node);
  if (top !== '') await writeEntry(tree, node.name, node, out, o);
  if (node.type === 'dir') {
    const entries = walk(tree, node, top, o)[Symbol.asyncIterator]();
    const queue: { path: string; node: TreeNode }[] = [];
    let offered = 0; // entries at the head of the queue the tree took for its read-ahead
    for (let more = true; ; ) {
      while (more && queue.length < LOOKAHEAD) {
        const n = await entries.next();
        if (n.done) more = false;
        else queue.push(n.value);
      }
      if (tree.prefetch && offered < queue.length) offered += tree.prefetch(queue.slice(offered, offered + PREFETCH_BATCH).map((q) => q.node));
      const f = queue.shift();
      if (!f) break;
      offered = Math.max(0, offered - 1);
      await writeEntry(tree, Buffer.from(f.path.replace(/^\//, ''), 'utf8'), f.node, out, o);
    }
  }
  await write(out, Buffer.alloc(2 * BLOCK));
}
