/**
 * `lifeboat mirror` through the real CLI: a mirror killed with SIGKILL at random moments leaves DST
 * consistent, and the next run converges to SRC with every replaced copy in the versions; the
 * exit codes and messages of bad input.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { prng } from '../util/testing.js';
import { describe } from '../files/testing.js';
import { killedAfter, lifeboat, tempDir } from './testing.js';

/** describe() without the mirror's own folders, link counts, and atimes (reads by the checks move them). */
function listing(root: string): string[] {
  return describe(root)
    .filter((l) => !l.startsWith('.lifeboat-'))
    .map((l) => l.split('|').slice(0, 7).join('|'));
}

function contents(root: string, rel = ''): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of fs.readdirSync(join(root, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (!rel && e.name.startsWith('.lifeboat-')) continue;
    if (e.isDirectory()) for (const [k, v] of contents(root, p)) out.set(k, v);
    else if (e.isFile()) out.set(p, fs.readFileSync(join(root, p)).toString('base64'));
  }
  return out;
}

test('a mirror killed with SIGKILL at random moments leaves DST consistent; the next run converges, keeping every replaced copy', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const src = join(d.path, 'src');
  const dst = join(d.path, 'dst');
  const rnd = prng(10);
  for (let i = 0; i < 8; i++) {
    fs.mkdirSync(join(src, `dir${i}`), { recursive: true });
    for (let j = 0; j < 60; j++) fs.writeFileSync(join(src, `dir${i}`, `f${j}.txt`), `file ${i}/${j} ${rnd()}`);
  }
  for (let i = 0; i < 6; i++) fs.writeFileSync(join(src, `big${i}.bin`), Buffer.alloc(4 << 20, i));
  const started = Date.now();
  const first = await lifeboat(['mirror', src, dst]);
  assert.equal(first.code, 0, first.stderr);
  const full = Date.now() - started;

  let kills = 0;
  const replaced = new Map<string, string>(); // path → content replaced or deleted in SRC
  for (let round = 0; round < 4; round++) {
    // Changes of every kind, then a run killed part way through.
    for (let k = 0; k < 24; k++) {
      const i = Math.floor(rnd() * 4);
      const j = Math.floor(rnd() * 60);
      const p = join(src, `dir${i}`, `f${j}.txt`);
      if (!fs.existsSync(p)) continue;
      const was = fs.readFileSync(p, 'utf8');
      if (k % 3 === 0) {
        fs.rmSync(p);
        replaced.set(`dir${i}/f${j}.txt`, was);
      } else if (k % 3 === 1) {
        fs.writeFileSync(p, `changed in round ${round} ${rnd()}`);
        replaced.set(`dir${i}/f${j}.txt`, was);
      } else fs.renameSync(p, join(src, `dir${(i + 1) % 4}`, `moved-${round}-${k}.txt`));
    }
    fs.renameSync(join(src, `big${round}.bin`), join(src, `dir${round}`, `big${round}-moved.bin`));
    fs.writeFileSync(join(src, `big${round + 1}.bin`), Buffer.alloc(4 << 20, 100 + round));
    replaced.set(`big${round + 1}.bin`, Buffer.alloc(4 << 20, round + 1).toString());
    for (const name of fs.readdirSync(join(src, `dir${round + 4}`))) {
      const p = join(src, `dir${round + 4}`, name);
      replaced.set(`dir${round + 4}/${name}`, fs.readFileSync(p, 'utf8'));
      fs.writeFileSync(p, `rewritten in round ${round}`);
    }
    // Somewhere from the start-up to the end of this smaller run.
    const ms = Math.round(150 + rnd() * 0.5 * full);
    const k = await killedAfter(ms, ['mirror', src, dst], {});
    if (k.killed) kills++;
    const what = `round ${round}, killed after ${ms} ms of ~${full} ms (${k.killed ? 'killed' : `finished, code ${k.code}`})`;
    const next = await lifeboat(['mirror', '--json', src, dst]);
    assert.equal(next.code, 0, `${what}: ${next.stderr}`);
    const s = (JSON.parse(next.stdout) as { summary: { conflicts: number; errors: number } }).summary;
    assert.equal(s.conflicts + s.errors, 0, what);
    assert.deepEqual(listing(dst), listing(src), what);
    assert.deepEqual(contents(dst), contents(src), what);
    assert.deepEqual(fs.readdirSync(join(dst, '.lifeboat-mirror', 'tmp')), [], `${what}: no temporaries left`);
  }
  assert.ok(kills >= 2, `at least 2 of 4 runs were killed mid-way (${kills})`);
  // Every replaced or deleted content is in some version folder (a kill may have kept it twice).
  const kept = new Set<string>();
  const base = join(dst, '.lifeboat-versions');
  for (const v of fs.readdirSync(base)) for (const [p, c] of contents(join(base, v))) kept.add(`${p}\n${c}`);
  for (const [p, c] of replaced) assert.ok(kept.has(`${p}\n${Buffer.from(c).toString('base64')}`), `the old ${p} is kept`);
});

test('mirror: exit codes and plain messages for bad input, a conflict, and --keep-days', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const src = join(d.path, 'src');
  const dst = join(d.path, 'dst');
  fs.mkdirSync(src);
  fs.writeFileSync(join(src, 'a.txt'), 'a');
  const missing = await lifeboat(['mirror', join(d.path, 'nope'), dst]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /does not exist/);
  const inside = await lifeboat(['mirror', src, join(src, 'm')]);
  assert.equal(inside.code, 2);
  assert.match(inside.stderr, /must not be inside one another/);
  const days = await lifeboat(['mirror', '--keep-days', 'soon', src, dst]);
  assert.equal(days.code, 2);
  assert.match(days.stderr, /--keep-days needs a whole number/);
  fs.mkdirSync(dst);
  fs.writeFileSync(join(dst, 'a.txt'), 'mine');
  const conflict = await lifeboat(['mirror', src, dst]);
  assert.equal(conflict.code, 3, conflict.stderr);
  assert.match(conflict.stderr, /a\.txt exists and was not made by the mirror/);
  assert.match(conflict.stdout, /1 entries could not be mirrored/);
  assert.equal(fs.readFileSync(join(dst, 'a.txt'), 'utf8'), 'mine');
  assert.doesNotMatch(conflict.stderr, /\n\s+at /, 'no stack trace');
});
