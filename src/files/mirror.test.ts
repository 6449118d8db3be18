import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { FakeClock } from '../util/clock.js';
import { prng } from '../util/testing.js';
import { blocks, buildTree, describe, tmp, xattrs } from './testing.js';
import { mirror, MIRROR_STATE, MIRROR_VERSIONS, type MirrorEvent, type MirrorOptions } from './mirror.js';

/** describe() of a tree without the mirror's own folders, the link counts (a version in .lifeboat-versions may share a copy's inode) and the deep test path. */
function listing(root: string): string[] {
  return describe(root)
    .filter((l) => !l.startsWith(MIRROR_STATE) && !l.startsWith(MIRROR_VERSIONS) && !l.startsWith('deep'))
    .map((l) => l.split('|').slice(0, -1).join('|'));
}

async function run(src: string, dst: string, o: MirrorOptions = {}) {
  const warnings: string[] = [];
  const r = await mirror(src, dst, { ...o, onEvent: (e: MirrorEvent) => (e.type === 'warning' ? warnings.push(e.message) : undefined) });
  return { ...r.summary, warnings };
}

/** The deep path of buildTree's tree (over 4 KiB): 20 folders of 250-byte names, then the file. */
const DEEP_REL = ['deep', ...Array.from({ length: 20 }, (_, i) => `${String(i).padStart(2, '0')}${'d'.repeat(248)}`), 'deepfile'].join('/');

/** lstat and content of `rel` under `root`, however deep: each folder is opened through its parent's descriptor. */
function deepEntry(root: string, rel: string): { st: fs.BigIntStats; content?: string } | undefined {
  const parts = rel.split('/');
  const dirFlags = fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW;
  let fd = fs.openSync(root, dirFlags);
  try {
    for (const part of parts.slice(0, -1)) {
      const next = fs.openSync(`/proc/self/fd/${fd}/${part}`, dirFlags);
      fs.closeSync(fd);
      fd = next;
    }
    const p = `/proc/self/fd/${fd}/${parts.at(-1)!}`;
    const st = fs.lstatSync(p, { bigint: true, throwIfNoEntry: false });
    return st && { st, ...(st.isFile() ? { content: fs.readFileSync(p, 'utf8') } : {}) };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  } finally {
    fs.closeSync(fd);
  }
}

/** The one version folder of DST (a run that replaced or deleted something made it). */
function versionDirs(dst: string): string[] {
  const base = join(dst, MIRROR_VERSIONS);
  return fs.existsSync(base) ? fs.readdirSync(base).sort().map((n) => join(base, n)) : [];
}

test('a mirror is an exact copy: contents, modes, owners, times, xattrs, symlinks, special files, hostile names; a second run changes nothing', async (t) => {
  const d = tmp(t);
  const src = join(d, 'src');
  const dst = join(d, 'dst');
  buildTree(src);
  const want = listing(src); // before the mirror: reading a symlink moves its atime
  const r = await run(src, dst);
  assert.deepEqual(r.warnings, []);
  assert.equal(r.errors + r.conflicts, 0);
  assert.deepEqual(listing(dst), want);
  const again = await run(src, dst);
  assert.equal(again.copied, 0);
  assert.equal(again.bytesCopied, 0);
  assert.ok(again.unchanged > 10);
  assert.deepEqual(listing(dst), want);
  assert.deepEqual(versionDirs(dst), []);
  // Reading moves atimes: last.
  assert.equal(fs.readlinkSync(join(dst, 'link')), 'docs/hello.txt');
  assert.equal(xattrs(join(dst, 'docs', 'hello.txt')), xattrs(join(src, 'docs', 'hello.txt')));
  assert.ok(fs.readFileSync(Buffer.from(`${dst}/n\xff\xfe.t`, 'latin1')).equals(Buffer.from('not utf-8 name')));
  assert.equal(fs.readFileSync(join(dst, 'new\nline'), 'utf8'), 'newline in name');
  assert.equal(fs.statSync(join(dst, 'owned')).uid, 1234);
  assert.equal(fs.statSync(join(dst, 'hard1')).ino, fs.statSync(join(dst, 'docs', 'hard2')).ino, 'hard links stay hard links');
  assert.equal(r.hardLinked, 1);
  assert.ok(blocks(join(dst, 'sparse.img')) <= blocks(join(src, 'sparse.img')) + 16, 'a sparse file stays sparse');
  assert.ok(r.bytesCopied < 4 * 1024 * 1024, `${r.bytesCopied} bytes copied: the holes of sparse.img are not`);
  const deep = deepEntry(dst, DEEP_REL);
  assert.equal(deep?.content, 'deep file', 'a path longer than 4 KiB is mirrored');
  assert.equal(deep.st.mtimeNs, deepEntry(src, DEEP_REL)!.st.mtimeNs);
});

