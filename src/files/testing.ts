/** Test helpers for the files layer: temporary folders, repositories, and a tree with every case. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { BlobType, Repository } from '../repo/repository.js';
import { toHex } from '../repo/ids.js';
import type { TreeEntry } from './tree.js';
import { LocalStore } from '../store/local.js';
import { COLLECTION } from '../util/memory.js';

process.env['LIFEBOAT_INSECURE_FAST_KDF'] = '1';

export function tmp(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), 'lifeboat-files-'));
  t.after(() => execFileSync('rm', ['-rf', d])); // rm handles paths deeper than PATH_MAX
  return d;
}

export async function newRepo(dir: string): Promise<Repository> {
  const { repo } = await Repository.init(new LocalStore(join(dir, 'repo')), 'pw');
  return repo;
}

/**
 * Full collections of this thread from now on, as flags (NODE_PERFORMANCE_GC_FLAGS_*), with
 * COLLECTION.everyFiles set to `everyFiles` while the test runs; await `settled()` before reading
 * them (a started collection finishes on later event-loop turns, and entries arrive after it).
 */
export function watchFullCollections(t: { after: (fn: () => void) => void }, everyFiles: number): { flags: number[]; settled(): Promise<void> } {
  const saved = COLLECTION.everyFiles;
  COLLECTION.everyFiles = everyFiles;
  const flags: number[] = [];
  const seen = new PerformanceObserver((l) => {
    for (const e of l.getEntries()) {
      const d = (e as unknown as { detail: { kind: number; flags: number } }).detail;
      if (d.kind === constants.NODE_PERFORMANCE_GC_MAJOR) flags.push(d.flags);
    }
  });
  seen.observe({ entryTypes: ['gc'] });
  t.after(() => {
    seen.disconnect();
    COLLECTION.everyFiles = saved;
  });
  return { flags, settled: () => new Promise((resolve) => setTimeout(resolve, 50)) };
}

const B = (s: string) => Buffer.from(s);

