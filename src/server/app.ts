/**
 * server — the dashboard's HTTP API and page, on top of the jobs layer (the same functions the CLI
 * and the scheduler call). May import jobs/ and the layers below, and web/ for the page and the
 * API's types; never cli/. Every route sits behind security.ts; routes here only parse, call and
 * answer, and paths inside snapshots are checked before they reach the jobs layer.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute } from 'node:path';
import { Hono, type Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { findInSnapshots, openSnapshotTree, readFile } from '../jobs/browse.js';
import { openJobRepository } from '../jobs/open.js';
import { describeSchedule, parseSchedule } from '../jobs/schedule.js';
import type { JobEvent } from '../jobs/events.js';
import type { Scheduler, SchedulerEvent } from '../jobs/scheduler.js';
import { estimateJob, listDestinations, sameDiskSources, setUpJob } from '../jobs/setup.js';
import { jobTag, RETENTION_MAX_UNUSED } from '../jobs/run.js';
import { forgetSnapshots, pruneRepository } from '../jobs/maintenance.js';
import { describeWhat, type Job, type JobWhat, type RunRecord } from '../jobs/state.js';
import type { Repository } from '../repo/repository.js';
import { restoreFiles } from '../jobs/files.js';
import { restoreImageFiles } from '../jobs/image.js';
import type { OverwriteMode } from '../files/restore.js';
import { nodeName, openListing, type Listing } from '../tree/tree.js';
import { LifeboatError } from '../util/errors.js';
import type { CountView, EntryView, EstimateView, FindResponse, FoundView, FreeSpacePreview, FreeSpaceResult, GrowthView, JobView, ListingView, Overview, ProgressView, RestoreBody, RestoreResponse, RunView, ServerEvent, SetupBody, SetupCheck, SetupCheckBody, SetupInfo, SetupResponse, SnapshotView, SpaceView } from '../web/api.js';
import { PAGE_CSS, PAGE_HTML } from '../web/page.js';
import { security } from './security.js';

export interface AppOptions {
  readonly scheduler: Scheduler;
  readonly token: string;
  readonly hosts: () => ReadonlySet<string>;
  /** Adds a listener for the scheduler's events; returns its removal. */
  readonly subscribe: (fn: (e: SchedulerEvent) => void) => () => void;
}

const PAGE_SIZE = 500;
/** What restoring to the original place does with a file changed since the backup. */
const CHANGED = new Map<unknown, OverwriteMode>([['keep', 'never'], ['replace', 'if-changed'], ['keep-both', 'keep-both']]);
/** Search results shown at most. */
const FIND_LIMIT = 500;
/** Runs per job drawn in the space chart. */
const GROWTH_RUNS = 1000;
/** Folder listings kept open for paging. */
const LISTINGS_KEPT = 4;

function runView(r: RunRecord): RunView {
  const { jobId: _jobId, ...rest } = r;
  return rest;
}

function progressView(p: Extract<JobEvent, { type: 'progress' }>): ProgressView {
  const { type: _type, unit: _unit, ...rest } = p;
  return rest;
}

/** A folder of a drive image in words: "/2/Users" is "Partition 2: /Users". */
function imageFolderName(path: string): string {
  const [, partition, ...rest] = path.split('/');
  return partition ? `Partition ${partition}: /${rest.join('/')}` : 'The partitions of the drive';
}

/** A path inside a snapshot as the page sends it: absolute, no "." or ".." part, no NUL. */
export function checkedSnapshotPath(p: unknown): string {
  if (typeof p !== 'string' || !p.startsWith('/') || p.includes('\0') || p.split('/').some((part) => part === '..' || part === '.')) {
    throw new LifeboatError('unsafe-path', 'Refused: that path is not a plain path inside the backup.');
  }
  return p;
}

function status(e: LifeboatError): 400 | 404 | 409 | 500 {
  switch (e.code) {
    case 'usage':
    case 'invalid-argument':
    case 'unsafe-path':
    case 'wrong-password':
      return 400;
    case 'not-found':
    case 'no-repository':
      return 404;
    case 'conflict':
    case 'locked':
      return 409;
    default:
      return 500;
  }
}

/** Repositories opened for browsing, kept a minute so a click through folders does not pay the key derivation each time. */
class OpenRepositories {
  private readonly open = new Map<string, { repo: Promise<Repository>; timer: NodeJS.Timeout }>();

