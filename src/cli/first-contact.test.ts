/**
 * What a new user meets first (issue 17, P13 items 6 and 9): paths as they were backed up
 * (/home/ann/Documents/…) work wherever the snapshot's own form (/Documents/…) does; every example
 * in --help runs; restore --original puts files back and keeps what changed since unless told;
 * dump of a folder is a tar; snapshot prefixes, --version, --quiet and times say what they mean.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, assertSameTree, lifeboat, tempDir } from './testing.js';

function fixture(t: { after: (fn: () => void) => void }): { root: string; docs: string; env: Record<string, string> } {
  const d = tempDir();
  t.after(d.cleanup);
  const docs = join(d.path, 'home', 'ann', 'Documents');
  mkdirSync(join(docs, 'letters'), { recursive: true });
  writeFileSync(join(docs, 'notes.txt'), 'shopping: bread, milk\n');
  writeFileSync(join(docs, 'thesis-v1.tex'), '\\documentclass{article}\n');
  writeFileSync(join(docs, 'letters', 'invite.odt'), Buffer.alloc(3000, 7));
  return { root: d.path, docs, env: { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' } };
}

async function ok(args: string[], env: Record<string, string>, cwd?: string): Promise<string> {
  const r = await lifeboat(args, env, undefined, cwd);
  assert.equal(r.code, 0, `lifeboat ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

test('ls, dump, find and restore --include take the original absolute path as well as the snapshot form', async (t) => {
  const { root, docs, env } = fixture(t);
  await ok(['init'], env);
  await ok(['backup', docs], env);
  assert.equal(await ok(['dump', 'latest', join(docs, 'notes.txt')], env), 'shopping: bread, milk\n');
  assert.equal(await ok(['dump', 'latest', '/Documents/notes.txt'], env), 'shopping: bread, milk\n');
  assert.equal(await ok(['ls', 'latest', join(docs, 'letters')], env), '/Documents/letters/invite.odt\n');
  // find matches either form; it shows the original path.
  for (const pattern of [`${docs}/*.tex`, '/Documents/*.tex', '/home/*/Documents/*.tex'.replace('/home', join(root, 'home'))]) {
    const out = await ok(['find', pattern], env);
    assert.match(out, new RegExp(`${join(docs, 'thesis-v1.tex').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n$`), pattern);
  }
  const target = join(root, 'out');
  await ok(['restore', 'latest', '--include', join(docs, 'letters'), '--target', target], env);
  assert.deepEqual(execFileSync('find', [target, '-type', 'f']).toString().trim(), join(target, 'Documents', 'letters', 'invite.odt'));
});

test('every example in the help of ls, find, dump and restore runs', async (t) => {
  const { root, docs, env } = fixture(t);
  await ok(['init'], env);
  await ok(['backup', docs], env);
  let ran = 0;
  for (const cmd of ['ls', 'find', 'dump', 'restore']) {
    const help = await ok([cmd, '--help'], env);
    const examples = help.split('Examples:\n')[1]?.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('lifeboat ')) ?? [];
    assert.ok(examples.length > 0, `${cmd} --help has examples`);
    for (const ex of examples) {
      const [command, redirect] = ex.split(' > ');
      const args = command!.slice('lifeboat '.length).match(/"[^"]*"|\S+/g)!.map((a) => a.replace(/^"|"$/g, ''));
      const r = spawnSync(process.execPath, [BIN, ...args], { cwd: root, env: { ...process.env, LIFEBOAT_INSECURE_FAST_KDF: '1', ...env } });
      assert.equal(r.status, 0, `${ex}: ${r.stderr.toString()}`);
      if (redirect) writeFileSync(join(root, redirect), r.stdout);
      else if (cmd !== 'restore') assert.ok(r.stdout.length > 0, `${ex} printed something`);
      ran++;
    }
  }
  assert.ok(ran >= 8, `${ran} examples ran`);
  assert.equal(readFileSync(join(root, 'notes.txt'), 'utf8'), 'shopping: bread, milk\n');
  assert.ok(existsSync(join(root, 'restored', 'Documents', 'letters', 'invite.odt')));
});

test('restore --original puts files back where they came from and keeps files changed since, unless --overwrite says otherwise (replace, or keep both)', async (t) => {
  const { docs, env } = fixture(t);
  await ok(['init'], env);
  writeFileSync(join(docs, '.profile'), 'as backed up\n');
  await ok(['backup', docs], env);
  rmSync(join(docs, 'letters'), { recursive: true });
  writeFileSync(join(docs, 'notes.txt'), 'shopping: bread, milk, eggs\n');
  writeFileSync(join(docs, '.profile'), 'mine\n');
  // Without a terminal nobody can be asked: the changed file is kept, the lost ones come back.
  const r1 = await lifeboat(['restore', 'latest', '--original'], env);
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(readFileSync(join(docs, 'notes.txt'), 'utf8'), 'shopping: bread, milk, eggs\n');
  assert.equal(readFileSync(join(docs, 'letters', 'invite.odt')).length, 3000);
  assert.match(r1.stdout, /2 file\(s\) changed since the backup were left as they are; add --overwrite if-changed/);
  assert.ok(!existsSync(join(docs, 'Documents')), 'not restored into a folder of the same name');
  // Keep both: the changed file stays, the backed-up one comes back beside it, under a name nothing has.
  const day = new Date(Date.now());
  const today = `${day.getFullYear()}-${String(day.getMonth() + 1).padStart(2, '0')}-${String(day.getDate()).padStart(2, '0')}`;
  writeFileSync(join(docs, `notes (restored ${today}).txt`), 'in the way\n');
  const kb = await lifeboat(['restore', 'latest', '--original', '--overwrite', 'keep-both'], env);
  assert.equal(kb.code, 0, kb.stderr);
  assert.equal(readFileSync(join(docs, 'notes.txt'), 'utf8'), 'shopping: bread, milk, eggs\n');
  assert.equal(readFileSync(join(docs, `notes (restored ${today}).txt`), 'utf8'), 'in the way\n', 'nothing is overwritten');
  assert.equal(readFileSync(join(docs, `notes (restored ${today} 2).txt`), 'utf8'), 'shopping: bread, milk\n');
  assert.equal(readFileSync(join(docs, `.profile (restored ${today})`), 'utf8'), 'as backed up\n', 'a name starting with a dot keeps it');
  assert.equal(readFileSync(join(docs, '.profile'), 'utf8'), 'mine\n');
  assert.match(kb.stdout, /^2 file\(s\) changed since the backup were kept; the backed-up versions are beside them, named "… \(restored DATE\)"\.$/m);
  const bad = await lifeboat(['restore', 'latest', '--original', '--overwrite', 'both'], env);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /use always, if-changed, never or keep-both/);
  const r2 = await lifeboat(['restore', 'latest', '--original', '--overwrite', 'if-changed'], env);
  assert.equal(r2.code, 0, r2.stderr);
  assert.equal(readFileSync(join(docs, 'notes.txt'), 'utf8'), 'shopping: bread, milk\n');
  assert.match(r2.stdout, /^2 existing file\(s\) were replaced with the backed-up version\.$/m);
  const both = await lifeboat(['restore', 'latest', '--original', '--target', '/tmp/x'], env);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /--target FOLDER, or --original/);
});

test('dump of a folder writes a tar archive that tar itself reads back', async (t) => {
  const { root, docs, env } = fixture(t);
  const long = join(docs, 'a-folder-name-that-is-quite-long-'.repeat(3), 'and-a-file-name-that-makes-the-path-longer-than-one-hundred-bytes.txt');
  mkdirSync(join(long, '..'), { recursive: true });
  writeFileSync(long, 'deep\n');
  execFileSync('ln', ['-s', 'notes.txt', join(docs, 'link')]);
  utimesSync(join(docs, 'notes.txt'), 1_700_000_000, 1_700_000_000);
  await ok(['init'], env);
  await ok(['backup', docs], env);
  const tar = spawnSync(process.execPath, [BIN, 'dump', 'latest', join(docs, '..', 'Documents')], { env: { ...process.env, LIFEBOAT_INSECURE_FAST_KDF: '1', ...env } });
  assert.equal(tar.status, 0, tar.stderr.toString());
  writeFileSync(join(root, 'docs.tar'), tar.stdout);
  const out = join(root, 'untarred');
  mkdirSync(out);
  execFileSync('tar', ['-xf', join(root, 'docs.tar'), '-C', out]);
  assertSameTree(docs, join(out, 'Documents'));
  const listing = execFileSync('tar', ['-tvf', join(root, 'docs.tar')]).toString();
  assert.match(listing, /Documents\/link -> notes\.txt/);
  assert.equal(execFileSync('stat', ['-c', '%Y', join(out, 'Documents', 'notes.txt')]).toString().trim(), '1700000000');
});

test('snapshot ids: an ambiguous prefix lists the matches, an unknown one is a usage error (exit 2)', async (t) => {
  const { docs, env } = fixture(t);
  await ok(['init'], env);
  const ids: string[] = [];
  let shared: string | undefined;
  while (shared === undefined) {
    writeFileSync(join(docs, 'n.txt'), String(ids.length));
    ids.push((JSON.parse(await ok(['backup', '--json', docs], env)) as { snapshot: string }).snapshot);
    shared = ids.find((a, i) => ids.some((b, j) => j !== i && a[0] === b[0]))?.[0];
  }
  const amb = await lifeboat(['ls', shared], env);
  assert.equal(amb.code, 2);
  for (const id of ids.filter((x) => x[0] === shared)) assert.ok(amb.stderr.includes(id.slice(0, 12)), `${id} listed: ${amb.stderr}`);
  const none = ids.some((x) => x.startsWith('ffff')) ? 'eeee' : 'ffff';
  const r = await lifeboat(['ls', none], env);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /No snapshot id starts with/);
});

test('--version, --quiet, local times with their offset, and absolute image paths', async (t) => {
  const { root, docs, env } = fixture(t);
  const pkg = JSON.parse(readFileSync(join(BIN, '..', '..', 'package.json'), 'utf8')) as { version: string };
  assert.equal((await ok(['--version'], env)).trim(), pkg.version);
  await ok(['init'], env);
  const q = await lifeboat(['-q', 'backup', docs], env);
  assert.equal(q.code, 0);
  assert.equal(q.stdout + q.stderr, '', 'a quiet backup prints nothing');
  const list = await ok(['snapshots'], { ...env, TZ: 'Asia/Kolkata' });
  assert.match(list, /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+05:30/);
  writeFileSync(join(root, 'disk.img'), Buffer.alloc(1 << 20));
  await ok(['image', 'create', 'disk.img'], env, root);
  const snaps = JSON.parse(await ok(['snapshots', '--json'], env)) as { kind: string; paths: string[] }[];
  assert.deepEqual(snaps.find((s) => s.kind === 'image')?.paths, [join(root, 'disk.img')]);
});

/** Every file and folder under `dir`, as paths relative to it. */
function everything(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).sort();
}

