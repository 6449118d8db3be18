/**
 * How the backup reads files: holes of sparse files are skipped (SEEK_HOLE), and a file that grew
 * or shrank while it was read is saved as read, marked, and restores cleanly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { lifeboat } from '../cli/testing.js';
import { backup, nodeFileAccess, type FileAccess } from './backup.js';
import { SnapshotTree, type SnapshotNode } from './snapshot-tree.js';
import { resolve } from '../tree/tree.js';
import type { Repository } from '../repo/repository.js';
import type { Snapshot } from '../repo/snapshot.js';
import type { TreeEntry } from './tree.js';

/** The stored entry at a path of a file snapshot. */
async function resolvePath(repo: Repository, snapshot: Snapshot, path: string): Promise<{ entry?: TreeEntry }> {
  const node = (await resolve(new SnapshotTree(repo, snapshot), path)) as SnapshotNode;
  return node.entry ? { entry: node.entry } : {};
}
import { platform, portablePlatform } from './platform/platform.js';
import { blocks, newRepo, tmp } from './testing.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** Pseudo-random bytes (xorshift32), so that chunks do not dedupe by accident. */
function noise(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i + 4 <= n; i += 4) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    b.writeUInt32LE(x, i);
  }
  return b;
}

/** Writes `regions` (offset → bytes) into a sparse file of `size` bytes. */
function sparseFile(path: string, size: number, regions: [number, Buffer][]): void {
  const fd = fs.openSync(path, 'w');
  for (const [off, data] of regions) fs.writeSync(fd, data, 0, data.length, off);
  fs.ftruncateSync(fd, size);
  fs.closeSync(fd);
}