  async use<T>(job: Job, fn: (repo: Repository) => Promise<T>): Promise<T> {
    let e = this.open.get(job.repository);
    if (!e) {
      const repo = openJobRepository(job.name, job.repository, job.passwordFile, job.server);
      e = { repo, timer: setTimeout(() => undefined, 0) };
      this.open.set(job.repository, e);
      repo.catch(() => this.drop(job.repository));
    }
    clearTimeout(e.timer);
    e.timer = setTimeout(() => this.drop(job.repository), 60_000);
    e.timer.unref();
    const repo = await e.repo;
    await repo.loadIndex(); // picks up what runs added meanwhile
    return fn(repo);
  }

  /** Forgets `location` (after a run that may have pruned it), closing it a little later for requests in flight. */
  drop(location: string): void {
    const e = this.open.get(location);
    if (!e) return;
    this.open.delete(location);
    clearTimeout(e.timer);
    setTimeout(() => void e.repo.then((r) => r.close()).catch(() => undefined), 30_000).unref();
  }

  async closeAll(): Promise<void> {
    for (const [loc, e] of [...this.open]) {
      this.open.delete(loc);
      clearTimeout(e.timer);
      await e.repo.then((r) => r.close()).catch(() => undefined);
    }
  }
}

export function createApp(o: AppOptions): { app: Hono; close: () => Promise<void> } {
  const { scheduler } = o;
  const state = scheduler.state;
  const repos = new OpenRepositories();
  // The folders last opened, so "Show more" on a folder of 100,000 entries does not count it again per page.
  const listings = new Map<string, Listing>();
  const unsubscribe = o.subscribe((e) => {
    if (e.type === 'run-finished') {
      const job = state.jobs().find((j) => j.id === e.run.jobId);
      if (job) repos.drop(job.repository);
    }
  });
  const app = new Hono();
  app.use('*', security(o.token, o.hosts));
  app.onError((e, c) => {
    if (e instanceof LifeboatError) return c.json({ error: e.message }, status(e));
    return c.json({ error: `Unexpected error (this is a bug; please report it): ${e instanceof Error ? e.message : String(e)}` }, 500);
  });

  const client = new URL('../web/client/app.js', import.meta.url);
  app.get('/', (c) => c.html(PAGE_HTML));
  app.get('/style.css', (c) => c.body(PAGE_CSS, 200, { 'content-type': 'text/css; charset=utf-8' }));
  app.get('/app.js', (c) => c.body(readFileSync(client, 'utf8'), 200, { 'content-type': 'text/javascript; charset=utf-8' }));

  const jobView = (job: Job): JobView => {
    const h = scheduler.health(job);
    const active = scheduler.activeRun(job.id);
    const p = active?.progress;
    const finished = state.runs({ jobId: job.id, limit: 5 }).find((r) => r.status !== 'running');
    return {
      name: job.name,
      what: capitalized(describeWhat(job.what)),
      kind: job.what.kind,
      continuous: job.schedule === 'continuous',
      repository: job.repository,
      when: describeSchedule(parseSchedule(job.schedule)),
      ...(finished ? { lastRun: runView(finished) } : {}),
      ...(Number.isFinite(h.nextRun) ? { nextRun: h.nextRun } : {}),
      ...(active ? { running: runView(active.run) } : {}),
      ...(p && p.type === 'progress' ? { progress: progressView(p) } : {}),
      ok: h.ok,
      ...(h.warning ? { warning: h.warning } : {}),
    };
  };

  app.get('/api/overview', (c) => {
    const jobs = state.jobs().map(jobView);
    return c.json<Overview>({ jobs, warnings: jobs.flatMap((j) => (j.warning ? [j.warning] : [])) });
  });

  app.post('/api/jobs/:name/run', (c) => {
    const job = state.findJob(c.req.param('name'));
    const a = scheduler.start(job, 'manual');
    if (!a) throw new LifeboatError('locked', `"${job.name}" is running already in another Lifeboat process.`);
    return c.json({ run: runView(a.run) });
  });

  app.post('/api/jobs/:name/cancel', (c) => c.json({ cancelled: scheduler.cancel(state.findJob(c.req.param('name')).name) }));

  app.get('/api/runs', (c) => {
    const name = c.req.query('job');
    const before = Number(c.req.query('before'));
    const runs = state.runs({ ...(name ? { jobId: state.findJob(name).id } : {}), ...(Number.isFinite(before) && before > 0 ? { before } : {}), limit: 50 });
    return c.json({ runs: runs.map(runView) });
  });

  app.get('/api/runs/:id', (c) => {
    const run = state.run(Number(c.req.param('id')));
    if (!run) throw new LifeboatError('not-found', 'There is no such run.');
    return c.json({ run: runView(run), events: state.events(run.id) });
  });

  app.get('/api/events', (c) =>
    streamSSE(c, async (stream) => {
      const send = (e: ServerEvent) => void stream.writeSSE({ data: JSON.stringify(e) }).catch(() => undefined);
      const off = o.subscribe((e) => {
        const job = e.run.job;
        if (e.type === 'run-started' || e.type === 'run-finished') return send({ type: e.type, run: runView(e.type === 'run-finished' ? e.run : e.run) });
        const ev = e.event;
        if (ev.type === 'progress') send({ type: 'progress', job, progress: progressView(ev) });
        else if (ev.type === 'warning' || ev.type === 'notice') send({ type: ev.type, job, message: ev.message });
        else send({ type: 'phase', job, phase: ev.phase });
      });
      await new Promise<void>((res) => stream.onAbort(res));
      off();
    }),
  );

  app.get('/api/jobs/:name/estimate', async (c) => c.json<EstimateView>(await estimateJob(state.findJob(c.req.param('name')))));

  app.get('/api/setup', async (c) => c.json<SetupInfo>({ home: homedir(), destinations: await listDestinations() }));

  /** What the wizard's step 3 chose, checked. */
  const whatOf = (b: Pick<SetupBody, 'what' | 'paths' | 'device' | 'includeImage'>): JobWhat => {
    const device = () => {
      if (typeof b.device !== 'string' || !isAbsolute(b.device)) throw new LifeboatError('usage', 'Give the drive to image by its full device path, such as /dev/sda.');
      return b.device;
    };
    if (b.what === 'image') return { kind: 'image', device: device() };
    const paths = b.what === 'home' ? [homedir()] : (Array.isArray(b.paths) ? b.paths : []).map((p) => String(p).trim()).filter(Boolean);
    for (const p of paths) if (!isAbsolute(p)) throw new LifeboatError('usage', `${p}: give the full path of the folder (starting with /).`);
    return b.includeImage === true ? { kind: 'image', device: device(), paths, excludes: [] } : { kind: 'files', paths, excludes: [] };
  };

  // The wizard asks as its choices change: which chosen sources share a physical disk with the destination.
  app.post('/api/setup/check', async (c) => {
    const b = await c.req.json<SetupCheckBody>();
    if (typeof b.destination !== 'string' || !isAbsolute(b.destination)) return c.json<SetupCheck>({ sameDisk: [] });
    return c.json<SetupCheck>({ sameDisk: await sameDiskSources(b.destination, whatOf(b)) });
  });

  app.post('/api/setup', async (c) => {
    const b = await c.req.json<SetupBody>();
    if (typeof b.name !== 'string' || typeof b.destination !== 'string' || typeof b.password !== 'string' || typeof b.schedule !== 'string') throw new LifeboatError('usage', 'Fill in every step of the form.');
    const what = whatOf(b);
    const r = await setUpJob(state, { name: b.name, destination: b.destination, password: b.password, what, schedule: b.schedule }, scheduler.clock.now());
    return c.json<SetupResponse>({ job: r.job.name, ...(r.recoveryKey ? { recoveryKey: r.recoveryKey } : {}) });
  });

  const snapshotRoute = async <T>(c: Context, fn: (repo: Repository, job: Job, id: string) => Promise<T>) => {
    const job = state.findJob(c.req.param('name')!);
    return repos.use(job, (repo) => fn(repo, job, c.req.param('id')!));
  };

  app.get('/api/jobs/:name/snapshots', async (c) => {
    const job = state.findJob(c.req.param('name'));
    const list = await repos.use(job, (repo) => repo.listSnapshots());
    const mine = list.filter((s) => s.snapshot.tags.includes(jobTag(job))).reverse();
    return c.json({
      snapshots: mine.map(({ id, snapshot: s }): SnapshotView => ({ id, time: s.time, kind: s.kind, paths: s.paths, ...(s.summary?.['totalBytes'] !== undefined ? { size: s.summary['totalBytes'] } : {}) })),
    });
  });

  app.get('/api/jobs/:name/find', async (c) => {
    const job = state.findJob(c.req.param('name'));
    const q = (c.req.query('q') ?? '').trim();
    if (!q) throw new LifeboatError('usage', 'Type a name to search for.');
    const pattern = /[*?[]/.test(q) ? q : `*${q}*`;
    return repos.use(job, async (repo) => {
      const found: FoundView[] = [];
      let more = false;
      for await (const f of findInSnapshots(repo, pattern, { filter: (s) => s.tags.includes(jobTag(job)), signal: c.req.raw.signal })) {
        if (found.length >= FIND_LIMIT) {
          more = true;
          break;
        }
        found.push({ snapshot: f.id, time: f.snapshot.time, path: f.path, shown: f.shown, type: f.node.type, size: f.node.size, ...(f.node.mtimeNs !== undefined ? { mtime: new Date(Number(f.node.mtimeNs / 1_000_000n)).toISOString() } : {}) });
      }
      return c.json<FindResponse>({ found, more });
    });
  });

  /** The folder at `path` of a snapshot, opened for paging (kept for its next pages and its count). */
  const listing = async (repo: Repository, id: string, path: string) => {
    const t = await openSnapshotTree(repo, id);
    const key = `${t.id}:${path}`;
    let l = listings.get(key);
    if (!l) {
      const dir = await t.resolve(path);
      if (dir.type !== 'dir') throw new LifeboatError('usage', `${path} is not a folder.`);
      l = await openListing(t.tree, dir);
      listings.set(key, l);
      for (const k of listings.keys()) if (listings.size > LISTINGS_KEPT) listings.delete(k);
    }
    return { t, l };
  };

  // The first page comes before a big folder is counted (that needs all of its listing); the page asks .../count for the number.
  app.get('/api/jobs/:name/snapshots/:id/list', (c) =>
    snapshotRoute(c, async (repo, _job, id) => {
      const path = checkedSnapshotPath(c.req.query('path') ?? '/');
      const offset = Math.max(0, Number(c.req.query('offset') ?? 0) || 0);
      const { t, l: all } = await listing(repo, id, path);
      const page = await all.slice(offset, offset + PAGE_SIZE + 1);
      const total = all.length;
      const entries = page.slice(0, PAGE_SIZE).map((n): EntryView => ({ name: nodeName(n), type: n.type, size: n.size, ...(n.mtimeNs !== undefined ? { mtime: new Date(Number(n.mtimeNs / 1_000_000n)).toISOString() } : {}) }));
      return c.json<ListingView>({ path: t.snapshot.kind === 'image' ? imageFolderName(path) : t.shownPath(path), entries, offset, more: page.length > PAGE_SIZE, ...(total !== undefined ? { total } : {}) });
    }),
  );

  app.get('/api/jobs/:name/snapshots/:id/count', (c) =>
    snapshotRoute(c, async (repo, _job, id) => {
      const { l } = await listing(repo, id, checkedSnapshotPath(c.req.query('path') ?? '/'));
      return c.json<CountView>({ total: await l.count() });
    }),
  );

  app.get('/api/jobs/:name/snapshots/:id/file', (c) =>
    snapshotRoute(c, async (repo, _job, id) => {
      const path = checkedSnapshotPath(c.req.query('path'));
      const t = await openSnapshotTree(repo, id);
      const node = await t.resolve(path);
      if (node.type !== 'file') throw new LifeboatError('usage', `${path} is not a file; restore a folder instead of downloading it.`);
      const it = readFile(t, node);
      const body = new ReadableStream<Uint8Array>({
        async pull(ctl) {
          const r = await it.next();
          if (r.done) ctl.close();
          else ctl.enqueue(r.value);
        },
        async cancel() {
          await it.return(undefined);
        },
      });
      const name = nodeName(node);
      return new Response(body, {
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(node.size), 'content-disposition': `attachment; filename*=UTF-8''${encodeURIComponent(name)}`, 'cache-control': 'no-store' },
      });
    }),
  );

  app.post('/api/jobs/:name/snapshots/:id/restore', (c) =>
    snapshotRoute(c, async (repo, _job, id) => {
      const b = await c.req.json<RestoreBody>();
      const path = checkedSnapshotPath(b.path);
      const original = b.target === undefined || b.target === null;
      if (!original && (typeof b.target !== 'string' || !isAbsolute(b.target) || b.target.split(/[\\/]/).includes('..'))) {
        throw new LifeboatError('unsafe-path', 'Refused: choose the folder to restore into by its full path (starting with /), without "..".');
      }
      const t = await openSnapshotTree(repo, id);
      await t.resolve(path); // a path that is not in the backup is told as such
      const warnings: string[] = [];
      const onEvent = (e: JobEvent) => void (e.type === 'warning' && warnings.length < 20 && warnings.push(e.message));
      if (t.snapshot.kind === 'image') {
        // A file or folder inside a partition of a drive image (/PARTITION/path), copied into the chosen folder.
        const [, partition, ...rest] = path.split('/');
        if (!partition || !/^\d+$/.test(partition)) throw new LifeboatError('usage', 'Choose a file or folder inside one of the drive\'s partitions.');
        if (original) throw new LifeboatError('usage', 'Files from a system image go into a folder you choose: pick "this folder" and type where.');
        const r = await restoreImageFiles(repo, t.id, [`${partition}:/${rest.join('/')}`], b.target, { onEvent }).finally(() => repo.unlockAll());
        return c.json<RestoreResponse>({ files: r.files, bytes: r.bytesWritten, targets: [b.target], keptChanged: 0, keptBoth: 0, warnings });
      }
      const overwrite = CHANGED.get(b.changed ?? 'keep');
      if (!overwrite) throw new LifeboatError('usage', 'Choose what happens to files changed since the backup: keep them, replace them, or keep both.');
      const r = await restoreFiles(repo, t.id, { ...(original ? { overwrite } : { target: b.target }), includes: [path], onEvent }).finally(() => repo.unlockAll());
      return c.json<RestoreResponse>({ files: r.summary.files, bytes: r.summary.bytesWritten, targets: r.targets, keptChanged: r.summary.keptChanged, keptBoth: r.summary.keptBoth, warnings });
    }),
  );

  /** A job's stored bytes after each of its successful runs (the last GROWTH_RUNS), from the run history. */
  const growthOf = (job: Job): GrowthView => {
    let stored = 0;
    const points: { time: number; stored: number }[] = [];
    for (const r of state.runs({ jobId: job.id, limit: GROWTH_RUNS }).reverse()) {
      if ((r.status !== 'ok' && r.status !== 'warnings') || r.finished === undefined) continue;
      stored = Math.max(0, stored + (r.figures.bytesAdded ?? 0) - (r.figures.bytesFreed ?? 0));
      points.push({ time: r.finished, stored });
    }
    return { job: job.name, points };
  };

  const rulesOf = (job: Job) => {
    const r = job.retention ?? {};
    const parts = Object.entries(r).map(([k, v]) => `${k} ${Array.isArray(v) ? v.join(',') : JSON.stringify(v)}`);
    return parts.length ? `keep ${parts.join(', ')}` : 'no rules (every version is kept)';
  };

  app.get('/api/jobs/:name/free-space', async (c) => {
    const job = state.findJob(c.req.param('name'));
    if (!job.retention) return c.json<FreeSpacePreview>({ rules: rulesOf(job), remove: [], keep: 0 });
    const f = await repos.use(job, (repo) => forgetSnapshots(repo, { policy: job.retention!, tags: [jobTag(job)], dryRun: true }).finally(() => repo.unlockAll()));
    const remove = f.groups.flatMap((g) => g.remove.map((x) => ({ id: x.id, time: x.time })));
    return c.json<FreeSpacePreview>({ rules: rulesOf(job), remove, keep: f.groups.reduce((n, g) => n + g.keep.length, 0) });
  });

  app.post('/api/jobs/:name/free-space', async (c) => {
    const job = state.findJob(c.req.param('name'));
    if (!job.retention) throw new LifeboatError('usage', `"${job.name}" has no rules for which versions to keep, so nothing is removed.`);
    if (scheduler.activeRun(job.id)) throw new LifeboatError('locked', `"${job.name}" is backing up now; free up space when it has finished.`);
    const r = await repos.use(job, async (repo) => {
      try {
        const f = await forgetSnapshots(repo, { policy: job.retention!, tags: [jobTag(job)] });
        if (f.removed.length === 0) return { removed: 0, freed: 0 };
        const p = await pruneRepository(repo, { maxUnusedPercent: RETENTION_MAX_UNUSED });
        return { removed: f.removed.length, freed: Math.max(0, p.bytes.freed) };
      } finally {
        await repo.unlockAll();
      }
    });
    repos.drop(job.repository); // prune rewrote the index
    return c.json<FreeSpaceResult>(r);
  });

  app.get('/api/space', async (c) => {
    const rows: { time: string; job: string; added: number; total: number }[] = [];
    const seen = new Set<string>();
    let repository = '';
    for (const job of state.jobs()) {
      if (seen.has(job.repository)) continue;
      seen.add(job.repository);
      repository ||= job.repository;
      const list = await repos.use(job, (repo) => repo.listSnapshots()).catch(() => []);
      for (const { snapshot: s } of list) {
        const owner = s.tags.find((t) => t.startsWith('job:'))?.slice(4) ?? '';
        rows.push({ time: s.time, job: owner, added: s.summary?.['bytesAdded'] ?? 0, total: s.summary?.['totalBytes'] ?? 0 });
      }
    }
    rows.sort((a, b) => a.time.localeCompare(b.time));
    return c.json<SpaceView>({ snapshots: rows, repository, growth: state.jobs().map(growthOf) });
  });

  return {
    app,
    close: async () => {
      unsubscribe();
      await repos.closeAll();
    },
  };
}

function capitalized(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
