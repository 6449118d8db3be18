/** The copy command: lifeboat copy [SNAPSHOT…] --from REPO, into the usual --repo. */
import type { Command } from 'commander';
import { ExitCode, LifeboatError, formatBytes } from '../../util/errors.js';
import { copySnapshots } from '../../jobs/copy.js';
import { renderEvents } from '../events.js';
import type { SourceOptions } from '../context.js';
import type { Run } from './repo.js';

export function registerCopyCommands(program: Command, run: Run): void {
  program
    .command('copy [snapshot...]')
    .description('copy snapshots (file backups and drive images; all, or the ones named) from the repository REPO into this one, sending only what this one lacks; snapshots copied before are skipped')
    .requiredOption('--from <repo>', 'the repository to copy from: a folder or s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX] (its password: $LIFEBOAT_FROM_PASSWORD or --from-password-file)')
    .option('--from-password-file <file>', 'read the password of the --from repository from a file')
    .option('--from-token-file <file>', 'the --from repository is on another Lifeboat server than --repo: read its token from a file (or set LIFEBOAT_FROM_TOKEN; its fingerprint: LIFEBOAT_FROM_SERVER_FINGERPRINT)')
    .addHelpText('after', `\nMake the destination (--repo) with "lifeboat init --copy-parameters-from REPO": a copy then sends only\nwhat it lacks, images included. Into another repository file snapshots are copied by renaming their\nblocks (every block is read on each run) and drive images are left out.\n\nExamples:\n  lifeboat init --repo s3:https://s3.example.com/backups --copy-parameters-from /media/usb/lifeboat\n  lifeboat copy --repo s3:https://s3.example.com/backups --from /media/usb/lifeboat\n`)
    .action(
      run(async (ctx, refs: string[], o: SourceOptions & { from: string }) => {
        const dest = await ctx.openRepository().catch((e: unknown) => {
          if (!(e instanceof LifeboatError) || e.code !== 'no-repository') throw e;
          throw new LifeboatError('no-repository', `There is no Lifeboat repository at ${ctx.repoLocation()} to copy into. Create it with "lifeboat init --repo ${ctx.repoLocation()} --copy-parameters-from ${o.from}" (so the copy sends only what is new), or check the path.`, { cause: e });
        });
        const source = await ctx.openSourceRepository(o.from, o);
        const render = renderEvents(ctx);
        const r = await copySnapshots(source, dest, { snapshots: refs, signal: ctx.abort.signal, onEvent: render });
        render.done();
        if (ctx.json) {
          ctx.printJson(r);
        } else {
          for (const s of r.snapshots) {
            ctx.report(`${s.source.slice(0, 8)} → ${s.copy.slice(0, 8)}  ${s.kind.padEnd(5)}  ${s.host}  ${s.paths.join(', ')}${s.alreadyThere ? '  (copied before)' : ''}`);
          }
          const copied = r.snapshots.filter((s) => !s.alreadyThere).length;
          ctx.report(`Copied ${copied} snapshot(s) (${r.snapshots.length - copied} were there already): sent ${r.blobsSent} blocks (${formatBytes(r.bytesSent)}, ${formatBytes(r.bytesWritten)} stored); ${r.blobsPresent} blocks needed were there already.`);
          if (r.pinsCopied > 0) ctx.report(`Pinned ${r.pinsCopied} copied snapshot(s), as they are pinned in the source.`);
          if (r.failed.length > 0) ctx.report(`${r.failed.length} snapshot(s) could not be copied; the warnings above say why.`);
        }
        return r.failed.length > 0 ? ExitCode.partial : ExitCode.ok;
      }),
    );
}
