import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keepAllocatorLean } from './memory.js';

test('the allocator tuning applies here (Linux, glibc, the native addon built by npm ci)', () => {
  assert.equal(keepAllocatorLean(), true);
});
