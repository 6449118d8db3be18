// Runs every compiled test file (dist/**/*.test.js) with node:test; extra args filter by substring.
// When a selected file needs S3 (scripts/rgw.mjs: its name starts with s3), a throw-away radosgw is
// started first, once for the whole run, and stopped after.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { needsRgw, startRgw } from './rgw.mjs';

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}
const filters = process.argv.slice(2);
const files = walk('dist', []).filter((f) => filters.length === 0 || filters.some((s) => f.includes(s))).sort();
if (files.length === 0) { console.error('no test files found'); process.exit(1); }
let rgw;
if (files.some(needsRgw) && !process.env.LIFEBOAT_TEST_S3_ENDPOINT) {
  try {
    rgw = await startRgw();
    console.error(`radosgw for the S3 tests at ${rgw.env.LIFEBOAT_TEST_S3_ENDPOINT} (started in ${rgw.seconds.toFixed(1)} s)`);
    for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { rgw.stop(); process.exit(130); });
  } catch (e) {
    // The other tests still run; the S3 tests fail, each saying why (s3-testing.ts).
    const why = String(e.message ?? e);
    console.error(why);
    rgw = { env: { LIFEBOAT_TEST_S3_UNAVAILABLE: why.split('\n').slice(-1)[0] }, stop: () => {} };
  }
}
const child = spawn(process.execPath, ['--test', '--test-concurrency=2', '--test-reporter=spec', ...files], { stdio: 'inherit', env: { ...process.env, ...rgw?.env } });
const status = await new Promise((resolve) => child.on('close', (code) => resolve(code ?? 1)));
rgw?.stop();
process.exit(status);