test('paths longer than 4 KiB: a deep file changed, deleted, its versions kept under the same deep path and expired, a deep folder renamed', async (t) => {
  const d = tmp(t);
  const src = join(d, 'src');
  const dst = join(d, 'dst');
  buildTree(src);
  const clock = new FakeClock(Date.UTC(2026, 11, 5, 12, 0, 0));
  await run(src, dst, { clock });
  const write = (rel: string, text: string) => {
    const parts = rel.split('/');
    const dir = deepEntry(src, parts.slice(0, -1).join('/'));
    assert.ok(dir?.st.isDirectory());
    // Written through the folder's descriptor, as the check reads.
    const flags = fs.constants.O_RDONLY | fs.constants.O_DIRECTORY;
    let fd = fs.openSync(src, flags);
    for (const part of parts.slice(0, -1)) {
      const next = fs.openSync(`/proc/self/fd/${fd}/${part}`, flags);
      fs.closeSync(fd);
      fd = next;
    }
    fs.writeFileSync(`/proc/self/fd/${fd}/${parts.at(-1)!}`, text);
    fs.closeSync(fd);
  };
  write(DEEP_REL, 'changed deep file');
  clock.set(Date.UTC(2026, 11, 6, 12, 0, 0));
  const changed = await run(src, dst, { clock });
  assert.deepEqual(changed.warnings, []);
  assert.equal(changed.versioned, 1);
  assert.equal(deepEntry(dst, DEEP_REL)?.content, 'changed deep file');
  assert.equal(deepEntry(join(dst, MIRROR_VERSIONS, '2026-12-06T12-00-00Z'), DEEP_REL)?.content, 'deep file', 'the old version, under the same deep path');

  // Only the deep folder named as changed, as a watcher would.
  write(DEEP_REL.replace(/deepfile$/, 'second'), 'second');
  const named = await run(src, dst, { clock, changed: [Buffer.from(DEEP_REL.replace(/\/deepfile$/, ''))] });
  assert.equal(named.copied, 1);
  assert.equal(deepEntry(dst, DEEP_REL.replace(/deepfile$/, 'second'))?.content, 'second');

  // The deepest folder renamed: the copies are renamed, not copied again.
  const parent = DEEP_REL.split('/').slice(0, -2).join('/');
  const last = DEEP_REL.split('/').at(-2)!;
  const p = deepEntry(src, parent);
  assert.ok(p);
  const flags = fs.constants.O_RDONLY | fs.constants.O_DIRECTORY;
  let fd = fs.openSync(src, flags);
  for (const part of parent.split('/')) {
    const next = fs.openSync(`/proc/self/fd/${fd}/${part}`, flags);
    fs.closeSync(fd);
    fd = next;
  }
  fs.renameSync(`/proc/self/fd/${fd}/${last}`, `/proc/self/fd/${fd}/renamed`);
  fs.closeSync(fd);
  clock.set(Date.UTC(2026, 11, 7, 12, 0, 0));
  const renamed = await run(src, dst, { clock });
  assert.deepEqual(renamed.warnings, []);
  assert.equal(renamed.renamed, 2);
  assert.equal(renamed.copied, 0);
  assert.equal(deepEntry(dst, `${parent}/renamed/deepfile`)?.content, 'changed deep file');
  assert.equal(deepEntry(dst, DEEP_REL), undefined);

  // A deep file deleted: into the versions, under its deep path.
  fd = fs.openSync(src, flags);
  for (const part of `${parent}/renamed`.split('/')) {
    const next = fs.openSync(`/proc/self/fd/${fd}/${part}`, flags);
    fs.closeSync(fd);
    fd = next;
  }
  fs.unlinkSync(`/proc/self/fd/${fd}/second`);
  fs.closeSync(fd);
  clock.set(Date.UTC(2026, 11, 8, 12, 0, 0));
  const deleted = await run(src, dst, { clock });
  assert.deepEqual(deleted.warnings, []);
  assert.equal(deleted.versioned, 1);
  assert.equal(deepEntry(join(dst, MIRROR_VERSIONS, '2026-12-08T12-00-00Z'), `${parent}/renamed/second`)?.content, 'second');
  assert.equal(deepEntry(dst, `${parent}/renamed/second`), undefined);

  // Versions expire, deep ones too.
  clock.set(Date.UTC(2027, 0, 30, 12, 0, 0));
  const expired = await run(src, dst, { clock, keepDays: 1 });
  assert.deepEqual(expired.warnings, []);
  assert.equal(expired.versionsExpired, 2);
  assert.deepEqual(fs.readdirSync(join(dst, MIRROR_VERSIONS)), []);
});

