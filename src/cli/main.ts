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
import type { Run } from './commands/repo.js';

type Register = (program: Command, run: Run) => void;

/**
 * The top-level commands of each command module, in the order `--help` lists them. A command
 * loads only its own module and what that imports (a local backup never loads the job database,
 * the web server or the image code); `--help`, `help` and anything not listed here load them all.
 * main.test.ts checks that the names match what each module registers.
 */
export const COMMAND_MODULES: readonly { readonly names: readonly string[]; readonly load: () => Promise<readonly Register[]> }[] = [
  { names: ['init', 'key', 'check', 'parity', 'stats', 'unlock'], load: async () => [(await import('./commands/repo.js')).registerRepoCommands] },
  { names: ['backup', 'snapshots', 'ls', 'find', 'diff', 'dump', 'restore'], load: async () => [(await import('./commands/files.js')).registerFileCommands] },
  { names: ['image'], load: async () => [(await import('./commands/image.js')).registerImageCommands] },
  { names: ['forget', 'prune', 'pin', 'unpin', 'repair'], load: async () => [(await import('./commands/maintenance.js')).registerMaintenanceCommands] },
  { names: ['job', 'status', 'service', 'serve'], load: async () => { const m = await import('./commands/jobs.js'); return [m.registerJobCommands, m.registerServeCommand]; } },
  { names: ['mirror'], load: async () => [(await import('./commands/mirror.js')).registerMirrorCommands] },
  { names: ['watch'], load: async () => [(await import('./commands/watch.js')).registerWatchCommands] },
  { names: ['copy'], load: async () => [(await import('./commands/copy.js')).registerCopyCommands] },
  { names: ['server'], load: async () => [(await import('./commands/server.js')).registerServerCommands] },
  { names: ['rescue-kit'], load: async () => [(await import('./commands/rescue-kit.js')).registerRescueKitCommands] },
];

/** Global options that take a value (main's `program.option`s), so the command word after them is found. */
const VALUE_OPTIONS = new Set(['-r', '--repo', '--password-file', '--token-file']);

/** The command word of `argv` (node, script, options…, command, …), if any. */
export function commandWord(argv: readonly string[]): string | undefined {
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return argv[i + 1];
    if (!a.startsWith('-')) return a;
    if (VALUE_OPTIONS.has(a)) i++;
  }
  return undefined;
}

/** The register functions `argv` needs: its command's module, or every module. */
async function registrations(argv: readonly string[]): Promise<Register[]> {
  const word = commandWord(argv);
  const own = COMMAND_MODULES.find((m) => word !== undefined && m.names.includes(word));
  const modules = own ? [own] : COMMAND_MODULES;
  return (await Promise.all(modules.map((m) => m.load()))).flat();
}

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

  try {
    for (const register of await registrations(argv)) register(program, run);
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
