/** rescue-kit commands: copy the rescue program next to a repository, build a bootable rescue stick image, write it onto a stick. */
import type { Command } from 'commander';
import { formatBytes } from '../../util/errors.js';
import { copyRescueKit } from '../../jobs/rescue-kit.js';
import type { Run } from './repo.js';

export function registerRescueKitCommands(program: Command, run: Run): void {
  const kit = program.command('rescue-kit').description('the rescue kit: restore a drive image on a computer that no longer starts');

  kit
    .command('copy-to <folder>')
    .description('put the rescue program (with Node.js) and a one-page RESCUE.txt on the backup drive, beside the repository, so any live Linux can run it')
    .action(
      run(async (ctx, folder: string) => {
        const r = await copyRescueKit(folder);
        if (ctx.json) return ctx.printJson(r);
        ctx.report(`The rescue program is in ${r.folder} (${formatBytes(r.bytes)}); ${r.readme} says what to do, step by step.`);
      }),
    );
}