test('a backup whose sources are all missing saves nothing, leaves the repository as it was and exits 1; with only some missing it saves the rest and exits 3', async (t) => {
  const { root, docs, env } = fixture(t);
  await ok(['init'], env);
  const fresh = everything(env['LIFEBOAT_REPO']!);
  const typo = join(root, 'home', 'ann', 'Documnets');
  const unplugged = join(root, 'media', 'usb');
  const none = await lifeboat(['backup', typo, unplugged], env);
  assert.equal(none.code, 1, none.stderr);
  assert.match(none.stderr, new RegExp(`Nothing was backed up: .*Documnets.*usb do not exist`));
  // Nor one of Lifeboat's own folders (the repository itself) with a missing one.
  const own = await lifeboat(['backup', env['LIFEBOAT_REPO']!, typo], env);
  assert.equal(own.code, 1, own.stderr);
  assert.match(own.stderr, /Nothing was backed up: .*repo is Lifeboat's own data/);
  assert.deepEqual(everything(env['LIFEBOAT_REPO']!), fresh, 'not even a lock (or its folder) was written');
  assert.deepEqual(JSON.parse(await ok(['snapshots', '--json'], env)), [], 'no snapshot was written');
  const some = await lifeboat(['backup', docs, typo], env);
  assert.equal(some.code, 3, some.stderr);
  assert.match(some.stderr, /Documnets does not exist and was not saved/);
  assert.equal((JSON.parse(await ok(['snapshots', '--json'], env)) as unknown[]).length, 1);
});

test('lifeboat backup ~ with the default repository leaves out the repository, the cache and CACHEDIR.TAG folders, saying so', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const home = join(d.path, 'ann');
  mkdirSync(join(home, 'Documents'), { recursive: true });
  writeFileSync(join(home, 'Documents', 'notes.txt'), 'hello\n');
  mkdirSync(join(home, 'build', 'obj'), { recursive: true });
  writeFileSync(join(home, 'build', 'CACHEDIR.TAG'), 'Signature: 8a477f597d28d172789f06886806bc55\n# made by a build tool\n');
  writeFileSync(join(home, 'build', 'obj', 'a.o'), Buffer.alloc(5000, 1));
  mkdirSync(join(home, 'not-a-cache'));
  writeFileSync(join(home, 'not-a-cache', 'CACHEDIR.TAG'), 'Signature: 0000000000000000000000000000000\n');
  writeFileSync(join(home, 'not-a-cache', 'data.txt'), 'keep me\n');
  // No --repo: the repository goes to the default place inside the home folder being backed up.
  const env = { HOME: home, XDG_DATA_HOME: join(home, '.local', 'share'), XDG_CACHE_HOME: join(home, '.cache'), LIFEBOAT_REPO: undefined, LIFEBOAT_PASSWORD: 'pw' } as unknown as Record<string, string>;
  await ok(['init'], env);
  const first = await lifeboat(['backup', home], env);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, new RegExp(`Leaving out ${join(home, '.local', 'share', 'lifeboat').replace(/[.]/g, '\\.')}: it holds Lifeboat's own data\\.`));
  assert.match(first.stderr, /Leaving out .*\/build: it is a cache \(it holds a CACHEDIR\.TAG file\)/);
  const second = await lifeboat(['--json', 'backup', home], env);
  assert.equal(second.code, 0, second.stderr);
  // With --json the notices are JSON lines a script can read.
  const notices = second.stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; path?: string; message: string }).filter((x) => x.type === 'notice');
  assert.ok(notices.some((n) => n.path === join(home, 'build') && /it is a cache/.test(n.message)), second.stderr);
  assert.match(second.stderr, new RegExp(`Leaving out ${join(home, '.cache', 'lifeboat').replace(/[.]/g, '\\.')}: it is Lifeboat's cache\\.`));
  const paths = (JSON.parse(await ok(['ls', '-R', '--json', 'latest'], env)) as { path: string }[]).map((e) => e.path);
  assert.ok(paths.includes('/ann/Documents/notes.txt'));
  assert.ok(paths.includes('/ann/build/CACHEDIR.TAG') && !paths.some((p) => p.startsWith('/ann/build/obj')), 'a tagged cache keeps only its tag');
  assert.ok(paths.includes('/ann/not-a-cache/data.txt'), 'a wrong signature is no cache tag');
  assert.ok(!paths.some((p) => p.startsWith('/ann/.local/share/lifeboat') || p.startsWith('/ann/.cache/lifeboat')), paths.filter((p) => p.includes('lifeboat')).join(', '));
  const all = await lifeboat(['backup', '--no-exclude-caches', home], env);
  assert.equal(all.code, 0, all.stderr);
  assert.ok((JSON.parse(await ok(['ls', '-R', '--json', 'latest'], env)) as { path: string }[]).some((e) => e.path === '/ann/build/obj/a.o'));
});

