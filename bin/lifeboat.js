#!/usr/bin/env -S node --max-semi-space-size=8 --v8-pool-size=1
// V8's heap, sized for a backup (bench/README.md, sessions 6 and 13): the main thread promotes
// hundreds of MB of per-file objects (stat results, pending reads) that die soon after. A young
// generation of 8 MiB per half (default 16) lets most of them die young. Old space is left to V8's
// own growth: `--heap-growing-percent=70` (session 6) held the peak ~50 MiB lower, but on a real
// 95,000-file tree it ran 100 full collections and cost 5-6 CPU-s of a ~36 CPU-s first backup.
// One V8 helper thread for the collector instead of four (session 19): each kept its own malloc
// heap of 2.5-5 MiB, and on two cores they competed with the worker threads. A developer's home
// folder (60k files), 4 pairs each: restore peak -9 MiB (2 threads: -2 MiB) and wall 0.93x,
// backup wall 0.91x, check --read-data wall 0.95x with the same peak.
import { main } from '../dist/cli/main.js';
process.exitCode = await main(process.argv);
