/**
 * Parity over a whole repository (FORMAT.md §9): which objects get a sidecar, `parity add` (give an
 * existing repository parity, or rewrite missing and damaged sidecars) and check's view of the
 * sidecars. The codec and the read path are store/parity.ts.
 */
import { LifeboatError } from '../util/errors.js';
import { ParityStore, type ParitySettings } from '../store/parity.js';
import type { Store } from '../store/store.js';
import { Names } from './ids.js';
import { PINS_PREFIX } from './pins.js';
import type { Repository } from './repository.js';
import { encodeSignedJson } from './signed-json.js';

/** The folders whose objects parity protects (locks are short-lived; the config is named alone). */
const PROTECTED_FOLDERS = ['keys/', 'index/', 'snapshots/', PINS_PREFIX, 'data/'];

/** The plain store under a repository's parity wrapper. */
function plainStore(repo: Repository): Store {
  return repo.store instanceof ParityStore ? repo.store.inner : repo.store;
}

async function protectedNames(store: Store): Promise<string[]> {
  const names: string[] = [Names.config];
  if (await store.stat(Names.configCopy)) names.push(Names.configCopy);
  for (const prefix of PROTECTED_FOLDERS) for await (const o of store.list(prefix)) names.push(o.name);
  return names;
}

export interface ParityAddResult {
  /** Objects that got a new sidecar (they had none, or it was damaged). */
  readonly written: number;
  /** Objects whose sidecar was already sound. */
  readonly sound: number;
  /** True when this run gave the repository parity (recorded in its config). */
  readonly enabled: boolean;
}

/**
 * Gives every object a sound sidecar, then (when the repository had no parity) records `settings`
 * in the config, last, so the config never claims parity that is not there. Run under an exclusive
 * lock. Objects are read through the parity they have, so damage is corrected, not frozen in.
 */
export async function addParity(repo: Repository, settings: ParitySettings | undefined, onProgress?: (done: number, total: number) => void): Promise<ParityAddResult> {
  const current = repo.config.parity;
  if (current && settings && JSON.stringify(current) !== JSON.stringify(settings)) {
    throw new LifeboatError('usage', 'This repository already has parity of another amount; it cannot be changed. Run "lifeboat parity add" without an amount to repair its parity.');
  }
  const chosen = current ?? settings;
  if (!chosen) throw new Error('addParity: no settings');
  const store = new ParityStore(plainStore(repo), chosen);
  const names = await protectedNames(store);
  let written = 0;
  let sound = 0;
  for (const [i, name] of names.entries()) {
    onProgress?.(i, names.length);
    if ((name === Names.config || name === Names.configCopy) && !current) continue; // written below, with their new content
    if ((await store.verifyParity(name)) === 'ok') sound++;
    else {
      await store.protect(name);
      written++;
    }
  }
  if (!current) {
    // The config first: it is what readers trust; a copy left behind by a crash only lacks parity
    // (check reports it, "repair config" makes it the same).
    const bytes = encodeSignedJson({ ...repo.config, parity: chosen }, repo.keys.macKey);
    await store.put(Names.config, bytes);
    await store.put(Names.configCopy, bytes);
    written += 2;
  }
  return { written, sound, enabled: !current };
}

/** check: every object whose sidecar is missing, or (with readData, reading every sidecar) damaged. */
export async function checkParity(repo: Repository, readData: boolean): Promise<{ file: string; message: string }[]> {
  if (!repo.config.parity) return [];
  const store = new ParityStore(plainStore(repo), repo.config.parity);
  const present = new Set<string>();
  for await (const o of store.list('parity/')) present.add(o.name.slice('parity/'.length));
  const out: { file: string; message: string }[] = [];
  for (const name of await protectedNames(store)) {
    const state = !present.has(name) ? 'missing' : readData ? await store.verifyParity(name) : 'ok';
    if (state === 'missing') out.push({ file: name, message: 'has no parity (written by an interrupted run or an older Lifeboat); "lifeboat parity add" adds it' });
    else if (state === 'damaged') out.push({ file: name, message: 'its parity is damaged (the file itself is fine); "lifeboat parity add" rewrites it' });
  }
  return out;
}
