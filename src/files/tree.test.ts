import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeEntry, sameEntry, type TreeEntry } from './tree.js';
import { asId } from '../repo/ids.js';

const base = (): TreeEntry => ({
  name: Buffer.from('a.txt'), type: 'file', mode: 0o644, uid: 1000, gid: 1000, user: 'u', group: 'g',
  mtime: 1n, atime: 2n, ctime: 3n, size: 5, inode: 7n, device: 9n, nlink: 1,
  xattrs: [['user.k', Buffer.from([1, 2])]], holes: [0, 4096], content: [asId('a'.repeat(64))],
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
