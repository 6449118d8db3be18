/**
 * Key slots (docs/FORMAT.md §Keys): each slot wraps the same random master keys with a key derived
 * from one password (or the recovery key) by scrypt. Adding, changing or removing a password
 * writes or deletes one small file and never touches data.
 */
import { hostname, userInfo } from 'node:os';
import { LifeboatError } from '../util/errors.js';
import type { Store } from '../store/store.js';
import {
  defaultScrypt, deriveKek, masterKeysFromBytes, masterKeysToBytes, randomBytes, seal, sha256, tryOpen,
  type MasterKeys, type ScryptParams,
} from './crypto.js';
import { Names, idOfName, toHex, type Hex } from './ids.js';
import { encodeSignedJson, parseSignedJson, verifySignedJson } from './signed-json.js';
import { systemClock } from '../util/clock.js';

export type KeyKind = 'password' | 'recovery';

export interface KeySlot {
  readonly version: 1;
  readonly kind: KeyKind;
  readonly label: string;
  readonly created: string;
  readonly host: string;
  readonly user: string;
  readonly kdf: { readonly name: 'scrypt'; readonly N: number; readonly r: number; readonly p: number; readonly salt: string };
  /** base64 of seal(kek, masterKeys, KEY_SLOT_AAD) */
  readonly masterKey: string;
}

const KEY_SLOT_AAD = Buffer.from('lifeboat key slot v1');

export interface StoredKey {
  readonly id: Hex;
  readonly slot: KeySlot;
}

function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    return '';
  }
}

export async function makeKeySlot(master: MasterKeys, secret: string, kind: KeyKind, label: string, params: ScryptParams = defaultScrypt()): Promise<{ id: Hex; bytes: Buffer }> {
  const salt = randomBytes(32);
  const kek = await deriveKek(secret, salt, params);
  const slot: KeySlot = {
    version: 1,
    kind,
    label,
    created: new Date(systemClock.now()).toISOString(),
    host: hostname(),
    user: currentUser(),
    kdf: { name: 'scrypt', N: params.N, r: params.r, p: params.p, salt: salt.toString('base64') },
    masterKey: seal(kek, masterKeysToBytes(master), KEY_SLOT_AAD).toString('base64'),
  };
  const bytes = encodeSignedJson(slot, master.macKey);
  return { id: toHex(sha256(bytes)), bytes };
}

export async function addKey(store: Store, master: MasterKeys, secret: string, kind: KeyKind, label: string, params?: ScryptParams): Promise<Hex> {
  const { id, bytes } = await makeKeySlot(master, secret, kind, label, params);
  await store.put(Names.key(id), bytes);
  return id;
}

function asSlot(v: unknown, name: string): KeySlot {
  const s = v as Partial<KeySlot> | null;
  if (!s || typeof s !== 'object' || s.version !== 1 || s.kdf?.name !== 'scrypt' || typeof s.masterKey !== 'string' || typeof s.kdf.salt !== 'string') {
    throw new LifeboatError('corrupt', `The key file ${name} is damaged or of an unknown kind.`);
  }
  return s as KeySlot;
}

export async function listKeys(store: Store): Promise<{ id: Hex; name: string }[]> {
  const out: { id: Hex; name: string }[] = [];
  for await (const o of store.list('keys/')) {
    const id = idOfName(o.name);
    if (id) out.push({ id, name: o.name });
  }
  return out;
}

export async function readKey(store: Store, id: Hex): Promise<{ slot: KeySlot; bytes: Uint8Array }> {
  const name = Names.key(id);
  const bytes = await store.get(name);
  // A slot is named by the SHA-256 of its bytes: a changed byte shows without any password.
  if (toHex(sha256(bytes)) !== id) throw new LifeboatError('corrupt', `The key file ${name} is damaged (its content no longer matches its name).`);
  return { slot: asSlot(parseSignedJson(bytes, `The key file ${name}`).value, name), bytes };
}

/** The recovery key's shape: 8 groups of 5 Crockford base32 characters (200 bits). */
const B32 = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

export function newRecoveryKey(): string {
  const bytes = randomBytes(25);
  let bits = 0;
  let acc = 0;
  let out = '';
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += B32[(acc >>> (bits - 5)) & 31]!;
      bits -= 5;
    }
    acc &= (1 << bits) - 1;
  }
  return out.match(/.{5}/g)!.join('-');
}

/** Accepts a recovery key typed with lower case, spaces or without dashes. */
export function normalizeRecoveryKey(s: string): string | undefined {
  const c = s.toUpperCase().replace(/[\s-]/g, '').replace(/O/g, '0').replace(/[IL]/g, '1');
  if (c.length !== 40 || [...c].some((ch) => !B32.includes(ch))) return undefined;
  return c.match(/.{5}/g)!.join('-');
}

/**
 * Tries the secret against the slots it can belong to and returns the master keys and the slot
 * that opened. Wrong password → LifeboatError('wrong-password').
 */
export async function unlockKeys(store: Store, secret: string): Promise<{ master: MasterKeys; keyId: Hex; slot: KeySlot }> {
  const keys = await listKeys(store);
  if (keys.length === 0) {
    throw new LifeboatError('corrupt', 'This repository has no key files, so it cannot be opened. If you have a copy of its "keys" folder, put it back.');
  }
  const recovery = normalizeRecoveryKey(secret);
  // A recovery key has a recognisable shape: try recovery slots only for such input and password
  // slots otherwise, one at a time (each scrypt costs ~0.35 s and 32 MiB).
  const slots: { id: Hex; name: string; slot: KeySlot; bytes: Uint8Array }[] = [];
  const damaged: string[] = [];
  for (const k of keys) {
    try {
      slots.push({ ...k, ...(await readKey(store, k.id)) });
    } catch {
      damaged.push(k.id);
      // a damaged slot must not stop another slot from opening; check reports it
    }
  }
  const order = [...slots.filter((k) => (k.slot.kind === 'recovery') === (recovery !== undefined)), ...slots.filter((k) => (k.slot.kind === 'recovery') !== (recovery !== undefined) && k.slot.kind !== 'recovery')];
  for (const k of order) {
    const s = k.slot.kind === 'recovery' && recovery ? recovery : secret;
    const kek = await deriveKek(s, Buffer.from(k.slot.kdf.salt, 'base64'), k.slot.kdf);
    const raw = tryOpen(kek, Buffer.from(k.slot.masterKey, 'base64'), KEY_SLOT_AAD);
    if (!raw) continue;
    const hit = { master: masterKeysFromBytes(raw), keyId: k.id, slot: k.slot };
    if (!verifySignedJson(parseSignedJson(k.bytes, 'key'), hit.master.macKey)) {
      throw new LifeboatError('corrupt', `The key file ${Names.key(hit.keyId)} was modified after it was written; the repository may have been tampered with.`);
    }
    return hit;
  }
  if (damaged.length > 0) {
    const ids = damaged.map((id) => id.slice(0, 8)).join(', ');
    throw new LifeboatError(
      'corrupt',
      `The password opened none of the intact key slots, and the key file${damaged.length > 1 ? 's' : ''} ${ids} ${damaged.length > 1 ? 'are' : 'is'} damaged: if this password belonged to ${damaged.length > 1 ? 'one of them' : 'it'}, open the repository with another password or the recovery key, add a new password with "lifeboat key add" and remove the damaged slot with "lifeboat key remove ${damaged[0]!.slice(0, 8)}". If not, check the password.`,
    );
  }
  throw new LifeboatError('wrong-password', 'The password is not correct for this repository. Check it and try again, or use your recovery key.');
}
