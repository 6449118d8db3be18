/** Test helpers shared by every layer's tests (test code: never imported by the product). */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Deterministic pseudo-random generator (mulberry32): the same seed gives the same stream everywhere. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The bytes of every file under `root` (a repository's data/ folder: its packs). */
export function bytesUnder(root: string): number {
  let n = 0;
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else n += statSync(join(d, e.name)).size;
    }
  };
  walk(root);
  return n;
}
