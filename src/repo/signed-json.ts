/**
 * Plaintext files that must stay readable before the password is known (config, key slots) are
 * "signed JSON": the exact UTF-8 JSON bytes, a newline, then 64 hex digits of HMAC-SHA256 over
 * those bytes with the repository's macKey. Any changed byte is detected once the keys are open.
 */
import { LifeboatError } from '../util/errors.js';
import { mac, macEquals } from './crypto.js';

export function encodeSignedJson(value: unknown, macKey: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(value), 'utf8');
  return Buffer.concat([json, Buffer.from('\n' + mac(macKey, json).toString('hex') + '\n', 'utf8')]);
}

export interface SignedJson {
  readonly value: unknown;
  readonly json: Buffer;
  readonly mac: Buffer;
}

export function parseSignedJson(bytes: Uint8Array, what: string): SignedJson {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const nl = buf.indexOf(0x0a);
  const tail = nl < 0 ? '' : buf.subarray(nl + 1).toString('latin1');
  if (nl < 0 || !/^[0-9a-f]{64}\n$/.test(tail)) {
    throw new LifeboatError('corrupt', `${what} is damaged (its signature line is missing or malformed).`);
  }
  const json = buf.subarray(0, nl);
  let value: unknown;
  try {
    value = JSON.parse(json.toString('utf8'));
  } catch {
    throw new LifeboatError('corrupt', `${what} is damaged (it is not valid JSON).`);
  }
  return { value, json, mac: Buffer.from(tail.slice(0, 64), 'hex') };
}

export function verifySignedJson(s: SignedJson, macKey: Buffer): boolean {
  return macEquals(mac(macKey, s.json), s.mac);
}
