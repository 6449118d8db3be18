/**
 * FastCDC throughput on in-memory data: `node dist/bench/cdc-throughput.js [MiB]` (default 256).
 * Random data (xorshift) and low-entropy data (repeated text), through the synchronous Chunker
 * and through chunkStream with 1 MiB reads (which adds the copy into owned chunk buffers).
 * Prints only; best of 5 passes. MB/s counts every input byte (10^6 bytes per second), per
 * wall-clock second and per CPU second (user + system; steadier when the machine is shared).
 */
import { chunkBoundaries, chunkStream } from '../chunking/fastcdc.js';

const MiB = 1024 * 1024;
const size = Number(process.argv[2] ?? 256) * MiB;

function randomData(n: number): Uint8Array {
  const w = new Uint32Array(n / 4);
  let x = 0x12345678;
  for (let i = 0; i < w.length; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    w[i] = x >>> 0;
  }
  return new Uint8Array(w.buffer);
}

function textData(n: number): Uint8Array {
  const out = new Uint8Array(n);
  const words = 'the quick brown fox jumps over a lazy dog while backups run at night '.split(' ');
  let o = 0;
  let s = 7;
  while (o < n) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const w = Buffer.from(`${words[s % words.length]!} ${s % 1000} `);
    out.set(w.subarray(0, Math.min(w.length, n - o)), o);
    o += w.length;
  }
  return out;
}

async function* reads(data: Uint8Array, n: number): AsyncGenerator<Uint8Array> {
  for (let o = 0; o < data.length; o += n) yield data.subarray(o, o + n);
}

async function main(): Promise<void> {
  for (const [name, data] of [['random', randomData(size)], ['text', textData(size)]] as const) {
    const sync = { wall: Infinity, cpu: Infinity };
    const stream = { wall: Infinity, cpu: Infinity };
    let count = 0;
    const time = async (best: { wall: number; cpu: number }, f: () => Promise<void>) => {
      const t = performance.now();
      const c = process.cpuUsage();
      await f();
      const d = process.cpuUsage(c);
      best.wall = Math.min(best.wall, performance.now() - t);
      best.cpu = Math.min(best.cpu, (d.user + d.system) / 1000);
    };
    for (let pass = 0; pass < 5; pass++) {
      await time(sync, async () => { count = chunkBoundaries(data).length; });
      await time(stream, async () => { for await (const c of chunkStream(reads(data, MiB))) void c; });
    }
    const mbs = (ms: number) => (data.length / 1e6 / (ms / 1000)).toFixed(0);
    const fmt = (b: { wall: number; cpu: number }) => `${mbs(b.wall)} MB/s wall, ${mbs(b.cpu)} MB/s CPU`;
    console.log(`${name}: ${data.length / MiB} MiB, ${count} chunks (mean ${(data.length / count / MiB).toFixed(2)} MiB); ` +
      `Chunker ${fmt(sync)}; chunkStream ${fmt(stream)}`);
  }
}

await main();
