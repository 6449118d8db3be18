// Runs every compiled test file (dist/**/*.test.js) with node:test; extra args filter by substring.
// When a selected file needs S3 (scripts/rgw.mjs: its name starts with s3), a throw-away radosgw is
// started first, once for the whole run, and stopped after.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
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
  } catch (e) {
    // The other tests still run; the S3 tests fail, each saying why (s3-testing.ts).
    const why = String(e.message ?? e);
    console.error(why);
    rgw = { env: { LIFEBOAT_TEST_S3_UNAVAILABLE: why.split('\n').slice(-1)[0] }, stop: () => {} };
  }
}
// A test that runs 15 minutes (one that sets no timeout of its own) fails by name, and the others go on.
const child = spawn(process.execPath, ['--test', '--test-concurrency=2', '--test-timeout=900000', '--test-reporter=spec', ...files], { stdio: 'inherit', detached: true, env: { ...process.env, ...rgw?.env } });
// The tests run in a process group of their own (so the watchdog can stop all of them): a Ctrl-C here stops them too.
const stopTests = () => {
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
};
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { stopTests(); rgw?.stop(); process.exit(130); });
// A test file that never ends (a server or child process left running) must not eat CI's whole
// budget in silence: past the limit, name the files still running and stop.
const limitMinutes = Number(process.env.LIFEBOAT_TEST_LIMIT_MINUTES ?? 45);
const watchdog = setTimeout(() => {
  let running = '';
  try {
    running = execFileSync('ps', ['-o', 'args=', '--ppid', String(child.pid)], { encoding: 'utf8' });
  } catch {
    // ps found nothing
  }
  console.error(`\nThe tests did not finish within ${limitMinutes} minutes; still running:\n${running.trim() || '(no test file)'}`);
  stopTests();
}, limitMinutes * 60_000);
const status = await new Promise((resolve) => child.on('close', (code) => resolve(code ?? 1)));
clearTimeout(watchdog);
rgw?.stop();
process.exit(status);
