/**
 * Byte ranges as the parsing half of the image layer reports them: half-open [start, end),
 * absolute or relative as each caller documents. Merging is done once, here.
 */

export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/** Sorts, clips to [0, limit) when a limit is given, drops empty ranges and merges touching ones. */
export function mergeRanges(ranges: readonly ByteRange[], limit?: number): ByteRange[] {
  const sorted = ranges
    .map((r) => (limit === undefined ? r : { start: Math.max(0, r.start), end: Math.min(limit, r.end) }))
    .filter((r) => r.end > r.start)
    .sort((a, b) => a.start - b.start || a.end - b.end);
  const out: { start: number; end: number }[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end) last.end = Math.max(last.end, r.end);
    else out.push({ start: r.start, end: r.end });
  }
  return out;
}

export function rangeBytes(ranges: readonly ByteRange[]): number {
  let n = 0;
  for (const r of ranges) n += r.end - r.start;
  return n;
}

/** The complement of sorted, merged `ranges` within [0, size). */
export function invertRanges(ranges: readonly ByteRange[], size: number): ByteRange[] {
  const out: ByteRange[] = [];
  let cursor = 0;
  for (const r of ranges) {
    if (r.start > cursor) out.push({ start: cursor, end: Math.min(r.start, size) });
    cursor = Math.max(cursor, r.end);
    if (cursor >= size) break;
  }
  if (cursor < size) out.push({ start: cursor, end: size });
  return out;
}

/** The bytes of sorted, merged `a` that are not in sorted, merged `b`. */
export function subtractRanges(a: readonly ByteRange[], b: readonly ByteRange[]): ByteRange[] {
  const out: ByteRange[] = [];
  let j = 0;
  for (const r of a) {
    let start = r.start;
    while (j < b.length && b[j]!.end <= start) j++;
    for (let k = j; k < b.length && b[k]!.start < r.end; k++) {
      if (b[k]!.start > start) out.push({ start, end: b[k]!.start });
      start = Math.max(start, b[k]!.end);
    }
    if (start < r.end) out.push({ start, end: r.end });
  }
  return out;
}

/**
 * Collects runs of set bits of an allocation bitmap as ranges, without a closure per bit. Bit i
 * (LSB-first within each byte) stands for unit `firstUnit + i` of `unitBytes` bytes at `base`.
 */
export function bitmapRuns(bitmap: Uint8Array, bits: number, firstUnit: number, unitBytes: number, base: number, out: ByteRange[]): number {
  let used = 0;
  let runStart = -1;
  const n = Math.min(bits, bitmap.length * 8);
  let i = 0;
  while (i < n) {
    const byte = bitmap[i >> 3]!;
    // Whole-byte fast paths.
    if ((i & 7) === 0 && i + 8 <= n && (byte === 0 || byte === 0xff)) {
      if (byte === 0xff) {
        if (runStart < 0) runStart = i;
        used += 8;
      } else if (runStart >= 0) {
        out.push({ start: base + (firstUnit + runStart) * unitBytes, end: base + (firstUnit + i) * unitBytes });
        runStart = -1;
      }
      i += 8;
      continue;
    }
    if ((byte >> (i & 7)) & 1) {
      if (runStart < 0) runStart = i;
      used++;
    } else if (runStart >= 0) {
      out.push({ start: base + (firstUnit + runStart) * unitBytes, end: base + (firstUnit + i) * unitBytes });
      runStart = -1;
    }
    i++;
  }
  if (runStart >= 0) out.push({ start: base + (firstUnit + runStart) * unitBytes, end: base + (firstUnit + n) * unitBytes });
  return used;
}
