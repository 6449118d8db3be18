import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { BlobType, DirPages, encodeEntry, loadDir, MAX_INLINE_CONTENT, MAX_LEAF_BYTES, saveContentParts, sameEntry, saveDir, type TreeEntry } from './tree.js';
import { LifeboatError } from '../util/errors.js';
import { asId } from '../repo/ids.js';
import { resolve, type Listing, type Tree, type TreeNode } from '../tree/tree.js';


const base = (): TreeEntry => ({
  name: Buffer.from('a.txt'), type: 'file', mode: 0o644, uid: 1000, gid: 1000, user: 'u', group: 'g',
  mtime: 1n, atime: 2n, ctime: 3n, size: 5, inode: 7n, device: 9n, nlink: 1,
  xattrs: [['user.k', Buffer.from([1, 2])]], holes: [0, 4096], content: [asId('a'.repeat(64))],
});

test('an entry encodes to exactly the bytes docs/FORMAT.md §10 gives it: a listing that changed encoding would change its id and stop deduplicating', () => {
  const e = { type: 'file', mode: 0o644, uid: 1000, gid: 100, mtime: 1700000000123456789n, atime: 1700000001000000000n, ctime: -5n, size: 12, inode: 18446744073709551615n, device: 2049n, nlink: 2 } as const;
  const entries: TreeEntry[] = [
    { ...e, name: Buffer.from('plain.txt'), content: [asId('aa'.repeat(32)), asId('bb'.repeat(32))] },
    { ...e, name: Buffer.from('qu"ote\\back\nslash é 日本 \u2028'), user: 'al"ice', group: 'staff', content: [] },
    { ...e, name: Buffer.from([0x66, 0xff, 0xfe]), type: 'symlink', target: Buffer.from([0xc3, 0x28]) },
    { ...e, name: Buffer.from('x'), xattrs: [['user.a"b', Buffer.from([0, 1, 2])], ['user.c', Buffer.alloc(0)]], holes: [0, 4096, 8192, 4096], contentParts: [asId('cc'.repeat(32))], damaged: true, changed: true },
    { ...e, name: Buffer.from('d'), type: 'dir', subtree: asId('dd'.repeat(32)), xattrs: [], holes: [] },
    { ...e, name: Buffer.from([0xed, 0xa0, 0x80]), content: [asId('ee'.repeat(32))] },
  ];
  assert.deepEqual(entries.map(encodeEntry), [
    "{\"name\":\"plain.txt\",\"type\":\"file\",\"mode\":420,\"uid\":1000,\"gid\":100,\"mtime\":\"1700000000123456789\",\"atime\":\"1700000001000000000\",\"ctime\":\"-5\",\"size\":12,\"inode\":\"18446744073709551615\",\"device\":\"2049\",\"nlink\":2,\"content\":[\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"]}",
    "{\"name\":\"qu\\\"ote\\\\back\\nslash é 日本  \",\"type\":\"file\",\"mode\":420,\"uid\":1000,\"gid\":100,\"user\":\"al\\\"ice\",\"group\":\"staff\",\"mtime\":\"1700000000123456789\",\"atime\":\"1700000001000000000\",\"ctime\":\"-5\",\"size\":12,\"inode\":\"18446744073709551615\",\"device\":\"2049\",\"nlink\":2,\"content\":[]}",
    "{\"nameB64\":\"Zv/+\",\"type\":\"symlink\",\"mode\":420,\"uid\":1000,\"gid\":100,\"mtime\":\"1700000000123456789\",\"atime\":\"1700000001000000000\",\"ctime\":\"-5\",\"size\":12,\"inode\":\"18446744073709551615\",\"device\":\"2049\",\"nlink\":2,\"targetB64\":\"wyg=\"}",
    "{\"name\":\"x\",\"type\":\"file\",\"mode\":420,\"uid\":1000,\"gid\":100,\"mtime\":\"1700000000123456789\",\"atime\":\"1700000001000000000\",\"ctime\":\"-5\",\"size\":12,\"inode\":\"18446744073709551615\",\"device\":\"2049\",\"nlink\":2,\"xattrs\":{\"user.a\\\"b\":\"AAEC\",\"user.c\":\"\"},\"holes\":[0,4096,8192,4096],\"contentParts\":[\"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\"],\"damaged\":true,\"changed\":true}",
    "{\"name\":\"d\",\"type\":\"dir\",\"mode\":420,\"uid\":1000,\"gid\":100,\"mtime\":\"1700000000123456789\",\"atime\":\"1700000001000000000\",\"ctime\":\"-5\",\"size\":12,\"inode\":\"18446744073709551615\",\"device\":\"2049\",\"nlink\":2,\"subtree\":\"dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd\"}",
    "{\"nameB64\":\"7aCA\",\"type\":\"file\",\"mode\":420,\"uid\":1000,\"gid\":100,\"mtime\":\"1700000000123456789\",\"atime\":\"1700000001000000000\",\"ctime\":\"-5\",\"size\":12,\"inode\":\"18446744073709551615\",\"device\":\"2049\",\"nlink\":2,\"content\":[\"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee\"]}",
  ]);
});

