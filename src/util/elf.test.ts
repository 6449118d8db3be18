/** The ELF reader against readelf, and a stripped Node.js that still runs. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readElf, stripElf } from './elf.js';

test('readElf finds what readelf finds: interpreter and needed libraries of node', () => {
  const info = readElf(readFileSync(process.execPath));
  const dyn = execFileSync('readelf', ['-d', process.execPath], { encoding: 'utf8' });
  const want = [...dyn.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  assert.deepEqual(info.needed, want);
  assert.match(info.interpreter ?? '', /ld-linux/);
  assert.throws(() => readElf(Buffer.from('#!/bin/sh\n'.padEnd(100))), /not a 64-bit little-endian ELF/);
});

test('a stripped node runs', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lifeboat-elf-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const original = readFileSync(process.execPath);
  const stripped = stripElf(original);
  assert.ok(stripped.length <= original.length);
  assert.equal(readElf(stripped).sections.size, 0);
  writeFileSync(join(dir, 'node'), stripped);
  chmodSync(join(dir, 'node'), 0o755);
  assert.equal(execFileSync(join(dir, 'node'), ['-e', 'process.stdout.write(String(6*7))'], { encoding: 'utf8' }), '42');
});
