/**
 * The passwords that open a repository: list its key slots, add a password, remove a slot,
 * change the password in use (the new slot is written before the old one is removed, so a crash
 * leaves both, never neither). The master keys stay inside repo/.
 */
import { Names, type Hex } from '../repo/ids.js';
import { listKeys, readKey } from '../repo/keys.js';
import type { Repository } from '../repo/repository.js';
import { LifeboatError } from '../util/errors.js';

export interface KeySlotRow {
  readonly id: Hex;
  /** The slot this repository was opened with. */
  readonly current: boolean;
  /** 'password', 'recovery', or 'damaged' (then `label` says why). */
  readonly kind: string;
  readonly label: string;
  readonly created: string;
  readonly host: string;
  readonly user: string;
}

export async function listKeySlots(repo: Repository): Promise<KeySlotRow[]> {
  const rows: KeySlotRow[] = [];
  for (const k of await listKeys(repo.store)) {
    try {
      const { slot } = await readKey(repo.store, k.id);
      rows.push({ id: k.id, current: k.id === repo.keyId, kind: slot.kind, label: slot.label, created: slot.created, host: slot.host, user: slot.user });
    } catch (e) {
      rows.push({ id: k.id, current: false, kind: 'damaged', label: e instanceof Error ? e.message : '', created: '', host: '', user: '' });
    }
  }
  return rows;
}

/** Adds another password; returns the new slot's id. */
export function addPassword(repo: Repository, password: string, label: string): Promise<Hex> {
  return repo.addKeySlot(password, 'password', label);
}

/** Removes the key slot whose id starts with `ref` (never the one in use); returns its id. */
export async function removeKeySlot(repo: Repository, ref: string): Promise<Hex> {
  const matches = (await listKeys(repo.store)).filter((k) => k.id.startsWith(ref.toLowerCase()));
  if (matches.length !== 1) throw new LifeboatError('invalid-argument', matches.length === 0 ? `No key id starts with "${ref}". See "lifeboat key list".` : `"${ref}" matches several keys; type more of the id.`);
  const k = matches[0]!;
  if (k.id === repo.keyId) throw new LifeboatError('invalid-argument', 'That is the key you opened the repository with; open it with another password to remove this one.');
  await repo.store.delete(Names.key(k.id));
  return k.id;
}

/** Replaces the slot the repository was opened with by one for `password`. */
export async function changePassword(repo: Repository, password: string): Promise<{ id: Hex; replaced: Hex }> {
  const id = await repo.addKeySlot(password, repo.keySlot.kind, repo.keySlot.label);
  await repo.store.delete(Names.key(repo.keyId)); // new slot first: a crash here leaves both, never neither
  return { id, replaced: repo.keyId };
}
