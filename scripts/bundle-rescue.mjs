#!/usr/bin/env node
// Bundles the rescue program (bin/lifeboat-rescue.js and the worker threads it may start) into
// dist/rescue/: one file per entry, the native addons beside them, a package.json marking them
// ES modules. `lifeboat rescue-kit` copies this folder; it runs with a plain `node` and nothing
// else (no node_modules). Run by `npm run build`, after tsc.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = process.argv[2] ? resolve(process.argv[2]) : join(root, 'dist', 'rescue');
// Worker scripts are started as new URL('./NAME.js', import.meta.url): bundled under the same names beside the program.
const workers = ['repo/encode-worker', 'files/restore-worker'];
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [
    { in: join(root, 'bin', 'lifeboat-rescue.js'), out: 'lifeboat-rescue' },
    ...workers.map((w) => ({ in: join(root, 'dist', `${w}.js`), out: w.split('/')[1] })),
  ],
  outdir: out,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // node-zstd first tries ./node-zstd.linux-x64-gnu.node beside the bundle, which is copied there.
  external: ['*.node', '@toondepauw/node-zstd-*'],
  logLevel: 'warning',
  legalComments: 'none',
  // CommonJS dependencies call require(); an ES module has none, so the bundle makes one.
  banner: { js: "import { createRequire as __lifeboatRequire } from 'node:module'; const require = __lifeboatRequire(import.meta.url);" },
});
const req = createRequire(join(root, 'package.json'));
copyFileSync(join(root, 'build', 'Release', 'lifeboat_fs.node'), join(out, 'lifeboat_fs.node'));
const zstd = dirname(req.resolve('@toondepauw/node-zstd-linux-x64-gnu/package.json'));
copyFileSync(join(zstd, 'node-zstd.linux-x64-gnu.node'), join(out, 'node-zstd.linux-x64-gnu.node'));
writeFileSync(join(out, 'package.json'), JSON.stringify({ type: 'module', private: true }) + '\n');
