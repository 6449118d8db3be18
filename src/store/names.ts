/**
 * Checks every backend shares, so they reject the same inputs with the same errors: list prefixes
 * (the name rules of store.ts, allowing a trailing '/' or a partial last part) and byte ranges.
 */
import { LifeboatError } from '../util/errors.js';

const PREFIX_RE = /^([A-Za-z0-9._-]+\/)*[A-Za-z0-9._-]*$/;

/** A list prefix is '' or the start of a valid name; like names, it can never reach outside the store. */
export function assertValidPrefix(prefix: string): void {
  const parts = prefix.split('/');
  parts.pop(); // the last part may be partial ("snapshots/ab"), so '.' is a legitimate start there
  if (!PREFIX_RE.test(prefix) || parts.some((p) => p === '.' || p === '..')) {
    throw new Error(`invalid store list prefix: ${JSON.stringify(prefix)}`);
  }
}

/**
 * The [start, end) byte range of a get, given the object's size. A range that is not made of
 * non-negative integers is a programming error (RangeError); a range past the end of the object
 * means the object is shorter than whoever recorded the range expected: 'corrupt'.
 */
export function byteRange(name: string, size: number, offset: number, length: number | undefined): [number, number] {
  if (!Number.isSafeInteger(offset) || offset < 0 || (length !== undefined && (!Number.isSafeInteger(length) || length < 0))) {
    throw new RangeError(`invalid byte range for ${name}: offset ${offset}, length ${length}`);
  }
  const end = length === undefined ? Math.max(offset, size) : offset + length;
  if (end > size) {
    throw new LifeboatError(
      'corrupt',
      `The repository file ${name} is ${size} bytes long, but Lifeboat expected at least ${end} bytes; it has been truncated or damaged.`,
    );
  }
  return [offset, end];
}
