/** Scheduled jobs: job add/list/run/remove, status, and service install/uninstall. The scheduler lives in jobs/; this parses and prints. */
import type { Command } from 'commander';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ExitCode, LifeboatError, formatBytes } from '../../util/errors.js';
import { dataDir, isUrl, stateDbPath } from '../../jobs/paths.js';
import { openRepositoryAt, passwordFileFor, readPasswordFile, tokenFileFor, writePasswordFile } from '../../jobs/open.js';
import { describeSchedule, parseSchedule, scheduleSpec } from '../../jobs/schedule.js';
import { Scheduler, type JobHealth } from '../../jobs/scheduler.js';
import { describeWhat, type Job, type JobState, type JobWhat, type RunRecord, type ServerAccess } from '../../jobs/state.js';
import type { Repository } from '../../repo/repository.js';
import { isRemoteUrl, normalizeFingerprint, parseRemoteUrl } from '../../store/remote.js';
import type { Context, SourceAccess, SourceOptions } from '../context.js';
import { localTime } from '../format.js';
import { formatDuration } from '../progress.js';
import { renderEvents } from '../events.js';
import { lifeboatCommandLine } from '../../util/command-line.js';
import { browserCommand, servicePlan } from '../service.js';
import { keepOptions, policyOf, type KeepOptions } from './maintenance.js';
import { days } from './mirror.js';
import type { Run } from './repo.js';
import { addPartitionOptions, partitionChoice } from './image.js';
import { systemClock } from '../../util/clock.js';

const collect = (v: string, prev: string[]) => [...prev, v];

/** Opens the job database for the length of `fn`. */
async function withState<T>(fn: (state: JobState) => Promise<T>): Promise<T> {
  // Loaded here, not at start-up: every other command starts without SQLite.
  const { JobState } = await import('../../jobs/state.js');
  const state = JobState.open(stateDbPath());
  try {
    return await fn(state);
  } finally {
    state.close();
  }
}

export function whatText(job: Job): string {
  return describeWhat(job.what);
}

/** A run in one short phrase: "ok, 2026-12-05 19:00:03 +01:00, 1 min, 12 MB added". */
export function runText(r: RunRecord): string {
  const how = r.status === 'ok' ? 'ok' : r.status === 'warnings' ? 'ok with warnings' : r.status;
  const parts = [how, localTime(new Date(r.started))];
  if (r.finished !== undefined) parts.push(formatDuration((r.finished - r.started) / 1000));
  if (r.figures.bytesAdded !== undefined) parts.push(`${formatBytes(r.figures.bytesAdded)} added`);
  return parts.join(', ') + (r.status === 'failed' && r.message ? `: ${r.message}` : '');
}

function healthJson(h: JobHealth): Record<string, unknown> {
  return {
    name: h.job.name,
    what: h.job.what,
    repository: h.job.repository,
    schedule: h.job.schedule,
    retention: h.job.retention ?? null,
    lastRun: h.lastRun ?? null,
    lastSuccess: h.lastSuccess ? new Date(h.lastSuccess.started).toISOString() : null,
    nextRun: Number.isFinite(h.nextRun) ? new Date(h.nextRun).toISOString() : null,
    running: h.running,
    ok: h.ok,
    warning: h.warning ?? null,
  };
}

function printHealth(ctx: Context, h: JobHealth): void {
  ctx.out(`${h.job.name}: ${whatText(h.job)} -> ${h.job.repository}, ${describeSchedule(parseSchedule(h.job.schedule))}`);
  ctx.out(`  last run: ${h.running ? 'running now' : h.lastRun ? runText(h.lastRun) : 'none yet'}`);
  if (h.job.schedule === 'continuous') {
    const snap = h.lastRun?.snapshot;
    if (snap !== undefined) ctx.out(`  last snapshot: ${snap.slice(0, 8)}`);
  } else ctx.out(`  next run: ${Number.isFinite(h.nextRun) ? localTime(new Date(h.nextRun)) : 'none'}`);
  if (h.warning) ctx.out(`  warning: ${h.warning}`);
}

/**
 * Opens the repository at `location` with `password` (so a mistake shows now), then keeps the
 * password for unattended runs in a private file, and for a Lifeboat server also this computer's
 * token (a private file beside it) and the certificate fingerprint it trusted. The caller closes the repository.
 */
