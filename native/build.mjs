// Builds the optional native addon (build/Release/lifeboat_fs.node) with node-gyp, using the
// headers installed next to this Node (no download), and never fails the install: without the
// addon Lifeboat still works, with a warning that some metadata will not be exact.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';

if (process.platform !== 'linux') process.exit(0);
const args = ['rebuild'];
const nodedir = dirname(dirname(process.execPath));
if (existsSync(join(nodedir, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${nodedir}`);
let gyp = process.env.npm_config_node_gyp;
if (!gyp || !existsSync(gyp)) {
  try {
    gyp = createRequire(join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'package.json')).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    gyp = undefined;
  }
}
if (!gyp) {
  console.warn('lifeboat: node-gyp not found; the optional native addon was not built (some file metadata will not be exact).');
  process.exit(0);
}
const started = Date.now();
const r = spawnSync(process.execPath, [gyp, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
if (r.status !== 0) {
  console.warn('lifeboat: the optional native addon did not build; file backups will work, but some metadata (xattrs, nanosecond times, FIFOs, device nodes, sparse holes) will not be exact.');
} else {
  console.log(`lifeboat: native addon built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
process.exit(0);
