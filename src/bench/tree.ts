/**
 * The many-files tree and the large-files folder: planned from a seed, written to disk, mutated
 * (about 1% of the files modified, added or deleted), and summarised as a checksum list that
 * restores are compared against.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fillContent, vocabularyWord, type ContentKind } from './content.js';
import { Prng } from './prng.js';

export interface TreeSpec {
  readonly seed: string;
  /** Number of ordinary files (the large ones come on top). */
  readonly files: number;
  /** Total bytes to reach; large files are added until the total is at least this. */
  readonly bytes: number;
  readonly largeMin: number;
  readonly largeMax: number;
  /** Median size of the ordinary files, in bytes. */
  readonly medianSize?: number;
}

export interface FileEntry {
  rel: string;
  size: number;
  kind: ContentKind;
  mtime: number;
}

export interface TreePlan {
  readonly dirs: string[];
  readonly files: FileEntry[];
}

export interface TreeSummary {
  files: number;
  dirs: number;
  bytes: number;
  byKind: Record<ContentKind, { files: number; bytes: number }>;
}

const EXT: Record<ContentKind, readonly string[]> = {
  text: ['txt', 'md', 'c', 'ts', 'json', 'html', 'csv', 'log', 'py', 'xml'],
  binary: ['bin', 'dat', 'db', 'so', 'o', 'sqlite', 'class', 'dll'],
  random: ['jpg', 'png', 'zip', 'gz', 'mp3', 'mp4', 'xz', 'webp'],
};

const BASE_TIME = 1_704_067_200; // 2024-01-01T00:00:00Z
const PIECE = 4 * 1024 * 1024;
const MAX_SMALL = 4 * 1024 * 1024;

function pickKind(rng: Prng): ContentKind {
  const r = rng.float();
  return r < 0.5 ? 'text' : r < 0.75 ? 'binary' : 'random';
}

function fileName(rng: Prng, kind: ContentKind, taken: Set<string>, dir: string): string {
  for (let attempt = 0; ; attempt++) {
    let stem = vocabularyWord(rng);
    if (rng.float() < 0.6) stem += (rng.float() < 0.5 ? '-' : '_') + vocabularyWord(rng);
    if (rng.float() < 0.3) stem += String(rng.int(1000));
    if (attempt > 3) stem += `-${attempt}`;
    const rel = path.posix.join(dir, `${stem}.${rng.pick(EXT[kind])}`);
    if (!taken.has(rel)) {
      taken.add(rel);
      return rel;
    }
  }
}

export function smallSize(rng: Prng, median: number): number {
  if (rng.float() < 0.01) return 0;
  return Math.min(MAX_SMALL, Math.max(1, Math.round(Math.exp(Math.log(median) + 1.4 * rng.normal()))));
}

export function planTree(spec: TreeSpec): TreePlan {
  const rng = new Prng(spec.seed);
  const median = spec.medianSize ?? 3000;
  const taken = new Set<string>();
  const dirs: string[] = [''];
  const depth = new Map<string, number>([['', 0]]);
  const nDirs = Math.max(8, Math.round(spec.files / 25));
  while (dirs.length < nDirs) {
    const u = rng.float();
    const parent = dirs[Math.floor(dirs.length * Math.pow(u, 1.5))]!;
    if (depth.get(parent)! >= 7) continue;
    let name = vocabularyWord(rng);
    if (rng.float() < 0.3) name += `-${vocabularyWord(rng)}`;
    const rel = path.posix.join(parent, name);
    if (taken.has(rel)) continue;
    taken.add(rel);
    dirs.push(rel);
    depth.set(rel, depth.get(parent)! + 1);
  }
  const files: FileEntry[] = [];
  let total = 0;
  for (let i = 0; i < spec.files; i++) {
    const dir = dirs[Math.floor(dirs.length * Math.pow(rng.float(), 1.3))]!;
    const kind = pickKind(rng);
    const size = smallSize(rng, median);
    files.push({ rel: fileName(rng, kind, taken, dir), size, kind, mtime: BASE_TIME + rng.int(365 * 86400) });
    total += size;
  }
  const largeKinds: ContentKind[] = ['random', 'binary', 'text'];
  for (let i = 0; total < spec.bytes; i++) {
    const dir = dirs[rng.int(Math.min(dirs.length, 20))]!;
    const kind = largeKinds[i % largeKinds.length]!;
    const size = Math.min(rng.range(spec.largeMin, spec.largeMax), Math.max(spec.largeMin, spec.bytes - total));
    files.push({ rel: fileName(rng, kind, taken, dir), size, kind, mtime: BASE_TIME + rng.int(365 * 86400) });
    total += size;
  }
  return { dirs, files };
}

