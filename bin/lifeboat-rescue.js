#!/usr/bin/env node
// The rescue program (src/cli/rescue-main.ts); the rescue kit runs its bundled copy.
import { rescueMain } from '../dist/cli/rescue-main.js';
process.exitCode = await rescueMain(process.argv.slice(2));