function readAt(path: string, off: number, n: number): Buffer {
  const fd = fs.openSync(path, 'r');
  try {
    const b = Buffer.alloc(n);
    fs.readSync(fd, b, 0, n, off);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

test('a 5 GiB sparse file is backed up without reading its holes, and restores identical and sparse', { skip: !platform().exact && 'needs the native addon (SEEK_HOLE)' }, async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  fs.mkdirSync(src);
  const file = join(src, 'disk.img');
  const size = 5 * GiB;
  const regions: [number, Buffer][] = [[0, noise(64 * 1024, 1)], [GiB + 123, Buffer.from('seventeen bytes!!')], [3 * GiB - 4096, noise(3 * MiB, 2)], [size - 17, Buffer.from('the last 17 bytes')]];
  sparseFile(file, size, regions);
  const repo = await newRepo(dir);
  const r = await backup(repo, { paths: [src], parent: null });
  assert.equal(r.summary.totalBytes, size);
  // Only the data regions (rounded to the file system's blocks) were read, not 5 GiB.
  assert.ok(r.summary.bytesRead < 8 * MiB, `read ${r.summary.bytesRead} bytes`);
  assert.ok(r.summary.bytesRead >= 3 * MiB + 64 * 1024 + 34);
  const { entry } = await resolvePath(repo, r.snapshot, '/src/disk.img');
  assert.equal(entry?.size, size);
  assert.ok((entry?.holes?.length ?? 0) >= 6);

  const target = join(dir, 'out');
  const res = await lifeboat(['restore', 'latest', '--target', target], { LIFEBOAT_REPO: join(dir, 'repo'), LIFEBOAT_PASSWORD: 'pw' });
  assert.equal(res.code, 0, res.stderr);
  const out = join(target, 'src', 'disk.img');
  assert.equal(fs.statSync(out).size, size);
  for (const [off, data] of regions) assert.deepEqual(readAt(out, off, data.length), data, `data at ${off}`);
  // Sparse: about as many blocks as the original (the data), far from 5 GiB; outside the data
  // regions there are no allocated blocks, so the rest reads as zeros as in the original.
  assert.ok(blocks(out) * 512 <= blocks(file) * 512 + 2 * MiB, `restored file has ${blocks(out)} blocks, the original ${blocks(file)}`);
  assert.deepEqual(readAt(out, 2 * GiB, 4096), Buffer.alloc(4096));
});

test('skipping holes gives the same chunks as reading them, so old and new backups dedupe', { skip: !platform().exact && 'needs the native addon (SEEK_HOLE)' }, async (t) => {
  const dir = tmp(t);
  const src = join(dir, 'src');
  fs.mkdirSync(src);
  // Holes shorter and longer than a chunk (8 MiB), data that ends inside a chunk, a trailing hole.
  sparseFile(join(src, 'db'), 70 * MiB + 5, [[3 * MiB, noise(2 * MiB + 7, 3)], [7 * MiB, noise(4096, 4)], [40 * MiB + 1, noise(9 * MiB, 5)]]);
  const repo = await newRepo(dir);
  const skipping = await backup(repo, { paths: [src], parent: null });
  const reading = await backup(repo, { paths: [src], parent: null, platform: portablePlatform() });
  assert.ok(skipping.summary.bytesRead < 16 * MiB, `read ${skipping.summary.bytesRead}`);
  assert.equal(reading.summary.bytesRead, 70 * MiB + 5);
  assert.equal(reading.summary.dataBlobsAdded, 0); // every chunk read was already saved by the skipping backup
  const a = (await resolvePath(repo, skipping.snapshot, '/src/db')).entry!;
  const b = (await resolvePath(repo, reading.snapshot, '/src/db')).entry!;
  assert.deepEqual(a.content, b.content);
  assert.equal(a.size, b.size);
});

/** The real file system, but the file `name` is changed by `change` right after the backup's first read of it. */
function changingOnFirstRead(name: string, change: () => void): FileAccess & { changed: () => boolean } {
  let done = false;
  return {
    ...nodeFileAccess,
    changed: () => done,
    async open(p, flags) {
      const fh = await nodeFileAccess.open(p, flags);
      if (!p.toString().endsWith(name)) return fh;
      return new Proxy(fh, {
        get(target, prop) {
          if (prop === 'read') {
            return async (...args: Parameters<FileHandle['read']>) => {
              const r = await (target.read as (...a: unknown[]) => ReturnType<FileHandle['read']>)(...args);
              if (!done) {
                done = true;
                change();
              }
              return r;
            };
          }
          const v: unknown = Reflect.get(target, prop, target);
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    },
  };
}

for (const how of ['grew', 'shrank'] as const) {
  test(`a file that ${how} while it was read is saved as read, marked, and restores with exit 0`, async (t) => {
    const dir = tmp(t);
    const env = { LIFEBOAT_REPO: join(dir, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
    const src = join(dir, 'src');
    fs.mkdirSync(src);
    const file = join(src, 'growing.log');
    const first = noise(20 * MiB, 6);
    const extra = noise(15 * MiB, 7);
    fs.writeFileSync(file, first);
    const access = changingOnFirstRead('growing.log', () => {
      if (how === 'grew') fs.appendFileSync(file, extra);
      else fs.truncateSync(file, 10 * MiB);
    });
    const repo = await newRepo(dir);
    const warnings: string[] = [];
    const r = await backup(repo, { paths: [src], parent: null, fs: access, onEvent: (e) => e.type === 'warning' && warnings.push(`${e.kind}: ${e.message}`) });
    assert.ok(access.changed(), 'the file was changed during the read');
    assert.equal(r.summary.changedWhileRead, 1);
    assert.match(warnings.join('\n'), /^changed: .*growing\.log changed while it was read/m);
    const want = how === 'grew' ? Buffer.concat([first, extra]) : first.subarray(0, 10 * MiB);
    const { entry } = await resolvePath(repo, r.snapshot, '/src/growing.log');
    assert.equal(entry?.size, want.length); // the size read, not the size before the read
    assert.equal(entry?.changed, true);

    const ls = await lifeboat(['ls', 'latest', '/src', '--long'], env);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, new RegExp(`^-.* ${want.length} .*/src/growing\\.log {2}\\(changed while backed up\\)$`, 'm'));
    const lsJson = JSON.parse((await lifeboat(['ls', 'latest', '/src', '--json'], env)).stdout) as { changedWhileRead?: boolean }[];
    assert.equal(lsJson[0]!.changedWhileRead, true);

    const target = join(dir, 'out');
    const res = await lifeboat(['restore', 'latest', '--target', target, '--verify'], env);
    assert.equal(res.code, 0, res.stdout + res.stderr);
    assert.match(res.stderr, /growing\.log changed while it was backed up; it was restored as it was read/);
    assert.doesNotMatch(res.stderr, /stored content is/);
    assert.ok(fs.readFileSync(join(target, 'src', 'growing.log')).equals(want));
  });
}
