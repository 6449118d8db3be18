/**
 * The server's TLS certificate: a self-signed X.509 v3 certificate for an ECDSA P-256 key, made on
 * first start and kept in the server's state folder (cert.pem, key.pem, mode 0600). node:crypto
 * signs but builds no certificates, so the DER is written here, field by field (RFC 5280); clients
 * do not trust it through a CA but pin its SHA-256 fingerprint on first use (store/remote.ts).
 */
import { generateKeyPairSync, randomBytes, sign, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { systemClock } from '../util/clock.js';
import { writePrivateFile } from './private-file.js';

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let x = n; x > 0; x = Math.floor(x / 256)) bytes.unshift(x & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...parts: Uint8Array[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

const sequence = (...parts: Uint8Array[]): Buffer => tlv(0x30, ...parts);
const set = (...parts: Uint8Array[]): Buffer => tlv(0x31, ...parts);
const explicit = (n: number, inner: Uint8Array): Buffer => tlv(0xa0 + n, inner);

function oid(dotted: string): Buffer {
  const [a = 0, b = 0, ...rest] = dotted.split('.').map(Number);
  const out = [40 * a + b];
  for (const v of rest) {
    const group = [v & 0x7f];
    for (let x = Math.floor(v / 128); x > 0; x = Math.floor(x / 128)) group.unshift((x & 0x7f) | 0x80);
    out.push(...group);
  }
  return tlv(0x06, Buffer.from(out));
}

/** A positive INTEGER from big-endian bytes. */
function integer(bytes: Uint8Array): Buffer {
  let b = Buffer.from(bytes);
  while (b.length > 1 && b[0] === 0 && (b[1]! & 0x80) === 0) b = b.subarray(1);
  return tlv(0x02, (b[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), b]) : b);
}

/** UTCTime until 2049, GeneralizedTime after (RFC 5280 §4.1.2.5). */
function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z'; // YYYYMMDDHHMMSSZ
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2))) : tlv(0x18, Buffer.from(iso));
}

const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const COMMON_NAME = '2.5.4.3';
const BASIC_CONSTRAINTS = '2.5.29.19';
const DER_TRUE = Buffer.from([0x01, 0x01, 0xff]);

/** A new self-signed certificate and its key, both PEM. */
export function makeSelfSignedCertificate(commonName: string, now = new Date(systemClock.now())): { cert: string; key: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const name = sequence(set(sequence(oid(COMMON_NAME), tlv(0x0c, Buffer.from(commonName, 'utf8')))));
  const algorithm = sequence(oid(ECDSA_WITH_SHA256));
  const notBefore = new Date(now.getTime() - 24 * 3600 * 1000);
  const notAfter = new Date(now.getTime() + 20 * 365 * 24 * 3600 * 1000);
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  const tbs = sequence(
    explicit(0, integer(Buffer.from([2]))), // v3
    integer(serial),
    algorithm,
    name,
    sequence(time(notBefore), time(notAfter)),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    // basicConstraints CA:TRUE (critical): the certificate is its own trust anchor on the client.
    explicit(3, sequence(sequence(oid(BASIC_CONSTRAINTS), DER_TRUE, tlv(0x04, sequence(DER_TRUE))))),
  );
  const signature = sign('sha256', tbs, { key: privateKey, dsaEncoding: 'der' });
  const der = sequence(tbs, algorithm, tlv(0x03, Buffer.from([0]), signature));
  const pem = `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END CERTIFICATE-----\n`;
  return { cert: pem, key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

export interface ServerCertificate {
  readonly cert: string;
  readonly key: string;
  /** SHA-256 of the certificate's DER, as "AB:CD:…" (what clients pin). */
  readonly fingerprint: string;
}

/** The server's certificate from `stateDir`, made on first start. */
export function serverCertificate(stateDir: string): ServerCertificate {
  const certPath = join(stateDir, 'cert.pem');
  const keyPath = join(stateDir, 'key.pem');
  if (!existsSync(certPath) || !existsSync(keyPath)) {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const made = makeSelfSignedCertificate('Lifeboat server');
    writePrivateFile(keyPath, made.key);
    writePrivateFile(certPath, made.cert);
  }
  const cert = readFileSync(certPath, 'utf8');
  return { cert, key: readFileSync(keyPath, 'utf8'), fingerprint: new X509Certificate(cert).fingerprint256 };
}
