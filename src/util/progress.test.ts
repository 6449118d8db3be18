import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Estimator } from './progress.js';

/** Feeds `rateAt(t)` bytes/s into an estimator every 250 ms (a fake clock) until `total`; returns each state with its time. */
function simulate(total: number, rateAt: (t: number) => number, known: (t: number) => boolean = () => true): { t: number; done: number; eta: number | undefined; pct: number | undefined }[] {
  let t = 0;
  const est = new Estimator(() => t);
  const out = [];
  let done = 0;
  while (done < total) {
    t += 0.25;
    done = Math.min(total, done + rateAt(t) * 0.25);
    const p = est.sample(done, known(t) ? total : undefined);
    out.push({ t, done, eta: p.eta, pct: p.total === undefined ? undefined : p.done / p.total });
  }
  return out;
}

/** The time left estimated when a quarter is done, and the true time left then. */
function atQuarter(run: ReturnType<typeof simulate>): { eta: number; actual: number } {
  const end = run[run.length - 1]!.t;
  const q = run.find((s) => s.pct !== undefined && s.pct >= 0.25 && s.eta !== undefined)!;
  assert.ok(q.pct! < 0.3, `a time left is known soon after 25% (${q.pct})`);
  return { eta: q.eta!, actual: end - q.t };
}

test('estimator: on a steady workload, the time left at 25% predicts the end within 30%', () => {
  const { eta, actual } = atQuarter(simulate(400e6, () => 20e6));
  assert.ok(Math.abs(eta - actual) <= 0.3 * actual, `eta ${eta} s, actual ${actual} s`);
});

test('estimator: a fast start (unchanged files skipped) does not promise a fast finish', () => {
  // The first 60 s go ten times as fast (skipping), then a long steady read: the estimate at 25%
  // must follow the recent rate, not the average since the start.
  const { eta, actual } = atQuarter(simulate(6e9, (t) => (t < 60 ? 200e6 : 20e6)));
  assert.ok(Math.abs(eta - actual) <= 0.3 * actual, `eta ${eta} s, actual ${actual} s`);
});

test('estimator: no percentage or time left before the total is known, and no time left in the first seconds', () => {
  const run = simulate(100e6, () => 10e6, (t) => t >= 3);
  for (const s of run) {
    if (s.t < 3) assert.equal(s.pct, undefined, `no total at ${s.t} s`);
    if (s.t < 2 || s.pct === undefined) assert.equal(s.eta, undefined, `no time left at ${s.t} s`);
  }
  assert.equal(run[run.length - 1]!.pct, 1);
  assert.equal(run[run.length - 1]!.eta, 0);
});

test('estimator: a total smaller than what is done is no total (no 100% while work remains)', () => {
  let t = 0;
  const est = new Estimator(() => t);
  t = 5;
  const p = est.sample(600, 500);
  assert.equal(p.total, undefined);
  assert.equal(p.eta, undefined);
  assert.equal(p.rate, 120);
});