test('deleted and overwritten files are moved into .lifeboat-versions/DATE/… with their metadata, where a person can copy them back', async (t) => {
  const d = tmp(t);
  const src = join(d, 'src');
  const dst = join(d, 'dst');
  fs.mkdirSync(join(src, 'letters'), { recursive: true });
  fs.writeFileSync(join(src, 'letters', 'draft.txt'), 'first version');
  fs.utimesSync(join(src, 'letters', 'draft.txt'), 1_600_000_000, 1_600_000_000);
  fs.writeFileSync(join(src, 'gone.txt'), 'soon deleted');
  fs.mkdirSync(join(src, 'old', 'deeper'), { recursive: true });
  fs.writeFileSync(join(src, 'old', 'deeper', 'x'), 'in a deleted folder');
  await run(src, dst);

  fs.writeFileSync(join(src, 'letters', 'draft.txt'), 'second version, longer');
  fs.rmSync(join(src, 'gone.txt'));
  fs.rmSync(join(src, 'old'), { recursive: true });
  const clock = new FakeClock(Date.UTC(2026, 5, 1, 12, 0, 0));
  const r = await run(src, dst, { clock });
  assert.equal(r.versioned, 3);
  assert.equal(r.dirsRemoved, 2);
  assert.equal(fs.readFileSync(join(dst, 'letters', 'draft.txt'), 'utf8'), 'second version, longer');
  assert.ok(!fs.existsSync(join(dst, 'gone.txt')));
  assert.ok(!fs.existsSync(join(dst, 'old')));
  const [v] = versionDirs(dst);
  assert.equal(v, join(dst, MIRROR_VERSIONS, '2026-06-01T12-00-00Z'));
  const kept = join(v, 'letters', 'draft.txt');
  assert.equal(fs.readFileSync(kept, 'utf8'), 'first version');
  assert.equal(fs.statSync(kept).mtimeMs, 1_600_000_000_000);
  assert.equal(fs.readFileSync(join(v, 'gone.txt'), 'utf8'), 'soon deleted');
  assert.equal(fs.readFileSync(join(v, 'old', 'deeper', 'x'), 'utf8'), 'in a deleted folder');
  // Undone by hand: the old version copied back into the source; the next run mirrors it.
  fs.copyFileSync(kept, join(src, 'letters', 'draft.txt'));
  await run(src, dst, { clock });
  assert.equal(fs.readFileSync(join(dst, 'letters', 'draft.txt'), 'utf8'), 'first version');

  // Versions are kept for keepDays, then their folder is removed.
  clock.advance(29 * 86_400_000);
  assert.equal((await run(src, dst, { clock, keepDays: 30 })).versionsExpired, 0);
  assert.ok(fs.existsSync(kept));
  clock.advance(2 * 86_400_000);
  assert.equal((await run(src, dst, { clock, keepDays: 30 })).versionsExpired, 2);
  assert.deepEqual(versionDirs(dst), []);
});

