/**
 * Real-world datasets, built from what this machine has (no downloads): a copy of system folders
 * (shared libraries, headers, documentation and data), a developer's home (node_modules, git
 * clones with pack files, package caches, a Python installation) and a "photos and videos" folder
 * of large incompressible files (the bytes of compressed archives the machine holds, cut into
 * photo- and video-sized files). Each is cut to a byte and file budget, each source to its share of it in a fixed order, so one
 * machine measures the same tree every run; another machine measures its own. `describeTree`
 * prints a tree's make-up (counts, size histogram, how much zstd -3 saves) beside the results.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Encoder } from '@toondepauw/node-zstd';
import { Prng } from './prng.js';
import { eachFile } from './exec.js';
import { fmtBytes } from './report.js';
import type { MutationSummary } from './tree.js';

export interface Budget {
  /** Stop copying once this many bytes are in. */
  readonly bytes: number;
  /** …or this many files. */
  readonly files: number;
}

export interface Source {
  readonly from: string;
  /** Where under the dataset it goes. */
  readonly to: string;
  /** The part of the budget it may take (with what the sources before it left unspent); default all. */
  readonly share?: number;
}

interface Counter {
  files: number;
  bytes: number;
}

/**
 * Copies each source in order (files, folders, symlinks as they are; times and modes kept;
 * anything unreadable or special skipped) until the budget is spent. Returns what was taken.
 */
export function copyTrees(dest: string, sources: readonly Source[], budget: Budget, count: Counter = { files: 0, bytes: 0 }): string[] {
  const taken: string[] = [];
  let limit: Budget = budget;
  const full = (): boolean => count.files >= limit.files || count.bytes >= limit.bytes;
  const copyDir = (from: string, to: string): void => {
    let names: string[];
    try {
      names = fs.readdirSync(from).sort();
    } catch {
      return;
    }
    fs.mkdirSync(to, { recursive: true });
    for (const name of names) {
      if (full()) break;
      const f = path.join(from, name);
      const t = path.join(to, name);
      let st: fs.Stats;
      try {
        st = fs.lstatSync(f);
      } catch {
        continue;
      }
      if (st.isDirectory()) copyDir(f, t);
      else if (st.isSymbolicLink()) {
        try {
          fs.symlinkSync(fs.readlinkSync(f), t);
          count.files++;
        } catch {
          // unreadable link: skipped
        }
      } else if (st.isFile()) {
        if (count.bytes + st.size > limit.bytes * 1.02 && st.size > 1024 * 1024) continue; // keep to the budget
        try {
          fs.copyFileSync(f, t);
          fs.chmodSync(t, st.mode & 0o7777);
          fs.utimesSync(t, st.atime, st.mtime);
          count.files++;
          count.bytes += st.size;
        } catch {
          fs.rmSync(t, { force: true });
        }
      }
    }
    try {
      const st = fs.statSync(from);
      fs.utimesSync(to, st.atime, st.mtime);
    } catch {
      // times of a folder: not essential
    }
  };
  let shared = 0;
  for (const s of sources) {
    shared = Math.min(1, shared + (s.share ?? 1));
    limit = { bytes: budget.bytes * shared, files: budget.files * shared };
    if (full()) continue;
    if (!fs.existsSync(s.from)) continue;
    const before = count.files;
    copyDir(fs.realpathSync(s.from), path.join(dest, s.to));
    if (count.files > before) taken.push(s.from);
  }
  return taken;
}

