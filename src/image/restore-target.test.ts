/**
 * image restore never erases a drive or a file without asking (issue 17, P13 item 1): it says what
 * is there (size, partition table, partitions with filesystems and labels) and asks on a terminal;
 * without one it refuses unless --force. A larger existing file keeps its size.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, openSync, readFileSync, statSync, truncateSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, lifeboat } from '../cli/testing.js';
import { makeExt4Disk, seededBytes, tempDir } from './testing.js';
import { describeTarget, describeTargetText } from './target-info.js';
import { diskTools } from './tools.js';

/** Runs lifeboat on a pseudo-terminal (util-linux `script`), typing `answer` at the prompt. */
function onTerminal(args: string[], env: Record<string, string>, answer: string): { code: number | null; out: string } {
  const cmd = [process.execPath, BIN, ...args].map((a) => `'${a}'`).join(' ');
  const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { input: answer, env: { ...process.env, LIFEBOAT_INSECURE_FAST_KDF: '1', ...env }, timeout: 60_000 });
  return { code: r.status, out: r.stdout.toString() };
}

test('image restore shows what a target holds and erases it only when told to', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const env = { LIFEBOAT_REPO: join(d.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  const disk = makeExt4Disk(d.path);
  assert.equal((await lifeboat(['init'], env)).code, 0);
  const created = await lifeboat(['image', 'create', '--json', disk], env);
  assert.equal(created.code, 0, created.stderr);
  const id = (JSON.parse(created.stdout) as { id: string }).id;

  // Someone's other drive, as a file: the same layout, different data.
  const target = join(d.path, 'other.img');
  copyFileSync(disk, target);
  const fd = openSync(target, 'r+');
  writeSync(fd, seededBytes(7, 1 << 20), 0, 1 << 20, 40 << 20);
  closeSync(fd);
  const before = readFileSync(target);

  const refused = await lifeboat(['image', 'restore', id, '--target', target], env);
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /would erase everything on the file .*other\.img \(67\.1 MB\): an MBR partition table with 1 partition\(s\): 1 ext4/);
  assert.match(refused.stderr, /--force/);
  assert.ok(readFileSync(target).equals(before), 'the target is untouched');

  const no = onTerminal(['image', 'restore', id, '--target', target], env, 'n\n');
  assert.equal(no.code, 1, no.out);
  assert.match(no.out, /This erases everything on the file .*other\.img/);
  assert.match(no.out, /Nothing was written/);
  assert.ok(readFileSync(target).equals(before), 'a "no" leaves the target untouched');

  const yes = onTerminal(['image', 'restore', id, '--target', target], env, 'y\n');
  assert.equal(yes.code, 0, yes.out);
  assert.ok(readFileSync(target).equals(readFileSync(disk)), 'after a "yes" the target is the image');

  const forced = await lifeboat(['image', 'restore', id, '--target', target, '--force'], env);
  assert.equal(forced.code, 0, forced.stderr);

  // A larger file keeps its size; the image fills its start.
  const big = join(d.path, 'big.img');
  closeSync(openSync(big, 'w'));
  truncateSync(big, 2 * statSync(disk).size);
  const grown = await lifeboat(['image', 'restore', id, '--target', big, '--force'], env);
  assert.equal(grown.code, 0, grown.stderr);
  assert.equal(statSync(big).size, 2 * statSync(disk).size, 'not shrunk to the image size');
  assert.ok(readFileSync(big).subarray(0, statSync(disk).size).equals(readFileSync(disk)));
  assert.match(grown.stdout, /keeps its size/);

  // A new file needs no question.
  const fresh = await lifeboat(['image', 'restore', id, '--target', join(d.path, 'new.img')], env);
  assert.equal(fresh.code, 0, fresh.stderr);
});

test('a partition without a filesystem Lifeboat reads is described by its type, not as "unknown"', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const disk = join(d.path, 'swap.img');
  closeSync(openSync(disk, 'w'));
  truncateSync(disk, 16 << 20);
  spawnSync('sfdisk', ['-q', disk], { input: 'label: dos\nstart=2048, size=8192, type=82\nstart=10240, type=da\n' });
  const text = describeTargetText((await describeTarget(disk, diskTools()))!);
  assert.match(text, /2 partition\(s\): 1 \(Linux swap\) 4\.19 MB; 2 \(type 0xda\) 11\.5 MB/, text);
  assert.doesNotMatch(text, /unknown/);
});
