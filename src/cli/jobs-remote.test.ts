/**
 * Scheduled jobs beyond a drive: a job whose repository is on a Lifeboat server (over https: the
 * token and the certificate fingerprint are kept with the job, so the unattended run needs neither
 * LIFEBOAT_TOKEN nor LIFEBOAT_SERVER_FINGERPRINT), and the copy job kind (`job add --copy-from`),
 * here copying a drive's repository to the server nightly, pins included.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer } from '../server/testing.js';
import { lifeboat, tempDir } from './testing.js';

interface JobRun {
  readonly status: string;
  readonly message?: string;
  readonly figures: { readonly bytesAdded?: number };
}

test('jobs on a Lifeboat server (https) run unattended with the token and fingerprint kept with the job; a copy job copies a drive to the server, pins too', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const data = join(d.path, 'server');
  mkdirSync(data);
  const tokenOf = async (name: string, role: string): Promise<string> => {
    const r = await lifeboat(['server', 'token', 'add', name, '--role', role, '--repository', 'office', '--data', data]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  const admin = await tokenOf('admin', 'admin');
  const laptop = await tokenOf('laptop', 'append');
  const server = await startServer(data, { https: true });
  t.after(() => server.stop());
  assert.ok(server.fingerprint, server.firstLine);
  const office = `lifeboat:${server.origin}/office`;
  const drive = join(d.path, 'Passport', 'lifeboat');
  mkdirSync(join(d.path, 'Passport'));
  const docs = join(d.path, 'docs');
  mkdirSync(docs);
  writeFileSync(join(docs, 'letter.txt'), 'Dear Sir,\n');
  writeFileSync(join(docs, 'photo.raw'), Buffer.alloc(300_000, 7));
  const base = { XDG_DATA_HOME: join(d.path, 'data'), XDG_CACHE_HOME: join(d.path, 'cache') };
  // What the person types once, when adding the jobs (a terminal would ask for the fingerprint instead).
  const attended = { ...base, LIFEBOAT_SERVER_FINGERPRINT: server.fingerprint, LIFEBOAT_TOKEN: laptop };
  const ok = async (args: string[], env: Record<string, string | undefined>): Promise<string> => {
    const r = await lifeboat(args, env);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    return r.stdout;
  };

  // The drive's repository, a backup and a pin; the server's repository made to share its chunking.
  await ok(['--repo', drive, 'init'], { ...base, LIFEBOAT_PASSWORD: 'drive pw' });
  const first = (JSON.parse(await ok(['--repo', drive, 'backup', '--json', docs], { ...base, LIFEBOAT_PASSWORD: 'drive pw' })) as { snapshot: string }).snapshot;
  await ok(['--repo', drive, 'pin', first, '--note', 'keep forever'], { ...base, LIFEBOAT_PASSWORD: 'drive pw' });
  await ok(['--repo', office, 'init', '--copy-parameters-from', drive], { ...attended, LIFEBOAT_TOKEN: admin, LIFEBOAT_PASSWORD: 'office pw', LIFEBOAT_FROM_PASSWORD: 'drive pw' });

  // Refused at once: a copy job with folders or with retention, or into a repository that cuts chunks otherwise.
  const addCopy = ['--repo', office, 'job', 'add', 'Offsite', '--copy-from', drive, '--schedule', 'daily 02:00'];
  const withPw = { ...attended, LIFEBOAT_PASSWORD: 'office pw', LIFEBOAT_FROM_PASSWORD: 'drive pw' };
  const both = await lifeboat([...addCopy, docs], withPw);
  assert.equal(both.code, 2, both.stderr);
  assert.match(both.stderr, /A copy job \(--copy-from\) copies snapshots only/);
  const keep = await lifeboat([...addCopy, '--keep-daily', '7'], withPw);
  assert.equal(keep.code, 2, keep.stderr);
  const other = join(d.path, 'other');
  await ok(['--repo', other, 'init'], { ...base, LIFEBOAT_PASSWORD: 'x' });
  const mismatch = await lifeboat(['--repo', other, 'job', 'add', 'Bad', '--copy-from', drive, '--schedule', 'daily 02:00'], { ...base, LIFEBOAT_PASSWORD: 'x', LIFEBOAT_FROM_PASSWORD: 'drive pw' });
  assert.equal(mismatch.code, 2, mismatch.stderr);
  assert.match(mismatch.stderr, /cuts and names its chunks differently.*init --copy-parameters-from/);
  const wrongFrom = await lifeboat(addCopy, { ...withPw, LIFEBOAT_FROM_PASSWORD: 'nope' });
  assert.equal(wrongFrom.code, 12, 'the source password is checked when the job is added');

  const added = await ok(addCopy, withPw);
  assert.match(added, new RegExp(`Added the job "Offsite": copies the snapshots of .*lifeboat to ${office.replace(/[.:/]/g, '\\$&')} every day at 02:00\\.`));
  // A backup job straight to the server, too.
  await ok(['--repo', office, 'job', 'add', 'Docs', docs, '--schedule', 'daily 19:00'], { ...attended, LIFEBOAT_PASSWORD: 'office pw' });
  const secrets = join(d.path, 'data', 'lifeboat', 'passwords');
  const tokenFiles = readdirSync(secrets).filter((n) => n.endsWith('.token'));
  assert.equal(tokenFiles.length, 1, 'one token file for the server repository');
  assert.equal(statSync(join(secrets, tokenFiles[0]!)).mode & 0o777, 0o600, 'the token is kept in a private file');
  assert.equal(readFileSync(join(secrets, tokenFiles[0]!), 'utf8'), `${laptop}\n`);

  // Unattended: no password, token or fingerprint in the environment.
  const run = async (name: string): Promise<JobRun> => JSON.parse(await ok(['--json', 'job', 'run', name], base)) as JobRun;
  const c1 = await run('Offsite');
  assert.equal(c1.status, 'ok', c1.message);
  assert.ok((c1.figures.bytesAdded ?? 0) > 0);
  const b1 = await run('Docs');
  assert.equal(b1.status, 'ok', b1.message);
  const c2 = await run('Offsite');
  assert.equal(c2.status, 'ok', c2.message);
  assert.equal(c2.figures.bytesAdded, 0, 'a copy with nothing new sends nothing');

  const reader = { ...attended, LIFEBOAT_TOKEN: admin, LIFEBOAT_PASSWORD: 'office pw' };
  const snaps = JSON.parse(await ok(['--repo', office, 'snapshots', '--json'], reader)) as { id: string; tags?: string[]; pinned?: { note: string } }[];
  assert.equal(snaps.length, 2, 'the copied snapshot and the server backup');
  assert.deepEqual(snaps.filter((s) => s.pinned).map((s) => s.pinned), [{ note: 'keep forever' }], 'the pin was copied');
  assert.ok(snaps.some((s) => s.tags?.includes('job:Docs')));
  const out = join(d.path, 'out');
  await ok(['--repo', office, 'restore', snaps.find((s) => s.pinned)!.id, '--target', out], reader);
  assert.equal(readFileSync(join(out, 'docs', 'letter.txt'), 'utf8'), 'Dear Sir,\n');

  // A revoked token: the unattended run fails with the server's sentence.
  await ok(['server', 'token', 'revoke', 'laptop', '--data', data], {});
  const revoked = await lifeboat(['--json', 'job', 'run', 'Docs'], base);
  assert.equal(revoked.code, 1);
  assert.match((JSON.parse(revoked.stdout) as JobRun).message ?? '', /does not know this computer's token/);
});
