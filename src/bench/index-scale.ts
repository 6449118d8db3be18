/**
 * ChunkIndex at scale: `node --expose-gc dist/bench/index-scale.js [N]` (default 10,000,000).
 * Builds an N-entry index of random 32-byte ids, then times 1M lookups of present ids and 1M of
 * absent ids, and reports memory. Ids are generated on the fly from their number (a
 * splitmix-style mix), so the benchmark itself holds no copy of them; the generation cost is
 * measured separately and subtracted in the "net" rates.
 *
 * Measured 2026-11 on the project machine (2-core EPYC, Node 20.20.2) while other jobs kept the
 * load average at 7–10, so wall-clock rates are low and noisy; CPU-time rates are steadier.
 * N = 10,000,000:
 *   typed arrays 558.4 MB = 55.8 B/entry (49 B entry store + 6.7 B table at load 0.60);
 *   heap used +0.13 MB; external / arrayBuffers 560 MB; peak RSS 611–619 MB (whole process).
 *   insert 0.85–1.21 M/s wall, 1.7–1.9 M/s CPU (8–12 s for 10M);
 *   lookup hit 0.78–0.79 M/s wall, 1.2 M/s CPU; lookup miss 1.7–2.1 M/s wall, 3.0 M/s CPU.
 * For comparison, a Map<hex string, object> (what MasterIndex does) at N = 1M on the same
 * machine: 251 MB RSS against 111 MB, lookups 0.39 M/s (hit) and 0.50 M/s (miss) CPU.
 */
import { ChunkIndex } from '../repo/chunk-index.js';

const N = Number(process.argv[2] ?? 10_000_000);
const LOOKUPS = 1_000_000;
const MB = 1e6;

const ID = new Uint8Array(32);
const ID32 = new Uint32Array(ID.buffer);

/** Fills ID with the pseudo-random id number i of a family (salt); same (i, salt), same id. */
function makeId(i: number, salt: number): Uint8Array {
  for (let w = 0; w < 8; w++) {
    let z = (Math.imul(i, 0x9e3779b9) + Math.imul(w + 1, 0x85ebca6b) + salt) | 0;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    z ^= Math.imul(i >>> 16, 0x27d4eb2f);
    ID32[w] = z ^ (z >>> 16);
  }
  return ID;
}

let peakRss = 0;
function sample(): void {
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
}

/** Wall and CPU (user + system) milliseconds of a section; CPU is steadier on a shared machine. */
interface Span { wall: number; cpu: number }
function timed(f: () => void): Span {
  const t = performance.now();
  const c = process.cpuUsage();
  f();
  const d = process.cpuUsage(c);
  return { wall: performance.now() - t, cpu: (d.user + d.system) / 1000 };
}

const gc = (globalThis as { gc?: () => void }).gc;
const collect = () => gc?.();

function main(): void {
  if (!gc) console.log('(run with --expose-gc for exact heap figures)');
  collect();
  const base = process.memoryUsage();
  sample();

  let sink = 0;
  const gen = timed(() => { for (let i = 0; i < N; i++) sink ^= makeId(i, 1)[0]!; });

  const ix = new ChunkIndex();
  const insert = timed(() => {
    for (let i = 0; i < N; i++) {
      ix.add(makeId(i, 1), { pack: i >>> 12, offset: (i & 4095) * 4096, length: 4000, rawLength: 1 << 20, type: 0 });
      if ((i & 0xfffff) === 0) sample();
    }
  });
  sample();
  if (ix.size !== N) throw new Error(`expected ${N} entries, have ${ix.size}`);

  let state = 12345;
  const rnd = () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) % N;
  const lookupGen = timed(() => { for (let k = 0; k < LOOKUPS; k++) sink ^= makeId(rnd(), 1)[0]!; });
  let hits = 0;
  const hit = timed(() => { for (let k = 0; k < LOOKUPS; k++) if (ix.find(makeId(rnd(), 1)) >= 0) hits++; });
  let misses = 0;
  const miss = timed(() => { for (let k = 0; k < LOOKUPS; k++) if (ix.find(makeId(rnd(), 2)) < 0) misses++; });
  if (hits !== LOOKUPS || misses !== LOOKUPS) throw new Error(`hits ${hits}, misses ${misses}`);

  collect();
  const m = process.memoryUsage();
  sample();
  const r = (n: number, ms: number) => ((n / ms) * 1000 / 1e6).toFixed(2);
  const rate = (n: number, x: Span, g: Span) =>
    `${r(n, x.wall)} M/s wall (${r(n, x.wall - g.wall)} net of id generation), ${r(n, x.cpu)} M/s CPU (${r(n, x.cpu - g.cpu)} net)`;
  const line = (label: string, v: string) => console.log(`${label.padEnd(34)} ${v}`);
  line('entries', N.toLocaleString('en-US'));
  line('index typed arrays (byteSize)', `${(ix.byteSize / MB).toFixed(1)} MB = ${(ix.byteSize / N).toFixed(1)} B/entry`);
  line('arrayBuffers (after − before)', `${((m.arrayBuffers - base.arrayBuffers) / MB).toFixed(1)} MB = ${((m.arrayBuffers - base.arrayBuffers) / N).toFixed(1)} B/entry`);
  line('external', `${(m.external / MB).toFixed(1)} MB`);
  line('heap used (after − before)', `${((m.heapUsed - base.heapUsed) / MB).toFixed(2)} MB`);
  line('RSS now / peak', `${(m.rss / MB).toFixed(0)} MB / ${(peakRss / MB).toFixed(0)} MB (getrusage maxRSS ${(process.resourceUsage().maxRSS * 1024 / MB).toFixed(0)} MB)`);
  line('insert', `${rate(N, insert, gen)}; ${(insert.wall / 1000).toFixed(2)} s`);
  line('lookup hit (1M, random order)', rate(LOOKUPS, hit, lookupGen));
  line('lookup miss (1M)', rate(LOOKUPS, miss, lookupGen));
  if (sink === 0.5) console.log(sink); // keep the generation loops from being optimised away
}

main();
