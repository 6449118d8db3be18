import assert from 'node:assert/strict';
import { test } from 'node:test';
import { collectingWriter } from './store.js';

test('collectingWriter: pieces arrive whole at commit; a buffer is reused by the next writer only after its put settled', async () => {
  const seen: Buffer[] = [];
  const holds: (() => void)[] = [];
  // A put that keeps looking at its data until released, as an upload in flight does.
  const put = async (_name: string, data: Uint8Array): Promise<void> => {
    await new Promise<void>((r) => holds.push(r));
    seen.push(Buffer.from(data));
  };
  const a = collectingWriter(put);
  for (let i = 0; i < 5; i++) await a.write(Buffer.alloc(700_000, 0x61 + i)); // grows past its first buffer
  const committing = a.commit('data/aa');
  const b = collectingWriter(put);
  await b.write(Buffer.alloc(3_500_000, 0x7a)); // while a's put is in flight
  holds.shift()!();
  await committing;
  const expected = Buffer.concat([0, 1, 2, 3, 4].map((i) => Buffer.alloc(700_000, 0x61 + i)));
  assert.ok(seen[0]!.equals(expected), "a's bytes are intact while b writes");
  const c = collectingWriter(put);
  await c.write(Buffer.alloc(10, 0x30)); // may take a's buffer, now free
  const bDone = b.commit('data/bb');
  holds.shift()!();
  await bDone;
  assert.ok(seen[1]!.equals(Buffer.alloc(3_500_000, 0x7a)));
  const cDone = c.commit('data/cc');
  holds.shift()!();
  await cDone;
  assert.ok(seen[2]!.equals(Buffer.alloc(10, 0x30)));
  const empty = collectingWriter(put);
  const eDone = empty.commit('data/dd');
  holds.shift()!();
  await eDone;
  assert.equal(seen[3]!.length, 0);
  await a.abort(); // after commit: harmless
});
