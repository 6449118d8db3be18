/**
 * `lifeboat repair snapshots` for files snapshots (issue 6, P5; src/files/repair.ts): a pack that
 * one file uses is deleted; repair writes a new snapshot that restores every intact file and
 * names the damaged one, which it keeps marked `damaged` with no content; the next backup reads
 * that file again. And in process: a lost folder listing becomes an empty folder marked damaged.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lifeboat } from '../cli/testing.js';
import { Names, fromHex, type Hex } from '../repo/ids.js';
import { Repository } from '../repo/repository.js';
import { MemoryStore } from '../store/memory.js';
import { LocalStore } from '../store/local.js';
import { backup } from './backup.js';
import { repairFilesTree } from './repair.js';
import { tmp } from './testing.js';
import { decodeEntry, fileContent, loadDir, type TreeEntry } from './tree.js';

async function entryAt(repo: Repository, root: Hex, path: string[]): Promise<TreeEntry> {
  let dir = root;
  let e: TreeEntry | undefined;
  for (const name of path) {
    e = (await loadDir(repo, dir)).find((x) => x.name.toString() === name);
    assert.ok(e, `${path.join('/')}: no ${name}`);
    if (e.subtree) dir = e.subtree;
  }
  return e!;
}

test('repair snapshots: a deleted pack damages one file; the repaired snapshot restores every other file and names it', async (t) => {
  const d = tmp(t);
  const env = { LIFEBOAT_REPO: join(d, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  const tree = join(d, 'tree');
  mkdirSync(join(tree, 'sub', 'deep'), { recursive: true });
  writeFileSync(join(tree, 'a.txt'), 'first file');
  writeFileSync(join(tree, 'sub', 'b.bin'), randomBytes(200_000));
  writeFileSync(join(tree, 'sub', 'deep', 'c.bin'), randomBytes(3_000_000));
  assert.equal((await lifeboat(['init'], env)).code, 0);
  assert.equal((await lifeboat(['backup', tree], env)).code, 0);
  // big.bin's blocks go only into packs of the second backup (the others are unchanged, reused).
  writeFileSync(join(tree, 'sub', 'big.bin'), randomBytes(20_000_000));
  const b2 = await lifeboat(['backup', '--json', tree], env);
  assert.equal(b2.code, 0, b2.stderr);
  const s2 = (JSON.parse(b2.stdout) as { snapshot: Hex }).snapshot;

  // Delete the pack that holds big.bin's first block.
  const repo = await Repository.open(new LocalStore(env.LIFEBOAT_REPO), 'pw');
  await repo.loadIndex();
  const big = await entryAt(repo, (await repo.loadSnapshot(s2)).root, ['tree', 'sub', 'big.bin']);
  const loc = repo.index.get(fromHex((await fileContent(repo, big))[0]!));
  rmSync(join(env.LIFEBOAT_REPO, Names.pack(loc!.packId)));
  await repo.close();

  const check = await lifeboat(['check'], env);
  assert.notEqual(check.code, 0, 'check sees the missing pack');
  assert.match(check.stdout, new RegExp(Names.pack(loc!.packId).replace(/\//g, '\\/')));
  assert.match(check.stdout, new RegExp(`${s2.slice(0, 8)}.*is affected by the damaged or missing pack .*: /tree/sub/big\\.bin`), `check names the snapshot and file:\n${check.stdout}`);
  // The documented order: rebuild the index from the packs that are there, then repair snapshots.
  const ri = await lifeboat(['repair', 'index'], env);
  assert.equal(ri.code, 0, ri.stdout + ri.stderr);
  const dry = await lifeboat(['repair', 'snapshots', '--dry-run'], env);
  assert.equal(dry.code, 0, dry.stdout + dry.stderr);
  assert.match(dry.stdout, new RegExp(`snapshot ${s2.slice(0, 8)} \\(files\\): would be repaired`));
  assert.match(dry.stdout, /damaged: \/tree\/sub\/big\.bin/);

  const rep = await lifeboat(['repair', 'snapshots'], env);
  assert.equal(rep.code, 0, rep.stdout + rep.stderr);
  assert.match(rep.stdout, /damaged: \/tree\/sub\/big\.bin \(\d+ of \d+ data blocks lost \(20000000 bytes\)\)/);
  assert.equal((rep.stdout.match(/damaged:/g) ?? []).length, 1, `only big.bin is damaged:\n${rep.stdout}`);
  const newId = /repaired as ([0-9a-f]{8})/.exec(rep.stdout)![1]!;

  const snaps = JSON.parse((await lifeboat(['snapshots', '--json'], env)).stdout) as { id: Hex; tags: string[] }[];
  const repaired = snaps.find((s) => s.id.startsWith(newId))!;
  assert.ok(repaired.tags.includes('repaired'));
  const target = join(d, 'restored');
  const rs = await lifeboat(['restore', repaired.id, '--target', target], env);
  assert.equal(rs.code, 3, `restore of a repaired snapshot reports the lost file as an error (partial): ${rs.stderr}`);
  assert.match(rs.stderr, /\/sub\/big\.bin: its data was lost from the repository .*restored empty/);
  assert.equal((rs.stderr.match(/data was lost/g) ?? []).length, 1, rs.stderr);
  for (const f of ['a.txt', 'sub/b.bin', 'sub/deep/c.bin']) assert.ok(readFileSync(join(target, 'tree', f)).equals(readFileSync(join(tree, f))), `${f} restores intact`);
  assert.equal(statSync(join(target, 'tree', 'sub', 'big.bin')).size, 0, 'the damaged file is kept, empty');
  // Nothing of the repaired snapshot is missing: a second repair finds only the old snapshot.
  const again = await lifeboat(['repair', 'snapshots', '--dry-run'], env);
  assert.doesNotMatch(again.stdout, new RegExp(`snapshot ${newId}`));

  // Forget the damaged original: the repository checks clean, and the next
  // backup (parent: the repaired snapshot) reads big.bin again rather than reusing the empty entry.
  assert.equal((await lifeboat(['forget', s2], env)).code, 0);
  const c2 = await lifeboat(['check', '--read-data'], env);
  assert.equal(c2.code, 0, c2.stdout);
  const b3 = await lifeboat(['backup', '--json', tree], env);
  assert.equal(b3.code, 0, b3.stderr);
  const s3 = JSON.parse(b3.stdout) as { snapshot: Hex; parent: Hex | null };
  assert.equal(s3.parent, repaired.id);
  const t3 = join(d, 'restored3');
  assert.equal((await lifeboat(['restore', s3.snapshot, '--target', t3], env)).code, 0);
  assert.ok(readFileSync(join(t3, 'tree', 'sub', 'big.bin')).equals(readFileSync(join(tree, 'sub', 'big.bin'))), 'big.bin is whole again');
  assert.equal((await lifeboat(['check', '--read-data'], env)).code, 0);
});

test('repairFilesTree: a lost folder listing becomes an empty folder marked damaged; a lost root is unrecoverable', async (t) => {
  process.env['LIFEBOAT_INSECURE_FAST_KDF'] = '1';
  const d = tmp(t);
  const tree = join(d, 'tree');
  mkdirSync(join(tree, 'keep'), { recursive: true });
  mkdirSync(join(tree, 'lost', 'inner'), { recursive: true });
  writeFileSync(join(tree, 'keep', 'k.txt'), 'kept');
  writeFileSync(join(tree, 'lost', 'inner', 'x.txt'), 'gone');
  const { repo } = await Repository.init(new MemoryStore(), 'pw');
  await repo.loadIndex();
  const r = await backup(repo, { paths: [tree] });
  const root = r.snapshot.root;
  const lost = (await entryAt(repo, root, ['tree', 'lost'])).subtree!;
  const keep = (await entryAt(repo, root, ['tree', 'keep'])).subtree!;

  const fixed = await repairFilesTree(repo, root, (id) => Buffer.compare(Buffer.from(id), fromHex(lost)) !== 0);
  assert.ok(fixed);
  assert.deepEqual(fixed.damaged.map((x) => x.where), ['/tree/lost/']);
  await repo.flush();
  const e = await entryAt(repo, fixed.root, ['tree', 'lost']);
  assert.equal(e.damaged, true);
  assert.deepEqual(await loadDir(repo, e.subtree!), []);
  assert.equal((await entryAt(repo, fixed.root, ['tree', 'keep'])).subtree, keep, 'intact folders keep their listing');
  assert.equal(await repairFilesTree(repo, root, (id) => Buffer.compare(Buffer.from(id), fromHex(root)) !== 0), undefined);
  // Nothing to repair: the same root back, nothing written.
  const same = await repairFilesTree(repo, root, () => true);
  assert.deepEqual(same, { root, damaged: [] });
  // The flag round-trips through the tree format.
  assert.equal(decodeEntry(JSON.parse('{"name":"f","type":"file","mode":420,"uid":0,"gid":0,"mtime":"0","atime":"0","ctime":"0","size":0,"inode":"1","device":"1","nlink":1,"content":[],"damaged":true}')).damaged, true);
});