test('a renamed or moved large file is renamed in the mirror, not copied again; a renamed folder too', async (t) => {
  const d = tmp(t);
  const src = join(d, 'src');
  const dst = join(d, 'dst');
  fs.mkdirSync(join(src, 'videos'), { recursive: true });
  fs.mkdirSync(join(src, 'album', 'y2025'), { recursive: true });
  const big = Buffer.alloc(8 << 20, 1);
  fs.writeFileSync(join(src, 'videos', 'holiday.mp4'), big);
  for (let i = 0; i < 5; i++) fs.writeFileSync(join(src, 'album', 'y2025', `p${i}.jpg`), Buffer.alloc(100_000, i));
  const first = await run(src, dst);
  assert.equal(first.bytesCopied, 8 * 1024 * 1024 + 500_000);

  fs.renameSync(join(src, 'videos', 'holiday.mp4'), join(src, 'holiday 2025.mp4'));
  fs.renameSync(join(src, 'album'), join(src, 'photos'));
  const r = await run(src, dst);
  assert.equal(r.bytesCopied, 0, 'nothing is copied again');
  assert.equal(r.copied, 0);
  assert.equal(r.renamed, 6);
  assert.equal(r.versioned, 0);
  assert.deepEqual(listing(dst), listing(src)); // first: reading a file moves its atime
  assert.ok(fs.readFileSync(join(dst, 'holiday 2025.mp4')).equals(big));
  assert.ok(!fs.existsSync(join(dst, 'videos', 'holiday.mp4')));
  assert.ok(!fs.existsSync(join(dst, 'album')));
  assert.equal(fs.readFileSync(join(dst, 'photos', 'y2025', 'p3.jpg')).length, 100_000);

  // Renamed over another file: the one replaced is kept as a version.
  fs.writeFileSync(join(src, 'a.txt'), 'A');
  fs.writeFileSync(join(src, 'b.txt'), 'B');
  await run(src, dst);
  fs.renameSync(join(src, 'a.txt'), join(src, 'b.txt'));
  const over = await run(src, dst);
  assert.equal(over.renamed, 1);
  assert.equal(over.bytesCopied, 0);
  assert.equal(fs.readFileSync(join(dst, 'b.txt'), 'utf8'), 'A');
  assert.ok(!fs.existsSync(join(dst, 'a.txt')));
  assert.equal(fs.readFileSync(join(versionDirs(dst).at(-1)!, 'b.txt'), 'utf8'), 'B');
});

