import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { cephMissing } from './rgw.js';

test('without Ceph on the PATH, cephMissing says in one line what is missing and how to install it (the bench then skips the s3 dataset)', (t) => {
  const bin = mkdtempSync(join(tmpdir(), 'lifeboat-no-ceph-'));
  const path = process.env['PATH'];
  t.after(() => {
    process.env['PATH'] = path;
    rmSync(bin, { recursive: true, force: true });
  });
  symlinkSync('/bin/sh', join(bin, 'sh'));
  process.env['PATH'] = bin;
  const why = cephMissing();
  assert.match(why ?? '', /^Ceph is not installed \(radosgw, ceph-mon, ceph-osd missing; bash scripts\/install-test-deps\.sh installs it\)$/);
  assert.doesNotMatch(why!, /\n/);
});
