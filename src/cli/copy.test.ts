/**
 * lifeboat copy and init --copy-parameters-from, through the real CLI on real repositories: a copy
 * restores byte for byte and checks clean, a second copy sends only what is new, images copy bit
 * for bit, a killed copy leaves the destination clean and the rerun completes; snapshots --host.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertSameTree, killedAfter, lifeboat, tempDir } from './testing.js';

interface CopyJson {
  snapshots: { source: string; copy: string; kind: string; alreadyThere: boolean }[];
  failed: { source: string; message: string }[];
  blobsSent: number;
  bytesSent: number;
  blobsPresent: number;
}

async function ok(args: string[], env: Record<string, string>): Promise<string> {
  const r = await lifeboat(args, env);
  assert.equal(r.code, 0, `lifeboat ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

async function checkClean(env: Record<string, string>, what: string): Promise<void> {
  const r = await lifeboat(['check', '--read-data', '--json'], env);
  assert.equal(r.code, 0, `${what}: check --read-data\n${r.stdout}${r.stderr}`);
  assert.deepEqual((JSON.parse(r.stdout) as { errors: unknown[] }).errors, [], what);
}

test('copy files and an image to a repository made with --copy-parameters-from: byte-identical, clean, incremental', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const src = { LIFEBOAT_REPO: join(d.path, 'src'), LIFEBOAT_PASSWORD: 'source pw' };
  const pwFile = join(d.path, 'src-pw');
  writeFileSync(pwFile, 'source pw\n');
  const dst = { LIFEBOAT_REPO: join(d.path, 'dst'), LIFEBOAT_PASSWORD: 'dest pw', LIFEBOAT_FROM_PASSWORD: 'source pw' };
  await ok(['init'], src);

  const tree = join(d.path, 'tree');
  mkdirSync(join(tree, 'sub'), { recursive: true });
  writeFileSync(join(tree, 'big.bin'), randomBytes(3 * 1024 * 1024));
  writeFileSync(join(tree, 'sub', 'note.txt'), 'hello\n');
  const first = (JSON.parse(await ok(['backup', '--json', tree], src)) as { snapshot: string }).snapshot;
  const disk = join(d.path, 'disk.img');
  writeFileSync(disk, Buffer.concat([randomBytes(2 * 1024 * 1024), Buffer.alloc(1024 * 1024), randomBytes(1024 * 1024)]));
  const image = (JSON.parse(await ok(['image', 'create', '--json', disk], src)) as { id: string }).id;

  // A destination with its own parameters is refused with a sentence saying what to do.
  const other = { LIFEBOAT_REPO: join(d.path, 'other'), LIFEBOAT_PASSWORD: 'x', LIFEBOAT_FROM_PASSWORD: 'source pw' };
  await ok(['init'], other);
  const refused = await lifeboat(['copy', '--from', src.LIFEBOAT_REPO], other);
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /--copy-parameters-from/);
  assert.doesNotMatch(refused.stderr, /at .*\.js/);

  // init takes the source's password from --from-password-file; copy from the environment.
  await ok(['init', '--copy-parameters-from', src.LIFEBOAT_REPO, '--from-password-file', pwFile], { ...dst, LIFEBOAT_FROM_PASSWORD: 'wrong' });
  const wrong = await lifeboat(['copy', '--from', src.LIFEBOAT_REPO], { ...dst, LIFEBOAT_FROM_PASSWORD: 'wrong' });
  assert.equal(wrong.code, 12, wrong.stderr);

  const c1 = JSON.parse(await ok(['copy', '--json', '--from', src.LIFEBOAT_REPO], dst)) as CopyJson;
  assert.equal(c1.snapshots.length, 2);
  assert.ok(c1.snapshots.every((s) => !s.alreadyThere));
  assert.ok(c1.bytesSent >= 3 * 1024 * 1024 + 3 * 1024 * 1024, `sent ${c1.bytesSent}`);
  await checkClean(dst, 'after the first copy');
  const copyOf = (id: string) => c1.snapshots.find((s) => s.source === id)!.copy;

  const out = join(d.path, 'out');
  await ok(['restore', copyOf(first), '--target', out], dst);
  assertSameTree(tree, join(out, 'tree'));
  const img = join(d.path, 'restored.img');
  await ok(['image', 'restore', copyOf(image), '--target', img], dst);
  assert.ok(readFileSync(img).equals(readFileSync(disk)), 'the copied image restores bit for bit');

  // A copy with nothing new sends nothing; one more backup sends only its new blobs.
  const again = JSON.parse(await ok(['copy', '--json', '--from', src.LIFEBOAT_REPO], dst)) as CopyJson;
  assert.equal(again.blobsSent, 0);
  assert.ok(again.snapshots.every((s) => s.alreadyThere));
  writeFileSync(join(tree, 'new.bin'), randomBytes(700 * 1024));
  const second = (JSON.parse(await ok(['backup', '--json', tree], src)) as { snapshot: string }).snapshot;
  const c2 = JSON.parse(await ok(['copy', '--json', '--from', src.LIFEBOAT_REPO, second.slice(0, 10)], dst)) as CopyJson;
  assert.equal(c2.snapshots.length, 1);
  assert.equal(c2.snapshots[0]!.alreadyThere, false);
  // The new file's one chunk, plus the small trees on its path from the root (nothing else changed).
  const depth = tree.split('/').filter(Boolean).length;
  assert.ok(c2.bytesSent >= 700 * 1024 && c2.bytesSent < 700 * 1024 + 64 * 1024, `second copy sent ${c2.bytesSent} bytes`);
  assert.ok(c2.blobsSent <= 1 + depth + 1, `second copy sent ${c2.blobsSent} blobs`);
  assert.ok(c2.blobsPresent > 0);
  const list = JSON.parse(await ok(['snapshots', '--json'], dst)) as { id: string; parent?: string }[];
  assert.equal(list.length, 3);
  assert.equal(list.find((s) => s.id === c2.snapshots[0]!.copy)!.parent, copyOf(first), 'the parent points at the copy of the parent');
  await checkClean(dst, 'after the second copy');
});

test('a copy killed with SIGKILL leaves the destination checking clean, and the rerun completes', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const src = { LIFEBOAT_REPO: join(d.path, 'src'), LIFEBOAT_PASSWORD: 'a' };
  const dst = { LIFEBOAT_REPO: join(d.path, 'dst'), LIFEBOAT_PASSWORD: 'b', LIFEBOAT_FROM_PASSWORD: 'a' };
  await ok(['init'], src);
  const tree = join(d.path, 'tree');
  mkdirSync(tree);
  for (let i = 0; i < 6; i++) writeFileSync(join(tree, `f${i}.bin`), randomBytes(3 * 1024 * 1024));
  await ok(['backup', tree], src);
  await ok(['init', '--copy-parameters-from', src.LIFEBOAT_REPO], dst);
  // How long a whole copy takes here, into a second destination, to spread the kills over it.
  const probe = { ...dst, LIFEBOAT_REPO: join(d.path, 'probe') };
  await ok(['init', '--copy-parameters-from', src.LIFEBOAT_REPO], probe);
  const started = Date.now();
  assert.equal((JSON.parse(await ok(['copy', '--json', '--from', src.LIFEBOAT_REPO], probe)) as CopyJson).snapshots.length, 1);
  const full = Date.now() - started;
  let kills = 0;
  for (const frac of [0.5, 0.8]) {
    if ((await killedAfter(Math.round(frac * full), ['copy', '--from', src.LIFEBOAT_REPO], dst)).killed) kills++;
    await checkClean(dst, `copy killed after ${Math.round(frac * full)} ms of ~${full}`);
  }
  assert.ok(kills > 0, 'at least one copy was killed before it finished');
  const rerun = JSON.parse(await ok(['copy', '--json', '--from', src.LIFEBOAT_REPO], dst)) as CopyJson;
  assert.equal(rerun.snapshots.length, 1);
  await checkClean(dst, 'after the rerun');
  const out = join(d.path, 'out');
  await ok(['restore', rerun.snapshots[0]!.copy, '--target', out], dst);
  assertSameTree(tree, join(out, 'tree'));
});

test('snapshots --host lists only the snapshots of the named computers', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  await ok(['init'], env);
  const tree = join(d.path, 'tree');
  mkdirSync(tree);
  writeFileSync(join(tree, 'a.txt'), 'a');
  for (const host of ['laptop', 'desktop', 'laptop', 'server']) await ok(['backup', '--host', host, tree], env);
  const hosts = async (...args: string[]) => (JSON.parse(await ok(['snapshots', '--json', ...args], env)) as { host: string }[]).map((s) => s.host);
  assert.deepEqual(await hosts('--host', 'laptop'), ['laptop', 'laptop']);
  assert.deepEqual((await hosts('--host', 'laptop', '--host', 'server')).sort(), ['laptop', 'laptop', 'server']);
  assert.equal((await hosts()).length, 4);
  const none = await ok(['snapshots', '--host', 'nas'], env);
  assert.match(none, /No snapshot was made on nas.*desktop, laptop, server/);
});

test('a snapshot whose data is missing in the source is reported and left out; the others are copied (exit 3)', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const src = { LIFEBOAT_REPO: join(d.path, 'src'), LIFEBOAT_PASSWORD: 'a' };
  const dst = { LIFEBOAT_REPO: join(d.path, 'dst'), LIFEBOAT_PASSWORD: 'b', LIFEBOAT_FROM_PASSWORD: 'a' };
  await ok(['init'], src);
  const packs = () => readdirSync(join(src.LIFEBOAT_REPO, 'data'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
  const a = join(d.path, 'a');
  const b = join(d.path, 'b');
  mkdirSync(a);
  mkdirSync(b);
  writeFileSync(join(a, 'one.bin'), randomBytes(600 * 1024));
  writeFileSync(join(b, 'two.bin'), randomBytes(600 * 1024));
  const good = (JSON.parse(await ok(['backup', '--json', a], src)) as { snapshot: string }).snapshot;
  const before = new Set(packs());
  const bad = (JSON.parse(await ok(['backup', '--json', b], src)) as { snapshot: string }).snapshot;
  for (const p of packs()) if (!before.has(p)) rmSync(p); // only the second snapshot's blobs were in them
  await ok(['init', '--copy-parameters-from', src.LIFEBOAT_REPO], dst);
  const r = await lifeboat(['copy', '--json', '--from', src.LIFEBOAT_REPO], dst);
  assert.equal(r.code, 3, r.stderr);
  const c = JSON.parse(r.stdout) as CopyJson;
  assert.deepEqual(c.snapshots.map((s) => s.source), [good]);
  assert.deepEqual(c.failed.map((f) => f.source), [bad]);
  assert.match(r.stderr, new RegExp(`snapshot ${bad.slice(0, 8)} was not copied`));
  assert.doesNotMatch(r.stderr, /at .*\.js/);
  await checkClean(dst, 'after a copy that left a damaged snapshot out');
});

test('pins go along with the copy: a pinned snapshot is pinned in the destination (note kept), forget there keeps it; a pin made later is copied by the next run', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const src = { LIFEBOAT_REPO: join(d.path, 'src'), LIFEBOAT_PASSWORD: 'source pw' };
  const dst = { LIFEBOAT_REPO: join(d.path, 'dst'), LIFEBOAT_PASSWORD: 'dest pw', LIFEBOAT_FROM_PASSWORD: 'source pw' };
  await ok(['init'], src);
  await ok(['init', '--copy-parameters-from', src.LIFEBOAT_REPO], dst);
  const tree = join(d.path, 'tree');
  mkdirSync(tree);
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    writeFileSync(join(tree, 'a.txt'), `version ${i}\n`);
    ids.push((JSON.parse(await ok(['backup', '--json', tree], src)) as { snapshot: string }).snapshot);
  }
  await ok(['pin', ids[0]!, '--note', 'tax year 2025'], src);
  const c1 = JSON.parse(await ok(['copy', '--json', '--from', src.LIFEBOAT_REPO], dst)) as CopyJson & { pinsCopied: number };
  assert.equal(c1.pinsCopied, 1);
  const copyOf = (id: string) => c1.snapshots.find((s) => s.source === id)!.copy;
  const listed = () => ok(['snapshots', '--json'], dst).then((o) => JSON.parse(o) as { id: string; pinned?: { note: string } }[]);
  assert.deepEqual((await listed()).find((s) => s.id === copyOf(ids[0]!))?.pinned, { note: 'tax year 2025' });

  // Forget in the destination keeps the pinned copy.
  await ok(['forget', '--keep-last', '1'], dst);
  assert.deepEqual((await listed()).map((s) => s.id).sort(), [copyOf(ids[0]!), copyOf(ids[2]!)].sort());

  // A pin made after the first copy reaches the copy made before on the next run; a rerun pins nothing more.
  await ok(['pin', ids[2]!], src);
  const c2 = JSON.parse(await ok(['copy', '--json', '--from', src.LIFEBOAT_REPO, ids[2]!], dst)) as { pinsCopied: number };
  assert.equal(c2.pinsCopied, 1);
  const c3 = await ok(['copy', '--from', src.LIFEBOAT_REPO], dst);
  assert.doesNotMatch(c3, /Pinned/);
  assert.ok((await listed()).find((s) => s.id === copyOf(ids[2]!))?.pinned);
});
