/**
 * Deterministic file contents of three kinds, each a realistic stand-in for what people keep:
 * - text: words from a fixed vocabulary with a skewed (Zipf-like) frequency, in lines and
 *   sentences, plus some "key = value" and code-like lines (zstd -3 compresses it about 3×);
 * - binary: fixed-size records with counters, small integers, timestamps and some random
 *   fields, padded pages (a database or an executable: compresses about 1.5–2×);
 * - random: already-compressed data (photos, archives, video): does not compress at all.
 */
import { Prng } from './prng.js';

export type ContentKind = 'text' | 'binary' | 'random';

const COMMON = (
  'the of and to in is that for it as was with be by on not he this are or his from at which but have an they ' +
  'you were her all she there would their we him been has when who will more no if out so said what up its about ' +
  'into than them can only other new some could time these two may then do first any my now such like our over ' +
  'man me even most made after also did many before must through back years where much your way well down should ' +
  'because each just those people how too little state good very make world still own see men work long get here ' +
  'between both life being under never day same another know while last might us great old year off come since ' +
  'against go came right used take three backup restore file folder drive disk image snapshot repository chunk ' +
  'index pack data error value result config server client user password network memory storage'
).split(' ');

const SYLLABLES = 'ka lo mi ne ru ta shi ven dor pel qua tri zon bel fa gi hu jo ly mar nix ost pra sel tum'.split(' ');

/** The vocabulary: common words first (most frequent), then made-up words from a fixed seed. */
const VOCAB: readonly string[] = (() => {
  const rng = new Prng('lifeboat-bench-vocabulary');
  const words = new Set<string>(COMMON);
  while (words.size < 4000) {
    const n = rng.range(2, 4);
    let w = '';
    for (let i = 0; i < n; i++) w += rng.pick(SYLLABLES);
    words.add(w);
  }
  return [...words];
})();

/** All words in one byte array, word i at WORD_START[i] .. WORD_START[i + 1] (one buffer type, no per-word objects). */
const WORD_BYTES = new Uint8Array(Buffer.from(VOCAB.join(''), 'latin1'));
const WORD_START = new Int32Array(VOCAB.length + 1);
VOCAB.reduce((at, w, i) => {
  WORD_START[i] = at;
  return at + w.length;
}, 0);
WORD_START[VOCAB.length] = WORD_BYTES.length;
const VOCAB_SIZE = VOCAB.length;

export function vocabularyWord(rng: Prng): string {
  return VOCAB[zipf(rng)]!;
}

function zipf(rng: Prng): number {
  const u = rng.float();
  return Math.floor(VOCAB_SIZE * u * u * u);
}

const NL = 10;
const SPACE = 32;

/** Fills `out` with text. */
export function fillText(rng: Prng, out: Buffer): void {
  let p = 0;
  let col = 0;
  let sentence = 0;
  let lineStyle = 0; // 0 prose, 1 key = value, 2 code-like
  const n = out.length;
  while (p < n) {
    if (col === 0) {
      const r = rng.u32() & 15;
      lineStyle = r < 11 ? 0 : r < 13 ? 1 : 2;
      if (lineStyle === 2) {
        for (let i = 0; i < 4 && p < n; i++) out[p++] = SPACE;
        col = 4;
      }
    }
    const wi = zipf(rng);
    const ws = WORD_START[wi]!;
    const len = Math.min(WORD_START[wi + 1]! - ws, n - p);
    for (let i = 0; i < len; i++) out[p + i] = WORD_BYTES[ws + i]!;
    p += len;
    col += len;
    if (p >= n) break;
    if (lineStyle === 1 && col < 30) {
      const eq = ' = ';
      for (let i = 0; i < eq.length && p < n; i++) out[p++] = eq.charCodeAt(i);
      col += 3;
      const v = String(rng.u32() % 10000);
      for (let i = 0; i < v.length && p < n; i++) out[p++] = v.charCodeAt(i);
      col = 0;
      if (p < n) out[p++] = NL;
      continue;
    }
    sentence++;
    if (lineStyle === 2 && (rng.u32() & 7) === 0) {
      if (p < n) out[p++] = 0x28; // (
      if (p < n) out[p++] = 0x29; // )
      if (p < n) out[p++] = 0x3b; // ;
      col = 0;
      if (p < n) out[p++] = NL;
      continue;
    }
    if (sentence > 6 && (rng.u32() & 7) === 0) {
      out[p++] = 0x2e; // .
      sentence = 0;
    } else if ((rng.u32() & 15) === 0) {
      out[p++] = 0x2c; // ,
    }
    if (p >= n) break;
    if (col > 72) {
      out[p++] = NL;
      col = 0;
    } else {
      out[p++] = SPACE;
      col++;
    }
  }
}

const TABLE = Array.from({ length: 16 }, (_, i) => 0x1000 * i + 0x37);

function u32le(b: Buffer, p: number, v: number): void {
  b[p] = v & 255;
  b[p + 1] = (v >>> 8) & 255;
  b[p + 2] = (v >>> 16) & 255;
  b[p + 3] = (v >>> 24) & 255;
}

/** Fills `out` with binary-looking records (32 bytes each) in 4 KiB pages with zero padding. */
export function fillBinary(rng: Prng, out: Buffer): void {
  let counter = rng.u32() & 0xffff;
  let stamp = 1_700_000_000 + (rng.u32() & 0xffffff);
  let p = 0;
  const n = out.length;
  while (p < n) {
    const pageEnd = Math.min(n, p + 4096);
    const pad = (rng.u32() & 3) === 0 ? rng.int(1024) : 0;
    const recordsEnd = pageEnd - pad;
    while (p + 32 <= recordsEnd) {
      u32le(out, p, counter++);
      u32le(out, p + 4, rng.u32() % 1000);
      stamp += rng.u32() & 63;
      u32le(out, p + 8, stamp);
      u32le(out, p + 12, 0);
      u32le(out, p + 16, rng.u32());
      u32le(out, p + 20, rng.u32());
      u32le(out, p + 24, rng.u32() & 0xffffff);
      u32le(out, p + 28, TABLE[rng.u32() & 15]!);
      p += 32;
    }
    out.fill(0, p, pageEnd);
    p = pageEnd;
  }
}

export function fillContent(kind: ContentKind, rng: Prng, out: Buffer): void {
  if (kind === 'text') fillText(rng, out);
  else if (kind === 'binary') fillBinary(rng, out);
  else rng.fill(out);
}