test('the mirror never deletes or replaces what it did not make; a file equal to the source is taken over', async (t) => {
  const d = tmp(t);
  const src = join(d, 'src');
  const dst = join(d, 'dst');
  fs.mkdirSync(join(src, 'docs'), { recursive: true });
  fs.writeFileSync(join(src, 'docs', 'a.txt'), 'from the source');
  fs.writeFileSync(join(src, 'docs', 'same.txt'), 'same');
  fs.writeFileSync(join(src, 'edited-in-mirror.txt'), 'v1');
  fs.mkdirSync(join(dst, 'docs'), { recursive: true });
  fs.writeFileSync(join(dst, 'mine.txt'), 'my own notes');
  fs.writeFileSync(join(dst, 'docs', 'a.txt'), 'a different file of mine');
  fs.copyFileSync(join(src, 'docs', 'same.txt'), join(dst, 'docs', 'same.txt'));
  execFileSync('touch', ['-r', join(src, 'docs', 'same.txt'), join(dst, 'docs', 'same.txt')]);
  const r = await run(src, dst);
  assert.equal(r.conflicts, 1);
  assert.match(r.warnings.join('\n'), /docs\/a\.txt exists and was not made by the mirror.*left as it is/);
  assert.equal(r.adopted, 1);
  assert.equal(fs.readFileSync(join(dst, 'docs', 'a.txt'), 'utf8'), 'a different file of mine');
  assert.equal(fs.readFileSync(join(dst, 'mine.txt'), 'utf8'), 'my own notes');

  // A copy changed in the mirror is the person's now: neither replaced nor moved when the source changes or goes.
  fs.writeFileSync(join(dst, 'edited-in-mirror.txt'), 'edited in the mirror');
  fs.writeFileSync(join(src, 'edited-in-mirror.txt'), 'v2 in the source');
  assert.equal((await run(src, dst)).conflicts, 2);
  assert.equal(fs.readFileSync(join(dst, 'edited-in-mirror.txt'), 'utf8'), 'edited in the mirror');
  fs.rmSync(join(src, 'edited-in-mirror.txt'));
  fs.rmSync(join(src, 'docs'), { recursive: true });
  const gone = await run(src, dst, { allowEmptySource: true });
  assert.equal(fs.readFileSync(join(dst, 'edited-in-mirror.txt'), 'utf8'), 'edited in the mirror');
  assert.equal(fs.readFileSync(join(dst, 'docs', 'a.txt'), 'utf8'), 'a different file of mine', 'its folder stays for it');
  assert.ok(!fs.existsSync(join(dst, 'docs', 'same.txt')), 'the file taken over is the mirror\'s');
  assert.equal(gone.versioned, 1);
  assert.equal(fs.readFileSync(join(dst, 'mine.txt'), 'utf8'), 'my own notes');
});

