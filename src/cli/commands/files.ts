/** File backup commands: backup, snapshots, ls, find, diff, dump, restore. */
import { PATTERN_FILE_LIMIT, readSmallFile } from '../../util/small-file.js';
import type { Command } from 'commander';
import { loadPins } from '../../repo/pins.js';
import { ExitCode, LifeboatError, formatBytes } from '../../util/errors.js';
import type { OverwriteMode } from '../../files/restore.js';
import { formatNs } from '../../files/browse.js';
import { diff, modeString, nodeName, walk, type Found, type TreeNode } from '../../tree/tree.js';
import type { Estimate } from '../../jobs/setup.js';
import { parseSize } from '../../files/pattern.js';
import { resolve } from 'node:path';
import { formatDuration } from '../progress.js';
import { renderEvents } from '../events.js';
import { defaultCacheDir } from '../context.js';
import { localTime } from '../format.js';
import type { Run } from './repo.js';

const collect = (v: string, prev: string[]) => [...prev, v];

function entryJson(path: string, e: TreeNode): Record<string, unknown> {
  const name = nodeName(e);
  return {
    path,
    name,
    ...(Buffer.from(name, 'utf8').equals(e.name) ? {} : { nameBase64: e.name.toString('base64') }),
    type: e.type,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    user: e.user,
    group: e.group,
    size: e.size,
    ...(e.mtimeNs !== undefined ? { mtime: formatNs(e.mtimeNs) } : {}),
    ...(e.target ? { target: e.target.toString('utf8') } : {}),
    ...(e.changedWhileRead ? { changedWhileRead: true } : {}),
    ...(e.damaged !== undefined ? { damaged: e.damaged } : {}),
  };
}

function longLine(path: string, e: TreeNode): string {
  const owner = `${e.user ?? e.uid ?? '-'}/${e.group ?? e.gid ?? '-'}`;
  const when = e.mtimeNs !== undefined ? localTime(e.mtimeNs) : '-'.padEnd(26);
  return `${modeString(e)} ${owner.padEnd(12)} ${String(e.size).padStart(12)} ${when} ${shownPath(path)}${e.target ? ` -> ${e.target.toString('utf8')}` : ''}${e.changedWhileRead ? '  (changed while backed up)' : ''}`;
}

/** Paths are printed with control characters escaped, so a newline in a name cannot fake a line. */
function shownPath(p: string): string {
  return /[\x00-\x1f\x7f]/.test(p) ? JSON.stringify(p).slice(1, -1) : p;
}

/** "Would back up 12,345 files (3.2 GB); about 1.1 GB changed since the last backup would be read; about 40s (from the speed of earlier backups here)." */
export function dryRunSentence(e: Estimate): string {
  const what = `Would back up ${e.files.toLocaleString('en-US')} file${e.files === 1 ? '' : 's'} (${formatBytes(e.bytes)})${e.complete ? '' : ' or more (the count stopped at its time limit)'}`;
  const read = e.parent !== undefined
    ? `about ${formatBytes(e.bytesToRead ?? 0)} in ${(e.changedFiles ?? 0).toLocaleString('en-US')} file${e.changedFiles === 1 ? '' : 's'} changed since the last backup (${e.parent.slice(0, 8)}) would be read`
    : 'all of it would be read (there is no earlier backup of these paths here)';
  const from = e.speeds?.from === 'earlier backups' ? 'from the speed of earlier backups here'
    : e.speeds?.from === 'a trial run' ? 'from a few seconds of trial here; later estimates use the speed of real backups'
    : 'from typical speeds; later estimates use the speed measured here';
  return `${what}; ${read}; about ${formatDuration(e.seconds)} (${from}). Nothing was written.`;
}

