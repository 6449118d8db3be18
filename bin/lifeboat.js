#!/usr/bin/env -S node --max-semi-space-size=8 --heap-growing-percent=70
// V8's heap, sized for a backup (bench/README.md, session 6): the main thread keeps ~15 MiB of
// live objects but promotes 300 MiB of per-file objects (stat results, pending reads) that die
// soon after. A young generation of 8 MiB per half (default 16) lets most of them die young, and
// old space grows by 70% of the live heap before a full collection instead of up to 4x. A 100k-file
// first backup on tmpfs: peak ~210 -> ~190 MiB and no slower; a no-change backup slightly faster.
import { main } from '../dist/cli/main.js';
process.exitCode = await main(process.argv);