async function keepAccess(ctx: Context, location: string, password: string, source?: SourceAccess): Promise<{ repo: Repository; passwordFile: string; server?: ServerAccess }> {
  const remote = ctx.remoteFor(location, source);
  const repo = await openRepositoryAt(location, password, { remote });
  const passwordFile = passwordFileFor(dataDir(), location);
  writePasswordFile(passwordFile, password);
  if (!isRemoteUrl(location)) return { repo, passwordFile };
  const tokenFile = tokenFileFor(passwordFile);
  writePasswordFile(tokenFile, ctx.serverToken(source && { ...source, location }));
  // After the first connection the fingerprint is known (LIFEBOAT_SERVER_FINGERPRINT, remembered, or just confirmed); plain http has none.
  const pinned = parseRemoteUrl(location).origin.startsWith('https:') ? ctx.serverPin(location, source !== undefined).expected : undefined;
  const fingerprint = pinned === undefined ? undefined : normalizeFingerprint(pinned);
  return { repo, passwordFile, server: { tokenFile, ...(fingerprint ? { fingerprint } : {}) } };
}

export function registerJobCommands(program: Command, run: Run): void {
  const job = program.command('job').description('scheduled backups that run by themselves while "lifeboat serve" runs (see "lifeboat service install")');

  keepOptions(
    addPartitionOptions(
      job
        .command('add <name> [path...]')
        .description('add a scheduled backup of folders (or of a drive with --image, with or without folders, or a copy of another repository with --copy-from) into the repository given by --repo, or a mirror of a folder (--mirror-to)')
        .option('--schedule <spec>', 'when: "daily 19:00", "weekly sun 19:00", "every 6h" or a cron expression such as "0 19 * * 0"')
        .option('--continuous', 'instead of a schedule: follow changes as they happen while "lifeboat serve" runs (a snapshot a few seconds after changes, thinned like Time Machine unless --keep-* says otherwise)')
        .option('--image <device>', 'back up this drive as a system image (with --partitions or --exclude-partition: only some of its partitions); folders given too are backed up after it, in the same run')
        .option('--copy-from <repo>', 'copy the snapshots of this repository into --repo (as "lifeboat copy --from"; its password: $LIFEBOAT_FROM_PASSWORD or --from-password-file)')
        .option('--from-password-file <file>', 'read the password of the --copy-from repository from a file')
        .option('--from-token-file <file>', 'the --copy-from repository is on another Lifeboat server than --repo: read its token from a file (or set LIFEBOAT_FROM_TOKEN; its fingerprint: LIFEBOAT_FROM_SERVER_FINGERPRINT); kept with the job as its own')
        .option('--mirror-to <folder>', 'keep this folder a plain copy of the one folder given, instead of backing up into a repository (see "lifeboat mirror")')
        .option('--keep-days <n>', 'with --mirror-to: days to keep deleted and overwritten files in .lifeboat-versions', days)
        .option('--exclude <pattern>', 'skip paths matching a pattern (repeatable)', collect, [] as string[])
        .addHelpText(
          'after',
          `\nThe repository password is checked, then kept for the unattended runs in a file only you can\nread (mode 0600) in Lifeboat's data folder; for a repository on a Lifeboat server (lifeboat:…) so is\nthis computer's token (LIFEBOAT_TOKEN or --token-file), with the server's certificate fingerprint.\nA mirror needs no repository or password.\n\nExamples:\n  lifeboat --repo /media/ann/Passport/lifeboat job add Documents ~/Documents --schedule "daily 19:00" --keep-daily 7 --keep-weekly 4\n  lifeboat --repo /media/ann/Passport/lifeboat job add System --image /dev/sda --schedule "weekly sun 19:00"\n  lifeboat --repo /media/ann/Passport/lifeboat job add Nightly --image /dev/sda --exclude-partition 3 ~/Documents --schedule "daily 02:00"\n  lifeboat --repo /media/ann/Passport/lifeboat job add Home ~ --continuous\n  lifeboat job add Photos ~/Pictures --mirror-to /media/ann/Passport/Pictures --continuous\n  lifeboat --repo s3:https://s3.example.com/backups job add Offsite --copy-from /media/ann/Passport/lifeboat --schedule "daily 02:00"\n`,
        ),
    ),
  ).action(
    run(async (ctx, name: string, paths: string[], o: KeepOptions & SourceOptions & { schedule?: string; continuous?: boolean; image?: string; copyFrom?: string; mirrorTo?: string; keepDays?: number; exclude: string[]; partitions: string[]; excludePartition: string[] }) => {
      if ((o.schedule === undefined) === (o.continuous !== true)) throw new LifeboatError('usage', 'Say when the job runs: --schedule "daily 19:00" (or another schedule), or --continuous to follow changes as they happen.');
      const schedule = parseSchedule(o.continuous ? 'continuous' : o.schedule!);
      const partitions = partitionChoice(o);
      if (partitions && o.image === undefined) throw new LifeboatError('usage', '--partitions and --exclude-partition choose partitions of the drive given with --image.');
      if (o.mirrorTo !== undefined) {
        if (paths.length !== 1 || o.image !== undefined || o.copyFrom !== undefined) throw new LifeboatError('usage', 'A mirror copies one folder: give exactly one path with --mirror-to (and no --image or --copy-from).');
        if (o.exclude.length > 0 || Object.keys(policyOf(o)).length > 0) throw new LifeboatError('usage', 'A mirror has no --exclude or --keep-* rules; --keep-days says how long it keeps deleted and overwritten files.');
        const { setUpMirrorJob } = await import('../../jobs/setup.js');
        return withState(async (state) => {
          const j = setUpMirrorJob(state, { name, source: paths[0]!, destination: o.mirrorTo!, schedule: scheduleSpec(schedule), ...(o.keepDays !== undefined ? { keepDays: o.keepDays } : {}) }, systemClock.now());
          if (ctx.json) return ctx.printJson({ name: j.name, source: paths[0], destination: j.repository });
          ctx.report(`Added the job "${j.name}": mirrors ${resolve(paths[0]!)} into ${j.repository} ${describeSchedule(schedule)}.`);
          ctx.report('Jobs run while "lifeboat serve" runs; "lifeboat service install" starts it at login.');
        });
      }
      if (o.keepDays !== undefined) throw new LifeboatError('usage', '--keep-days is for mirrors (--mirror-to); a backup keeps snapshots by its --keep-* rules.');
      if (o.image !== undefined && schedule.kind === 'continuous') throw new LifeboatError('usage', 'A system image cannot be taken continuously; give it a --schedule such as "weekly sun 19:00".');
      if (o.copyFrom !== undefined && schedule.kind === 'continuous') throw new LifeboatError('usage', 'A copy job runs at set times; give it a --schedule such as "daily 02:00".');
      const retention = policyOf(o);
      if (o.copyFrom !== undefined) {
        if (paths.length > 0 || o.image !== undefined) throw new LifeboatError('usage', 'A copy job (--copy-from) copies snapshots only; back up folders or a drive with another job.');
        if (Object.keys(retention).length > 0) throw new LifeboatError('usage', 'A copy job keeps every snapshot it copies; thin the copy with "lifeboat forget" if you like.');
      } else if (o.image !== undefined && paths.length === 0 && o.exclude.length > 0) throw new LifeboatError('usage', '--exclude skips files in folders; give the folders to back up with the image, or leave partitions out with --exclude-partition.');
      else if (o.image === undefined && paths.length === 0) throw new LifeboatError('usage', 'Say which folders the job backs up (or --image DEVICE for a whole drive, or --copy-from REPO to copy a repository).');
      for (const p of paths) if (!existsSync(p)) throw new LifeboatError('usage', `${p} does not exist. Check the path.`);
      const location = isUrl(ctx.repoLocation()) ? ctx.repoLocation() : resolve(ctx.repoLocation());
      // The passwords (and a server's token) are checked now, so a typo shows here and not as a failed run tonight.
      const dest = await keepAccess(ctx, location, await ctx.password());
      let what: JobWhat;
      try {
        if (o.copyFrom !== undefined) {
          const from = isUrl(o.copyFrom) ? o.copyFrom : resolve(o.copyFrom);
          const source = await keepAccess(ctx, from, await ctx.sourcePassword(o.fromPasswordFile), o.fromTokenFile !== undefined ? { tokenFile: o.fromTokenFile } : {});
          await source.repo.close();
          what = { kind: 'copy', from, fromPasswordFile: source.passwordFile, ...(source.server ? { fromServer: source.server } : {}) };
        } else if (o.image !== undefined) {
          const folders = paths.length > 0 ? { paths: paths.map((p) => resolve(p)), excludes: o.exclude } : {};
          what = { kind: 'image', device: resolve(o.image), ...(partitions ? { partitions } : {}), ...folders };
        } else what = { kind: 'files', paths: paths.map((p) => resolve(p)), excludes: o.exclude };
      } finally {
        await dest.repo.close();
      }
      const passwordFile = dest.passwordFile;
      await withState(async (state) => {
        const j = state.addJob(
          {
            name,
            what,
            repository: location,
            passwordFile,
            ...(dest.server ? { server: dest.server } : {}),
            schedule: scheduleSpec(schedule),
            ...(Object.keys(retention).length > 0 ? { retention } : {}),
          },
          systemClock.now(),
        );
        const next = new Scheduler(state).nextRun(j);
        if (ctx.json) return ctx.printJson({ name: j.name, nextRun: Number.isFinite(next) ? new Date(next).toISOString() : null, passwordFile, ...(dest.server ? { tokenFile: dest.server.tokenFile } : {}) });
        if (j.what.kind === 'copy') ctx.report(`Added the job "${j.name}": copies the snapshots of ${j.what.from} to ${location} ${describeSchedule(schedule)}.`);
        else ctx.report(`Added the job "${j.name}": backs up ${whatText(j)} to ${location} ${describeSchedule(schedule)}.`);
        if (schedule.kind === 'continuous') ctx.report('It runs while "lifeboat serve" runs; "lifeboat service install" starts it at login.');
        else ctx.report(`Next run: ${localTime(new Date(next))}. Jobs run while "lifeboat serve" runs; "lifeboat service install" starts it at login.`);
      });
    }),
  );

  job
    .command('list')
    .description('list the jobs with their last and next run')
    .action(
      run(async (ctx) =>
        withState(async (state) => {
          const s = new Scheduler(state);
          const all = state.jobs().map((j) => s.health(j));
          if (ctx.json) return ctx.printJson(all.map(healthJson));
          if (all.length === 0) return ctx.out('There are no jobs yet. Add one with "lifeboat job add NAME PATH --schedule "daily 19:00"".');
          for (const h of all) printHealth(ctx, h);
        }),
      ),
    );

  job
    .command('run <name>')
    .description('run a job now and wait for it (exit code as for backup: 0 ok, 3 warnings, 1 failed)')
    .action(
      run(async (ctx, name: string) =>
        withState(async (state) => {
          const render = renderEvents(ctx);
          const s = new Scheduler(state, {
            onEvent: (e) => {
              if (e.type !== 'run-event') return;
              if (e.event.type === 'phase') ctx.info(e.event.phase);
              else render(e.event);
            },
          });
          const onAbort = () => s.cancel(name);
          ctx.abort.signal.addEventListener('abort', onAbort);
          const r = await s.runNow(name).finally(() => ctx.abort.signal.removeEventListener('abort', onAbort));
          render.done();
          if (ctx.json) ctx.printJson(r);
          else ctx.out(`${name}: ${runText(r)}${r.status !== 'failed' && r.message ? ` (${r.message})` : ''}`);
          return r.status === 'ok' ? ExitCode.ok : r.status === 'warnings' ? ExitCode.partial : r.status === 'cancelled' ? ExitCode.interrupted : ExitCode.failure;
        }),
      ),
    );

  job
    .command('remove <name>')
    .description('remove a job (its snapshots stay in the repository)')
    .action(
      run(async (ctx, name: string) =>
        withState(async (state) => {
          state.findJob(name);
          state.removeJob(name);
          ctx.report(`Removed the job "${name}". Its snapshots stay in the repository.`);
        }),
      ),
    );

  program
    .command('status')
    .description('how every job stands: last and next run; exit code 0 only when every job last succeeded within its schedule')
    .action(
      run(async (ctx) =>
        withState(async (state) => {
          const s = new Scheduler(state);
          const all = state.jobs().map((j) => s.health(j));
          if (ctx.json) ctx.printJson({ ok: all.every((h) => h.ok), jobs: all.map(healthJson) });
          else if (all.length === 0) ctx.out('There are no jobs yet. Run "lifeboat serve" to set one up in your browser, or use "lifeboat job add".');
          else for (const h of all) printHealth(ctx, h);
          return all.every((h) => h.ok) ? ExitCode.ok : ExitCode.failure;
        }),
      ),
    );

  const service = program.command('service').description('start "lifeboat serve" at login (a systemd user unit, a launchd agent, or a Windows task)');
  service
    .command('install')
    .description('write the service file and print the command that turns it on')
    .action(
      run(async (ctx) => {
        const plan = servicePlan(process.platform, lifeboatCommandLine(resolve(process.argv[1] ?? 'lifeboat')));
        if (plan.file && plan.text) {
          mkdirSync(dirname(plan.file), { recursive: true });
          writeFileSync(plan.file, plan.text);
          ctx.out(`Wrote ${plan.file}.`);
        }
        ctx.out(`Turn it on with:\n  ${plan.enable}`);
      }),
    );
  service
    .command('uninstall')
    .description('remove the service file and print the command that turns it off')
    .action(
      run(async (ctx) => {
        const plan = servicePlan(process.platform, lifeboatCommandLine(resolve(process.argv[1] ?? 'lifeboat')));
        ctx.out(`Turn it off with:\n  ${plan.disable}`);
        if (plan.file && existsSync(plan.file)) {
          rmSync(plan.file);
          ctx.out(`Removed ${plan.file}.`);
        }
      }),
    );
}

