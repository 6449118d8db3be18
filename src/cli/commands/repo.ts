/** Repository commands: init, key, check, stats, unlock. */
import type { Command } from 'commander';
import { formatBytes } from '../../util/errors.js';
import { parseParity } from '../../store/parity.js';
import { createRepository } from '../../jobs/open.js';
import { addPassword, changePassword, listKeySlots, removeKeySlot } from '../../jobs/keys.js';
import { addParityJob, checkRepositoryJob, repositoryStatsJob } from '../../jobs/maintenance.js';
import { renderEvents } from '../events.js';
import type { Context, SourceOptions } from '../context.js';
import { localTime } from '../format.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- commander hands actions untyped arguments
export type Run = (fn: (ctx: Context, ...args: any[]) => Promise<number | void>) => (...args: any[]) => Promise<void>;


export function registerRepoCommands(program: Command, run: Run): void {
  program
    .command('init')
    .description('create a new, empty repository (prints a recovery key to keep on paper)')
    .option('--parity <percent>', 'add Reed–Solomon parity against bit rot (e.g. 10%): damaged sectors are corrected on read')
    .option('--copy-parameters-from <repo>', 'cut and name chunks as the repository REPO does, so "lifeboat copy" from it sends only what is new (its password: $LIFEBOAT_FROM_PASSWORD or --from-password-file)')
    .option('--from-password-file <file>', 'read the password of the --copy-parameters-from repository from a file')
    .option('--from-token-file <file>', 'the --copy-parameters-from repository is on another Lifeboat server: read its token from a file (or set LIFEBOAT_FROM_TOKEN)')
    .action(
      run(async (ctx, opts: SourceOptions & { parity?: string; copyParametersFrom?: string }) => {
        const parity = opts.parity === undefined ? undefined : parseParity(opts.parity);
        const from = opts.copyParametersFrom;
        const source = from === undefined ? undefined : await ctx.openSourceRepository(from, opts);
        const store = ctx.openStore();
        // A chosen folder must have its parent (createRepository); the default one is made as needed.
        const chosen = ctx.repoIsFolder() && (ctx.global.repo !== undefined || process.env['LIFEBOAT_REPO'] !== undefined);
        const password = async (): Promise<string> => process.env['LIFEBOAT_PASSWORD'] ?? (ctx.global.passwordFile ? await ctx.password() : await ctx.newPassword('password for the new repository'));
        const { repo, recoveryKey } = await createRepository(store, password, {
          ...(chosen ? { folder: ctx.repoLocation() } : {}),
          ...(parity ? { parity } : {}),
          ...(source ? { copyParametersFrom: source } : {}),
        });
        ctx.track(repo);
        if (ctx.json) {
          ctx.printJson({ id: repo.config.id, location: store.location, recoveryKey });
          return;
        }
        ctx.out(`Created a Lifeboat repository at ${store.location} (id ${repo.config.id.slice(0, 8)}).`);
        if (source) ctx.out(`It cuts and names chunks as ${source.store.location} does: "lifeboat copy --from ${from}" sends only what this one lacks.`);
        ctx.out('');
        ctx.out('Your recovery key (write it down and keep it somewhere safe, away from this computer):');
        ctx.out('');
        ctx.out(`    ${recoveryKey}`);
        ctx.out('');
        ctx.out('If you forget your password, this key opens the repository. It is shown only this once.');
      }),
    );

  const key = program.command('key').description('manage the passwords that open the repository');
  key
    .command('list')
    .description('list key slots')
    .action(
      run(async (ctx) => {
        const repo = await ctx.openRepository();
        const rows = await listKeySlots(repo);
        if (ctx.json) return ctx.printJson(rows);
        ctx.out(' ' + ['ID      ', 'KIND    ', 'CREATED            ', 'HOST/USER', 'LABEL'].join('  '));
        for (const r of rows) ctx.out(`${r.current ? '*' : ' '}${r.id.slice(0, 8)}  ${r.kind.padEnd(8)}  ${localTime(r.created).padEnd(26)}  ${`${r.host}/${r.user}`.padEnd(9)}  ${r.label}`);
      }),
    );
  key
    .command('add')
    .description('add another password')
    .option('--label <text>', 'a note to tell the keys apart', 'password')
    .option('--new-password-file <file>', 'read the new password from a file')
    .action(
      run(async (ctx, o: { label: string; newPasswordFile?: string }) => {
        const repo = await ctx.openRepository();
        const pw = await ctx.newPassword('new password', o.newPasswordFile);
        const id = await addPassword(repo, pw, o.label);
        if (ctx.json) return ctx.printJson({ id });
        ctx.report(`Added key ${id.slice(0, 8)}.`);
      }),
    );
  key
    .command('remove <id>')
    .description('remove a key slot (not the one in use)')
    .action(
      run(async (ctx, ref: string) => {
        const repo = await ctx.openRepository();
        const removed = await removeKeySlot(repo, ref);
        if (ctx.json) return ctx.printJson({ removed });
        ctx.report(`Removed key ${removed.slice(0, 8)}.`);
      }),
    );
  key
    .command('passwd')
    .description('change the password you opened the repository with')
    .option('--new-password-file <file>', 'read the new password from a file')
    .action(
      run(async (ctx, o: { newPasswordFile?: string }) => {
        const repo = await ctx.openRepository();
        const pw = await ctx.newPassword('new password', o.newPasswordFile);
        const { id, replaced } = await changePassword(repo, pw);
        if (ctx.json) return ctx.printJson({ id, replaced });
        ctx.report(`Password changed (key ${replaced.slice(0, 8)} replaced by ${id.slice(0, 8)}).`);
      }),
    );

  program
    .command('check')
    .description('verify the repository structure; with --read-data, every byte')
    .option('--read-data', 'read, decrypt and verify every stored block')
    .action(
      run(async (ctx, o: { readData?: boolean }) => {
        const repo = await ctx.openRepository({ cache: false }); // the store itself, not the cache
        const events = renderEvents(ctx);
        const report = await checkRepositoryJob(repo, { readData: o.readData === true, signal: ctx.abort.signal, onEvent: events });
        events.done();
        if (ctx.json) ctx.printJson(report);
        else {
          for (const w of report.warnings) ctx.out(`warning: ${w.file}: ${w.message}`);
          for (const e of report.errors) ctx.out(`error: ${e.file}: ${e.message}`);
          const c = report.counts;
          ctx.report(`${c.snapshots} snapshots, ${c.indexFiles} index files, ${c.packs} packs, ${c.blobs} blocks${o.readData ? `, ${formatBytes(c.bytesRead)} read` : ''}.`);
          ctx.report(report.errors.length === 0 ? 'No errors were found.' : `${report.errors.length} problem(s) found. Keep this repository as it is and see "lifeboat repair".`);
        }
        return report.errors.length === 0 ? 0 : 1;
      }),
    );

  program
    .command('parity')
    .description('Reed–Solomon parity against bit rot')
    .command('add [percent]')
    .description('give the repository parity (e.g. 10%), or rewrite the parity that "check" says is missing or damaged')
    .action(
      run(async (ctx, percent: string | undefined) => {
        const repo = await ctx.openRepository();
        const events = renderEvents(ctx);
        const r = await addParityJob(repo, percent === undefined ? undefined : parseParity(percent), { onEvent: events });
        events.done();
        if (ctx.json) return ctx.printJson(r);
        ctx.out(`${r.written} file(s) got new parity, ${r.sound} already had sound parity.${r.enabled ? ' The repository now has parity.' : ''}`);
      }),
    );

  program
    .command('stats')
    .description('space used, deduplication and compression')
    .action(
      run(async (ctx) => {
        const repo = await ctx.openRepository();
        const s = await repositoryStatsJob(repo);
        if (ctx.json) return ctx.printJson(s);
        ctx.out(`Snapshots:           ${s.snapshots}`);
        ctx.out(`Stored on disk:      ${formatBytes(s.storedBytes)} in ${s.packs} packs`);
        ctx.out(`Unique data:         ${formatBytes(s.uniqueBytes)} in ${s.blobs} blocks`);
        ctx.out(`Backed-up data:      ${formatBytes(s.logicalBytes)} (all snapshots added up)`);
        ctx.out(`Deduplication:       ${s.dedupRatio.toFixed(2)}x`);
        ctx.out(`Compression:         ${s.compressionRatio.toFixed(2)}x`);
      }),
    );

  program
    .command('unlock')
    .description('remove locks left by processes that no longer run')
    .option('--remove-all', 'remove every lock, even live ones (only when you are sure nothing else uses the repository)')
    .action(
      run(async (ctx, o: { removeAll?: boolean }) => {
        const repo = await ctx.openRepository();
        const n = await repo.removeLocks(o.removeAll === true);
        if (ctx.json) return ctx.printJson({ removed: n });
        ctx.report(n === 0 ? 'No stale locks.' : `Removed ${n} lock(s).`);
      }),
    );
}