export function summarise(plan: TreePlan): TreeSummary {
  const byKind: TreeSummary['byKind'] = { text: { files: 0, bytes: 0 }, binary: { files: 0, bytes: 0 }, random: { files: 0, bytes: 0 } };
  let bytes = 0;
  for (const f of plan.files) {
    byKind[f.kind].files++;
    byKind[f.kind].bytes += f.size;
    bytes += f.size;
  }
  return { files: plan.files.length, dirs: plan.dirs.length, bytes, byKind };
}

let scratch = Buffer.alloc(PIECE);

/** Writes one file's contents; the bytes depend only on the seed, the path and `generation`. */
export function writeEntry(root: string, seed: string, f: FileEntry, generation = 0): void {
  const rng = new Prng(`${seed}\0${f.rel}\0${generation}`);
  const file = path.join(root, f.rel);
  const fd = fs.openSync(file, 'w');
  try {
    for (let done = 0; done < f.size; ) {
      const n = Math.min(PIECE, f.size - done);
      if (scratch.length < n) scratch = Buffer.alloc(n);
      const piece = scratch.subarray(0, n);
      fillContent(f.kind, rng, piece);
      fs.writeSync(fd, piece, 0, n, done);
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  fs.utimesSync(file, f.mtime, f.mtime);
}

export function writeTree(root: string, seed: string, plan: TreePlan, onProgress?: (done: number, total: number) => void): void {
  fs.rmSync(root, { recursive: true, force: true });
  fs.mkdirSync(root, { recursive: true });
  for (const d of plan.dirs) if (d) fs.mkdirSync(path.join(root, d), { recursive: true });
  let i = 0;
  for (const f of plan.files) {
    writeEntry(root, seed, f);
    if (onProgress && ++i % 2000 === 0) onProgress(i, plan.files.length);
  }
  // Folders get fixed times too, deepest first so that writing a child does not touch them again.
  for (const d of [...plan.dirs].reverse()) fs.utimesSync(path.join(root, d), BASE_TIME, BASE_TIME);
}

export interface MutationSummary {
  modified: number;
  added: number;
  deleted: number;
  bytesWritten: number;
}

/**
 * Changes about `fraction` of the files: 40% of them modified (a region rewritten and some bytes
 * appended), 30% new files added, 30% deleted. Updates `plan` to match. `keep` is never deleted.
 */
export function mutateTree(root: string, seed: string, plan: TreePlan, fraction: number, keep: ReadonlySet<string>): MutationSummary {
  const rng = new Prng(`${seed}\0mutation`);
  const count = Math.max(3, Math.round(plan.files.length * fraction));
  const nModify = Math.round(count * 0.4);
  const nAdd = Math.round(count * 0.3);
  const nDelete = count - nModify - nAdd;
  const later = BASE_TIME + 400 * 86400;
  const chosen = new Set<number>();
  const pickFile = (): number => {
    for (;;) {
      const i = rng.int(plan.files.length);
      if (!chosen.has(i) && !keep.has(plan.files[i]!.rel)) {
        chosen.add(i);
        return i;
      }
    }
  };
  let bytesWritten = 0;
  for (let k = 0; k < nModify; k++) {
    const f = plan.files[pickFile()]!;
    const file = path.join(root, f.rel);
    const region = Math.min(f.size, 64 * 1024, Math.max(1, Math.round(f.size * 0.1)));
    const at = f.size > region ? rng.int(f.size - region) : 0;
    const appended = rng.range(100, 4000);
    const buf = Buffer.alloc(region + appended);
    fillContent(f.kind, rng, buf);
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, buf, 0, region, at);
    fs.writeSync(fd, buf, region, appended, f.size);
    fs.closeSync(fd);
    f.size += appended;
    f.mtime = later + k;
    fs.utimesSync(file, f.mtime, f.mtime);
    bytesWritten += buf.length;
  }
  const dels = Array.from({ length: nDelete }, pickFile).sort((a, b) => b - a);
  for (const i of dels) {
    fs.unlinkSync(path.join(root, plan.files[i]!.rel));
    plan.files.splice(i, 1);
  }
  const taken = new Set(plan.files.map((f) => f.rel));
  for (let k = 0; k < nAdd; k++) {
    const dir = plan.dirs[rng.int(plan.dirs.length)]!;
    const kind = pickKind(rng);
    const f: FileEntry = { rel: fileName(rng, kind, taken, dir), size: smallSize(rng, 8000), kind, mtime: later + k };
    writeEntry(root, seed, f, 1);
    plan.files.push(f);
    bytesWritten += f.size;
  }
  return { modified: nModify, added: nAdd, deleted: nDelete, bytesWritten };
}

/** Large files: half compressible (text, binary), half random. */
export function planLarge(seed: string, count: number, size: number): TreePlan {
  const kinds: ContentKind[] = ['text', 'random', 'binary', 'random'];
  const files: FileEntry[] = [];
  for (let i = 0; i < count; i++) {
    const kind = kinds[i % kinds.length]!;
    files.push({ rel: `large-${i}-${kind}.${EXT[kind][0]}`, size, kind, mtime: BASE_TIME + i * 86400 });
  }
  void seed;
  return { dirs: [''], files };
}

/** Rewrites about `fraction` of every large file's bytes in place, in a few scattered ranges. */
export function mutateLarge(root: string, seed: string, plan: TreePlan, fraction: number): MutationSummary {
  const rng = new Prng(`${seed}\0mutation`);
  let bytesWritten = 0;
  plan.files.forEach((f, k) => {
    const ranges = 4;
    const each = Math.max(1, Math.round((f.size * fraction) / ranges));
    const fd = fs.openSync(path.join(root, f.rel), 'r+');
    const buf = Buffer.alloc(each);
    for (let r = 0; r < ranges; r++) {
      fillContent(f.kind, rng, buf);
      fs.writeSync(fd, buf, 0, each, rng.int(Math.max(1, f.size - each)));
      bytesWritten += each;
    }
    fs.closeSync(fd);
    f.mtime = BASE_TIME + 400 * 86400 + k;
    fs.utimesSync(path.join(root, f.rel), f.mtime, f.mtime);
  });
  return { modified: plan.files.length, added: 0, deleted: 0, bytesWritten };
}

export interface Sum {
  size: number;
  sha256: string;
}

export function hashFile(file: string): Sum {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  let size = 0;
  try {
    for (;;) {
      const n = fs.readSync(fd, scratch, 0, scratch.length, null);
      if (n === 0) break;
      h.update(scratch.subarray(0, n));
      size += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return { size, sha256: h.digest('hex') };
}

/** Checksum list of every regular file under `root` (relative path → size and SHA-256). */
export function checksumTree(root: string): Map<string, Sum> {
  const out = new Map<string, Sum>();
  const walk = (dir: string, rel: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      const abs = path.join(dir, e.name);
      if (e.isDirectory()) walk(abs, r);
      else if (e.isFile()) out.set(r, hashFile(abs));
    }
  };
  walk(root, '');
  return out;
}

export interface Comparison {
  ok: boolean;
  missing: number;
  extra: number;
  differ: number;
  examples: string[];
}

export function compareSums(expected: Map<string, Sum>, actual: Map<string, Sum>): Comparison {
  let missing = 0;
  let differ = 0;
  let extra = 0;
  const examples: string[] = [];
  for (const [rel, s] of expected) {
    const a = actual.get(rel);
    if (!a) {
      missing++;
      if (examples.length < 3) examples.push(`missing ${rel}`);
    } else if (a.sha256 !== s.sha256 || a.size !== s.size) {
      differ++;
      if (examples.length < 3) examples.push(`differs ${rel}`);
    }
  }
  for (const rel of actual.keys()) {
    if (!expected.has(rel)) {
      extra++;
      if (examples.length < 3) examples.push(`extra ${rel}`);
    }
  }
  return { ok: missing + differ + extra === 0, missing, extra, differ, examples };
}