/** The system tree: headers, shared data and documentation, then shared libraries, until the budget is spent. */
export function buildSystemTree(dest: string, budget: Budget): string {
  fs.rmSync(dest, { recursive: true, force: true });
  fs.mkdirSync(dest, { recursive: true });
  const taken = copyTrees(
    dest,
    (
      [
        ['/usr/include', 0.08],
        ['/usr/share', 0.3],
        ['/usr/lib', 0.6],
        ['/usr/libexec', 0.01],
        ['/usr/local/lib', 0.01],
      ] as const
    ).map(([from, share]) => ({ from, to: from.slice(1).replace(/\//g, '-'), share })),
    budget,
  );
  return `a copy of ${taken.join(', ')}`;
}

/**
 * A developer's home: git clones (with their pack files) of the repositories the machine has, the
 * project's node_modules, the npm and cargo caches, then a Python installation, until the budget
 * is spent.
 */
export function buildDevHome(dest: string, budget: Budget, gitRepos: readonly string[], nodeModules: string): string {
  fs.rmSync(dest, { recursive: true, force: true });
  fs.mkdirSync(dest, { recursive: true });
  const count: Counter = { files: 0, bytes: 0 };
  const parts: string[] = [];
  for (const repo of gitRepos) {
    const to = path.join(dest, 'src', path.basename(repo.replace(/\/\.git$/, '')));
    const r = spawnSync('git', ['clone', '--quiet', '--no-hardlinks', repo, to], { encoding: 'utf8' });
    if (r.status !== 0) continue;
    spawnSync('git', ['-C', to, 'gc', '--quiet'], { encoding: 'utf8' }); // one pack, as a clone that has lived has
    const u = walkStats(to);
    count.files += u.files;
    count.bytes += u.bytes;
    parts.push(`git clone of ${repo}`);
  }
  const home = '/root';
  const taken = copyTrees(
    dest,
    [
      { from: nodeModules, to: 'src/lifeboat/node_modules', share: 0.4 },
      { from: path.join(home, '.npm'), to: '.npm', share: 0.15 },
      { from: path.join(home, '.cargo'), to: '.cargo', share: 0.05 },
      { from: path.join(home, '.pyenv', 'versions'), to: '.pyenv/versions', share: 0.4 },
    ],
    budget,
    count,
  );
  return [...parts, ...taken.map((t) => `a copy of ${t}`)].join(', ');
}

/**
 * Photos (2–12 MiB) and videos (64–512 MiB, or smaller within a small budget): the bytes of the
 * compressed archives on this machine (Debian packages, Python wheels and sdists) laid end to end
 * and cut into files, so that nothing in them compresses, as with JPEG and H.264.
 */
export function buildMedia(dest: string, budget: Budget, seed: string): string {
  fs.rmSync(dest, { recursive: true, force: true });
  const archives = listFiles(['/var/cache/apt/archives', '/opt/wheels', '/opt/pypi/files', '/opt/pypi-more'], /\.(deb|whl|gz|xz|zst|bz2|zip)$/);
  if (archives.length === 0) throw new Error('no compressed archives on this machine to build photos and videos from');
  const rng = new Prng(seed);
  let src = 0;
  let fd = -1;
  let left = 0;
  const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
  /** The next `n` bytes of the archives, end to end (round and round if they run out). */
  const next = (n: number): Buffer => {
    let got = 0;
    while (got < n) {
      if (left === 0) {
        if (fd >= 0) fs.closeSync(fd);
        const f = archives[src++ % archives.length]!;
        fd = fs.openSync(f, 'r');
        left = fs.fstatSync(fd).size;
        continue;
      }
      const k = fs.readSync(fd, buf, got, Math.min(n - got, left), null);
      if (k <= 0) {
        left = 0;
        continue;
      }
      got += k;
      left -= k;
    }
    return buf.subarray(0, n);
  };
  const write = (file: string, size: number, mtime: number): void => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const out = fs.openSync(file, 'w');
    try {
      for (let done = 0; done < size; ) {
        const n = Math.min(buf.length, size - done);
        fs.writeSync(out, next(n), 0, n);
        done += n;
      }
    } finally {
      fs.closeSync(out);
    }
    fs.utimesSync(file, mtime, mtime);
  };
  const MiB = 1024 * 1024;
  const base = 1_704_067_200;
  let bytes = 0;
  let files = 0;
  // About 40% of the bytes in videos, the rest photos, spread over monthly folders.
  const videoMax = Math.max(16 * MiB, Math.min(512 * MiB, budget.bytes / 6));
  const videoMin = Math.min(64 * MiB, videoMax / 2);
  for (let v = 0; bytes < budget.bytes * 0.4; v++) {
    const size = rng.range(Math.round(videoMin), Math.round(videoMax));
    write(path.join(dest, 'Videos', `VID_${String(20240100 + v * 7)}_${String(rng.int(1e6)).padStart(6, '0')}.mp4`), size, base + v * 86400 * 11);
    bytes += size;
    files++;
  }
  for (let p = 0; bytes < budget.bytes && files < budget.files; p++) {
    const month = Math.floor(p / 40);
    const size = rng.range(2 * MiB, 12 * MiB);
    write(path.join(dest, 'Pictures', `2024-${String((month % 12) + 1).padStart(2, '0')}`, `IMG_${String(1000 + p)}.jpg`), size, base + p * 3600 * 7);
    bytes += size;
    files++;
  }
  if (fd >= 0) fs.closeSync(fd);
  return `the bytes of ${archives.length.toLocaleString('en')} compressed archives (Debian packages, Python wheels) cut into photos of 2–12 MiB and videos of ${fmtBytes(videoMin)}–${fmtBytes(videoMax)}`;
}

function listFiles(dirs: readonly string[], re: RegExp): string[] {
  const out: string[] = [];
  for (const d of dirs) {
    eachFile(d, (p) => {
      if (re.test(path.basename(p))) out.push(p);
    });
  }
  return out;
}

function walkStats(dir: string): Counter {
  const c: Counter = { files: 0, bytes: 0 };
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        c.files++;
        c.bytes += fs.statSync(p).size;
      } else if (e.isSymbolicLink()) c.files++;
    }
  };
  walk(dir);
  return c;
}

