import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateSnapshot } from './snapshot.js';
import { LifeboatError } from '../util/errors.js';

const good = { version: 1, kind: 'files', time: '2026-12-05T00:00:00Z', host: 'h', user: 'u', paths: ['/x'], tags: [], root: 'ab'.repeat(32) };

test('a snapshot whose root or parent is not an object id is damaged (a hostile snapshot cannot name "../x")', () => {
  assert.equal(validateSnapshot(good, 'cd'.repeat(32)).root, good.root);
  assert.equal(validateSnapshot({ ...good, parent: 'ef'.repeat(32) }, 'cd'.repeat(32)).parent, 'ef'.repeat(32));
  for (const bad of [{ ...good, root: '../../etc/passwd' }, { ...good, root: 'AB'.repeat(32) }, { ...good, parent: 'x' }, { ...good, parent: 7 }]) {
    assert.throws(() => validateSnapshot(bad, 'cd'.repeat(32)), (e) => e instanceof LifeboatError && e.code === 'corrupt' && /snapshot cdcdcdcd is damaged/.test(e.message));
  }
});