test('sameEntry is true exactly when two entries encode to the same bytes (a kept listing id stays right)', () => {
  const changes: ((e: TreeEntry) => void)[] = [
    (e) => (e.name = Buffer.from('b.txt')), (e) => (e.mode = 0o600), (e) => (e.uid = 0), (e) => (e.gid = 0),
    (e) => delete e.user, (e) => (e.group = 'h'), (e) => (e.mtime = 10n), (e) => (e.atime = 10n), (e) => (e.ctime = 10n),
    (e) => (e.size = 6), (e) => (e.inode = 8n), (e) => (e.device = 8n), (e) => (e.nlink = 2), (e) => (e.target = Buffer.from('x')),
    (e) => (e.rdev = 1n), (e) => (e.xattrs = [['user.k', Buffer.from([1, 3])]]), (e) => (e.xattrs = []), (e) => (e.holes = [0, 8192]),
    (e) => (e.content = [asId('b'.repeat(64))]), (e) => (e.contentParts = [asId('c'.repeat(64))]), (e) => (e.subtree = asId('d'.repeat(64))), (e) => (e.damaged = true),
  ];
  for (const [i, change] of changes.entries()) {
    const a = base();
    const b = base();
    change(b);
    assert.equal(sameEntry(a, b), encodeEntry(a) === encodeEntry(b), `change ${i}`);
    assert.equal(sameEntry(a, b), false, `change ${i} is a difference`);
  }
  const a = base();
  const b = { ...base(), xattrs: [['user.k', Buffer.from([1, 2])]] as [string, Buffer][], content: [asId('a'.repeat(64))] };
  assert.ok(sameEntry(a, b), 'equal values in different objects are the same');
  assert.equal(encodeEntry(a), encodeEntry(b));
  assert.ok(sameEntry({ ...base(), xattrs: [] }, { ...base(), xattrs: undefined as unknown as [] }), 'no xattrs either way');
});

/** Blobs in memory, by id: enough of a repository for saveDir and loadDir. */
function blobStore() {
  const blobs = new Map<string, Buffer>();
  return {
    blobs,
    saveBlob(_type: BlobType, data: Uint8Array) {
      const id = createHash('sha256').update(data).digest();
      blobs.set(id.toString('hex'), Buffer.from(data));
      return Promise.resolve({ id, added: true });
    },
    loadBlob(id: Uint8Array) {
      return Promise.resolve(blobs.get(Buffer.from(id).toString('hex'))!);
    },
  };
}

test('content-list blobs and a parts listing encode to exactly the bytes docs/FORMAT.md §10 gives them', async () => {
  const repo = blobStore();
  const ids = Array.from({ length: MAX_INLINE_CONTENT + 2 }, (_, i) => asId(i.toString(16).padStart(64, '0')));
  const lists = await saveContentParts(repo, ids);
  assert.equal(lists.length, 2);
  assert.equal(repo.blobs.get(lists[1]!)!.toString(), `{"version":1,"content":["${ids[MAX_INLINE_CONTENT]}","${ids[MAX_INLINE_CONTENT + 1]}"]}`);
  assert.ok(repo.blobs.get(lists[0]!)!.toString().startsWith(`{"version":1,"content":["${ids[0]}","${ids[1]}",`));
  const big = Array.from({ length: 3 }, (_, i) => ({ ...base(), name: Buffer.from(`f${i}`), content: [], xattrs: [['user.pad', Buffer.alloc(MAX_LEAF_BYTES / 2)]] as [string, Buffer][] }));
  const root = await saveDir(repo, big);
  const parts = (JSON.parse(repo.blobs.get(root)!.toString()) as { parts: string[] }).parts;
  assert.equal(repo.blobs.get(root)!.toString(), `{"version":1,"parts":["${parts.join('","')}"]}`);
  assert.ok(parts.length >= 2);
});

