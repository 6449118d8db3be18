import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gfInv, gfMul, ReedSolomon } from './reed-solomon.js';
import { prng } from './testing.js';


function pick(rand: () => number, n: number, count: number): number[] {
  const all = [...Array(n).keys()];
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  return all.slice(0, count);
}

test('GF(256): every non-zero element times its inverse is 1, and multiplication distributes', () => {
  for (let a = 1; a < 256; a++) assert.equal(gfMul(a, gfInv(a)), 1);
  const rand = prng(1);
  for (let i = 0; i < 1000; i++) {
    const a = Math.floor(rand() * 256), b = Math.floor(rand() * 256), c = Math.floor(rand() * 256);
    assert.equal(gfMul(a, b ^ c), gfMul(a, b) ^ gfMul(a, c));
    assert.equal(gfMul(a, b), gfMul(b, a));
  }
});

test('random data: any set of up to m lost shards (data or parity) is rebuilt; m + 1 is reported uncorrectable', () => {
  const rand = prng(42);
  for (const [k, m] of [[1, 1], [4, 2], [16, 4], [100, 10], [200, 55]] as const) {
    const rs = new ReedSolomon(k, m);
    for (let round = 0; round < 6; round++) {
      const len = 1 + Math.floor(rand() * 700);
      const data = Array.from({ length: k }, () => Uint8Array.from({ length: len }, () => Math.floor(rand() * 256)));
      const parity = rs.encode(data, len);
      for (const lose of [m, Math.floor(rand() * m) + 1, m + 1]) {
        const positions = pick(rand, k + m, lose);
        const lost = positions.filter((p) => p < k);
        const lostParity = positions.filter((p) => p >= k).map((p) => p - k);
        const damaged = data.map((d, i) => (lost.includes(i) ? Uint8Array.from(d, (b) => b ^ 0x5a) : d));
        const damagedParity = parity.map((p, i) => (lostParity.includes(i) ? new Uint8Array(len) : p));
        const ok = rs.reconstruct(damaged, damagedParity, lost, lostParity, len);
        if (lose > m && lost.length > 0) {
          assert.equal(ok, false, `k=${k} m=${m}: ${lose} lost shards must be reported uncorrectable`);
          for (const i of lost) assert.notDeepEqual(damaged[i], data[i]);
        } else {
          assert.equal(ok, true, `k=${k} m=${m} lost=${lost.join(',')} lostParity=${lostParity.join(',')}`);
          assert.deepEqual(damaged, data);
        }
      }
    }
  }
});

test('a short last shard counts as zero-padded', () => {
  const rs = new ReedSolomon(3, 2);
  const data = [Uint8Array.of(1, 2, 3, 4), Uint8Array.of(5, 6, 7, 8), Uint8Array.of(9)];
  const parity = rs.encode(data, 4);
  const padded = [data[0]!, new Uint8Array(4), Uint8Array.of(9, 0, 0, 0)];
  assert.equal(rs.reconstruct(padded, parity, [1], [], 4), true);
  assert.deepEqual(padded[1], data[1]);
  assert.throws(() => new ReedSolomon(200, 57), /unsupported/);
});