/** Regular files of a tree, as paths relative to it, in a fixed order. */
export function treeFiles(root: string): { rel: string; size: number }[] {
  const out: { rel: string; size: number }[] = [];
  const walk = (dir: string, rel: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path.join(dir, e.name), r);
      else if (e.isFile()) out.push({ rel: r, size: fs.statSync(path.join(dir, e.name)).size });
    }
  };
  walk(root, '');
  return out;
}

const BUCKETS: readonly [string, number][] = [
  ['0 B', 1],
  ['<4 KiB', 4096],
  ['<64 KiB', 64 * 1024],
  ['<1 MiB', 1024 * 1024],
  ['<16 MiB', 16 * 1024 * 1024],
  ['<256 MiB', 256 * 1024 * 1024],
  ['≥256 MiB', Infinity],
];

export interface TreeMakeUp {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  largest: number;
  histogram: { bucket: string; files: number; bytes: number }[];
  /** Bytes after zstd -3 (of samples, scaled to the whole). */
  zstdBytes: number;
  /** Bytes in files zstd -3 shrinks by less than 3% (already compressed). */
  incompressibleBytes: number;
}

/**
 * Counts, a size histogram and compressibility: every file up to 1 MiB compressed whole, larger
 * ones by three 256 KiB samples (start, middle, end) scaled to their size.
 */
export function describeTree(root: string): TreeMakeUp {
  const zstd = new Encoder(3);
  const m: TreeMakeUp = { files: 0, dirs: 0, symlinks: 0, bytes: 0, largest: 0, histogram: BUCKETS.map(([bucket]) => ({ bucket, files: 0, bytes: 0 })), zstdBytes: 0, incompressibleBytes: 0 };
  const SAMPLE = 256 * 1024;
  const buf = Buffer.allocUnsafe(1024 * 1024);
  const compressedSize = (file: string, size: number): number => {
    const fd = fs.openSync(file, 'r');
    try {
      if (size <= buf.length) {
        const n = fs.readSync(fd, buf, 0, size, 0);
        return n === 0 ? 0 : Math.min(n, zstd.encodeSync(buf.subarray(0, n)).length);
      }
      let raw = 0;
      let z = 0;
      for (const at of [0, Math.floor(size / 2), size - SAMPLE]) {
        const n = fs.readSync(fd, buf, 0, SAMPLE, at);
        raw += n;
        z += Math.min(n, zstd.encodeSync(buf.subarray(0, n)).length);
      }
      return raw ? Math.round((z / raw) * size) : size;
    } finally {
      fs.closeSync(fd);
    }
  };
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        m.dirs++;
        walk(p);
      } else if (e.isSymbolicLink()) m.symlinks++;
      else if (e.isFile()) {
        const size = fs.statSync(p).size;
        m.files++;
        m.bytes += size;
        m.largest = Math.max(m.largest, size);
        const b = m.histogram[BUCKETS.findIndex(([, lim]) => size < lim)]!;
        b.files++;
        b.bytes += size;
        const z = compressedSize(p, size);
        m.zstdBytes += z;
        if (z > size * 0.97) m.incompressibleBytes += size;
      }
    }
  };
  walk(root);
  return m;
}

