import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { CompactStat } from '../backup.js';
import { tmp } from '../testing.js';
import { LSTAT_FIELDS, platform, portablePlatform } from './platform.js';

const FIELDS = ['mode', 'dev', 'ino', 'nlink', 'uid', 'gid', 'rdev', 'size', 'atimeNs', 'mtimeNs', 'ctimeNs'] as const;

test("lstatMany gives Node's lstat of every kind of entry, an errno for a missing one, and defers to Node for times past 2262", { skip: !platform().exact && 'needs the native addon' }, (t) => {
  const dir = tmp(t);
  fs.writeFileSync(join(dir, 'file'), 'x'.repeat(5000));
  fs.mkdirSync(join(dir, 'folder'));
  fs.symlinkSync('/nowhere', join(dir, 'link'));
  fs.linkSync(join(dir, 'file'), join(dir, 'hardlink'));
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  fs.writeFileSync(join(dir, 'old'), '');
  fs.utimesSync(join(dir, 'old'), new Date('1901-02-03T04:05:06.789Z'), new Date('1950-01-01T00:00:00.123Z'));
  fs.writeFileSync(join(dir, 'future'), '');
  fs.utimesSync(join(dir, 'future'), new Date('2500-01-01T00:00:00Z'), new Date('2500-01-01T00:00:00Z'));
  const names = ['file', 'folder', 'link', 'hardlink', 'fifo', 'old', 'future', 'gone', '/dev/null'].map((n) => Buffer.from(n));
  platform().setXattr(Buffer.from(join(dir, 'file')), 'user.lifeboat-test', Buffer.from('yes'));

  const rows = platform().lstatMany(Buffer.from(dir + '/'), names, true)!;
  assert.equal(rows.length, names.length * LSTAT_FIELDS);
  for (const [i, name] of names.slice(0, 6).entries()) {
    assert.equal(rows[i * LSTAT_FIELDS], 0n, `${name} was stat'ed`);
    const node = new CompactStat(fs.lstatSync(join(dir, name.toString()), { bigint: true }));
    const ours = CompactStat.fromRow(rows, i);
    for (const f of FIELDS) assert.equal(ours[f], node[f], `${name}: ${f}`);
    for (const kind of ['isFile', 'isDirectory', 'isSymbolicLink', 'isFIFO'] as const) assert.equal(ours[kind](), node[kind](), `${name}: ${kind}`);
    // The backup asks for the list of extended attributes only where the row says there may be some.
    assert.equal(ours.noXattrs, platform().listXattrs(Buffer.from(join(dir, name.toString()))).length === 0, `${name}: noXattrs`);
  }
  assert.equal(CompactStat.fromRow(rows, 0).noXattrs, false, 'the file with an extended attribute');
  assert.equal(CompactStat.fromRow(rows, 3).noXattrs, false, 'and its hard link');
  assert.equal(CompactStat.fromRow(rows, 1).noXattrs, true, 'a folder without any');
  const unprobed = platform().lstatMany(Buffer.from(dir + '/'), names.slice(0, 2))!;
  assert.deepEqual([0, 1].map((i) => CompactStat.fromRow(unprobed, i).noXattrs), [false, false], 'not probed: asked for as before');
  assert.equal(rows[6 * LSTAT_FIELDS], -1n, 'nanoseconds past 2262 do not fit: Node is asked');
  assert.equal(rows[7 * LSTAT_FIELDS], 2n, 'a missing name gives ENOENT');
  assert.equal(rows[8 * LSTAT_FIELDS], 22n, 'a name is one path component (EINVAL), never a path of its own');

  const gone = platform().lstatMany(Buffer.from(join(dir, 'nope') + '/'), [Buffer.from('file')])!;
  assert.equal(gone[0], 2n, 'a folder that is gone gives each name its errno');
  assert.equal(portablePlatform().lstatMany(Buffer.from(dir), names), undefined, 'without the addon the walker lstats each path');
});

test('listXattrs reads a file without extended attributes, one with a few, and one whose list of names passes 4 KiB (a tmpfs; ext4 holds less)', { skip: (!platform().exact && 'needs the native addon') || (process.getuid?.() !== 0 && 'needs root to mount a tmpfs') }, (t) => {
  const dir = join(tmp(t), 'mnt');
  fs.mkdirSync(dir);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4M', 'tmpfs', dir]);
  try {
    listXattrsOn(dir);
  } finally {
    execFileSync('umount', [dir]);
  }
});

function listXattrsOn(dir: string): void {
  const plat = platform();
  fs.writeFileSync(join(dir, 'none'), '');
  fs.writeFileSync(join(dir, 'few'), '');
  fs.writeFileSync(join(dir, 'many'), '');
  execFileSync('setfattr', ['-n', 'user.b', '-v', 'two', join(dir, 'few')]);
  execFileSync('setfattr', ['-n', 'user.a', '-v', 'one', join(dir, 'few')]);
  const many: [string, string][] = [];
  for (let i = 0; i < 60; i++) many.push([`user.${String(i).padStart(3, '0')}${'x'.repeat(120)}`, `value ${i}`]);
  for (const [name, value] of many) execFileSync('setfattr', ['-n', name, '-v', value, join(dir, 'many')]);
  assert.ok(many.reduce((n, [name]) => n + name.length + 1, 0) > 4096, 'the list of names passes 4 KiB');

  const text = (p: string) => plat.listXattrs(Buffer.from(join(dir, p))).map(([k, v]) => [k, v.toString()]);
  assert.deepEqual(text('none'), []);
  assert.deepEqual(text('few'), [['user.a', 'one'], ['user.b', 'two']]);
  assert.deepEqual(text('many'), many);
}
