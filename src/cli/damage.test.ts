/**
 * Damage never spreads (issue 24, P14 item 1): one flipped byte in one index file, or an index
 * file deleted, costs time, not data. Restore, ls, dump and check go on from the packs' own
 * headers with one warning; every snapshot, files and images alike, restores byte for byte
 * without running repair first; check names the damaged index file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertSameTree, lifeboat, tempDir } from './testing.js';

function indexFiles(repo: string): string[] {
  return readdirSync(join(repo, 'index')).map((n) => join(repo, 'index', n));
}

test('a damaged or missing index file loses nothing: every snapshot restores without repair, with one warning', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const repo = join(d.path, 'repo');
  const env = { LIFEBOAT_REPO: repo, LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const trees: string[] = [];
  for (const name of ['one', 'two']) {
    const tree = join(d.path, name);
    mkdirSync(join(tree, 'sub'), { recursive: true });
    writeFileSync(join(tree, 'sub', 'big.bin'), randomBytes(3 << 20));
    writeFileSync(join(tree, 'small.txt'), `${name}\n`);
    assert.equal((await lifeboat(['backup', tree], env)).code, 0);
    trees.push(tree);
  }
  const disk = join(d.path, 'disk.img');
  writeFileSync(disk, randomBytes(2 << 20));
  assert.equal((await lifeboat(['image', 'create', disk], env)).code, 0);
  const snaps = JSON.parse((await lifeboat(['snapshots', '--json'], env)).stdout) as { id: string; kind: string }[];
  assert.ok(indexFiles(repo).length >= 3, 'index files to damage');

  let round = 0;
  const verifyAll = async (what: string) => {
    round++;
    for (const [i, s] of snaps.entries()) {
      const target = join(d.path, `${what}-${round}-${i}`);
      const r = s.kind === 'image' ? await lifeboat(['image', 'restore', s.id, '--target', target], env) : await lifeboat(['restore', s.id, '--target', target], env);
      assert.equal(r.code, 0, `${what}: restore ${s.kind} ${s.id}: ${r.stderr}`);
      assert.equal((r.stderr.match(/cannot be read .*Lifeboat reads the packs' own headers instead/g) ?? []).length, what === 'missing' ? 0 : 1, r.stderr);
      if (s.kind === 'image') assert.ok(readFileSync(target).equals(readFileSync(disk)));
      else assertSameTree(trees[i]!, join(target, trees[i]!.split('/').pop()!));
    }
    const dump = await lifeboat(['dump', snaps[1]!.id, '/two/small.txt'], env);
    assert.equal(dump.stdout, 'two\n', `${what}: dump`);
  };

  // One flipped byte in the middle of each index file in turn.
  for (const f of indexFiles(repo)) {
    const bytes = readFileSync(f);
    const flipped = Buffer.from(bytes);
    flipped[bytes.length >> 1]! ^= 0x20;
    writeFileSync(f, flipped);
    await verifyAll('flipped');
    const check = await lifeboat(['check'], env);
    assert.equal(check.code, 1, 'check reports the damage');
    assert.ok(check.stdout.includes(f.slice(repo.length + 1)), check.stdout);
    writeFileSync(f, bytes);
  }
  // An index file deleted: the packs it covered are found by their headers too (as after an interrupted backup).
  rmSync(indexFiles(repo)[0]!);
  await verifyAll('missing');
  assert.equal((await lifeboat(['check', '--read-data'], env)).code, 0);
});

test('a damaged pin is named by check and still protects its snapshot until it is pinned again', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const repo = join(d.path, 'repo');
  const env = { LIFEBOAT_REPO: repo, LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const tree = join(d.path, 'tree');
  mkdirSync(tree);
  const ids: string[] = [];
  for (const v of ['one', 'two']) {
    writeFileSync(join(tree, 'f.txt'), v);
    ids.push((JSON.parse((await lifeboat(['backup', '--json', tree], env)).stdout) as { snapshot: string }).snapshot);
  }
  assert.equal((await lifeboat(['pin', ids[0]!, '--note', 'before the upgrade'], env)).code, 0);
  const pinDir = join(repo, 'pins', ids[0]!);
  const pinFile = join(pinDir, readdirSync(pinDir)[0]!);
  const bytes = readFileSync(pinFile);
  bytes[bytes.length >> 1]! ^= 1;
  writeFileSync(pinFile, bytes);
  const check = await lifeboat(['check'], env);
  assert.equal(check.code, 1, check.stdout);
  assert.match(check.stdout, new RegExp(`pins/${ids[0]}/[0-9a-f]{64}: the pin of snapshot ${ids[0]!.slice(0, 8)} is damaged .*the snapshot stays pinned until you decide: "lifeboat pin ${ids[0]!.slice(0, 8)}" renews the pin`));
  const forget = await lifeboat(['forget', '--keep-last', '1', '--json'], env);
  assert.equal(forget.code, 0, forget.stderr);
  assert.deepEqual((JSON.parse(forget.stdout) as { removed: string[] }).removed, [], 'the damaged pin still protects its snapshot');
  assert.equal((await lifeboat(['pin', ids[0]!], env)).code, 0);
  assert.equal((await lifeboat(['check'], env)).code, 0, 'pinning again replaces the damaged pin');
});

test('a damaged key slot is reported as damaged, not as a wrong password, with the way out', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const repo = join(d.path, 'repo');
  const env = { LIFEBOAT_REPO: repo, LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  assert.equal((await lifeboat(['key', 'add', '--label', 'spare'], { ...env, LIFEBOAT_NEW_PASSWORD: 'spare-pw' })).code, 0);
  const mine = (JSON.parse((await lifeboat(['key', 'list', '--json'], env)).stdout) as { id: string; current: boolean }[]).find((k) => k.current)!.id;
  const file = join(repo, 'keys', mine);
  const bytes = readFileSync(file);
  bytes[Math.floor(bytes.length * 0.8)]! ^= 0x04; // inside the wrapped master key
  writeFileSync(file, bytes);
  const r = await lifeboat(['snapshots'], env);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`the key file ${mine.slice(0, 8)} is damaged: if this password belonged to it, open the repository with another password or the recovery key, add a new password with "lifeboat key add" and remove the damaged slot with "lifeboat key remove ${mine.slice(0, 8)}"`));
  assert.doesNotMatch(r.stderr, /password is not correct/);
  const spare = { ...env, LIFEBOAT_PASSWORD: 'spare-pw' };
  assert.equal((await lifeboat(['snapshots'], spare)).code, 0, 'another password still opens it');
  assert.equal((await lifeboat(['key', 'add'], { ...spare, LIFEBOAT_NEW_PASSWORD: 'pw' })).code, 0);
  assert.equal((await lifeboat(['key', 'remove', mine.slice(0, 8)], spare)).code, 0);
  assert.equal((await lifeboat(['check'], env)).code, 0, 'the password works again through its new slot');
});

test('a deleted or damaged config costs one warning: the copy opens the repository, check names it, repair config writes it again', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const repo = join(d.path, 'repo');
  const env = { LIFEBOAT_REPO: repo, LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const tree = join(d.path, 'tree');
  mkdirSync(tree);
  writeFileSync(join(tree, 'f.bin'), randomBytes(200_000));
  assert.equal((await lifeboat(['backup', tree], env)).code, 0);
  const config = join(repo, 'config');
  const good = readFileSync(config);
  for (const damage of ['delete', 'flip'] as const) {
    if (damage === 'delete') rmSync(config);
    else writeFileSync(config, Buffer.from(good.toString('latin1').replace('"version":1', '"version":5'), 'latin1'));
    const r = await lifeboat(['restore', 'latest', '--target', join(d.path, `out-${damage}`)], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((r.stderr.match(/warning: The repository's config file is (missing|damaged); Lifeboat uses its copy \(config\.copy\)/g) ?? []).length, 1, r.stderr);
    assertSameTree(tree, join(d.path, `out-${damage}`, 'tree'));
    const check = await lifeboat(['check'], env);
    assert.equal(check.code, 1, check.stdout);
    assert.match(check.stdout, /config: .*"lifeboat repair config"/);
    const fix = await lifeboat(['repair', 'config'], env);
    assert.equal(fix.code, 0, fix.stderr);
    assert.match(fix.stdout, /wrote config again/);
    assert.ok(readFileSync(config).equals(good));
    const clean = await lifeboat(['check'], env);
    assert.equal(clean.code, 0, clean.stdout + clean.stderr);
    assert.doesNotMatch(clean.stderr, /warning/);
  }
});

test('a pack whose header and trailer are cut, with every index file deleted: repair index finds its blobs by scanning, and every snapshot restores byte for byte', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const repo = join(d.path, 'repo');
  const env = { LIFEBOAT_REPO: repo, LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const tree = join(d.path, 'tree');
  mkdirSync(join(tree, 'sub'), { recursive: true });
  writeFileSync(join(tree, 'random.bin'), randomBytes(5 << 20)); // raw (incompressible) chunks
  writeFileSync(join(tree, 'sub', 'text.txt'), Array.from({ length: 40_000 }, (_, i) => `line ${i} of a text that compresses\n`).join('')); // zstd chunks
  for (let i = 0; i < 20; i++) writeFileSync(join(tree, 'sub', `small-${i}.txt`), `small file ${i}\n`);
  assert.equal((await lifeboat(['backup', tree], env)).code, 0);
  const disk = join(d.path, 'disk.img');
  writeFileSync(disk, Buffer.concat([randomBytes(1 << 20), Buffer.alloc(1 << 20, 7), randomBytes(1 << 20)]));
  assert.equal((await lifeboat(['image', 'create', disk], env)).code, 0);
  const snaps = JSON.parse((await lifeboat(['snapshots', '--json'], env)).stdout) as { id: string; kind: string }[];

  // Every pack loses its trailer and the second half of its sealed header; every index file goes.
  const packs: string[] = [];
  for (const sub of readdirSync(join(repo, 'data'))) for (const f of readdirSync(join(repo, 'data', sub))) packs.push(join(repo, 'data', sub, f));
  for (const p of packs) {
    const bytes = readFileSync(p);
    const header = bytes.readUInt32LE(bytes.length - 8);
    writeFileSync(p, bytes.subarray(0, bytes.length - 8 - (header >> 1)));
  }
  for (const f of indexFiles(repo)) rmSync(f);
  const fix = await lifeboat(['repair', 'index'], env);
  assert.equal(fix.code, 1, 'the damaged packs are reported');
  assert.equal((fix.stdout.match(/found by scanning the pack/g) ?? []).length, packs.length, fix.stdout);
  for (const [i, s] of snaps.entries()) {
    const target = join(d.path, `out-${i}`);
    const r = s.kind === 'image' ? await lifeboat(['image', 'restore', s.id, '--target', target], env) : await lifeboat(['restore', s.id, '--target', target], env);
    assert.equal(r.code, 0, `restore ${s.kind}: ${r.stderr}`);
    if (s.kind === 'image') assert.ok(readFileSync(target).equals(readFileSync(disk)));
    else assertSameTree(tree, join(target, 'tree'));
  }
});
