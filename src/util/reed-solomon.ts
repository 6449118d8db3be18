/**
 * Reed–Solomon erasure code over GF(2^8) (polynomial 0x11d), systematic, with a Cauchy parity
 * matrix: k data shards and m parity shards of equal length, where parity p is
 * Σ_i C[p][i]·data_i byte by byte, C[p][i] = 1 / ((k + p) ⊕ i). Every square submatrix of a Cauchy
 * matrix is invertible, so any k of the k + m shards rebuild the others (the code is MDS): up to m
 * lost shards, data or parity, whose positions are known (store/parity.ts locates them by CRC32).
 * k + m ≤ 256. Hot loops use one 64 KiB product table, no allocation per byte.
 */

const EXP = new Uint8Array(512);
const LOG = new Uint8Array(256);
/** MUL[a << 8 | b] = a·b in GF(256). */
const MUL = new Uint8Array(65536);
let built = false;

/** Fills the tables on first use: only repositories with parity need them, and every command loads this module. */
function tables(): void {
  if (built) return;
  built = true;
  let x = 1;
  for (let i = 0; i < 255; i++) {
    EXP[i] = x;
    LOG[x] = i;
    x <<= 1;
    if (x & 0x100) x ^= 0x11d;
  }
  for (let i = 255; i < 512; i++) EXP[i] = EXP[i - 255]!;
  for (let a = 1; a < 256; a++) {
    for (let b = 1; b < 256; b++) MUL[(a << 8) | b] = EXP[LOG[a]! + LOG[b]!]!;
  }
}

export function gfMul(a: number, b: number): number {
  tables();
  return MUL[(a << 8) | b]!;
}

export function gfInv(a: number): number {
  if (a === 0) throw new Error('GF(256): zero has no inverse');
  tables();
  return EXP[255 - LOG[a]!]!;
}

/** dst ^= c·src over the first `len` bytes (len ≤ src.length, dst.length). */
function mulAdd(dst: Uint8Array, src: Uint8Array, c: number, len: number): void {
  if (c === 0) return;
  tables();
  if (c === 1) {
    for (let i = 0; i < len; i++) dst[i] = dst[i]! ^ src[i]!;
    return;
  }
  const base = c << 8;
  let i = 0;
  // Four bytes per step through 32-bit views when both are aligned (shards and parity always are).
  if (((dst.byteOffset | src.byteOffset) & 3) === 0 && len >= 4) {
    const words = len >>> 2;
    const d32 = new Uint32Array(dst.buffer, dst.byteOffset, words);
    const s32 = new Uint32Array(src.buffer, src.byteOffset, words);
    for (let w = 0; w < words; w++) {
      const v = s32[w]!;
      d32[w] = d32[w]! ^ (MUL[base | (v & 0xff)]! | (MUL[base | ((v >>> 8) & 0xff)]! << 8) | (MUL[base | ((v >>> 16) & 0xff)]! << 16) | (MUL[base | (v >>> 24)]! << 24));
    }
    i = words << 2;
  }
  for (; i < len; i++) dst[i] = dst[i]! ^ MUL[base | src[i]!]!;
}

export class ReedSolomon {
  /** The Cauchy parity matrix, row p at [p * k]. */
  private readonly matrix: Uint8Array;

  constructor(
    readonly k: number,
    readonly m: number,
  ) {
    if (!Number.isInteger(k) || !Number.isInteger(m) || k < 1 || m < 1 || k + m > 256) {
      throw new Error(`Reed–Solomon: unsupported shard counts k=${k} m=${m}`);
    }
    this.matrix = new Uint8Array(k * m);
    for (let p = 0; p < m; p++) for (let i = 0; i < k; i++) this.matrix[p * k + i] = gfInv((k + p) ^ i);
  }

  /**
   * The m parity shards of `len` bytes for up to k data shards (fewer: the missing ones count as
   * zeros); a data shard shorter than `len` counts as zero-padded.
   */
  encode(data: readonly Uint8Array[], len: number): Uint8Array[] {
    const parity: Uint8Array[] = [];
    for (let p = 0; p < this.m; p++) {
      const out = new Uint8Array(len);
      for (let i = 0; i < data.length; i++) {
        const d = data[i]!;
        mulAdd(out, d, this.matrix[p * this.k + i]!, Math.min(len, d.length));
      }
      parity.push(out);
    }
    return parity;
  }

  /**
   * Rebuilds the data shards listed in `lost` (indexes < k) in place, from the other data shards and
   * the parity shards not listed in `lostParity`. `data` holds k shards of `len` bytes (trailing
   * shards beyond the object's end are zeros). Returns false, changing nothing, when more shards are
   * lost than there is parity left to rebuild them.
   */
  reconstruct(data: Uint8Array[], parity: readonly Uint8Array[], lost: readonly number[], lostParity: readonly number[], len: number): boolean {
    const e = lost.length;
    if (e === 0) return true;
    const good: number[] = [];
    for (let p = 0; p < this.m && good.length < e; p++) if (!lostParity.includes(p)) good.push(p);
    if (good.length < e) return false;
    // Syndromes: s_j = parity_j ⊕ Σ_{i intact} C[j][i]·d_i  =  Σ_{i lost} C[j][i]·d_i.
    const syn: Uint8Array[] = [];
    for (const p of good) {
      const s = new Uint8Array(len);
      s.set(parity[p]!.subarray(0, len));
      for (let i = 0; i < this.k; i++) if (!lost.includes(i)) mulAdd(s, data[i]!, this.matrix[p * this.k + i]!, len);
      syn.push(s);
    }
    // Solve the e×e Cauchy system A·x = s, A[j][t] = C[good j][lost t]: invert A (Gauss–Jordan).
    const a = new Uint8Array(e * e);
    const inv = new Uint8Array(e * e);
    for (let j = 0; j < e; j++) {
      for (let t = 0; t < e; t++) a[j * e + t] = this.matrix[good[j]! * this.k + lost[t]!]!;
      inv[j * e + j] = 1;
    }
    for (let col = 0; col < e; col++) {
      let piv = col;
      while (piv < e && a[piv * e + col] === 0) piv++;
      if (piv === e) return false; // cannot happen for a Cauchy matrix
      if (piv !== col) {
        for (let t = 0; t < e; t++) {
          [a[col * e + t], a[piv * e + t]] = [a[piv * e + t]!, a[col * e + t]!];
          [inv[col * e + t], inv[piv * e + t]] = [inv[piv * e + t]!, inv[col * e + t]!];
        }
      }
      const f = gfInv(a[col * e + col]!);
      for (let t = 0; t < e; t++) {
        a[col * e + t] = gfMul(a[col * e + t]!, f);
        inv[col * e + t] = gfMul(inv[col * e + t]!, f);
      }
      for (let r = 0; r < e; r++) {
        const g = r === col ? 0 : a[r * e + col]!;
        if (g === 0) continue;
        for (let t = 0; t < e; t++) {
          a[r * e + t] = a[r * e + t]! ^ gfMul(g, a[col * e + t]!);
          inv[r * e + t] = inv[r * e + t]! ^ gfMul(g, inv[col * e + t]!);
        }
      }
    }
    for (let t = 0; t < e; t++) {
      const out = new Uint8Array(len);
      for (let j = 0; j < e; j++) mulAdd(out, syn[j]!, inv[t * e + j]!, len);
      data[lost[t]!] = out;
    }
    return true;
  }
}