/** Builds a tree with every case of the issue under `root` (Buffer paths: some names are not UTF-8). */
export function buildTree(root: string): void {
  const r = B(root);
  const p = (...parts: (string | Buffer)[]) => Buffer.concat([r, ...parts.flatMap((x) => [B('/'), typeof x === 'string' ? B(x) : x])]);
  fs.mkdirSync(p('docs', 'empty'), { recursive: true });
  fs.writeFileSync(p('docs', 'hello.txt'), 'hello world\n');
  const big = Buffer.alloc(3 * 1024 * 1024 + 12345);
  for (let i = 0; i + 4 <= big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
  fs.writeFileSync(p('docs', 'big.bin'), big);
  fs.writeFileSync(p('setuid'), '#!/bin/sh\n');
  fs.chmodSync(p('setuid'), 0o4755);
  fs.mkdirSync(p('sticky'));
  fs.chmodSync(p('sticky'), 0o1777);
  fs.writeFileSync(p('owned'), 'x');
  fs.chownSync(p('owned'), 1234, 5678);
  fs.symlinkSync('docs/hello.txt', p('link'));
  fs.symlinkSync('/nonexistent/dangling', p('dangling'));
  fs.writeFileSync(p('hard1'), 'linked content');
  fs.linkSync(p('hard1'), p('docs', 'hard2'));
  // sparse: 8 MiB with data at 1 MiB and at the end
  const fd = fs.openSync(p('sparse.img'), 'w');
  fs.writeSync(fd, Buffer.alloc(4096, 7), 0, 4096, 1024 * 1024);
  fs.writeSync(fd, Buffer.alloc(4096, 9), 0, 4096, 8 * 1024 * 1024 - 4096);
  fs.ftruncateSync(fd, 8 * 1024 * 1024);
  fs.closeSync(fd);
  execFileSync('setfattr', ['-n', 'user.comment', '-v', 'a note', join(root, 'docs', 'hello.txt')]);
  execFileSync('setfattr', ['-n', 'trusted.secret', '-v', '0x00ff10', join(root, 'docs', 'hello.txt')]);
  execFileSync('setfattr', ['-n', 'user.dir', '-v', 'on a folder', join(root, 'docs')]);
  execFileSync('mkfifo', [join(root, 'fifo')]);
  execFileSync('mknod', [join(root, 'null'), 'c', '1', '3']);
  fs.writeFileSync(p(Buffer.from([0x6e, 0xff, 0xfe, 0x2e, 0x74])), 'not utf-8 name');
  fs.writeFileSync(p('new\nline'), 'newline in name');
  fs.writeFileSync(p('L'.repeat(255)), 'long name');
  // a path deeper than 4 KiB: 20 levels of 250-byte names
  let deep = p('deep');
  fs.mkdirSync(deep);
  const parts: string[] = [];
  for (let i = 0; i < 20; i++) parts.push(`${String(i).padStart(2, '0')}${'d'.repeat(248)}`);
  // Built bottom-up by renames, so that every call uses a short path.
  let cur = join(root, 'deep-build');
  fs.mkdirSync(cur);
  fs.writeFileSync(join(cur, 'deepfile'), 'deep file');
  execFileSync('touch', ['-d', '2001-02-03 04:05:06.123456789', join(cur, 'deepfile')]);
  for (let i = parts.length - 1; i >= 0; i--) {
    const up = join(root, `deep-up-${i}`);
    fs.mkdirSync(up);
    fs.renameSync(cur, join(up, parts[i]!));
    cur = up;
  }
  fs.renameSync(join(cur, parts[0]!), join(root, 'deep', parts[0]!));
  fs.rmdirSync(cur);
  deep = Buffer.concat([deep, B('/' + parts.join('/'))]);
  assert.ok(deep.length > 4096);
  // nanosecond times, set last (after every change in each folder)
  execFileSync('touch', ['-h', '-d', '2020-01-02 03:04:05.123456789', join(root, 'docs', 'hello.txt')]);
  execFileSync('touch', ['-h', '-d', '1999-12-31 23:59:59.987654321', join(root, 'link')]);
  execFileSync('touch', ['-a', '-d', '2021-05-06 07:08:09.555555555', join(root, 'setuid')]);
  execFileSync('touch', ['-d', '2010-10-10 10:10:10.101010101', join(root, 'docs', 'empty')]);
}

/**
 * `find`-based listing of metadata, an independent checker (GNU find %-directives, ns times).
 * Symlink targets are left out: reading a link moves its atime, so they are compared separately.
 */
export function describe(root: string): string[] {
  const out = execFileSync('sh', ['-c', `cd "$1" && find . -mindepth 1 -printf '%P|%y|%m|%U|%G|%s|%T@|%A@|%n\\n' | LC_ALL=C sort`, 'sh', root], { maxBuffer: 1 << 26 });
  return out.toString('latin1').split('\n').filter((l) => l.length > 0).map((l) => {
    const f = l.split('|');
    // directories' sizes depend on the file system's allocation, atimes of folders on reads
    if (f[1] === 'd') { f[5] = '-'; f[7] = '-'; }
    return f.join('|');
  });
}

export function blocks(p: string): number {
  return Number(execFileSync('stat', ['-c', '%b', p]).toString().trim());
}

export function xattrs(p: string): string {
  return execFileSync('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', p]).toString().split('\n').filter((l) => !l.startsWith('#')).join('\n');
}


/** A listing entry for hand-made snapshots: plain defaults (owner 0, one link), `extra` overriding them. */
export function entry(name: string, type: TreeEntry['type'], extra: Partial<TreeEntry> = {}): TreeEntry {
  return { name: Buffer.from(name), type, mode: 0o644, uid: 0, gid: 0, mtime: 1_000_000_000_000_000_000n, atime: 0n, ctime: 0n, size: 0, inode: 1n, device: 1n, nlink: 1, ...extra };
}

/** A file entry whose content, `text`, is stored in `repo` (its index loaded) as one data blob. */
export async function storedFile(repo: Repository, name: string, text: string): Promise<TreeEntry> {
  const id = toHex((await repo.saveBlob(BlobType.data, Buffer.from(text))).id);
  return entry(name, 'file', { size: Buffer.byteLength(text), content: [id] });
}
