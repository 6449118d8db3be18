// Starts and stops a throw-away Ceph radosgw on 127.0.0.1 for the S3 tests (scripts/ceph-rgw-up.sh
// with objects kept in memory and no manager: about 20 s, a few hundred MiB), on free ports and in
// a fresh folder, so it never meets another cluster. scripts/run-tests.mjs starts one per test run
// when S3 tests are selected and hands its address to them in LIFEBOAT_TEST_S3_* variables.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** A port nobody listens on now (the kernel's choice). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts radosgw; resolves with the variables the tests read, the endpoint and credentials (`s3`)
 * and a stop function. The benchmark keeps its objects on disk (osdStore 'bluestore', a sparse
 * file of osdSize) when they would not fit in memory.
 */
export async function startRgw({ osdStore = 'memstore', osdSize = '4G' } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'lifeboat-rgw-'));
  const cephDir = join(dir, 'ceph');
  const [rgw, mon2, mon1] = [await freePort(), await freePort(), await freePort()];
  const env = { ...process.env, CEPH_DIR: cephDir, RGW_PORT: String(rgw), MON_PORT_V2: String(mon2), MON_PORT_V1: String(mon1), OSD_STORE: osdStore, WITH_MGR: '0', OSD_SIZE: osdSize };
  const stop = () => {
    spawnSync('bash', [join(here, 'ceph-rgw-down.sh')], { env: { ...env, STOP_SIGNAL: 'KILL' }, stdio: 'ignore' }); // its objects are thrown away anyway
    rmSync(dir, { recursive: true, force: true });
  };
  const started = Date.now();
  const up = spawnSync('bash', [join(here, 'ceph-rgw-up.sh')], { env, encoding: 'utf8', timeout: 180_000 });
  if (up.status !== 0) {
    const why = `${up.stdout ?? ''}${up.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n');
    stop();
    throw new Error(`radosgw did not start (exit ${up.status ?? up.signal}):\n${why}`);
  }
  const vars = Object.fromEntries(
    readFileSync(join(cephDir, 's3.env'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  return {
    seconds: (Date.now() - started) / 1000,
    s3: { endpoint: vars.S3_ENDPOINT, accessKeyId: vars.S3_ACCESS_KEY_ID, secretAccessKey: vars.S3_SECRET_ACCESS_KEY },
    env: {
      LIFEBOAT_TEST_S3_ENDPOINT: vars.S3_ENDPOINT,
      LIFEBOAT_TEST_S3_ACCESS_KEY_ID: vars.S3_ACCESS_KEY_ID,
      LIFEBOAT_TEST_S3_SECRET_ACCESS_KEY: vars.S3_SECRET_ACCESS_KEY,
      // The cluster's folder, so a fault test can start a radosgw of its own beside it and kill it.
      LIFEBOAT_TEST_S3_CEPH_DIR: cephDir,
    },
    stop,
  };
}

/** Whether a compiled test file needs radosgw: its name says s3 (store/s3.test.js, cli/s3.test.js). */
export function needsRgw(file) {
  return /(^|[/\\])s3[^/\\]*\.test\.js$/.test(file);
}
