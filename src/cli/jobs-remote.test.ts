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

  // Refused at once: a copy job with folders or with retention, a wrong source password.
  const addCopy = ['--repo', office, 'job', 'add', 'Offsite', '--copy-from', drive, '--schedule', 'daily 02:00'];
  const withPw = { ...attended, LIFEBOAT_PASSWORD: 'office pw', LIFEBOAT_FROM_PASSWORD: 'drive pw' };
  const both = await lifeboat([...addCopy, docs], withPw);
  assert.equal(both.code, 2, both.stderr);
  assert.match(both.stderr, /A copy job \(--copy-from\) copies snapshots only/);
  const keep = await lifeboat([...addCopy, '--keep-daily', '7'], withPw);
  assert.equal(keep.code, 2, keep.stderr);
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

test('a copy job from one Lifeboat server to another (https) keeps a token and a fingerprint for each end; the unattended run needs neither', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const tokenOf = async (data: string, name: string, role: string): Promise<string> => {
    const r = await lifeboat(['server', 'token', 'add', name, '--role', role, '--data', data]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  // Two servers, each with its own certificate and tokens: the office's, and an off-site one.
  const officeData = join(d.path, 'office-server');
  const offsiteData = join(d.path, 'offsite-server');
  mkdirSync(officeData);
  mkdirSync(offsiteData);
  const officeAdmin = await tokenOf(officeData, 'admin', 'admin');
  const officeReader = await tokenOf(officeData, 'copier', 'read');
  const offsiteAdmin = await tokenOf(offsiteData, 'admin', 'admin');
  const offsiteWriter = await tokenOf(offsiteData, 'copier', 'append');
  const a = await startServer(officeData, { https: true });
  t.after(() => a.stop());
  const b = await startServer(offsiteData, { https: true });
  t.after(() => b.stop());
  assert.ok(a.fingerprint && b.fingerprint && a.fingerprint !== b.fingerprint);
  const office = `lifeboat:${a.origin}/office`;
  const offsite = `lifeboat:${b.origin}/offsite`;
  const base = { XDG_DATA_HOME: join(d.path, 'data'), XDG_CACHE_HOME: join(d.path, 'cache') };
  const ok = async (args: string[], env: Record<string, string>): Promise<string> => {
    const r = await lifeboat(args, env);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  const docs = join(d.path, 'docs');
  mkdirSync(docs);
  writeFileSync(join(docs, 'letter.txt'), 'Dear Madam,\n');
  writeFileSync(join(docs, 'scan.raw'), Buffer.alloc(400_000, 9));
  const atOffice = { ...base, LIFEBOAT_TOKEN: officeAdmin, LIFEBOAT_SERVER_FINGERPRINT: a.fingerprint, LIFEBOAT_PASSWORD: 'office pw' };
  await ok(['--repo', office, 'init'], atOffice);
  await ok(['--repo', office, 'backup', docs], atOffice);
  // What the person gives once: the off-site server's token and fingerprint for --repo, the office's for the source.
  const readerFile = join(d.path, 'office-reader.token');
  writeFileSync(readerFile, `${officeReader}\n`, { mode: 0o600 });
  const attended = { ...base, LIFEBOAT_TOKEN: offsiteWriter, LIFEBOAT_SERVER_FINGERPRINT: b.fingerprint, LIFEBOAT_FROM_SERVER_FINGERPRINT: a.fingerprint, LIFEBOAT_PASSWORD: 'offsite pw', LIFEBOAT_FROM_PASSWORD: 'office pw' };
  await ok(['--repo', offsite, 'init', '--copy-parameters-from', office, '--from-token-file', readerFile], { ...attended, LIFEBOAT_TOKEN: offsiteAdmin });

  const addCopy = ['--repo', offsite, 'job', 'add', 'Offsite', '--copy-from', office, '--schedule', 'daily 03:00'];
  // Without a token for the source, the off-site token is not sent to the office server.
  const noToken = await lifeboat(addCopy, attended);
  assert.equal(noToken.code, 2, noToken.stderr);
  assert.match(noToken.stderr, /The repository to copy from is on another Lifeboat server than .*: give this computer's token for https:\/\/127\.0\.0\.1:\d+ with --from-token-file or LIFEBOAT_FROM_TOKEN\./);
  // The office's fingerprint for the off-site server: refused, nothing sent.
  const swapped = await lifeboat([...addCopy, '--from-token-file', readerFile], { ...attended, LIFEBOAT_FROM_SERVER_FINGERPRINT: b.fingerprint });
  assert.equal(swapped.code, 1, swapped.stderr);
  assert.match(swapped.stderr, /shows the certificate fingerprint .* but this computer expects .*LIFEBOAT_FROM_SERVER_FINGERPRINT/);
  await ok([...addCopy, '--from-token-file', readerFile], attended);
  const secrets = join(d.path, 'data', 'lifeboat', 'passwords');
  const tokens = readdirSync(secrets).filter((n) => n.endsWith('.token')).map((n) => readFileSync(join(secrets, n), 'utf8')).sort();
  assert.deepEqual(tokens, [`${officeReader}\n`, `${offsiteWriter}\n`].sort(), 'a token kept for each end');

  // Unattended: nothing in the environment.
  const run = async (): Promise<JobRun> => JSON.parse(await ok(['--json', 'job', 'run', 'Offsite'], base)) as JobRun;
  const first = await run();
  assert.equal(first.status, 'ok', first.message);
  assert.ok((first.figures.bytesAdded ?? 0) > 0);
  await ok(['--repo', office, 'backup', join(docs, 'letter.txt')], atOffice);
  const second = await run();
  assert.equal(second.status, 'ok', second.message);
  // lifeboat copy takes the same options: everything is there already.
  const again = await ok(['--repo', offsite, 'copy', '--from', office, '--from-token-file', readerFile], attended);
  assert.match(again, /Copied 0 snapshot\(s\) \(2 were there already\)/);

  const atOffsite = { ...base, LIFEBOAT_TOKEN: offsiteAdmin, LIFEBOAT_SERVER_FINGERPRINT: b.fingerprint, LIFEBOAT_PASSWORD: 'offsite pw' };
  assert.equal((JSON.parse(await ok(['--repo', offsite, 'snapshots', '--json'], atOffsite)) as unknown[]).length, 2);
  const out = join(d.path, 'out');
  await ok(['--repo', offsite, 'restore', 'latest', '--target', out], atOffsite);
  assert.equal(readFileSync(join(out, 'letter.txt'), 'utf8'), 'Dear Madam,\n');
  const check = await lifeboat(['--repo', offsite, 'check', '--read-data'], atOffsite);
  assert.equal(check.code, 0, check.stdout + check.stderr);
});