export function registerFileCommands(program: Command, run: Run): void {
  program
    .command('backup <path...>')
    .description('back up files and folders into a new snapshot')
    .option('--exclude <pattern>', 'skip paths matching a pattern (repeatable): *.tmp, /home/*/.cache, node_modules', collect, [] as string[])
    .option('--exclude-file <file>', 'read exclude patterns from a file, one per line', collect, [] as string[])
    .option('--exclude-larger-than <size>', 'skip files larger than this (e.g. 2G, 500M)')
    .option('--one-file-system', 'do not cross into other mounted file systems')
    .option('--tag <tag>', 'add a tag (repeatable)', collect, [] as string[])
    .option('--time <iso>', 'the time recorded for the snapshot (ISO-8601), instead of now')
    .option('--host <name>', 'the host name recorded for the snapshot')
    .option('--no-cache', "compare every folder with the previous snapshot's listing instead of the local listing cache")
    .option('--no-exclude-caches', 'also back up the contents of folders marked as caches with a CACHEDIR.TAG file')
    .option('--dry-run', 'only say how many files and bytes would be read and about how long it takes; nothing is written')
    .addHelpText('after', `\nExamples:\n  lifeboat backup ~/Documents\n  lifeboat backup --dry-run ~/Documents     (how much would be read, about how long; nothing written)\n  lifeboat backup --dry-run --json ~/Documents\n`)
    .action(
      run(async (ctx, paths: string[], o: { exclude: string[]; excludeFile: string[]; excludeLargerThan?: string; oneFileSystem?: boolean; tag: string[]; time?: string; host?: string; cache: boolean; excludeCaches: boolean; dryRun?: boolean }) => {
        const excludes = [...o.exclude];
        for (const f of o.excludeFile) {
          excludes.push(...readSmallFile(f, PATTERN_FILE_LIMIT, 'exclude').split(/\r?\n/));
        }
        let larger: number | undefined;
        if (o.excludeLargerThan !== undefined) {
          larger = parseSize(o.excludeLargerThan);
          if (larger === undefined) throw new LifeboatError('usage', `--exclude-larger-than ${o.excludeLargerThan}: use a size such as 500M or 2G.`);
        }
        // What the command needs loads while the password's key is derived (on another thread).
        const jobs = o.dryRun ? undefined : import('../../jobs/files.js');
        const repo = await ctx.openRepository();
        if (o.dryRun) {
          const { missingSources } = await import('../../files/backup.js');
          await missingSources(paths.map((p) => resolve(p)), 'Nothing would be backed up');
          const { estimateBackup } = await import('../../jobs/setup.js');
          const e = await estimateBackup(paths, { excludes, excludeLargerThan: larger, oneFileSystem: o.oneFileSystem === true, repo, host: o.host });
          if (ctx.json) return ctx.printJson(e);
          ctx.out(dryRunSentence(e));
          return ExitCode.ok;
        }
        const { backupFiles } = await jobs!;
        const events = renderEvents(ctx);
        const r = await backupFiles(repo, {
          paths,
          excludes,
          ...(larger !== undefined ? { excludeLargerThan: larger } : {}),
          oneFileSystem: o.oneFileSystem === true,
          ownFolders: ctx.ownFolders(),
          excludeCaches: o.excludeCaches,
          tags: o.tag,
          ...(o.time !== undefined ? { time: o.time } : {}),
          ...(o.host !== undefined ? { host: o.host } : {}),
          signal: ctx.abort.signal,
          onEvent: events,
          scanTotal: events.shown,
          ...(o.cache ? { cacheDir: defaultCacheDir() } : {}),
        });
        events.done();
        const s = r.summary;
        const code = s.unreadable > 0 || s.changedWhileRead > 0 ? ExitCode.partial : ExitCode.ok;
        if (ctx.json) {
          ctx.printJson({ snapshot: r.snapshotId, parent: r.parent ?? null, summary: s, incomplete: r.incomplete, changedWhileRead: r.changed });
          return code;
        }
        ctx.report(`Files:       ${s.filesNew} new, ${s.filesChanged} changed, ${s.filesUnchanged} unchanged`);
        ctx.report(`Folders:     ${s.dirsNew} new, ${s.dirsChanged} changed, ${s.dirsUnchanged} unchanged`);
        ctx.report(`Read:        ${formatBytes(s.bytesRead)} of ${formatBytes(s.totalBytes)} in ${s.totalFiles} files`);
        ctx.report(`Added:       ${formatBytes(s.bytesAdded)} to the repository (${formatBytes(s.dataBytesAdded)} of new data before compression)`);
        ctx.report(`Duration:    ${formatDuration(s.durationSeconds)}`);
        if (s.unreadable > s.vanished) ctx.out(`${s.unreadable - s.vanished} path(s) could not be read and are missing from this snapshot (see the warnings above).`);
        if (s.vanished > 0) ctx.out(`${s.vanished} file(s) or folder(s) were deleted or moved while the backup ran (see the warnings above).`);
        if (s.changedWhileRead > 0) ctx.report(`${s.changedWhileRead} file(s) changed while they were read; back them up again when they are not in use.`);
        ctx.report(`Snapshot ${r.snapshotId.slice(0, 8)} saved${r.parent ? ` (parent ${r.parent.slice(0, 8)})` : ''}.`);
        return code;
      }),
    );

  program
    .command('snapshots')
    .description('list snapshots (file backups and drive images)')
    .option('--host <name>', 'only the snapshots of this computer (repeatable)', collect, [] as string[])
    .action(
      run(async (ctx, o: { host: string[] }) => {
        const repo = await ctx.openRepository();
        const all = await repo.listSnapshots((id, e) => ctx.warn(`snapshot ${id.slice(0, 8)} cannot be read: ${e instanceof Error ? e.message : String(e)}`));
        const list = o.host.length === 0 ? all : all.filter(({ snapshot: s }) => o.host.includes(s.host));
        const pins = await loadPins(repo);
        if (ctx.json) return ctx.printJson(list.map(({ id, snapshot: s }) => ({ id, ...s, ...(pins.has(id) ? { pinned: { note: pins.get(id)!.note } } : {}) })));
        if (all.length > 0 && list.length === 0) return ctx.out(`No snapshot was made on ${o.host.join(' or ')}; the computers with snapshots here are: ${[...new Set(all.map((s) => s.snapshot.host))].sort().join(', ')}.`);
        if (list.length === 0) return ctx.out('There are no snapshots yet. Make one with "lifeboat backup PATH".');
        ctx.out(`${'ID'.padEnd(8)}  ${'TIME'.padEnd(26)}  ${'HOST'.padEnd(12)}  ${'KIND'.padEnd(5)}  ${'SIZE'.padStart(9)}  PATHS`);
        for (const { id, snapshot: s } of list) {
          const size = s.summary?.['totalBytes'] ?? s.summary?.['bytesUsed'];
          const tags = s.tags.length > 0 ? ` [${s.tags.join(', ')}]` : '';
          const inc = s.incomplete ? ` (incomplete: ${s.incomplete.count} missing)` : '';
          const pin = pins.get(id);
          const pinText = pin ? ` [pinned${pin.note ? `: ${pin.note}` : ''}]` : '';
          ctx.out(`${id.slice(0, 8)}  ${localTime(s.time)}  ${s.host.slice(0, 12).padEnd(12)}  ${(s.kind === 'image' ? 'image' : 'files').padEnd(5)}  ${(size !== undefined ? formatBytes(size) : '').padStart(9)}  ${s.paths.join(', ')}${tags}${inc}${pinText}`);
        }
      }),
    );

  program
    .command('ls <snapshot> [path]')
    .description('list the files in a snapshot (SNAPSHOT is an id, a prefix, or "latest"); in a drive image, PATH starts with the partition: /2/Users or 2:/Users')
    .option('-l, --long', 'show type, permissions, owner, size and time')
    .option('-R, --recursive', 'list everything below the path')
    .addHelpText('after', `\nExamples:\n  lifeboat ls latest\n  lifeboat ls -l latest /Documents\n`)
    .action(
      run(async (ctx, ref: string, path: string | undefined, o: { long?: boolean; recursive?: boolean }) => {
        const browse = import('../../jobs/browse.js');
        const repo = await ctx.openRepository();
        const t = await (await browse).openSnapshotTree(repo, ref, path);
        const at = await t.resolve(path ?? '/');
        const prefix = t.treePath(path ?? '').replace(/\/+$/, '').replace(/^(?!\/)/, '/').replace(/^\/$/, '');
        const rows: Found[] = [];
        const onSkip = (p: string, why: string) => ctx.warn(`${p} was left out: ${why}.`);
        if (at.type !== 'dir') rows.push({ path: prefix, node: at });
        else if (o.recursive) for await (const f of walk(t.tree, at, prefix, { signal: ctx.abort.signal, onSkip })) rows.push(f);
        else for (const n of await t.tree.list(at)) rows.push({ path: `${prefix}/${nodeName(n)}`, node: n });
        if (ctx.json) return ctx.printJson(rows.map((r) => entryJson(r.path, r.node)));
        for (const r of rows) ctx.out(o.long ? longLine(r.path, r.node) : shownPath(r.path) + (r.node.type === 'dir' ? '/' : ''));
      }),
    );

  program
    .command('find <pattern>')
    .description('find files by name or path in every file snapshot (and drive image, with --images); a path matches as it was backed up (/home/ann/Documents/...) and as "lifeboat ls" shows it (/Documents/...)')
    .option('--snapshot <id>', 'search only this snapshot, a file backup or a drive image (repeatable)', collect, [] as string[])
    .option('--images', 'search inside drive images too (reads their folders from the repository: slower)')
    .addHelpText('after', `\nExamples:\n  lifeboat find "thesis*.tex"\n  lifeboat find "Documents/**/*.odt"\n  lifeboat find --json notes.txt\n  lifeboat find --images "*.txt"\n`)
    .action(
      run(async (ctx, pattern: string, o: { snapshot: string[]; images?: boolean }) => {
        const browse = import('../../jobs/browse.js');
        const repo = await ctx.openRepository();
        const { findInSnapshots } = await browse;
        const results: { snapshot: string; time: string; path: string; shown: string; node: TreeNode }[] = [];
        let searched = 0;
        const found = findInSnapshots(repo, pattern, {
          snapshots: o.snapshot,
          images: o.images === true,
          onSearching: (n) => (searched = n),
          signal: ctx.abort.signal,
          onSkip: (id, p, why) => ctx.warn(`${id.slice(0, 8)}:${p} was left out: ${why}.`),
        });
        for await (const f of found) {
          results.push({ snapshot: f.id, time: f.snapshot.time, path: f.path, shown: f.shown, node: f.node });
        }
        if (ctx.json) return ctx.printJson(results.map((r) => ({ snapshot: r.snapshot, snapshotTime: r.time, ...entryJson(r.path, r.node), originalPath: r.shown })));
        if (results.length === 0) {
          ctx.out(`Nothing matching "${pattern}" in ${searched} snapshot(s).`);
          return ExitCode.failure;
        }
        for (const r of results) ctx.out(`${r.snapshot.slice(0, 8)}  ${localTime(r.time)}  ${String(r.node.size).padStart(12)}  ${r.node.mtimeNs !== undefined ? localTime(r.node.mtimeNs) : '-'.padEnd(26)}  ${shownPath(r.shown)}`);
      }),
    );

  program
    .command('diff <snapshot1> <snapshot2>')
    .description('show what changed between two snapshots, file backups or drive images, or between a snapshot and a folder on this computer (+ added, - removed, M modified, U metadata, T type)')
    .addHelpText('after', `\nExamples:\n  lifeboat diff 1a2b3c4d latest\n  lifeboat diff latest /home/ann/Documents     (what changed since that backup)\n`)
    .action(
      run(async (ctx, a: string, b: string) => {
        const browse = import('../../jobs/browse.js');
        const repo = await ctx.openRepository();
        const sides = await (await browse).openDiffSides(repo, a, b);
        const sign = { added: '+', removed: '-', modified: 'M', metadata: 'U', type: 'T' } as const;
        const rows: { kind: string; path: string }[] = [];
        const onSkip = (p: string, why: string) => ctx.warn(`${p} was left out: ${why}.`);
        for await (const c of diff(sides.a.tree, sides.a.node, sides.b.tree, sides.b.node, '', { signal: ctx.abort.signal, onSkip })) rows.push({ kind: c.kind, path: c.path });
        if (ctx.json) return ctx.printJson(rows);
        for (const r of rows) ctx.out(`${sign[r.kind as keyof typeof sign]}  ${shownPath(r.path)}`);
        ctx.info(`${rows.length} change(s) between ${sides.a.label} and ${sides.b.label}.`);
      }),
    );

  program
    .command('dump <snapshot> <path>')
    .description('write one file from a snapshot (a file backup or a drive image) to standard output; a folder is written as a tar archive')
    .addHelpText('after', `\nExamples:\n  lifeboat dump latest /Documents/notes.txt > notes.txt\n  lifeboat dump latest /Documents > Documents.tar\n`)
    .action(
      run(async (ctx, ref: string, path: string) => {
        const browse = import('../../jobs/browse.js');
        const repo = await ctx.openRepository();
        const { dump } = await browse;
        await dump(repo, ref, path, ctx.stdout, {
          signal: ctx.abort.signal,
          onSkip: (p, why) => ctx.warn(`${p} was left out of the archive: ${why}.`),
          beforeArchive: () => {
            if ((ctx.stdout as NodeJS.WriteStream).isTTY) throw new LifeboatError('usage', `${path} is a folder; it is written as a tar archive, so send it to a file: lifeboat dump ${ref} ${path} > folder.tar`);
          },
        });
      }),
    );

  program
    .command('restore <snapshot>')
    .description('restore a snapshot, or parts of it, into a folder, or back where it came from with --original')
    .option('--target <dir>', 'the folder to restore into (created if missing)')
    .option('--original', 'put files back where they were backed up from; files changed since the backup are kept unless you agree (or give --overwrite)')
    .option('--include <path>', 'restore only this path and everything under it (repeatable): /home/ann/Documents/thesis or /Documents/thesis', collect, [] as string[])
    .option('--exclude <pattern>', 'do not restore paths matching a pattern (repeatable)', collect, [] as string[])
    .option('--overwrite <when>', 'existing files: always, if-changed (size or time differ), never, keep-both (a changed file stays and the backed-up one is restored beside it as "name (restored DATE).ext") (default: if-changed with --target, never with --original)')
    .option('--verify', 'read every restored file back and check it against the snapshot')
    .option('--numeric-owner', 'as root, give files the stored user and group numbers instead of looking up the stored names on this machine')
    .option('--devices', 'create device nodes even when the snapshot comes from another computer')
    .addHelpText('after', `\nExamples:\n  lifeboat restore latest --target restored\n  lifeboat restore latest --include /Documents/notes.txt --target restored\n  lifeboat restore latest --original\n  lifeboat restore latest --original --overwrite keep-both\n`)
    .action(
      run(async (ctx, ref: string, o: { target?: string; original?: boolean; include: string[]; exclude: string[]; overwrite?: string; verify?: boolean; numericOwner?: boolean; devices?: boolean }) => {
        if (o.overwrite !== undefined && !['always', 'if-changed', 'never', 'keep-both'].includes(o.overwrite)) throw new LifeboatError('usage', `--overwrite ${o.overwrite}: use always, if-changed, never or keep-both.`);
        if ((o.target === undefined) === (o.original !== true)) throw new LifeboatError('usage', 'Say where to restore to: --target FOLDER, or --original to put the files back where they came from.');
        const jobs = import('../../jobs/files.js');
        const repo = await ctx.openRepository();
        const { restoreFiles } = await jobs;
        const events = renderEvents(ctx);
        const { id, snapshot, targets, summary: s } = await restoreFiles(repo, ref, {
          ...(o.target !== undefined ? { target: o.target } : {}),
          includes: o.include,
          excludes: o.exclude,
          ...(o.overwrite !== undefined ? { overwrite: o.overwrite as OverwriteMode } : {}),
          verify: o.verify === true,
          numericOwner: o.numericOwner === true,
          devices: o.devices === true,
          signal: ctx.abort.signal,
          onEvent: events,
          scanTotal: events.shown,
          replaceChanged: async (n) => {
            events.done();
            return ctx.confirm(`${n} file(s) were changed since this backup and were left as they are. Replace them with the backed-up versions?`);
          },
        });
        events.done();
        const kept = s.keptChanged;
        const where = targets.join(', ');
        if (ctx.json) ctx.printJson({ snapshot: id, target: where, summary: s });
        else {
          ctx.report(`Restored ${s.files} files (${formatBytes(s.bytesWritten)}), ${s.dirs} folders, ${s.symlinks} symlinks, ${s.hardlinks} hard links, ${s.special} special files into ${where} in ${formatDuration(s.durationSeconds)}.`);
          if (s.replaced > 0) ctx.report(`${s.replaced} existing file(s) were replaced with the backed-up version.`);
          if (kept > 0) ctx.out(`${kept} file(s) changed since the backup were left as they are; add --overwrite if-changed to replace them, or --overwrite keep-both to restore the backed-up versions beside them.`);
          if (s.keptBoth > 0) ctx.report(`${s.keptBoth} file(s) changed since the backup were kept; the backed-up versions are beside them, named "… (restored DATE)".`);
          if (s.skipped - kept > 0) ctx.report(`${s.skipped - kept} existing path(s) were already as in the backup.`);
          if (s.devicesRefused > 0) ctx.out(`${s.devicesRefused} device node(s) were not created: the snapshot comes from another computer (${snapshot.host}). Add --devices if you trust it.`);
          if (s.leftoversRemoved > 0) ctx.report(`Removed ${s.leftoversRemoved} temporary file(s) left by an interrupted restore.`);
          if (o.verify) ctx.out(s.verifyFailures === 0 ? `Verified ${s.verified} files: all match the snapshot.` : `${s.verifyFailures} file(s) do NOT match the snapshot.`);
        }
        if (s.errors > 0) ctx.out(`${s.errors} problem(s); see the warnings above.`);
        // Entries that could not be restored (damaged data, refused names): the rest is there (3).
        return s.verifyFailures > 0 ? ExitCode.failure : s.errors > 0 ? ExitCode.partial : ExitCode.ok;
      }),
    );
}
