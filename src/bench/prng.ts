/**
 * bench — the benchmark of Lifeboat against restic, borg and partclone (issue P4). Not part of the
 * product: it may shell out to anything and imports nothing from the layers. The invariant that
 * matters most: every dataset is a pure function of its seed and size, so two machines (or two
 * runs) measure the same bytes.
 *
 * This file: a small seeded PRNG (xoshiro128**, seeded through splitmix32). 32-bit integer math
 * only, so it is fast in V8 and gives the same stream everywhere.
 */

function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number | string) {
    const st = { s: typeof seed === 'number' ? seed | 0 : hashString(seed) };
    this.a = splitmix32(st);
    this.b = splitmix32(st);
    this.c = splitmix32(st);
    this.d = splitmix32(st) | 1;
  }

  /** A child generator whose stream depends only on this one's seed and `label`. */
  fork(label: string): Prng {
    return new Prng((this.u32() ^ hashString(label)) | 0);
  }

  u32(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return r;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** Uniform integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** Standard normal (Box–Muller). */
  normal(): number {
    const u = 1 - this.float();
    const v = this.float();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** Fills `buf` with pseudo-random bytes (incompressible). */
  fill(buf: Uint8Array): void {
    const words = buf.byteLength >>> 2;
    if (buf.byteOffset % 4 === 0) {
      const view = new Uint32Array(buf.buffer, buf.byteOffset, words);
      for (let i = 0; i < words; i++) view[i] = this.u32();
    } else {
      for (let i = 0; i < words * 4; i += 4) {
        const x = this.u32();
        buf[i] = x & 255;
        buf[i + 1] = (x >>> 8) & 255;
        buf[i + 2] = (x >>> 16) & 255;
        buf[i + 3] = x >>> 24;
      }
    }
    for (let i = words * 4; i < buf.byteLength; i++) buf[i] = this.u32() & 255;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** FNV-1a, 32-bit. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}
