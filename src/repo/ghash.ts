/**
 * GHASH, the authenticator inside AES-GCM (NIST SP 800-38D §6.4), in JavaScript: node:crypto only
 * checks a whole envelope at once, and the pack scan (pack-scan.ts) must test the tag of one
 * envelope at many possible ends in one pass. Field elements are four big-endian 32-bit words in
 * GCM's bit order (the first bit of the first byte is x^0). Only a filter: a match is always
 * confirmed by node:crypto's own AES-GCM before anything is trusted.
 */

export type Element = Uint32Array;

export function element(bytes?: Uint8Array, offset = 0, length = 16): Element {
  const e = new Uint32Array(4);
  if (bytes) {
    for (let i = 0; i < Math.min(16, length); i++) e[i >> 2]! |= bytes[offset + i]! << (24 - 8 * (i & 3));
  }
  return e;
}

export function toBytes(e: Element): Buffer {
  const b = Buffer.alloc(16);
  for (let i = 0; i < 4; i++) b.writeUInt32BE(e[i]! >>> 0, 4 * i);
  return b;
}

export function xorInto(a: Element, b: Element): void {
  a[0]! ^= b[0]!;
  a[1]! ^= b[1]!;
  a[2]! ^= b[2]!;
  a[3]! ^= b[3]!;
}

/** a · b in GF(2^128), bit by bit (SP 800-38D Algorithm 1). */
export function multiply(a: Element, b: Element): Element {
  let z0 = 0, z1 = 0, z2 = 0, z3 = 0;
  let v0 = b[0]!, v1 = b[1]!, v2 = b[2]!, v3 = b[3]!;
  for (let i = 0; i < 128; i++) {
    if ((a[i >> 5]! >>> (31 - (i & 31))) & 1) {
      z0 ^= v0;
      z1 ^= v1;
      z2 ^= v2;
      z3 ^= v3;
    }
    const lsb = v3 & 1;
    v3 = (v3 >>> 1) | (v2 << 31);
    v2 = (v2 >>> 1) | (v1 << 31);
    v1 = (v1 >>> 1) | (v0 << 31);
    v0 = v0 >>> 1;
    if (lsb) v0 ^= 0xe1000000;
  }
  return Uint32Array.of(z0, z1, z2, z3);
}

/** The reduction of the byte shifted out when an element is multiplied by x^8. */
const R8 = (() => {
  const t = new Uint32Array(256);
  for (let u = 0; u < 256; u++) {
    let v0 = 0, v3 = u;
    for (let k = 0; k < 8; k++) {
      const lsb = v3 & 1;
      v3 >>>= 1;
      v0 >>>= 1;
      if (lsb) v0 ^= 0xe1000000;
    }
    t[u] = v0;
  }
  return t;
})();

/** Multiplication by one fixed element H, a byte at a time from a table of 256 multiples. */
export class TimesH {
  private readonly m = new Uint32Array(256 * 4);

  constructor(readonly h: Element) {
    for (let v = 0; v < 256; v++) {
      const p = multiply(Uint32Array.of(v << 24, 0, 0, 0), h);
      this.m.set(p, 4 * v);
    }
  }

  /** x ← x · H, in place. */
  apply(x: Element): void {
    const m = this.m;
    let z0 = 0, z1 = 0, z2 = 0, z3 = 0;
    for (let b = 15; b >= 0; b--) {
      // z ← z · x^8, then add (byte b of x) · H.
      const out = z3 & 0xff;
      z3 = (z3 >>> 8) | (z2 << 24);
      z2 = (z2 >>> 8) | (z1 << 24);
      z1 = (z1 >>> 8) | (z0 << 24);
      z0 = (z0 >>> 8) ^ R8[out]!;
      const k = 4 * ((x[b >> 2]! >>> (24 - 8 * (b & 3))) & 0xff);
      z0 ^= m[k]!;
      z1 ^= m[k + 1]!;
      z2 ^= m[k + 2]!;
      z3 ^= m[k + 3]!;
    }
    x[0] = z0;
    x[1] = z1;
    x[2] = z2;
    x[3] = z3;
  }
}