/** The dashboard's secret, kept between starts (mode 0600) so a bookmarked address keeps working. */
function dashboardToken(): string {
  const file = join(dataDir(), 'dashboard-token');
  try {
    return readPasswordFile(file);
  } catch {
    const token = randomBytes(24).toString('base64url');
    writePasswordFile(file, token);
    return token;
  }
}

/** Opens `url` in the user's browser when there is a desktop to show it on; a failure only means the user opens it by hand. */
function openBrowser(url: string): void {
  const b = browserCommand(process.platform, url);
  if (!b) return;
  try {
    spawn(b.command, b.args, { stdio: 'ignore', detached: true, windowsHide: true }).on('error', () => undefined).unref();
  } catch {
    /* no browser: the URL is printed */
  }
}

/** Whether a Lifeboat dashboard with this token answers at `url`. */
async function answers(url: string, token: string): Promise<boolean> {
  try {
    const res = await fetch(new URL('/api/overview', url), { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(3000) });
    return res.ok;
  } catch {
    return false;
  }
}

export function registerServeCommand(program: Command, run: Run): void {
  program
    .command('serve')
    .description('run the scheduler and the dashboard (a web page on this computer); prints the dashboard address first')
    .option('--port <n>', 'the port to listen on', '8123')
    .option('--listen <address>', 'the address to listen on (default 127.0.0.1: only this computer can connect)', '127.0.0.1')
    .option('--no-open', 'do not open the dashboard in a browser')
    .action(
      run(async (ctx, o: { port: string; listen: string; open: boolean }) => {
        const port = Number(o.port);
        if (!Number.isInteger(port) || port < 0 || port > 65535) throw new LifeboatError('usage', `--port ${o.port}: give a port number from 1 to 65535.`);
        const { startDashboard } = await import('../../server/serve.js'); // the HTTP stack only for serve
        const token = dashboardToken();
        let d: Awaited<ReturnType<typeof startDashboard>>;
        try {
          d = await startDashboard({ statePath: stateDbPath(), port, listen: o.listen, token });
        } catch (e) {
          // Lifeboat already runs there (as a service, say): then this opens its dashboard.
          const url = `http://${o.listen.includes(':') ? `[${o.listen}]` : o.listen}:${port}/?token=${token}`;
          if (!(e instanceof LifeboatError && e.code === 'conflict') || !(await answers(url, token))) throw e;
          ctx.out(url);
          ctx.info('Lifeboat is already running; this is the address of its dashboard.');
          if (o.open) openBrowser(url);
          return;
        }
        ctx.out(d.url);
        if (o.listen !== '127.0.0.1' && o.listen !== 'localhost' && o.listen !== '::1') ctx.warn(`The dashboard listens on ${o.listen}: other computers that can reach it see its login page; keep the address with its key private.`);
        ctx.info('Lifeboat is running: backups run at their times while this runs. Stop it with Ctrl+C; "lifeboat service install" starts it at login.');
        if (o.open) openBrowser(d.url);
        await new Promise<void>((res) => {
          if (ctx.abort.signal.aborted) return res();
          ctx.abort.signal.addEventListener('abort', () => res());
          process.once('SIGTERM', () => res());
        });
        await d.close();
      }),
    );
}
