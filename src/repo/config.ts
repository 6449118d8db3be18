/**
 * The repository config (docs/FORMAT.md §3) and its copy. Writers keep the same signed bytes under
 * two names, `config` and `config.copy`, so one damaged or deleted config object costs nothing:
 * a reader takes `config` when it is sound and the copy otherwise (with one warning), check names
 * the damaged one and "repair config" writes it again from the sound one. Repositories made
 * before the copy existed have only `config` and open as before.
 */
import { LifeboatError } from '../util/errors.js';
import { ParityStore, validParitySettings, type ParityReport, type ParitySettings } from '../store/parity.js';
import type { Store } from '../store/store.js';
import { Names, type Hex } from './ids.js';
import { parseSignedJson, verifySignedJson, type SignedJson } from './signed-json.js';

export const FORMAT_VERSION = 1;

export interface RepoConfig {
  readonly format: 'lifeboat-repository';
  readonly version: number;
  readonly id: Hex;
  readonly created: string;
  readonly chunker: { readonly algorithm: 'fastcdc-lb1'; readonly min: number; readonly avg: number; readonly max: number };
  /** Reed–Solomon parity sidecars for bit rot (store/parity.ts, FORMAT.md §14); absent: none. */
  readonly parity?: ParitySettings;
}

/** The config objects, in the order a reader trusts them. */
export const CONFIG_NAMES = [Names.config, Names.configCopy] as const;

/** One config object that parses as a config of a version this Lifeboat reads (its MAC not yet checked). */
export interface ConfigCandidate {
  readonly name: string;
  readonly config: RepoConfig;
  readonly raw: SignedJson;
  readonly bytes: Uint8Array;
}

function what(name: string): string {
  return name === Names.config ? 'The repository config file' : `The copy of the repository config (${name})`;
}

/** A config object of a version this Lifeboat does not read; `raw` lets its MAC be checked later. */
class NewerVersion extends LifeboatError {
  constructor(
    version: unknown,
    readonly raw: SignedJson,
  ) {
    super('unsupported-version', `This repository uses format version ${String(version)}, but this Lifeboat reads only version ${FORMAT_VERSION}. Install a Lifeboat that supports it.`);
  }
}

/** Reads one config object through its parity sidecar, if any, and checks its fields. */
async function readOne(store: Store, name: string, onCorrected?: (r: ParityReport) => void): Promise<ConfigCandidate> {
  const bytes = await new ParityStore(store, undefined, onCorrected).get(name);
  const raw = parseSignedJson(bytes, what(name));
  const c = raw.value as Partial<RepoConfig> | null;
  if (!c || typeof c !== 'object' || c.format !== 'lifeboat-repository') {
    throw new LifeboatError('no-repository', `${store.location} does not hold a Lifeboat repository (its config file is not Lifeboat's).`);
  }
  if (c.version !== FORMAT_VERSION) throw new NewerVersion(c.version, raw);
  if (typeof c.id !== 'string' || !c.chunker || c.chunker.algorithm !== 'fastcdc-lb1' || (c.parity !== undefined && !validParitySettings(c.parity))) {
    throw new LifeboatError('corrupt', `${what(name)} is damaged (fields are missing).`);
  }
  return { name, config: c as RepoConfig, raw, bytes };
}

export interface ConfigReading {
  /** The config objects that parse, `config` first. */
  readonly candidates: ConfigCandidate[];
  /** Why each other config object is unusable ('not-found' when it is absent). */
  readonly problems: Map<string, LifeboatError>;
  /** The names not read yet: the copy is read only when `config` cannot be used (one request less per command). */
  readonly unread: string[];
}

async function readInto(store: Store, r: ConfigReading, name: string, onCorrected?: (r: ParityReport) => void): Promise<void> {
  try {
    r.candidates.push(await readOne(store, name, onCorrected));
  } catch (e) {
    if (!(e instanceof LifeboatError)) throw e;
    r.problems.set(name, e);
  }
}

/**
 * Reads `config` (and its copy only when `config` does not parse) without a password. Throws when
 * neither is usable: "no repository" when both are absent, else the reason the first present one
 * cannot be used (an unsupported version, damage). A config object of a version this Lifeboat does
 * not know, beside a copy it knows, is only refused once the keys show that it is authentic
 * (chooseConfig): else one flipped byte in the version would stop the repository from opening.
 */
