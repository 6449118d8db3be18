/** Scheduled jobs: job add/list/run/remove, status, and service install/uninstall. The scheduler lives in jobs/; this parses and prints. */
import type { Command } from 'commander';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ExitCode, LifeboatError, formatBytes } from '../../util/errors.js';
import { dataDir, isUrl, stateDbPath } from '../../jobs/paths.js';
import { openRepositoryAt, passwordFileFor, readPasswordFile, writePasswordFile } from '../../jobs/open.js';
import { describeSchedule, parseSchedule, scheduleSpec } from '../../jobs/schedule.js';
import { Scheduler, type JobHealth } from '../../jobs/scheduler.js';
import type { Job, JobState, RunRecord } from '../../jobs/state.js';
import type { Context } from '../context.js';
import { localTime } from '../format.js';
import { formatDuration } from '../progress.js';
import { renderEvents } from '../events.js';
import { servicePlan } from '../service.js';
import { keepOptions, policyOf, type KeepOptions } from './maintenance.js';
import type { Run } from './repo.js';
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
  return job.what.kind === 'image' ? `the drive ${job.what.device} (system image)` : job.what.paths.join(', ');
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
  ctx.out(`  next run: ${Number.isFinite(h.nextRun) ? localTime(new Date(h.nextRun)) : 'none'}`);
  if (h.warning) ctx.out(`  warning: ${h.warning}`);
}

export function registerJobCommands(program: Command, run: Run): void {
  const job = program.command('job').description('scheduled backups that run by themselves while "lifeboat serve" runs (see "lifeboat service install")');

  keepOptions(
    job
      .command('add <name> [path...]')
      .description('add a scheduled backup of folders (or of a whole drive with --image) into the repository given by --repo')
      .requiredOption('--schedule <spec>', 'when: "daily 19:00", "weekly sun 19:00", "every 6h" or a cron expression such as "0 19 * * 0"')
      .option('--image <device>', 'back up this whole drive as a system image instead of folders')
      .option('--exclude <pattern>', 'skip paths matching a pattern (repeatable)', collect, [] as string[])
      .addHelpText('after', `\nThe repository password is checked, then kept for the unattended runs in a file only you can\nread (mode 0600) in Lifeboat's data folder.\n\nExamples:\n  lifeboat --repo /media/ann/Passport/lifeboat job add Documents ~/Documents --schedule "daily 19:00" --keep-daily 7 --keep-weekly 4\n  lifeboat --repo /media/ann/Passport/lifeboat job add System --image /dev/sda --schedule "weekly sun 19:00"\n`),
  ).action(
    run(async (ctx, name: string, paths: string[], o: KeepOptions & { schedule: string; image?: string; exclude: string[] }) => {
      const schedule = parseSchedule(o.schedule);
      if (o.image !== undefined && paths.length > 0) throw new LifeboatError('usage', 'A job backs up either folders or a drive (--image), not both; add two jobs.');
      if (o.image === undefined && paths.length === 0) throw new LifeboatError('usage', 'Say which folders the job backs up (or --image DEVICE for a whole drive).');
      for (const p of paths) if (!existsSync(p)) throw new LifeboatError('usage', `${p} does not exist. Check the path.`);
      const retention = policyOf(o);
      const location = isUrl(ctx.repoLocation()) ? ctx.repoLocation() : resolve(ctx.repoLocation());
      // The password is checked now, so a typo shows here and not as a failed run tonight.
      const password = await ctx.password();
      const repo = await openRepositoryAt(location, password);
      await repo.close();
      const passwordFile = passwordFileFor(dataDir(), location);
      writePasswordFile(passwordFile, password);
      await withState(async (state) => {
        const j = state.addJob(
          {
            name,
            what: o.image !== undefined ? { kind: 'image', device: resolve(o.image) } : { kind: 'files', paths: paths.map((p) => resolve(p)), excludes: o.exclude },
            repository: location,
            passwordFile,
            schedule: scheduleSpec(schedule),
            ...(Object.keys(retention).length > 0 ? { retention } : {}),
          },
          systemClock.now(),
        );
        const next = new Scheduler(state).nextRun(j);
        if (ctx.json) return ctx.printJson({ name: j.name, nextRun: new Date(next).toISOString(), passwordFile });
        ctx.report(`Added the job "${j.name}": backs up ${whatText(j)} to ${location} ${describeSchedule(schedule)}.`);
        ctx.report(`Next run: ${localTime(new Date(next))}. Jobs run while "lifeboat serve" runs; "lifeboat service install" starts it at login.`);
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
        const plan = servicePlan(process.platform, [process.execPath, resolve(process.argv[1] ?? 'lifeboat')]);
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
        const plan = servicePlan(process.platform, [process.execPath, resolve(process.argv[1] ?? 'lifeboat')]);
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
  const [cmd, args] = process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '""', url]] : ['xdg-open', [url]];
  if (process.platform === 'linux' && !process.env['DISPLAY'] && !process.env['WAYLAND_DISPLAY']) return;
  try {
    spawn(cmd, args, { stdio: 'ignore', detached: true }).on('error', () => undefined).unref();
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
