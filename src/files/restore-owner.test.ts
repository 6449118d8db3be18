/**
 * Owners on restore (issue 3): as root, an entry's stored user and group names are mapped to this
 * machine's ids when the names exist here, else the stored numbers are used; --numeric-owner
 * always uses the stored numbers. The snapshot is crafted so that the stored numbers differ from
 * what the names mean on this machine (user and group "daemon" stored with ids 4242 and 4343).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { BlobType } from '../repo/repository.js';
import { toHex } from '../repo/ids.js';
import type { Snapshot } from '../repo/snapshot.js';
import { lifeboat } from '../cli/testing.js';
import { restore } from './restore.js';
import { saveDir, type TreeEntry } from './tree.js';
import { platform } from './platform/platform.js';
import { newRepo, tmp } from './testing.js';

const isRoot = process.getuid?.() === 0;
const STORED_UID = 4242;
const STORED_GID = 4343;

function entry(name: string, type: TreeEntry['type'], extra: Partial<TreeEntry> = {}): TreeEntry {
  return { name: Buffer.from(name), type, mode: 0o644, uid: STORED_UID, gid: STORED_GID, mtime: 0n, atime: 0n, ctime: 0n, size: 0, inode: 1n, device: 1n, nlink: 1, ...extra };
}

function systemId(kind: 'user' | 'group', name: string): number {
  const line = execFileSync('getent', [kind === 'user' ? 'passwd' : 'group', name]).toString().trim();
  return Number(line.split(':')[2]);
}

test('the Linux platform maps user and group names to ids from /etc/passwd and /etc/group', () => {
  const p = platform();
  assert.equal(p.userId('root'), 0);
  assert.equal(p.groupId('root'), 0);
  assert.equal(p.userId('daemon'), systemId('user', 'daemon'));
  assert.equal(p.groupId('daemon'), systemId('group', 'daemon'));
  assert.equal(p.userId('no-such-user-lifeboat'), undefined);
  assert.equal(p.groupId('no-such-group-lifeboat'), undefined);
  assert.equal(p.userName(systemId('user', 'daemon')), 'daemon');
});

test('as root, restore gives files the ids their stored user and group names have here; --numeric-owner the stored ids', { skip: !isRoot && 'needs root' }, async (t) => {
  const dir = tmp(t);
  const repo = await newRepo(dir);
  await repo.loadIndex();
  await repo.lock(false, 'test');
  const daemonUid = systemId('user', 'daemon');
  const daemonGid = systemId('group', 'daemon');
  assert.notEqual(daemonUid, STORED_UID);
  assert.notEqual(daemonGid, STORED_GID);

  const a = toHex((await repo.saveBlob(BlobType.data, Buffer.from('first part, '))).id);
  const b = toHex((await repo.saveBlob(BlobType.data, Buffer.from('second part'))).id);
  const named = { user: 'daemon', group: 'daemon' };
  const inner = await saveDir(repo, [entry('inside', 'file', { ...named, size: 12, content: [a] })]);
  const root = await saveDir(repo, [
    entry('big', 'file', { ...named, size: 23, content: [a, b] }), // written through a file handle
    entry('dir', 'dir', { ...named, mode: 0o755, subtree: inner }),
    entry('link', 'symlink', { ...named, target: Buffer.from('small'), size: 5 }),
    entry('mixed', 'file', { user: 'no-such-user-lifeboat', group: 'daemon', size: 12, content: [a] }),
    entry('nameless', 'file', { size: 12, content: [a] }),
    entry('small', 'file', { ...named, size: 12, content: [a] }), // written with synchronous calls
  ]);
  const snapshot: Snapshot = { version: 1, kind: 'files', time: new Date().toISOString(), host: 'h', user: 'u', paths: ['/x'], tags: [], root };
  const id = await repo.saveSnapshot(snapshot);

  const owners = (target: string): Record<string, [number, number]> => {
    const out: Record<string, [number, number]> = {};
    for (const n of ['big', 'dir', 'dir/inside', 'link', 'mixed', 'nameless', 'small']) {
      const st = fs.lstatSync(join(target, n));
      out[n] = [st.uid, st.gid];
    }
    return out;
  };
  const daemon: [number, number] = [daemonUid, daemonGid];
  const stored: [number, number] = [STORED_UID, STORED_GID];

  const byName = join(dir, 'by-name');
  const r1 = await restore(repo, snapshot, { target: byName });
  assert.equal(r1.summary.errors, 0);
  assert.deepEqual(owners(byName), { big: daemon, dir: daemon, 'dir/inside': daemon, link: daemon, mixed: [STORED_UID, daemonGid], nameless: stored, small: daemon });

  const numeric = join(dir, 'numeric');
  const r2 = await restore(repo, snapshot, { target: numeric, numericOwner: true });
  assert.equal(r2.summary.errors, 0);
  assert.deepEqual(owners(numeric), { big: stored, dir: stored, 'dir/inside': stored, link: stored, mixed: stored, nameless: stored, small: stored });
  await repo.close();

  // The same through the command line.
  const env = { LIFEBOAT_REPO: join(dir, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  const cliByName = join(dir, 'cli-by-name');
  const c1 = await lifeboat(['restore', id, '--target', cliByName], env);
  assert.equal(c1.code, 0, c1.stderr);
  assert.deepEqual(owners(cliByName)['small'], daemon);
  assert.deepEqual(owners(cliByName)['dir'], daemon);
  const cliNumeric = join(dir, 'cli-numeric');
  const c2 = await lifeboat(['restore', id, '--target', cliNumeric, '--numeric-owner'], env);
  assert.equal(c2.code, 0, c2.stderr);
  assert.deepEqual(owners(cliNumeric)['small'], stored);
  assert.deepEqual(owners(cliNumeric)['dir'], stored);
});