test('DirPages: a listing of many parts is counted without decoding it, and any range decodes as loadDir does', async () => {
  const repo = blobStore();
  // Names with what a byte scanner could trip on: quotes, backslashes, braces and brackets, bytes that are not UTF-8.
  const names = ['a"{b', 'c\\', '[d]}', 'e\\"'];
  const entries: TreeEntry[] = [];
  for (let i = 0; i < 12_000; i++) {
    const name = i % 97 === 0 ? Buffer.from([0x6e, 0xff, 0xfe, i & 0xff, i >> 8]) : Buffer.from(`${String(i).padStart(5, '0')}${names[i % 4]}`);
    entries.push({ ...base(), name, size: i, xattrs: [['user.{"name"', Buffer.from('}],[{')]], content: [asId(createHash('sha256').update(String(i)).digest('hex'))] });
  }
  entries.sort((a, b) => Buffer.compare(a.name, b.name));
  const id = await saveDir(repo, entries);
  assert.ok([...repo.blobs.values()].reduce((n, b) => n + b.length, 0) > 3 * MAX_LEAF_BYTES, 'the listing is stored in parts');
  const all = await loadDir(repo, id);
  let loads = 0;
  const counted = { loadBlob: (b: Uint8Array) => (loads++, repo.loadBlob(b)) };
  const pages = await DirPages.open(counted, id);
  assert.equal(pages.length, undefined, 'not counted yet');
  assert.deepEqual((await pages.slice(0, 500)).map(encodeEntry), all.slice(0, 500).map(encodeEntry));
  assert.ok(loads <= 3, `the first page loads the listing's first part only (${loads} loads)`);
  assert.equal(await pages.count(), 12_000);
  assert.equal(pages.length, 12_000);
  for (const [from, to] of [[0, 500], [2990, 3600], [11_800, 12_500], [5000, 5001], [12_000, 12_010]] as const) {
    assert.deepEqual((await pages.slice(from, to)).map(encodeEntry), all.slice(from, to).map(encodeEntry), `entries ${from}-${to}`);
  }
  // One leaf (no parts) too.
  const small = await saveDir(repo, entries.slice(0, 3));
  assert.equal((await DirPages.open(repo, small)).length, 3);
  assert.deepEqual((await (await DirPages.open(repo, small)).slice(1, 9)).map(encodeEntry), entries.slice(1, 3).map(encodeEntry));
});

test('DirPages: a part whose entries do not match its count is refused as damaged when it is decoded', async () => {
  const repo = blobStore();
  const entries = Array.from({ length: 6000 }, (_, i): TreeEntry => ({ ...base(), name: Buffer.from(String(i).padStart(6, '0')), content: ['e'.repeat(64), 'f'.repeat(64), 'a'.repeat(64)].map(asId) }));
  const id = await saveDir(repo, entries);
  const parts = (JSON.parse(repo.blobs.get(id)!.toString()) as { parts: string[] }).parts;
  assert.ok(parts.length >= 3);
  // The second part with one more object beside its entries (counted, but not an entry), the third cut short.
  const second = repo.blobs.get(parts[1]!)!.toString();
  assert.ok(second.startsWith('{"version":1,"entries":['));
  repo.blobs.set(parts[1]!, Buffer.from(second.replace('{"version":1,', '{"version":1,"x":[{}],')));
  const third = repo.blobs.get(parts[2]!)!;
  repo.blobs.set(parts[2]!, third.subarray(0, third.length - 3));
  const pages = await DirPages.open(repo, id);
  await assert.rejects(pages.count(), (e: unknown) => e instanceof LifeboatError && e.code === 'corrupt', 'the part cut short');
  const first = (JSON.parse(repo.blobs.get(parts[0]!)!.toString()) as { entries: unknown[] }).entries.length;
  await assert.rejects(pages.slice(first, first + 1), (e: unknown) => e instanceof LifeboatError && e.code === 'corrupt');
  await assert.rejects(pages.slice(entries.length - 1, entries.length), (e: unknown) => e instanceof LifeboatError && e.code === 'corrupt');
  assert.equal((await pages.slice(0, 10)).length, 10, 'the undamaged part still reads');
});

test('resolve finds a name in a listing by halving, decoding a few entries, not the whole folder', async () => {
  const entries = Array.from({ length: 100_000 }, (_, i): TreeNode => ({ name: Buffer.from(`f${String(i).padStart(6, '0')}`), type: 'file', size: i, mode: 0o644 }));
  let decoded = 0;
  const listing: Listing = { length: entries.length, count: () => Promise.resolve(entries.length), slice: (from, to) => ((decoded += to - from), Promise.resolve(entries.slice(from, to))) };
  const root: TreeNode = { name: Buffer.alloc(0), type: 'dir', size: 0, mode: 0o755 };
  const tree: Tree = {
    root: () => Promise.resolve(root),
    list: () => Promise.reject(new Error('not called: the tree has a listing')),
    read: () => (async function* () {})(),
    readlink: () => Promise.resolve(Buffer.alloc(0)),
    listing: () => Promise.resolve(listing),
  };
  for (const i of [0, 1, 54_321, 99_999]) assert.equal((await resolve(tree, `/f${String(i).padStart(6, '0')}`)).size, i);
  assert.ok(decoded <= 4 * 17, `${decoded} entries decoded`);
  await assert.rejects(resolve(tree, '/f1'), /is not there/);
});
