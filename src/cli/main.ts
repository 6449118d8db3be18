/**
 * cli — the thin command-line interface: parse, call the layers below, print. May import every
 * layer; no layer imports it. Expected failures print one plain sentence and exit with the stable
 * code of util/errors; anything else is a bug and prints its stack.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { ExitCode, LifeboatError } from '../util/errors.js';
import { keepAllocatorLean } from '../util/memory.js';
import { Context, type GlobalOptions } from './context.js';
import { registerRepoCommands, type Run } from './commands/repo.js';
import { registerImageCommands } from './commands/image.js';
import { registerMaintenanceCommands } from './commands/maintenance.js';
import { registerFileCommands } from './commands/files.js';
import { registerJobCommands, registerServeCommand } from './commands/jobs.js';
import { registerMirrorCommands } from './commands/mirror.js';
import { registerWatchCommands } from './commands/watch.js';
import { registerCopyCommands } from './commands/copy.js';
import { registerServerCommands } from './commands/server.js';
import { registerRescueKitCommands } from './commands/rescue-kit.js';

/** `lifeboat snapshots | head`: a reader that stops early is not an error. */
function quietOnClosedPipe(stream: NodeJS.WriteStream): void {
  if (stream.listenerCount('error') > 0) return;
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

/** The version in package.json, which sits two folders above this file (src/cli or dist/cli). */
function lifeboatVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export async function main(argv: string[]): Promise<number> {
  let exitCode: number = ExitCode.ok;
  keepAllocatorLean();
  quietOnClosedPipe(process.stdout);
  quietOnClosedPipe(process.stderr);
  const program = new Command();
  program
    .name('lifeboat')
    .description('Backups you can trust: folders and whole drives, deduplicated, compressed and encrypted.')
    .option('-r, --repo <location>', 'repository folder, s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX] or lifeboat:http(s)://HOST:PORT/NAME (default: $LIFEBOAT_REPO, else a folder in your data directory)')
    .option('--password-file <file>', 'read the repository password from a file (or set LIFEBOAT_PASSWORD)')
    .option('--token-file <file>', 'read the token for a Lifeboat server from a file (or set LIFEBOAT_TOKEN)')
    .option('--json', 'print machine-readable JSON')
    .option('--no-lock', 'read the repository without locking it (restore, check, browsing; for read-only drives)')
    .option('-q, --quiet', 'print only what was asked for (listings, file contents) and errors; no progress or summaries')
    .version(lifeboatVersion(), '-V, --version', 'print the version of Lifeboat')
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(str) });

  const contexts: Context[] = [];
  const onSigint = () => {
    for (const c of contexts) c.abort.abort();
    process.stderr.write('\nInterrupted; stopping safely.\n');
    setTimeout(() => process.exit(ExitCode.interrupted), 3000).unref();
  };
  process.once('SIGINT', onSigint);

  const run: Run = (fn) => async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command;
    const ctx = new Context(cmd.optsWithGlobals<GlobalOptions>());
    contexts.push(ctx);
    try {
      const code = await fn(ctx, ...args.slice(0, -1));
      exitCode = typeof code === 'number' ? code : ExitCode.ok;
    } finally {
      await ctx.closeAll();
    }
  };

  registerRepoCommands(program, run);
  registerFileCommands(program, run);
  registerImageCommands(program, run);
  registerMaintenanceCommands(program, run);
  registerJobCommands(program, run);
  registerServeCommand(program, run);
  registerMirrorCommands(program, run);
  registerWatchCommands(program, run);
  registerCopyCommands(program, run);
  registerServerCommands(program, run);
  registerRescueKitCommands(program, run);

  try {
    await program.parseAsync(argv);
  } catch (e) {
    exitCode = reportError(e);
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
  return exitCode;
}

export function reportError(e: unknown): number {
  if (e instanceof CommanderError) {
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return ExitCode.ok;
    return ExitCode.usage;
  }
  if (e instanceof LifeboatError) {
    process.stderr.write(`lifeboat: ${e.message}\n`);
    return e.exitCode;
  }
  if (e instanceof Error && e.name === 'AbortError') {
    process.stderr.write('lifeboat: interrupted.\n');
    return ExitCode.interrupted;
  }
  process.stderr.write(`lifeboat: unexpected error (this is a bug; please report it):\n${e instanceof Error ? e.stack : String(e)}\n`);
  return ExitCode.failure;
}
