/** rescue-kit commands: copy the rescue program next to a repository, build a bootable rescue stick image, write it onto a stick. */
import type { Command } from 'commander';
import { formatBytes } from '../../util/errors.js';
import { buildRescueKit, copyRescueKit, writeRescueKit } from '../../jobs/rescue-kit.js';
import { describeTargetText, type TargetDescription } from '../../image/target-info.js';
import { renderEvents } from '../events.js';
import { formatDuration } from '../progress.js';
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

  kit
    .command('build <out>')
    .description('build a bootable rescue stick image (BIOS and UEFI): Linux, busybox, Node.js and the rescue program, taken from this computer')
    .option('--kernel <file>', 'the Linux kernel to use (default: this computer\'s, /boot/vmlinuz-VERSION)')
    .option('--modules <folder>', 'its modules folder (default: /lib/modules/VERSION)')
    .option('--busybox <file>', 'a statically linked busybox (default: /bin/busybox)')
    .option('--serial', 'talk on the first serial port instead of the screen (servers, virtual machines)')
    .action(
      run(async (ctx, out: string, o: { kernel?: string; modules?: string; busybox?: string; serial?: boolean }) => {
        const render = renderEvents(ctx);
        const r = await buildRescueKit(out, { ...o, onEvent: (e) => (e.type === 'phase' ? ctx.info(`${e.phase}...`) : render(e)) });
        render.done();
        if (ctx.json) return ctx.printJson(r);
        ctx.report(`Rescue kit ${r.out}: ${formatBytes(r.size)} (Linux ${formatBytes(r.kernelBytes)}, initramfs ${formatBytes(r.initramfsBytes)} with ${r.modules} drivers), starts on ${[r.bios ? 'BIOS' : '', r.uefi ? 'UEFI' : ''].filter(Boolean).join(' and ')} computers; built in ${formatDuration(r.seconds)}.`);
        ctx.report(`Write it onto a USB stick with "lifeboat rescue-kit write ${out} /dev/sdX".`);
      }),
    );

  kit
    .command('write <image> <drive>')
    .description('write a rescue kit image onto a USB stick (erases it; refuses a mounted drive, and one over 256 GB without --force)')
    .option('--force', 'write onto a drive larger than 256 GB')
    .action(
      run(async (ctx, image: string, drive: string, o: { force?: boolean }) => {
        const render = renderEvents(ctx);
        const confirm = process.stdin.isTTY
          ? (d: TargetDescription) => {
              ctx.stderr.write(`This erases everything on ${describeTargetText(d)}.\n`);
              return ctx.confirm(`Write the rescue kit onto ${d.path}?`);
            }
          : undefined;
        const r = await writeRescueKit(image, drive, { force: o.force === true, onEvent: render, ...(confirm ? { confirm } : {}) });
        render.done();
        if (ctx.json) return ctx.printJson({ target: r.target.path, bytes: r.bytes, seconds: r.seconds });
        ctx.report(`The rescue kit is on ${r.target.path} (${formatBytes(r.bytes)} in ${formatDuration(r.seconds)}). Start the broken computer from it.`);
      }),
    );
}
