import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderDataset, type DatasetResult, type Sample } from './report.js';

const run = (wall: number, extra: Partial<Sample> = {}): Sample[] => [{ run: 0, ok: true, wall, user: wall / 2, sys: 0, rssKiB: 1024, ...extra }];

test('the s3 table has a requests column and the first tool over the other as its ratio', () => {
  const d: DatasetResult = {
    name: 's3',
    description: 'd',
    tools: ['lifeboat', 'restic'],
    ops: [{ op: 'nochange', title: 'no-change backup', samples: { lifeboat: run(2, { requests: 20 }), restic: run(1, { requests: 10 }) } }],
    facts: {},
    targets: [{ text: 'no-change backup', measured: 'lifeboat 20 requests', pass: null, info: true }],
  };
  const lines = renderDataset(d).split('\n');
  assert.match(lines[1]!, /requests/);
  assert.doesNotMatch(lines[1]!, /server cpu/);
  const ratio = lines.find((l) => l.includes('lifeboat/restic'))!;
  assert.match(ratio, /2\.00×.*2\.00×/); // wall, and (last column) requests
  assert.match(ratio.trim(), /2\.00×$/);
  assert.ok(lines.some((l) => l.includes('[info ] no-change backup: lifeboat 20 requests')));
});

test('the server table gives each server mode over the folder, and a file table has no optional columns', () => {
  const d: DatasetResult = {
    name: 'server',
    description: 'd',
    tools: ['folder', 'server-http', 'server-https'],
    ops: [{ op: 'initial', title: 'initial backup', samples: { folder: run(10), 'server-http': run(12, { serverCpu: 1 }), 'server-https': run(15, { serverCpu: 2 }) } }],
    facts: {},
    targets: [],
    ratios: [
      ['server-http', 'folder'],
      ['server-https', 'folder'],
    ],
  };
  const text = renderDataset(d);
  assert.match(text, /server cpu/);
  assert.match(text, /server-http\/folder\s+1\.20×/);
  assert.match(text, /server-https\/folder\s+1\.50×/);
  assert.doesNotMatch(text, /folder\/server/);
  const files = renderDataset({ name: 'files', description: 'd', facts: {}, targets: [], tools: ['folder', 'server-http'], ops: [{ op: 'initial', title: 'initial backup', samples: { folder: run(1), 'server-http': run(2) } }] });
  assert.doesNotMatch(files, /requests|server cpu/);
  assert.match(files, /folder\/server-http\s+0\.50×/);
});
