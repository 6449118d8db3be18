/**
 * util/command-line — how to start Lifeboat as its `lifeboat` command starts: the service that
 * runs the scheduler (cli/service.ts) and the benchmark start it so. May import only node: modules.
 */
import { readFileSync } from 'node:fs';

/**
 * This Node, with the flags `bin` (the path of bin/lifeboat.js) asks for on its
 * `#!/usr/bin/env -S node …` line (V8's heap and helper threads, sized for the work), then `bin`.
 */
export function lifeboatCommandLine(bin: string, node = process.execPath): string[] {
  let first = '';
  try {
    first = readFileSync(bin, 'utf8').split('\n', 1)[0] ?? '';
  } catch {
    // Not readable here: run it without flags.
  }
  const m = /^#!\S*env\s+(?:-S\s+)?node((?:\s+--\S+)*)\s*$/.exec(first);
  return [node, ...(m?.[1] ?? '').split(/\s+/).filter(Boolean), bin];
}
