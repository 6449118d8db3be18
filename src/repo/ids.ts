/** Hex ids and the naming scheme of objects in the store (docs/FORMAT.md §Layout). */
import { randomBytes } from 'node:crypto';
import { LifeboatError } from '../util/errors.js';

export type Hex = string;

export function toHex(b: Uint8Array): Hex {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

const HEX64 = /^[0-9a-f]{64}$/;

export function isId(s: string): boolean {
  return HEX64.test(s);
}

export function fromHex(h: string): Buffer {
  if (!isId(h)) throw new LifeboatError('corrupt', `"${h.slice(0, 80)}" is not a valid object id.`);
  return Buffer.from(h, 'hex');
}

export function randomId(): Hex {
  return randomBytes(32).toString('hex');
}

export const Names = {
  config: 'config',
  /** The same bytes as config, kept so that one damaged config object costs nothing (FORMAT.md §3). */
  configCopy: 'config.copy',
  key: (id: Hex) => `keys/${id}`,
  pack: (id: Hex) => `data/${id.slice(0, 2)}/${id}`,
  index: (id: Hex) => `index/${id}`,
  snapshot: (id: Hex) => `snapshots/${id}`,
  lock: (id: Hex) => `locks/${id}`,
} as const;

/** The last path component of a store name, if it is a valid id. */
export function idOfName(name: string): Hex | undefined {
  const last = name.slice(name.lastIndexOf('/') + 1);
  return isId(last) ? last : undefined;
}
