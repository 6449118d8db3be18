/**
 * util/clock — the one way product code reads the time of day, so a test can set it (a lock half
 * an hour old, a temporary a day old) instead of waiting or back-dating files. Durations measured
 * for progress use performance.now() and need no clock. May import nothing.
 */

export interface Clock {
  /** Milliseconds since 1970 (as Date.now()). */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock for tests: stands still until set or advanced. */
export class FakeClock implements Clock {
  constructor(private ms = Date.UTC(2026, 0, 1)) {}
  now(): number {
    return this.ms;
  }
  set(ms: number): void {
    this.ms = ms;
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}
