/**
 * The rescue program's entry point (bin/lifeboat-rescue.js, bundled into one file by
 * scripts/bundle-rescue.mjs for the rescue kit). Without options it works on the attached drives;
 * `--search DIR`, `--target DRIVE-OR-FILE` and `--copy-folder DIR` name them instead (on a live
 * Linux, and in tests). Exit codes: 0 restart the computer, 65 open a shell, 1 stopped or failed.
 */
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { LifeboatError, formatBytes } from '../util/errors.js';
import { diskTools } from '../image/tools.js';
import { copyCandidates, findRepositories, findRepositoriesOnDrives, mountCopyDestination } from '../jobs/rescue.js';
import { RescueDialogue, type RescueEnvironment } from './rescue.js';

export const RESCUE_EXIT = { restart: 0, shell: 65, quit: 1 } as const;

const USAGE = 'usage: lifeboat-rescue [--search DIR]... [--target DRIVE-OR-FILE]... [--copy-folder DIR]...';

export async function rescueMain(argv: readonly string[], input: NodeJS.ReadableStream = process.stdin, output: NodeJS.WritableStream = process.stdout): Promise<number> {
  let o;
  try {
    o = parseArgs({ args: [...argv], options: { search: { type: 'string', multiple: true }, target: { type: 'string', multiple: true }, 'copy-folder': { type: 'string', multiple: true }, help: { type: 'boolean' } }, strict: true }).values;
  } catch (e) {
    output.write(`${e instanceof Error ? e.message : String(e)}\n${USAGE}\n`);
    return 2;
  }
  if (o.help) {
    output.write(`${USAGE}\nRestores a drive image from a Lifeboat repository onto a drive, or copies files out of a backup, in a question-and-answer dialogue.\n`);
    return 0;
  }
  const tools = diskTools();
  const search = o.search?.map((d) => resolve(d));
  const targets = o.target?.map((t) => resolve(t));
  const copyFolders = o['copy-folder']?.map((d) => resolve(d));
  const env: RescueEnvironment = {
    findRepositories: () => (search ? findRepositories(search) : findRepositoriesOnDrives(tools, (m) => output.write(`Note: ${m}\n`))),
    targets: async () => targets ?? (await tools.listDrives()),
    copyDestinations: async (repos) =>
      copyFolders
        ? copyFolders.map((f) => ({ label: `the folder ${f}`, open: async () => ({ folder: f }) }))
        : (await copyCandidates(repos, tools)).map((c) => ({ label: `${c.device}  ${c.model ?? 'unknown model'}  ${formatBytes(c.size)}`, open: () => mountCopyDestination(c.device, repos, tools) })),
    closeDestination: async (d) => {
      if (d.mounted) await tools.mounter?.unmount(d.mounted);
    },
  };
  try {
    const outcome = await new RescueDialogue(env, input, output).run();
    return RESCUE_EXIT[outcome];
  } catch (e) {
    if (e instanceof LifeboatError) {
      output.write(`\n${e.message}\n`);
      return 1;
    }
    output.write(`\nSomething unexpected went wrong (this is a bug in Lifeboat; please report it):\n${e instanceof Error ? e.stack : String(e)}\n`);
    return 1;
  }
}