test('a password or exclude file that is endless or huge (/dev/zero) is refused at once with a plain message', async (t) => {
  const { docs, env } = fixture(t);
  await ok(['init'], env);
  const started = Date.now();
  const pw = await lifeboat(['--password-file', '/dev/zero', 'snapshots'], { LIFEBOAT_REPO: env['LIFEBOAT_REPO']! });
  assert.equal(pw.code, 2);
  assert.match(pw.stderr, /^lifeboat: \/dev\/zero is not a password file: it holds more than 4\.10 kB\. Check the path\.\n$/);
  const ex = await lifeboat(['backup', '--exclude-file', '/dev/zero', docs], env);
  assert.equal(ex.code, 2);
  assert.match(ex.stderr, /\/dev\/zero is not an exclude file/);
  assert.ok(Date.now() - started < 60_000, 'promptly (reading /dev/zero whole would take minutes and gigabytes)');
  const missing = await lifeboat(['--password-file', '/no/such/file', 'snapshots'], { LIFEBOAT_REPO: env['LIFEBOAT_REPO']! });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /Cannot read the password file \/no\/such\/file \(ENOENT\)/);
});

test('device nodes of a snapshot from another computer are created only with --devices', { skip: process.getuid?.() !== 0 && 'needs root to make device nodes' }, async (t) => {
  const { root, docs, env } = fixture(t);
  execFileSync('mknod', [join(docs, 'null-dev'), 'c', '1', '3']);
  execFileSync('mknod', [join(docs, 'disk-dev'), 'b', '7', '0']);
  await ok(['init'], env);
  const foreign = (JSON.parse(await ok(['backup', '--json', '--host', 'someone-else', docs], env)) as { snapshot: string }).snapshot;
  const plain = await lifeboat(['restore', foreign, '--target', join(root, 'a')], env);
  assert.equal(plain.code, 0, plain.stderr);
  assert.ok(!existsSync(join(root, 'a', 'Documents', 'null-dev')) && !existsSync(join(root, 'a', 'Documents', 'disk-dev')));
  assert.match(plain.stdout, /2 device node\(s\) were not created: the snapshot comes from another computer \(someone-else\)\. Add --devices/);
  assert.equal(readFileSync(join(root, 'a', 'Documents', 'notes.txt'), 'utf8'), 'shopping: bread, milk\n');
  const trusted = await lifeboat(['restore', foreign, '--devices', '--target', join(root, 'b')], env);
  assert.equal(trusted.code, 0, trusted.stderr);
  assert.equal(execFileSync('stat', ['-c', '%F %t:%T', join(root, 'b', 'Documents', 'disk-dev')]).toString().trim(), 'block special file 7:0');
  const own = (JSON.parse(await ok(['backup', '--json', docs], env)) as { snapshot: string }).snapshot;
  const mine = await lifeboat(['restore', own, '--target', join(root, 'c')], env);
  assert.equal(mine.code, 0, mine.stderr);
  assert.ok(existsSync(join(root, 'c', 'Documents', 'null-dev')), "this computer's own snapshot restores its devices");
});
