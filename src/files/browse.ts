/**
 * Paths of file snapshots as people type them: the snapshot's own form (/Documents/notes.txt)
 * and the original absolute path (/home/ann/Documents/notes.txt). Walking, comparing and dumping
 * are the tree layer's (tree/tree.ts over files/snapshot-tree.ts).
 */
import type { Snapshot } from '../repo/snapshot.js';
import { splitPath } from '../tree/tree.js';
import { basename } from 'node:path';

/** The name a backed-up path gets in the snapshot's root listing. */
export function rootName(absPath: string): string {
  const b = basename(absPath);
  return b === '' ? 'root' : b;
}

/** '/'-separated, without a trailing separator; Windows' '\\' becomes '/'. */
function slashed(p: string): string {
  const s = p.replace(/\\/g, '/');
  return s.length > 1 ? s.replace(/\/+$/, '') : s;
}

/**
 * A path as a person types it, in the snapshot's own form. Both are accepted everywhere: the
 * snapshot's form (`/Documents/notes.txt`, as `ls` shows it) and the original absolute path
 * (`/home/ann/Documents/notes.txt`, as `snapshots` shows the backed-up folder). A path whose first
 * name is one of the snapshot's top-level names is taken as the snapshot's form.
 */
export function snapshotPath(snapshot: Snapshot, p: string): string {
  if (snapshot.kind !== 'files') return p;
  const first = splitPath(slashed(p))[0];
  if (first === undefined || snapshot.paths.some((o) => rootName(o) === first)) return p;
  let best: { orig: string; name: string } | undefined;
  for (const o of snapshot.paths) {
    const orig = slashed(o);
    const inside = slashed(p) === orig || slashed(p).startsWith(orig.endsWith('/') ? orig : orig + '/');
    if (inside && (best === undefined || orig.length > best.orig.length)) best = { orig, name: rootName(o) };
  }
  if (best === undefined) return p;
  const rest = slashed(p).slice(best.orig.length).replace(/^\/*/, '');
  return `/${best.name}${rest ? `/${rest}` : ''}`;
}

/** The original absolute path ('/'-separated) of a path in the snapshot's form. */
export function originalPath(snapshot: Snapshot, path: string): string {
  const parts = splitPath(path);
  const orig = snapshot.paths.find((o) => rootName(o) === parts[0]);
  if (orig === undefined) return path;
  const base = slashed(orig);
  return [base === '/' ? '' : base, ...parts.slice(1)].join('/') || '/';
}

/** Formats a ns timestamp as ISO-8601 with nanoseconds. */
export function formatNs(ns: bigint): string {
  const ms = ns / 1_000_000n;
  const frac = ((ns % 1_000_000_000n) + 1_000_000_000n) % 1_000_000_000n;
  return new Date(Number(ms)).toISOString().replace(/\.\d+Z$/, `.${frac.toString().padStart(9, '0')}Z`);
}