test('a type change, a permission change, the reserved names at the top of the source, and a second mirror at once', async (t) => {
  const d = tmp(t);
  const src = join(d, 'src');
  const dst = join(d, 'dst');
  fs.mkdirSync(join(src, 'x'), { recursive: true });
  fs.writeFileSync(join(src, 'x', 'in'), 'inside');
  fs.writeFileSync(join(src, 'y'), 'a file');
  fs.mkdirSync(join(src, MIRROR_VERSIONS));
  const first = await run(src, dst);
  assert.match(first.warnings.join('\n'), /has the name of the mirror's own folder/);
  fs.rmSync(join(src, 'x'), { recursive: true });
  fs.writeFileSync(join(src, 'x'), 'now a file');
  fs.rmSync(join(src, 'y'));
  fs.mkdirSync(join(src, 'y'));
  fs.writeFileSync(join(src, 'y', 'z'), 'under a folder');
  const r = await run(src, dst);
  assert.equal(r.errors, 1, r.warnings.join('\n')); // the reserved name, again
  assert.equal(r.conflicts, 0);
  assert.equal(fs.readFileSync(join(dst, 'x'), 'utf8'), 'now a file');
  assert.equal(fs.readFileSync(join(dst, 'y', 'z'), 'utf8'), 'under a folder');
  fs.chmodSync(join(src, 'x'), 0o600);
  const chmod = await run(src, dst);
  assert.equal(chmod.metadataUpdated, 1);
  assert.equal(chmod.copied, 0);
  assert.equal(fs.statSync(join(dst, 'x')).mode & 0o777, 0o600);

  // One mirror at a time: a live process's lock is respected, a dead one's is taken over.
  const lock = join(dst, MIRROR_STATE, 'lock');
  fs.writeFileSync(lock, `${process.pid} ${(await import('node:os')).hostname()}\n`);
  await assert.rejects(run(src, dst), (e: Error & { code?: string }) => e.code === 'locked' && /Another mirror/.test(e.message));
  const dead = execFileSync('sh', ['-c', 'sh -c "echo \\$\\$" ']).toString().trim();
  fs.writeFileSync(lock, `${dead} ${(await import('node:os')).hostname()}\n`);
  assert.equal((await run(src, dst)).errors, 1);
  assert.ok(!fs.existsSync(lock));
  await assert.rejects(mirror(src, join(src, 'inside')), /must not be inside one another/);
  // An empty source (a drive not connected at its mount point) is not mirrored as "everything deleted".
  const empty = join(d, 'empty');
  fs.mkdirSync(empty);
  await assert.rejects(run(empty, dst), (e: Error & { code?: string }) => e.code === 'conflict' && /is empty, but the mirror holds \d+ entries from it; nothing was changed/.test(e.message));
  assert.equal(fs.readFileSync(join(dst, 'x'), 'utf8'), 'now a file');
  const emptied = await run(empty, dst, { allowEmptySource: true });
  assert.ok(emptied.versioned >= 2);
  assert.ok(!fs.existsSync(join(dst, 'x')));
  await assert.rejects(mirror(join(d, 'nope'), dst), /does not exist/);
});

/** Every file's content under `root` (recursively), by path relative to it. */
function contents(root: string, rel = '', out = new Map<string, string>()): Map<string, string> {
  for (const e of fs.readdirSync(join(root, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) contents(root, p, out);
    else if (e.isFile()) out.set(p, fs.readFileSync(join(root, p), 'utf8'));
  }
  return out;
}

test('2,000 seeded random operations, mirrored as a watcher would report them (changed folders only, a full run now and then): DST ends equal to SRC, and every content ever mirrored is still in DST or its versions', async (t) => {
  const d = tmp(t);
  const src = join(d, 'src');
  const dst = join(d, 'dst');
  fs.mkdirSync(src);
  const rnd = prng(2000);
  const pick = <T>(a: readonly T[]): T | undefined => (a.length ? a[Math.floor(rnd() * a.length)] : undefined);
  let serial = 0;
  const dirs = (): string[] => ['', ...[...walk(src)].filter((p) => fs.lstatSync(join(src, p)).isDirectory())];
  const files = (): string[] => [...walk(src)].filter((p) => fs.lstatSync(join(src, p)).isFile());
  function* walk(root: string, rel = ''): Generator<string> {
    for (const e of fs.readdirSync(join(root, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      yield p;
      if (e.isDirectory()) yield* walk(root, p);
    }
  }
  const parent = (p: string) => (p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '');
  const at = (dir: string, name: string) => (dir ? `${dir}/${name}` : name);
  // Without atimes (the checks read the files); names hold newlines, so not describe()'s lines.
  const noAtime = (root: string) =>
    [...walk(root)].filter((p) => !p.startsWith('.lifeboat-')).sort().map((p) => {
      const st = fs.lstatSync(join(root, p), { bigint: true });
      return JSON.stringify([p, st.mode, st.uid, st.gid, st.isDirectory() ? 0n : st.size, st.mtimeNs].map(String));
    });
  let changed = new Set<string>();
  const everMirrored = new Set<string>();
  for (let op = 1; op <= 2000; op++) {
    const r = rnd();
    const ds = dirs();
    const fsList = files();
    if (r < 0.3 || fsList.length === 0) {
      const dir = pick(ds)!;
      const p = at(dir, `f${serial}${rnd() < 0.1 ? '\nx' : ''}`);
      fs.writeFileSync(join(src, p), `content ${serial++}`);
      changed.add(dir);
    } else if (r < 0.5) {
      const p = pick(fsList)!;
      fs.writeFileSync(join(src, p), `content ${serial++}`);
      changed.add(parent(p));
    } else if (r < 0.62) {
      const p = pick(fsList)!;
      const to = at(pick(ds)!, `r${serial++}`);
      fs.renameSync(join(src, p), join(src, to));
      changed.add(parent(p)).add(parent(to));
    } else if (r < 0.72) {
      const p = pick(fsList)!;
      fs.rmSync(join(src, p));
      changed.add(parent(p));
    } else if (r < 0.82) {
      const dir = pick(ds)!;
      if (dir.split('/').length < 4) fs.mkdirSync(join(src, at(dir, `d${serial++}`)));
      changed.add(dir);
    } else if (r < 0.87) {
      const dir = pick(ds.filter((x) => x !== ''));
      if (dir !== undefined) {
        if (rnd() < 0.5) {
          fs.rmSync(join(src, dir), { recursive: true });
        } else {
          const to = at(pick(ds.filter((x) => x !== dir && !x.startsWith(dir + '/')))!, `m${serial++}`);
          fs.renameSync(join(src, dir), join(src, to));
          changed.add(parent(to));
        }
        changed.add(parent(dir));
      }
    } else {
      const p = pick(fsList)!;
      fs.chmodSync(join(src, p), rnd() < 0.5 ? 0o600 : 0o644);
      changed.add(parent(p));
    }
    if (op % 50 === 0) {
      const full = op % 500 === 0;
      const res = await run(src, dst, full ? {} : { changed: [...changed].map((c) => Buffer.from(c)) });
      assert.equal(res.errors + res.conflicts, 0, `op ${op}: ${res.warnings.join('\n')}`);
      changed = new Set();
      for (const c of contents(src).values()) everMirrored.add(c);
      if (op % 250 === 0) assert.deepEqual(noAtime(dst), noAtime(src), `after op ${op} (${full ? 'full' : 'changed folders only'})`);
    }
  }
  const inMirror = new Set(contents(dst).values());
  const missing = [...everMirrored].filter((c) => !inMirror.has(c));
  assert.deepEqual(missing, [], 'every version ever mirrored is kept');
});

test('a run stopped after it replaced a file but before it set its folder\'s times leaves the folder marked: the next run sets them, though nothing in the folder changes then', async (t) => {
  const d = tmp(t);
  const src = join(d, 'src');
  const dst = join(d, 'dst');
  fs.mkdirSync(join(src, 'a'), { recursive: true });
  fs.mkdirSync(join(src, 'b'));
  fs.writeFileSync(join(src, 'a', 'f.txt'), 'first\n');
  fs.writeFileSync(join(src, 'b', 'later.txt'), 'placed after a/f.txt\n');
  fs.utimesSync(join(src, 'a'), new Date('2020-01-02T03:04:05Z'), new Date('2020-01-02T03:04:05Z'));
  await run(src, dst);
  const mtime = (p: string) => fs.statSync(p, { bigint: true }).mtimeNs;
  assert.equal(mtime(join(dst, 'a')), mtime(join(src, 'a')));

  // The file's content changes (its folder's mtime does not); the run stops, as a killed one does,
  // once the new copy is in place, before the folders' times are set at the end.
  fs.writeFileSync(join(src, 'a', 'f.txt'), 'second, longer\n');
  const before = fs.statSync(join(src, 'a'), { bigint: true });
  const stopped = {
    aborted: false,
    throwIfAborted() {
      if (fs.readFileSync(join(dst, 'a', 'f.txt'), 'utf8') === 'second, longer\n') throw new Error('stopped');
    },
  } as unknown as AbortSignal;
  await assert.rejects(mirror(src, dst, { signal: stopped }), /stopped/);
  assert.notEqual(mtime(join(dst, 'a')), mtime(join(src, 'a')), 'the replaced copy moved the folder\'s mtime');

  const after = fs.statSync(join(src, 'a'), { bigint: true });
  assert.deepEqual([after.mtimeNs, after.ctimeNs], [before.mtimeNs, before.ctimeNs], 'nothing changed the source folder meanwhile');
  const next = await run(src, dst);
  assert.equal(next.copied, 0, 'nothing is left to copy');
  assert.equal(mtime(join(dst, 'a')), mtime(join(src, 'a')), 'the folder got its times back');
});
