import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { isLifeboatError } from '../util/errors.js';
import { fromHex, toHex, type Hex } from './ids.js';

test('fromHex gives back the bytes of an id, and refuses a string that is not one (damage, not a crash)', () => {
  const bytes = randomBytes(32);
  assert.deepEqual(fromHex(toHex(bytes)), bytes);
  const good = toHex(bytes);
  // Forged past the type (a cast, or JSON that skipped its check): each is 'corrupt'.
  for (const bad of [good.slice(0, 62), `${good}00`, `${good.slice(0, 30)}zz${good.slice(32)}`, '', `${good.slice(0, 63)}g`]) {
    assert.throws(() => fromHex(bad as Hex), (e: unknown) => isLifeboatError(e) && e.code === 'corrupt', JSON.stringify(bad));
  }
});
