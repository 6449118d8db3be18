/**
 * The scheduler: runs each job at its slots, like anacron rather than cron. A job's next run is
 * its first slot after its last run started (or after it was set up). A slot missed while the
 * computer was off or asleep is run once, soon after the scheduler starts, not once per missed
 * slot. A job never runs twice at once (the claim is in the job database, so this holds across
 * processes), and jobs on one repository run one after the other. A failed run is retried at the
 * next slot. Time of day comes from a Clock only, so tests drive it with a FakeClock and `tick()`.
 * It holds no timer while nothing is due soon beyond one wake-up (no polling loop).
 *
 * A continuous job (schedule "continuous": continuous protection, a mirror that follows changes) is
 * started at once and runs until the scheduler stops; if it fails it is started again a minute
 * later, and once cancelled it waits for the next start. It does not hold its repository's turn:
 * it locks the repository only while it writes, and other jobs' runs wait for that lock.
 */
import { resolve } from 'node:path';
import { systemClock, type Clock } from '../util/clock.js';
import { LifeboatError } from '../util/errors.js';
import type { JobEvent } from './events.js';
import { isUrl } from './paths.js';
import { isContinuous, runJob, type RunJobOptions } from './run.js';
import { expectedIntervalMs, nextSlot, parseSchedule } from './schedule.js';
import type { Job, JobState, RunRecord, RunTrigger } from './state.js';

export type SchedulerEvent =
  | { readonly type: 'run-started'; readonly run: RunRecord }
  | { readonly type: 'run-event'; readonly run: RunRecord; readonly event: JobEvent }
  | { readonly type: 'run-finished'; readonly run: RunRecord };

export interface SchedulerOptions extends Pick<RunJobOptions, 'lockRetryMs' | 'lockWaitMs' | 'settleMs'> {
  readonly clock?: Clock;
  /** How long after the scheduler starts a missed slot is run (anacron's delay): default one minute. */
  readonly catchUpDelayMs?: number;
  readonly onEvent?: (e: SchedulerEvent) => void;
  /** Progress events passed on per run, at most this often (ms): default 100, at most ten a second. */
  readonly progressIntervalMs?: number;
}

/** A run in progress: its record, how to cancel it, and its latest progress. */
export interface ActiveRun {
  /** Its record (refreshed after each snapshot of a continuous job). */
  run: RunRecord;
  readonly controller: AbortController;
  readonly done: Promise<RunRecord>;
  progress?: JobEvent;
  phase?: string;
}

/** How a job stands: for the overview, `lifeboat status`, and the "no backup for N days" warning. */
export interface JobHealth {
  readonly job: Job;
  readonly lastRun?: RunRecord;
  readonly lastSuccess?: RunRecord;
  readonly nextRun: number;
  readonly running: boolean;
  /** True when the last run succeeded within the job's expected interval (or it is new and its first slot is still to come). */
  readonly ok: boolean;
  /** A sentence for a banner, when something needs attention. */
  readonly warning?: string;
}

const DAY = 24 * 3600_000;
/** A wake-up at least this often, so a computer that slept or had its clock changed is noticed. */
const MAX_SLEEP_MS = 10 * 60_000;
/** A continuous job that stopped (a watched folder missing at start, say) is started again this much later. */
export const CONTINUOUS_RETRY_MS = 60_000;

