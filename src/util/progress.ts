/**
 * Progress of a long operation in one shape for every operation: work done, the total when it is
 * really known (never guessed), the rate and the time left. The Estimator turns a stream of
 * (time, done) samples into that shape: the rate is measured over a sliding window (so a fast
 * start, such as skipping unchanged files, does not promise a fast finish), and a time left is
 * given only once there is a total and enough of the operation has been seen to measure it.
 */
import { performance } from 'node:perf_hooks';

export interface ProgressState {
  readonly done: number;
  /** Undefined until the total is known (a size walk still running, or no total at all). */
  readonly total: number | undefined;
  /** Units (bytes) per second. */
  readonly rate: number;
  /** Seconds left; undefined without a total or before the rate can be measured. */
  readonly eta: number | undefined;
}

/** The rate is measured over this many seconds of recent samples. */
const WINDOW_SECONDS = 30;
/** No time left is promised before the operation has been watched this long. */
const MIN_SECONDS = 2;

export class Estimator {
  private readonly samples: { t: number; done: number }[] = [];
  private readonly started: number;

  constructor(private readonly now: () => number = () => performance.now() / 1000) {
    this.started = now();
  }

  /** Records `done` at the current time and returns the progress state. */
  sample(done: number, total: number | undefined): ProgressState {
    const t = this.now();
    const s = this.samples;
    s.push({ t, done });
    // Keep one sample at or before the window's start as the anchor of the measurement.
    while (s.length > 2 && s[1]!.t <= t - WINDOW_SECONDS) s.shift();
    const first = s[0]!;
    const span = t - first.t;
    const rate = span >= 1 ? (done - first.done) / span : t > this.started ? done / (t - this.started) : 0;
    const known = total !== undefined && total >= done ? total : undefined;
    const eta = known !== undefined && rate > 0 && done > 0 && t - this.started >= MIN_SECONDS ? (known - done) / rate : undefined;
    return { done, total: known, rate: Math.max(0, rate), eta };
  }
}