export function fmtMakeUp(m: TreeMakeUp): string {
  const pct = (a: number, b: number): string => `${b ? ((a / b) * 100).toFixed(0) : 0}%`;
  const hist = m.histogram
    .filter((b) => b.files > 0)
    .map((b) => `${b.bucket}: ${b.files.toLocaleString('en')} files/${fmtBytes(b.bytes)}`)
    .join(', ');
  return (
    `${m.files.toLocaleString('en')} files, ${m.dirs.toLocaleString('en')} folders, ${m.symlinks.toLocaleString('en')} symlinks, ${fmtBytes(m.bytes)} (largest ${fmtBytes(m.largest)}); ` +
    `sizes: ${hist}; zstd -3: ${fmtBytes(m.zstdBytes)} (${(m.bytes / Math.max(1, m.zstdBytes)).toFixed(2)}× smaller), ` +
    `${pct(m.incompressibleBytes, m.bytes)} of the bytes already compressed (zstd saves < 3%)`
  );
}

/**
 * About `fraction` of the files change, as in the generated tree's mutation: 40% get a region of up
 * to 64 KiB overwritten (with bytes of another file of the tree) and 0.1–4 KB appended, 30% are
 * deleted, 30% are added (another file's bytes with a new first 4 KiB, as a new version). `keep`
 * is never deleted.
 */
export function mutateFiles(root: string, seed: string, fraction: number, keep: ReadonlySet<string>): MutationSummary {
  const rng = new Prng(`${seed}\0mutation`);
  const files = treeFiles(root);
  const count = Math.max(3, Math.round(files.length * fraction));
  const nModify = Math.round(count * 0.4);
  const nAdd = Math.round(count * 0.3);
  const nDelete = count - nModify - nAdd;
  const later = Math.floor(Date.now() / 1000);
  const chosen = new Set<number>();
  const pick = (): number => {
    for (let tries = 0; ; tries++) {
      const i = rng.int(files.length);
      if ((!chosen.has(i) && !keep.has(files[i]!.rel)) || tries > 1000) {
        chosen.add(i);
        return i;
      }
    }
  };
  // Called before any file is deleted.
  const bytesOf = (n: number): Buffer => {
    const other = files[rng.int(files.length)]!;
    const out = Buffer.alloc(n);
    const fd = fs.openSync(path.join(root, other.rel), 'r');
    try {
      fs.readSync(fd, out, 0, Math.min(n, other.size), 0);
    } finally {
      fs.closeSync(fd);
    }
    rng.fill(out.subarray(0, Math.min(n, 64)));
    return out;
  };
  let bytesWritten = 0;
  for (let k = 0; k < nModify; k++) {
    const f = files[pick()]!;
    const file = path.join(root, f.rel);
    const region = Math.min(f.size, 64 * 1024, Math.max(1, Math.round(f.size * 0.1)));
    const at = f.size > region ? rng.int(f.size - region) : 0;
    const appended = rng.range(100, 4000);
    const buf = bytesOf(region + appended);
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, buf, 0, region, at);
    fs.writeSync(fd, buf, region, appended, f.size);
    fs.closeSync(fd);
    fs.utimesSync(file, later + k, later + k);
    bytesWritten += buf.length;
  }
  const deleted = new Set<number>();
  for (let k = 0; k < nDelete; k++) {
    const i = pick();
    deleted.add(i);
    fs.rmSync(path.join(root, files[i]!.rel), { force: true });
  }
  for (let k = 0; k < nAdd; k++) {
    let j = rng.int(files.length);
    while (deleted.has(j)) j = (j + 1) % files.length;
    const like = files[j]!;
    const file = path.join(root, path.dirname(like.rel), `new-${k}-${path.basename(like.rel)}`);
    if (!fs.existsSync(path.dirname(file))) continue;
    const data = fs.readFileSync(path.join(root, like.rel));
    rng.fill(data.subarray(0, 4096));
    fs.writeFileSync(file, data);
    fs.utimesSync(file, later + k, later + k);
    bytesWritten += data.length;
  }
  return { modified: nModify, added: nAdd, deleted: nDelete, bytesWritten };
}