export class Scheduler {
  readonly clock: Clock;
  private readonly startedAt: number;
  private readonly active = new Map<number, ActiveRun>();
  /** Per repository: the end of the last run queued on it, so runs on one repository take turns. */
  private readonly queues = new Map<string, Promise<unknown>>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    readonly state: JobState,
    private readonly o: SchedulerOptions = {},
  ) {
    this.clock = o.clock ?? systemClock;
    this.startedAt = this.clock.now();
  }

  /** When `job` runs next (ms since 1970): its first slot after its last run started, a missed one moved to just after start-up. */
  nextRun(job: Job): number {
    const last = this.state.lastRun(job.id);
    if (isContinuous(job)) {
      if (!last || last.status === 'running') return this.startedAt;
      if (last.status === 'cancelled') return last.started >= this.startedAt ? Infinity : this.startedAt; // stopped by hand: until the next start
      return Math.max(this.startedAt, (last.finished ?? last.started) + CONTINUOUS_RETRY_MS);
    }
    const due = nextSlot(parseSchedule(job.schedule), last?.started ?? job.created);
    return due < this.startedAt ? this.startedAt + (this.o.catchUpDelayMs ?? 60_000) : due;
  }

  /** Starts every job that is due and not running; then sleeps until the next one is due. */
  tick(): void {
    if (this.stopped) return;
    const now = this.clock.now();
    let soonest = Infinity;
    for (const job of this.state.jobs()) {
      if (this.active.has(job.id)) continue;
      const due = this.nextRun(job);
      if (due <= now) {
        const missed = !isContinuous(job) && nextSlot(parseSchedule(job.schedule), this.state.lastRun(job.id)?.started ?? job.created) < this.startedAt;
        this.start(job, missed ? 'catch-up' : 'schedule');
      } else soonest = Math.min(soonest, due);
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.armed && Number.isFinite(soonest)) {
      this.timer = setTimeout(() => this.tick(), Math.max(1000, Math.min(soonest - this.clock.now(), MAX_SLEEP_MS)));
    }
  }

  private armed = false;

  /** Runs by itself from now on: a timer wakes it for the next due job. */
  start(): void;
  start(job: Job, trigger: RunTrigger): ActiveRun | undefined;
  start(job?: Job, trigger: RunTrigger = 'manual'): ActiveRun | undefined {
    if (job === undefined) {
      this.armed = true;
      this.tick();
      return undefined;
    }
    if (this.active.has(job.id)) return this.active.get(job.id);
    const run = this.state.claimRun(job, trigger, this.clock.now());
    if (!run) return undefined; // another process is running it
    const controller = new AbortController();
    const key = isUrl(job.repository) ? job.repository : resolve(job.repository);
    // A continuous run never ends by itself: it does not make the repository's other jobs wait for it.
    const queued = !isContinuous(job);
    const before = (queued && this.queues.get(key)) || Promise.resolve();
    const self: { entry?: ActiveRun } = {};
    const done = before.then(() => this.execute(job, self.entry!));
    if (queued) this.queues.set(key, done);
    const entry: ActiveRun = { run, controller, done };
    self.entry = entry;
    this.active.set(job.id, entry);
    this.emit({ type: 'run-started', run });
    void done.finally(() => {
      if (this.queues.get(key) === done) this.queues.delete(key);
    });
    return entry;
  }

  /** Runs `name` now (or joins its run in progress) and resolves when it ends. */
  async runNow(name: string): Promise<RunRecord> {
    const job = this.state.findJob(name);
    const a = this.start(job, 'manual');
    if (!a) throw new LifeboatError('locked', `The job "${name}" is running already in another Lifeboat process. Wait for it to finish.`);
    return a.done;
  }

  /** Cancels the run of `name` in progress; it stops as a crash would, leaving the repository intact. */
  cancel(name: string): boolean {
    const job = this.state.job(name);
    const a = job && this.active.get(job.id);
    if (!a) return false;
    a.controller.abort();
    return true;
  }

  activeRun(jobId: number): ActiveRun | undefined {
    return this.active.get(jobId);
  }

  /** Resolves when no run is going on. */
  async idle(): Promise<void> {
    while (this.active.size > 0) await Promise.allSettled([...this.active.values()].map((a) => a.done));
  }

  /** Stops the timer and cancels the runs in progress, waiting for them to stop. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const a of this.active.values()) a.controller.abort();
    await this.idle();
  }

  health(job: Job): JobHealth {
    if (isContinuous(job)) return this.continuousHealth(job);
    const now = this.clock.now();
    const schedule = parseSchedule(job.schedule);
    const interval = expectedIntervalMs(schedule, now);
    const late = interval + Math.max(3600_000, interval / 10);
    const lastRun = this.state.lastRun(job.id);
    const lastSuccess = this.state.lastSuccess(job.id);
    const running = this.active.has(job.id) || lastRun?.status === 'running';
    const finished = this.state.runs({ jobId: job.id, limit: 5 }).find((r) => r.status !== 'running');
    const okSince = lastSuccess?.started ?? job.created;
    const ok = finished ? finished.id === lastSuccess?.id && now - finished.started <= late : now - job.created <= late;
    const days = Math.floor((now - okSince) / DAY);
    const warnAfter = Math.max(3 * DAY, 2 * interval);
    const warning =
      now - okSince >= warnAfter
        ? lastSuccess
          ? `No successful backup of "${job.name}" for ${days} days.`
          : `"${job.name}" has not made a successful backup since it was set up ${days} days ago.`
        : finished && finished.status === 'failed'
          ? `The last backup of "${job.name}" failed: ${finished.message ?? 'see its history'}`
          : undefined;
    return { job, ...(lastRun ? { lastRun } : {}), ...(lastSuccess ? { lastSuccess } : {}), nextRun: this.nextRun(job), running, ok, ...(warning ? { warning } : {}) };
  }

  /** A continuous job is fine while it runs; when it does not, the reason is the warning. */
  private continuousHealth(job: Job): JobHealth {
    const lastRun = this.state.lastRun(job.id);
    const lastSuccess = this.state.lastSuccess(job.id);
    const running = this.active.has(job.id) || lastRun?.status === 'running';
    const warning = running
      ? undefined
      : lastRun?.status === 'failed'
        ? `Continuous protection "${job.name}" stopped: ${lastRun.message ?? 'see its history'} It is started again in a minute.`
        : lastRun?.status === 'cancelled'
          ? `Continuous protection "${job.name}" was stopped by hand; it starts again with Lifeboat, or run it now.`
          : `Continuous protection "${job.name}" is not running; it runs while "lifeboat serve" runs.`;
    return { job, ...(lastRun ? { lastRun } : {}), ...(lastSuccess ? { lastSuccess } : {}), nextRun: this.nextRun(job), running, ok: running, ...(warning ? { warning } : {}) };
  }

  private emit(e: SchedulerEvent): void {
    try {
      this.o.onEvent?.(e);
    } catch {
      /* a listener's failure must not stop a backup */
    }
  }

  private async execute(job: Job, a: ActiveRun): Promise<RunRecord> {
    const minGap = this.o.progressIntervalMs ?? 100;
    let lastProgress = -Infinity;
    const onEvent = (event: JobEvent) => {
      if (event.type === 'progress') {
        a.progress = event;
        const t = performance.now();
        if (t - lastProgress < minGap) return;
        lastProgress = t;
      } else {
        if (event.type === 'phase') a.phase = event.phase;
        this.state.addEvent(a.run.id, { time: this.clock.now(), type: event.type, message: event.type === 'phase' ? event.phase : event.message, ...(event.type !== 'phase' && event.path ? { path: event.path } : {}) });
      }
      this.emit({ type: 'run-event', run: a.run, event });
    };
    try {
      const out = a.controller.signal.aborted
        ? { status: 'cancelled' as const, message: 'Cancelled before it started.', figures: {} }
        : await runJob(job, {
            signal: a.controller.signal,
            onEvent,
            // Kept in the run's record, not as events: a continuous run may save thousands of snapshots.
            onUpdate: (figures, snapshot) => {
              this.state.updateRun(a.run.id, figures, snapshot);
              a.run = this.state.run(a.run.id) ?? a.run;
              a.phase = snapshot ? `Saved snapshot ${snapshot.slice(0, 8)}; watching for changes` : 'Brought up to date; watching for changes';
              this.emit({ type: 'run-event', run: a.run, event: { type: 'phase', phase: a.phase } });
            },
            ...(this.o.settleMs !== undefined ? { settleMs: this.o.settleMs } : {}),
            ...(this.o.lockRetryMs !== undefined ? { lockRetryMs: this.o.lockRetryMs } : {}), ...(this.o.lockWaitMs !== undefined ? { lockWaitMs: this.o.lockWaitMs } : {}) });
      if (a.progress) this.emit({ type: 'run-event', run: a.run, event: a.progress }); // the last figures, past the throttle
      // A continuous run keeps the figures it recorded as it went.
      this.state.finishRun(a.run.id, out.status, out.message, { ...a.run.figures, ...out.figures }, this.clock.now(), out.snapshot);
    } catch (e) {
      this.state.finishRun(a.run.id, 'failed', `Unexpected error (this is a bug; please report it): ${e instanceof Error ? e.message : String(e)}`, {}, this.clock.now());
    } finally {
      this.active.delete(job.id);
    }
    const run = this.state.run(a.run.id)!;
    this.emit({ type: 'run-finished', run });
    if (this.armed) this.tick();
    return run;
  }
}
