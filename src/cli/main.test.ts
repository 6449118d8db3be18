import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { COMMAND_MODULES, commandWord } from './main.js';

test('each command module registers exactly the top-level commands main.ts lists for it', async () => {
  const seen = new Set<string>();
  for (const m of COMMAND_MODULES) {
    const program = new Command();
    for (const register of await m.load()) register(program, () => async () => undefined);
    assert.deepEqual(program.commands.map((c) => c.name()), [...m.names]);
    for (const n of m.names) {
      assert.ok(!seen.has(n), `${n} is listed twice`);
      seen.add(n);
    }
  }
});

test('commandWord finds the command after the global options', () => {
  const argv = (...a: string[]) => ['node', 'lifeboat', ...a];
  assert.equal(commandWord(argv('backup', '/x')), 'backup');
  assert.equal(commandWord(argv('-r', '/repo', '--json', 'snapshots')), 'snapshots');
  assert.equal(commandWord(argv('--repo', 'backup', 'check')), 'check');
  assert.equal(commandWord(argv('--repo=/r', '--password-file', 'f', '-q', 'ls', 'latest')), 'ls');
  assert.equal(commandWord(argv('--help')), undefined);
  assert.equal(commandWord(argv()), undefined);
});
