/**
 * Load on `lifeboat server` (issue 20): 8 client processes, each with its own host name, token and
 * caches, back up overlapping trees into one server repository at the same time, twice each. All 16
 * snapshots restore byte-identical, the repository checks clean with --read-data, and data the
 * computers share is stored once (bytes stored vs the sum of the trees, reported).
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { lifeboat, tempDir } from '../cli/testing.js';
import { bytesUnder } from '../util/testing.js';
import { fileHashes, startServer } from './testing.js';

const MiB = 1024 * 1024;
const CLIENTS = 8;

/** Deterministic incompressible bytes (a seeded xorshift), so the run is the same every time. */
function noise(seed: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  return b;
}


test('8 computers back up overlapping trees into one server repository at once, twice each: 16 snapshots restore byte-identical, shared data is stored once', { timeout: 600_000 }, async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const data = join(d.path, 'server');
  mkdirSync(data);
  const token = async (name: string, role: string): Promise<string> => {
    const r = await lifeboat(['server', 'token', 'add', name, '--role', role, '--data', data]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  const admin = await token('admin', 'admin');
  const tokens: string[] = [];
  for (let i = 0; i < CLIENTS; i++) tokens.push(await token(`pc-${i}`, 'append'));
  const server = await startServer(data);
  t.after(() => server.stop());
  const repo = `lifeboat:${server.origin}/office`;
  const env = (i: number | 'admin'): Record<string, string> => ({
    LIFEBOAT_REPO: repo,
    LIFEBOAT_PASSWORD: 'pw',
    LIFEBOAT_TOKEN: i === 'admin' ? admin : tokens[i]!,
    XDG_CACHE_HOME: join(d.path, `cache-${i}`),
    XDG_DATA_HOME: join(d.path, `xdg-${i}`),
  });
  assert.equal((await lifeboat(['init'], env('admin'))).code, 0);

  // Each computer: 3 MiB every computer has, 1 MiB shared with each neighbour, 1 MiB of its own,
  // and a few small files; the second backup changes its own file and adds one.
  const trees: string[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    const root = join(d.path, `pc-${i}`, 'home');
    mkdirSync(join(root, 'shared'), { recursive: true });
    writeFileSync(join(root, 'shared', 'handbook.pdf'), noise(1, 3 * MiB));
    writeFileSync(join(root, 'shared', `with-${i}.bin`), noise(100 + i, MiB));
    writeFileSync(join(root, 'shared', `with-${(i + 1) % CLIENTS}.bin`), noise(100 + ((i + 1) % CLIENTS), MiB));
    writeFileSync(join(root, 'mine.bin'), noise(200 + i, MiB));
    for (let k = 0; k < 20; k++) writeFileSync(join(root, `note-${k}.txt`), `computer ${i} note ${k}\n`);
    trees.push(root);
  }
  const expected: Map<string, string>[][] = trees.map(() => []);
  let treeBytes = 0;
  const started = Date.now();
  // allSettled: should one computer fail, the others still finish before the server stops (none
  // is left retrying against a server that is gone), and then the first failure is reported.
  const settled = await Promise.allSettled(
    trees.map(async (root, i) => {
      for (let round = 0; round < 2; round++) {
        if (round === 1) {
          writeFileSync(join(root, 'mine.bin'), noise(300 + i, MiB));
          writeFileSync(join(root, 'later.txt'), `added on computer ${i}\n`);
        }
        expected[i]![round] = fileHashes(root);
        treeBytes += bytesUnder(root);
        const r = await lifeboat(['backup', '--host', `pc-${i}`, root], env(i));
        assert.equal(r.code, 0, `pc-${i} round ${round}: ${r.stderr}`);
      }
    }),
  );
  for (const r of settled) if (r.status === 'rejected') throw r.reason;
  const backupSeconds = (Date.now() - started) / 1000;

  const snaps = JSON.parse((await lifeboat(['snapshots', '--json'], env('admin'))).stdout) as { id: string; host: string; time: string }[];
  assert.equal(snaps.length, 2 * CLIENTS);
  const ofHost = JSON.parse((await lifeboat(['snapshots', '--json', '--host', 'pc-3'], env(3))).stdout) as { host: string }[];
  assert.deepEqual(
    ofHost.map((s) => s.host),
    ['pc-3', 'pc-3'],
  );
  // Every snapshot, restored by its own computer, is byte for byte the tree it was taken of.
  for (let i = 0; i < CLIENTS; i++) {
    const mine = snaps.filter((s) => s.host === `pc-${i}`).sort((a, b) => (a.time < b.time ? -1 : 1));
    assert.equal(mine.length, 2, `pc-${i} has two snapshots`);
    for (const [round, s] of mine.entries()) {
      const target = join(d.path, 'restored', `pc-${i}-${round}`);
      const r = await lifeboat(['restore', s.id, '--target', target], env(i));
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(fileHashes(join(target, 'home')), expected[i]![round], `pc-${i} round ${round}`);
    }
  }
  const check = await lifeboat(['check', '--read-data'], env('admin'));
  assert.equal(check.code, 0, check.stdout + check.stderr);
  assert.match(check.stdout, /No errors were found/);

  const restoreSeconds = (Date.now() - started) / 1000 - backupSeconds;

  // Computers that back up the same new data at the same moment each send their own copy (none can
  // see the others' packs before their index is written); prune keeps one copy of every block.
  const stored = bytesUnder(join(data, 'office'));
  const pruned = await lifeboat(['prune', '--max-unused', '0'], env('admin'));
  assert.equal(pruned.code, 0, pruned.stderr);
  const storedAfterPrune = bytesUnder(join(data, 'office'));
  // What is distinct: 3 MiB for all, 8 × 1 MiB shared by neighbours, 16 × 1 MiB of each computer's own.
  const distinct = (3 + CLIENTS + 2 * CLIENTS) * MiB;
  const mib = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;
  t.diagnostic(
    `16 backups by 8 computers at once in ${backupSeconds.toFixed(1)} s (restores and check ${restoreSeconds.toFixed(1)} s): the trees hold ${mib(treeBytes)}, distinct data ${mib(distinct)}; ` +
      `the repository stores ${mib(stored)} after the backups (${((100 * stored) / treeBytes).toFixed(1)} % of the trees) and ${mib(storedAfterPrune)} after prune (${((100 * storedAfterPrune) / treeBytes).toFixed(1)} %)`,
  );
  assert.ok(stored < treeBytes * 0.75, `shared data is mostly stored once even at the same moment: ${stored} bytes stored for ${treeBytes} backed up`);
  assert.ok(storedAfterPrune < distinct * 1.1, `after prune shared data is stored once: ${storedAfterPrune} bytes stored for ${distinct} distinct`);
  const checkAfter = await lifeboat(['check', '--read-data'], env('admin'));
  assert.equal(checkAfter.code, 0, checkAfter.stdout + checkAfter.stderr);
});
