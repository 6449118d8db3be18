/**
 * Pins (docs/FORMAT.md §12): a pinned snapshot is never removed by forget or prune. A pin is its own
 * small encrypted object, `pins/<snapshot id>/<sha256 of the pin's bytes>`, so pinning never
 * rewrites the snapshot; unpinning deletes every pin object of the snapshot. Pin and unpin take a
 * shared lock, forget an exclusive one, so a pin cannot slip in while forget decides.
 */
import { hostname, userInfo } from 'node:os';
import { LifeboatError } from '../util/errors.js';
import { sha256 } from './crypto.js';
import { openFile, sealFile } from './envelope-file.js';
import { fromHex, idOfName, isId, toHex, type Hex } from './ids.js';
import type { Repository } from './repository.js';
import { systemClock } from '../util/clock.js';

export const PINS_PREFIX = 'pins/';
const PIN_AAD = Buffer.from('lifeboat pin v1');

export interface PinInfo {
  /** When the pin was made (ISO-8601, UTC). */
  readonly time: string;
  readonly note: string;
  readonly host: string;
  readonly user: string;
  /** Set when the pin object could not be read: the snapshot is treated as pinned anyway. */
  readonly damaged?: true;
}

interface PinBody {
  readonly version: 1;
  readonly snapshot: Hex;
  readonly time: string;
  readonly note: string;
  readonly host: string;
  readonly user: string;
}

function pinAad(snapshotId: Hex): Buffer {
  return Buffer.concat([PIN_AAD, fromHex(snapshotId)]);
}

function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    return '';
  }
}

/** Pins a snapshot (the caller resolved the id and holds a lock). Replaces an earlier pin's note. */
export async function pinSnapshot(repo: Repository, snapshotId: Hex, note = '', now = new Date(systemClock.now())): Promise<PinInfo> {
  if (!isId(snapshotId)) throw new LifeboatError('invalid-argument', `"${snapshotId}" is not a full snapshot id.`);
  if (!(await repo.store.stat(`snapshots/${snapshotId}`))) throw new LifeboatError('not-found', `There is no snapshot ${snapshotId.slice(0, 8)}. List them with "lifeboat snapshots".`);
  const before = await pinNames(repo, snapshotId);
  const body: PinBody = { version: 1, snapshot: snapshotId, time: now.toISOString(), note, host: hostname(), user: currentUser() };
  const bytes = await sealFile(repo.codec, repo.keys.encKey, pinAad(snapshotId), Buffer.from(JSON.stringify(body)));
  const name = `${PINS_PREFIX}${snapshotId}/${toHex(sha256(bytes))}`;
  await repo.store.put(name, bytes);
  // The new pin is durable before the old ones go, so the snapshot is pinned at every moment.
  for (const old of before) if (old !== name) await repo.store.delete(old);
  return { time: body.time, note, host: body.host, user: body.user };
}

/** Removes every pin of the snapshot; false when it was not pinned. */
export async function unpinSnapshot(repo: Repository, snapshotId: Hex): Promise<boolean> {
  const names = await pinNames(repo, snapshotId);
  for (const n of names) await repo.store.delete(n);
  return names.length > 0;
}

async function pinNames(repo: Repository, snapshotId: Hex): Promise<string[]> {
  const out: string[] = [];
  for await (const o of repo.store.list(`${PINS_PREFIX}${snapshotId}/`)) out.push(o.name);
  return out;
}

/** Calls `onPin` for each pin object; one that cannot be read is reported damaged (with why). */
async function forEachPin(repo: Repository, onPin: (name: string, snapshotId: Hex, info: PinInfo, problem?: string) => void): Promise<void> {
  for await (const o of repo.store.list(PINS_PREFIX)) {
    const parts = o.name.split('/');
    const snapshotId = parts[1];
    if (parts.length !== 3 || !snapshotId || !isId(snapshotId) || !idOfName(o.name)) continue;
    try {
      const plain = await openFile(repo.codec, repo.keys.encKey, pinAad(snapshotId), await repo.store.get(o.name), `The pin ${o.name}`);
      const b = JSON.parse(Buffer.from(plain).toString('utf8')) as Partial<PinBody>;
      if (b.version !== 1 || b.snapshot !== snapshotId || typeof b.time !== 'string') throw new Error('its content is not a pin of this snapshot');
      onPin(o.name, snapshotId, { time: b.time, note: typeof b.note === 'string' ? b.note : '', host: String(b.host ?? ''), user: String(b.user ?? '') });
    } catch (e) {
      if (e instanceof LifeboatError && e.code === 'not-found') continue; // unpinned meanwhile
      const info: PinInfo = { time: '', note: '(the pin object is damaged; the snapshot stays pinned)', host: '', user: '', damaged: true };
      onPin(o.name, snapshotId, info, e instanceof Error ? e.message : String(e));
    }
  }
}

/**
 * Every pin, by snapshot id. A pin that cannot be read still pins its snapshot (marked damaged):
 * when in doubt, keep. Pins of snapshots that no longer exist are included (prune removes them).
 */
export async function loadPins(repo: Repository): Promise<Map<Hex, PinInfo>> {
  const out = new Map<Hex, PinInfo>();
  await forEachPin(repo, (_name, snapshotId, info) => {
    const prev = out.get(snapshotId);
    if (!prev || (!info.damaged && (prev.damaged || info.time > prev.time))) out.set(snapshotId, info);
  });
  return out;
}

/**
 * The pin objects that cannot be read (for check), each with what the user can do. Such a pin
 * keeps protecting its snapshot until the user pins it again (which replaces it) or unpins it.
 */
export async function damagedPins(repo: Repository): Promise<{ file: string; snapshot: Hex; message: string }[]> {
  const out: { file: string; snapshot: Hex; message: string }[] = [];
  await forEachPin(repo, (name, snapshot, _info, problem) => {
    if (problem === undefined) return;
    const s = snapshot.slice(0, 8);
    out.push({ file: name, snapshot, message: `the pin of snapshot ${s} is damaged (${problem}); the snapshot stays pinned until you decide: "lifeboat pin ${s}" renews the pin, "lifeboat unpin ${s}" removes it` });
  });
  return out;
}

/** Deletes pins whose snapshot is gone (prune, under its exclusive lock). Returns how many. */
export async function removeDanglingPins(repo: Repository, existing: ReadonlySet<Hex>): Promise<number> {
  let n = 0;
  for await (const o of repo.store.list(PINS_PREFIX)) {
    const snapshotId = o.name.split('/')[1];
    if (snapshotId && isId(snapshotId) && !existing.has(snapshotId)) {
      await repo.store.delete(o.name);
      n++;
    }
  }
  return n;
}
