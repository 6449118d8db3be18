import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { http, startHome } from './testing.js';
import { openRepositoryAt } from '../jobs/open.js';
import { backupFiles } from '../jobs/files.js';
import type { FreeSpacePreview, FreeSpaceResult, ListingView, Overview, RestoreResponse, SetupResponse } from '../web/api.js';

test('the dashboard refuses a request without the token, for another Host, or from another site', async (t) => {
  const { dashboard: d, auth } = await startHome(t);
  const host = new URL(d.origin).host;
  const no = await http(d.origin, 'GET', '/api/overview');
  assert.equal(no.status, 401);
  assert.match(no.body.toString(), /Open the address Lifeboat printed/);
  assert.equal((await http(d.origin, 'GET', '/?token=wrong')).status, 401);
  assert.equal((await http(d.origin, 'GET', '/api/overview', { cookie: 'lifeboat_token=wrong' })).status, 401);

  const login = await http(d.origin, 'GET', `/?token=${d.token}`);
  assert.equal(login.status, 303, 'the token is swapped for a cookie');
  assert.equal(login.headers['location'], '/');
  assert.match(String(login.headers['set-cookie']), new RegExp(`lifeboat_token=${d.token}; Path=/; HttpOnly; SameSite=Strict`));
  assert.equal((await http(d.origin, 'GET', '/api/overview', { cookie: auth.cookie })).status, 200);
  assert.equal((await http(d.origin, 'GET', '/api/overview', { authorization: `Bearer ${d.token}` })).status, 200);

  // DNS rebinding: a page of evil.example whose name now points at 127.0.0.1.
  const rebound = await http(d.origin, 'GET', '/api/overview', { cookie: auth.cookie, host: `evil.example:${new URL(d.origin).port}` });
  assert.equal(rebound.status, 403);
  assert.match(rebound.body.toString(), /another name than Lifeboat's/);
  assert.equal((await http(d.origin, 'GET', '/api/overview', { cookie: auth.cookie, host: `localhost:${new URL(d.origin).port}` })).status, 200);

  // CSRF: a form or script on another site posting with the user's cookie.
  const cross = await http(d.origin, 'POST', '/api/jobs/x/run', { cookie: auth.cookie, origin: 'http://evil.example' }, {});
  assert.equal(cross.status, 403);
  assert.match(cross.body.toString(), /came from another web site/);
  assert.equal((await http(d.origin, 'POST', '/api/jobs/x/run', { cookie: auth.cookie }, {})).status, 403, 'a cookie without an Origin is not enough');
  assert.equal((await http(d.origin, 'POST', '/api/jobs/x/run', { cookie: auth.cookie, origin: 'null' }, {})).status, 403);
  const same = await http(d.origin, 'POST', '/api/jobs/x/run', { cookie: auth.cookie, origin: `http://${host}` }, {});
  assert.equal(same.status, 404, 'from the dashboard itself it goes through (to "no such job")');
  assert.match(same.json<{ error: string }>().error, /There is no job named "x"/);
});

test('set up, back up, browse, download and restore through the API; paths cannot leave the snapshot or the target', async (t) => {
  const { dashboard: d, auth, source, drive, dir } = await startHome(t);
  mkdirSync(join(source, 'many'));
  for (let i = 0; i < 1200; i++) writeFileSync(join(source, 'many', `n${String(i).padStart(4, '0')}`), '');
  const events: string[] = [];
  const ac = new AbortController();
  t.after(() => ac.abort());
  const sse = await fetch(`${d.origin}/api/events`, { headers: { cookie: auth.cookie }, signal: ac.signal });
  assert.equal(sse.headers.get('content-type'), 'text/event-stream');
  void (async () => {
    const dec = new TextDecoder();
    for await (const c of sse.body as unknown as AsyncIterable<Uint8Array>) events.push(dec.decode(c));
  })().catch(() => undefined);

  const short = await http(d.origin, 'POST', '/api/setup', auth, { name: 'Docs', destination: drive, password: 'short', what: 'folders', paths: [source], schedule: 'daily 19:00' });
  assert.equal(short.status, 400);
  assert.match(short.json<{ error: string }>().error, /at least 8 characters/);
  const setup = await http(d.origin, 'POST', '/api/setup', auth, { name: 'Docs', destination: drive, password: 'correct horse', what: 'folders', paths: [source], schedule: 'daily 19:00' });
  assert.equal(setup.status, 200, setup.body.toString());
  const s = setup.json<SetupResponse>();
  assert.match(s.recoveryKey ?? '', /\S{20,}/);

  assert.equal((await http(d.origin, 'POST', '/api/jobs/Docs/run', auth, {})).status, 200);
  await d.scheduler.idle();
  const o = (await http(d.origin, 'GET', '/api/overview', auth)).json<Overview>();
  assert.equal(o.jobs[0]!.lastRun?.status, 'ok', o.jobs[0]!.lastRun?.message);
  const all = events.join('');
  assert.match(all, /"type":"run-started"/);
  assert.match(all, /"type":"progress"/);
  assert.match(all, /"type":"run-finished".*"status":"ok"/);

  const { snapshots } = (await http(d.origin, 'GET', '/api/jobs/Docs/snapshots', auth)).json<{ snapshots: { id: string }[] }>();
  assert.equal(snapshots.length, 1);
  const base = `/api/jobs/Docs/snapshots/${snapshots[0]!.id}`;
  const root = (await http(d.origin, 'GET', `${base}/list?path=/`, auth)).json<ListingView>();
  assert.deepEqual(root.entries.map((e) => e.name), ['Documents']);
  const docs = (await http(d.origin, 'GET', `${base}/list?path=/Documents`, auth)).json<ListingView>();
  assert.equal(docs.path, source, 'shown as the original path');
  assert.deepEqual(docs.entries.map((e) => `${e.name} ${e.type}`), ['letters dir', 'many dir', 'photo.raw file']);
  // A large folder comes a page at a time.
  const p1 = (await http(d.origin, 'GET', `${base}/list?path=/Documents/many`, auth)).json<ListingView>();
  assert.equal(p1.total, 1200, 'a folder of one part is counted at once');
  assert.deepEqual([p1.entries.length, p1.more], [500, true]);
  const p3 = (await http(d.origin, 'GET', `${base}/list?path=/Documents/many&offset=1000`, auth)).json<ListingView>();
  assert.deepEqual([p3.entries.length, p3.entries[0]!.name, p3.entries[199]!.name, p3.more], [200, 'n1000', 'n1199', false]);
  assert.deepEqual((await http(d.origin, 'GET', `${base}/count?path=/Documents/many`, auth)).json(), { total: 1200 });

  const file = await http(d.origin, 'GET', `${base}/file?path=${encodeURIComponent('/Documents/photo.raw')}`, auth);
  assert.equal(file.status, 200);
  assert.equal(file.headers['content-disposition'], "attachment; filename*=UTF-8''photo.raw");
  assert.ok(file.body.equals(readFileSync(join(source, 'photo.raw'))), 'the download is byte-identical');

  const target = join(dir, 'restored');
  mkdirSync(target);
  const r = await http(d.origin, 'POST', `${base}/restore`, auth, { path: '/Documents/letters/mum.txt', target });
  assert.equal(r.status, 200, r.body.toString());
  assert.equal(r.json<RestoreResponse>().files, 1);
  assert.equal(readFileSync(join(target, 'Documents', 'letters', 'mum.txt'), 'utf8'), 'Dear Mum,\n');
  // Back in its original place: a file changed since is kept unless "replace" is asked for.
  writeFileSync(join(source, 'letters', 'mum.txt'), 'Dear Mum, edited\n');
  const keep = (await http(d.origin, 'POST', `${base}/restore`, auth, { path: '/Documents/letters/mum.txt' })).json<RestoreResponse>();
  assert.deepEqual([keep.keptChanged, keep.targets.length], [1, 1]);
  assert.equal(readFileSync(join(source, 'letters', 'mum.txt'), 'utf8'), 'Dear Mum, edited\n');
  // Or kept, with the backed-up copy beside it under a new name (never over anything).
  const day = new Date(Date.now());
  const today = `${day.getFullYear()}-${String(day.getMonth() + 1).padStart(2, '0')}-${String(day.getDate()).padStart(2, '0')}`;
  for (const n of ['', ' 2']) {
    const both = await http(d.origin, 'POST', `${base}/restore`, auth, { path: '/Documents/letters/mum.txt', changed: 'keep-both' });
    assert.equal(both.status, 200, both.body.toString());
    assert.deepEqual([both.json<RestoreResponse>().keptBoth, both.json<RestoreResponse>().keptChanged], [1, 0]);
    assert.equal(readFileSync(join(source, 'letters', `mum (restored ${today}${n}).txt`), 'utf8'), 'Dear Mum,\n');
  }
  assert.equal(readFileSync(join(source, 'letters', 'mum.txt'), 'utf8'), 'Dear Mum, edited\n');
  const odd = await http(d.origin, 'POST', `${base}/restore`, auth, { path: '/Documents/letters/mum.txt', changed: 'shred' });
  assert.equal(odd.status, 400);
  assert.match(odd.json<{ error: string }>().error, /keep them, replace them, or keep both/);
  const replaced = await http(d.origin, 'POST', `${base}/restore`, auth, { path: '/Documents/letters/mum.txt', changed: 'replace' });
  assert.equal(replaced.status, 200, replaced.body.toString());
  assert.equal(readFileSync(join(source, 'letters', 'mum.txt'), 'utf8'), 'Dear Mum,\n');

  // Refusals: paths that climb out of the snapshot or the target.
  for (const bad of ['/Documents/../../etc/passwd', '../x', '/Documents/./letters', 'Documents']) {
    const l = await http(d.origin, 'GET', `${base}/list?path=${encodeURIComponent(bad)}`, auth);
    assert.equal(l.status, 400, bad);
    assert.match(l.json<{ error: string }>().error, /Refused: that path is not a plain path inside the backup/);
    assert.equal((await http(d.origin, 'GET', `${base}/file?path=${encodeURIComponent(bad)}`, auth)).status, 400);
    assert.equal((await http(d.origin, 'POST', `${base}/restore`, auth, { path: bad, target })).status, 400);
  }
  for (const badTarget of [`${target}/../..`, 'relative/folder', '', 42]) {
    const x = await http(d.origin, 'POST', `${base}/restore`, auth, { path: '/Documents/letters/mum.txt', target: badTarget });
    assert.equal(x.status, 400, String(badTarget));
    assert.match(x.json<{ error: string }>().error, /Refused: choose the folder to restore into by its full path/);
  }
  const missing = await http(d.origin, 'GET', `${base}/file?path=${encodeURIComponent('/Documents/nope.txt')}`, auth);
  assert.equal(missing.status, 404);

  const hist = (await http(d.origin, 'GET', '/api/runs', auth)).json<{ runs: { status: string }[] }>();
  assert.deepEqual(hist.runs.map((x) => x.status), ['ok']);

  // The wizard's rules keep one version a day, applied after each run: two backups today leave one.
  assert.equal((await http(d.origin, 'POST', '/api/jobs/Docs/run', auth, {})).status, 200);
  await d.scheduler.idle();
  const after = (await http(d.origin, 'GET', '/api/jobs/Docs/snapshots', auth)).json<{ snapshots: { id: string }[] }>().snapshots;
  assert.equal(after.length, 1);
  assert.notEqual(after[0]!.id, snapshots[0]!.id, 'the newer one stays');
  assert.equal((await http(d.origin, 'GET', '/api/jobs/Docs/free-space', auth)).json<FreeSpacePreview>().remove.length, 0);
  // "Free up space" with a version the rules do not keep (made outside the scheduler).
  const job = d.scheduler.state.findJob('Docs');
  const repo = await openRepositoryAt(job.repository, 'correct horse');
  // Earlier on the same local day (the rules keep one a day): an hour ago, or midnight if that was yesterday.
  const earlier = Math.max(new Date().setHours(0, 0, 0, 0), Date.now() - 3600_000);
  await backupFiles(repo, { paths: [source], tags: ['job:Docs'], time: new Date(earlier).toISOString() });
  await repo.close();
  const preview = (await http(d.origin, 'GET', '/api/jobs/Docs/free-space', auth)).json<FreeSpacePreview>();
  assert.match(preview.rules, /^keep daily 7, weekly 4, monthly 12$/);
  assert.deepEqual([preview.remove.length, preview.keep], [1, 1]);
  const freed = (await http(d.origin, 'POST', '/api/jobs/Docs/free-space', auth, {})).json<FreeSpaceResult>();
  assert.equal(freed.removed, 1);
  assert.equal((await http(d.origin, 'GET', '/api/jobs/Docs/snapshots', auth)).json<{ snapshots: unknown[] }>().snapshots.length, 1);
  const space = (await http(d.origin, 'GET', '/api/space', auth)).json<{ snapshots: { job: string; added: number }[] }>();
  assert.equal(space.snapshots[0]!.job, 'Docs');
  assert.ok(space.snapshots[0]!.added > 0);
});