export async function readConfigs(store: Store, onCorrected?: (r: ParityReport) => void): Promise<ConfigReading> {
  const r: ConfigReading = { candidates: [], problems: new Map(), unread: [...CONFIG_NAMES] };
  while (r.candidates.length === 0 && r.unread.length > 0) await readInto(store, r, r.unread.shift()!, onCorrected);
  if (r.candidates.length === 0) {
    const present = CONFIG_NAMES.map((n) => r.problems.get(n)!).find((e) => e.code !== 'not-found');
    if (present) throw present;
    throw new LifeboatError('no-repository', `There is no Lifeboat repository at ${store.location}. Create one with "lifeboat init", or check the path.`);
  }
  return r;
}

/**
 * The config to use once the master keys are known: the first candidate whose MAC verifies (the
 * copy is read now if `config` does not verify), and the warning to give when that is not `config`
 * itself. Throws when none verifies.
 */
export async function chooseConfig(store: Store, reading: ConfigReading, macKey: Buffer, onCorrected?: (r: ParityReport) => void): Promise<{ chosen: ConfigCandidate; warning?: string }> {
  // A sound config object of another version wins over an older copy: it is no damage.
  for (const e of reading.problems.values()) if (e instanceof NewerVersion && verifySignedJson(e.raw, macKey)) throw e;
  let chosen = reading.candidates.find((c) => verifySignedJson(c.raw, macKey));
  while (!chosen && reading.unread.length > 0) {
    const name = reading.unread.shift()!;
    await readInto(store, reading, name, onCorrected);
    const c = reading.candidates.find((x) => x.name === name);
    if (c && verifySignedJson(c.raw, macKey)) chosen = c;
  }
  if (!chosen) {
    throw new LifeboatError('corrupt', 'The repository config file was modified after it was written; the repository may have been tampered with.');
  }
  if (chosen.name === Names.config) return { chosen };
  const problem = reading.problems.get(Names.config);
  const state = problem?.code === 'not-found' ? 'is missing' : 'is damaged';
  return { chosen, warning: `The repository's config file ${state}; Lifeboat uses its copy (${chosen.name}), so nothing is lost. "lifeboat repair config" writes the config file again.` };
}

export interface ConfigProblem {
  readonly file: string;
  readonly message: string;
  /** Errors make check fail; a missing copy (an older repository) or a stale one is a warning. */
  readonly severity: 'error' | 'warning';
}

/**
 * What is wrong with the config objects, given the bytes this repository opened with (`good`,
 * whose MAC verified): each one absent, damaged, or different from `good`.
 */
export async function checkConfigs(store: Store, good: Uint8Array, macKey: Buffer): Promise<ConfigProblem[]> {
  const out: ConfigProblem[] = [];
  for (const name of CONFIG_NAMES) {
    let bytes: Uint8Array;
    try {
      bytes = await store.get(name);
    } catch (e) {
      if (!(e instanceof LifeboatError)) throw e;
      if (e.code !== 'not-found') out.push({ file: name, severity: 'error', message: `cannot be read (${e.message}); "lifeboat repair config" writes it again` });
      else if (name === Names.config) out.push({ file: name, severity: 'error', message: `is missing; the repository opens with its copy (${Names.configCopy}), and "lifeboat repair config" writes it again` });
      else out.push({ file: name, severity: 'warning', message: 'is missing (an older Lifeboat made this repository, or it was deleted): a damaged config file could not be replaced; "lifeboat repair config" writes it' });
      continue;
    }
    if (Buffer.from(bytes).equals(good)) continue;
    let sound = false;
    try {
      sound = verifySignedJson(parseSignedJson(bytes, what(name)), macKey);
    } catch (e) {
      if (!(e instanceof LifeboatError)) throw e;
    }
    if (!sound) out.push({ file: name, severity: 'error', message: 'is damaged (its signature does not match); "lifeboat repair config" writes it again from the sound copy' });
    else out.push({ file: name, severity: 'warning', message: 'differs from the config in use (a "parity add" was interrupted?); "lifeboat repair config" makes it the same' });
  }
  return out;
}

export interface RepairConfigResult {
  /** The config objects written again (damaged, missing or different). */
  readonly written: string[];
}

/**
 * Writes every config object that is not exactly `good` (the bytes the repository opened with),
 * under an exclusive lock held by the caller. Each write is an atomic put of the sound bytes: the
 * damaged object is replaced as a whole by the new one, never patched, and the other sound object
 * is not touched meanwhile, so a run killed at any moment leaves at least one sound config.
 * A store with parity writes the sidecar after the object, as always.
 */
export async function repairConfigs(store: Store, good: Uint8Array, macKey: Buffer, dryRun = false): Promise<RepairConfigResult> {
  const written: string[] = [];
  for (const p of await checkConfigs(store, good, macKey)) {
    if (!dryRun) await store.put(p.file, good);
    written.push(p.file);
  }
  return { written };
}
