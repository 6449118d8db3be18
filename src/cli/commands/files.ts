/** File backup commands: backup, snapshots, ls, find, diff, dump, restore. */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { loadPins } from '../../repo/pins.js';
import { indexUnindexedPacks } from '../../repo/repair.js';
import { LifeboatError, formatBytes } from '../../util/errors.js';
import type { Repository } from '../../repo/repository.js';
import type { Hex } from '../../repo/ids.js';
import type { Snapshot } from '../../repo/snapshot.js';
import { backup, type BackupEvent } from '../../files/backup.js';
import { restore, type OverwriteMode, type RestoreEvent } from '../../files/restore.js';
import { diffTrees, dumpFile, entryName, formatNs, resolvePath, walk, type Found } from '../../files/browse.js';
import { PathMatcher, parseSize } from '../../files/pattern.js';
import { fileTreeReferences, loadDir, type TreeEntry } from '../../files/tree.js';
import { platform } from '../../files/platform/platform.js';
import { ExitCode } from '../../util/errors.js';
import { reuseLargeBlocks } from '../../util/memory.js';
import { Progress, formatDuration } from '../progress.js';
import { defaultCacheDir, type Context } from '../context.js';
import { referenceWalkers, type Run } from './repo.js';

referenceWalkers.files = (repo, snapshot, visit) => fileTreeReferences(repo, snapshot.root, visit);

const collect = (v: string, prev: string[]) => [...prev, v];

function warnPlatformOnce(ctx: Context): void {
  const p = platform();
  if (!p.exact && p.missing) ctx.warn(p.missing);
}

async function findFilesSnapshot(repo: Repository, ref: string): Promise<{ id: Hex; snapshot: Snapshot }> {
  const s = await repo.findSnapshot(ref, (x) => x.kind === 'files');
  if (s.snapshot.kind !== 'files') throw new LifeboatError('usage', `Snapshot ${s.id.slice(0, 8)} is a drive image; use "lifeboat image" commands for it.`);
  return s;
}

function modeString(e: TreeEntry): string {
  const t = { file: '-', dir: 'd', symlink: 'l', fifo: 'p', chardev: 'c', blockdev: 'b' }[e.type];
  const m = e.mode;
  const rwx = (shift: number, special: number, ch: string) =>
    `${m & (4 << shift) ? 'r' : '-'}${m & (2 << shift) ? 'w' : '-'}${m & special ? (m & (1 << shift) ? ch : ch.toUpperCase()) : m & (1 << shift) ? 'x' : '-'}`;
  return t + rwx(6, 0o4000, 's') + rwx(3, 0o2000, 's') + rwx(0, 0o1000, 't');
}

function entryJson(path: string, e: TreeEntry): Record<string, unknown> {
  return {
    path,
    name: entryName(e),
    ...(Buffer.from(entryName(e), 'utf8').equals(e.name) ? {} : { nameBase64: e.name.toString('base64') }),
    type: e.type,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    user: e.user,
    group: e.group,
    size: e.size,
    mtime: formatNs(e.mtime),
    ...(e.target ? { target: e.target.toString('utf8') } : {}),
  };
}

function longLine(path: string, e: TreeEntry): string {
  const owner = `${e.user ?? e.uid}/${e.group ?? e.gid}`;
  return `${modeString(e)} ${owner.padEnd(12)} ${String(e.size).padStart(12)} ${formatNs(e.mtime).slice(0, 19).replace('T', ' ')} ${JSON.stringify(path).slice(1, -1)}${e.target ? ` -> ${e.target.toString('utf8')}` : ''}`;
}

/** Paths are printed with control characters escaped, so a newline in a name cannot fake a line. */
function shownPath(p: string): string {
  return /[\x00-\x1f\x7f]/.test(p) ? JSON.stringify(p).slice(1, -1) : p;
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
    .action(
      run(async (ctx, paths: string[], o: { exclude: string[]; excludeFile: string[]; excludeLargerThan?: string; oneFileSystem?: boolean; tag: string[]; time?: string; host?: string; cache: boolean }) => {
        const excludes = [...o.exclude];
        for (const f of o.excludeFile) {
          let text: string;
          try {
            text = readFileSync(f, 'utf8');
          } catch {
            throw new LifeboatError('usage', `Cannot read the exclude file ${f}. Check the path.`);
          }
          excludes.push(...text.split(/\r?\n/));
        }
        let larger: number | undefined;
        if (o.excludeLargerThan !== undefined) {
          larger = parseSize(o.excludeLargerThan);
          if (larger === undefined) throw new LifeboatError('usage', `--exclude-larger-than ${o.excludeLargerThan}: use a size such as 500M or 2G.`);
        }
        const repo = await ctx.openRepository();
        await repo.lock(false, 'backup');
        await indexUnindexedPacks(repo); // reuse what an interrupted run uploaded
        warnPlatformOnce(ctx);
        const progress = new Progress(ctx, 'backup');
        const onEvent = (e: BackupEvent) => {
          if (e.type === 'warning') {
            progress.done();
            if (ctx.json) ctx.stderr.write(JSON.stringify({ type: 'warning', kind: e.kind, path: e.path, message: e.message }) + '\n');
            else ctx.warn(e.message);
          } else {
            progress.update({ done: e.bytesDone, total: e.bytesTotal, files: e.files, extra: `${formatBytes(e.bytesAdded)} added` });
          }
        };
        const r = await backup(repo, {
          paths,
          excludes,
          ...(larger !== undefined ? { excludeLargerThan: larger } : {}),
          oneFileSystem: o.oneFileSystem === true,
          tags: o.tag,
          ...(o.time !== undefined ? { time: o.time } : {}),
          ...(o.host !== undefined ? { host: o.host } : {}),
          signal: ctx.abort.signal,
          onEvent,
          scanTotal: progress.shown,
          ...(o.cache ? { cacheDir: defaultCacheDir() } : {}),
        });
        progress.done();
        const s = r.summary;
        const code = s.unreadable > 0 || s.changedWhileRead > 0 ? ExitCode.partial : ExitCode.ok;
        if (ctx.json) {
          ctx.printJson({ snapshot: r.snapshotId, parent: r.parent ?? null, summary: s, incomplete: r.incomplete, changedWhileRead: r.changed });
          return code;
        }
        ctx.out(`Files:       ${s.filesNew} new, ${s.filesChanged} changed, ${s.filesUnchanged} unchanged`);
        ctx.out(`Folders:     ${s.dirsNew} new, ${s.dirsChanged} changed, ${s.dirsUnchanged} unchanged`);
        ctx.out(`Read:        ${formatBytes(s.bytesRead)} of ${formatBytes(s.totalBytes)} in ${s.totalFiles} files`);
        ctx.out(`Added:       ${formatBytes(s.bytesAdded)} to the repository (${formatBytes(s.dataBytesAdded)} of new data before compression)`);
        ctx.out(`Duration:    ${formatDuration(s.durationSeconds)}`);
        if (s.unreadable > 0) ctx.out(`${s.unreadable} path(s) could not be read and are missing from this snapshot (see the warnings above).`);
        if (s.changedWhileRead > 0) ctx.out(`${s.changedWhileRead} file(s) changed while they were read; back them up again when they are not in use.`);
        ctx.out(`Snapshot ${r.snapshotId.slice(0, 8)} saved${r.parent ? ` (parent ${r.parent.slice(0, 8)})` : ''}.`);
        return code;
      }),
    );

  program
    .command('snapshots')
    .description('list snapshots (file backups and drive images)')
    .action(
      run(async (ctx) => {
        const repo = await ctx.openRepository();
        const list = await repo.listSnapshots((id, e) => ctx.warn(`snapshot ${id.slice(0, 8)} cannot be read: ${e instanceof Error ? e.message : String(e)}`));
        const pins = await loadPins(repo);
        if (ctx.json) return ctx.printJson(list.map(({ id, snapshot: s }) => ({ id, ...s, ...(pins.has(id) ? { pinned: { note: pins.get(id)!.note } } : {}) })));
        if (list.length === 0) return ctx.out('There are no snapshots yet. Make one with "lifeboat backup PATH".');
        ctx.out(`${'ID'.padEnd(8)}  ${'TIME'.padEnd(19)}  ${'HOST'.padEnd(12)}  ${'KIND'.padEnd(5)}  ${'SIZE'.padStart(9)}  PATHS`);
        for (const { id, snapshot: s } of list) {
          const size = s.summary?.['totalBytes'] ?? s.summary?.['bytesUsed'];
          const tags = s.tags.length > 0 ? ` [${s.tags.join(', ')}]` : '';
          const inc = s.incomplete ? ` (incomplete: ${s.incomplete.count} missing)` : '';
          const pin = pins.get(id);
          const pinText = pin ? ` [pinned${pin.note ? `: ${pin.note}` : ''}]` : '';
          ctx.out(`${id.slice(0, 8)}  ${s.time.slice(0, 19).replace('T', ' ')}  ${s.host.slice(0, 12).padEnd(12)}  ${(s.kind === 'image' ? 'image' : 'files').padEnd(5)}  ${(size !== undefined ? formatBytes(size) : '').padStart(9)}  ${s.paths.join(', ')}${tags}${inc}${pinText}`);
        }
      }),
    );

  program
    .command('ls <snapshot> [path]')
    .description('list the files in a snapshot (SNAPSHOT is an id, a prefix, or "latest")')
    .option('-l, --long', 'show type, permissions, owner, size and time')
    .option('-R, --recursive', 'list everything below the path')
    .action(
      run(async (ctx, ref: string, path: string | undefined, o: { long?: boolean; recursive?: boolean }) => {
        const repo = await ctx.openRepository();
        await repo.loadIndex();
        const { snapshot } = await findFilesSnapshot(repo, ref);
        const at = await resolvePath(repo, snapshot, path ?? '/');
        const prefix = (path ?? '').replace(/\/+$/, '').replace(/^(?!\/)/, '/').replace(/^\/$/, '');
        const rows: Found[] = [];
        if (at.tree === undefined) rows.push({ path: prefix, entry: at.entry! });
        else if (o.recursive) for await (const f of walk(repo, at.tree, prefix, ctx.abort.signal)) rows.push(f);
        else for (const e of await loadDir(repo, at.tree)) rows.push({ path: `${prefix}/${entryName(e)}`, entry: e });
        if (ctx.json) return ctx.printJson(rows.map((r) => entryJson(r.path, r.entry)));
        for (const r of rows) ctx.out(o.long ? longLine(r.path, r.entry) : shownPath(r.path) + (r.entry.type === 'dir' ? '/' : ''));
      }),
    );

  program
    .command('find <pattern>')
    .description('find files by name or path in every snapshot (e.g. "thesis*.tex", "/home/*/Documents/*.odt")')
    .option('--snapshot <id>', 'search only this snapshot (repeatable)', collect, [] as string[])
    .action(
      run(async (ctx, pattern: string, o: { snapshot: string[] }) => {
        const repo = await ctx.openRepository();
        await repo.loadIndex();
        const matcher = new PathMatcher([pattern]);
        const snaps = o.snapshot.length > 0 ? await Promise.all(o.snapshot.map((r) => findFilesSnapshot(repo, r))) : (await repo.listSnapshots(() => undefined)).filter((s) => s.snapshot.kind === 'files');
        const results: { snapshot: string; time: string; path: string; entry: TreeEntry }[] = [];
        for (const { id, snapshot } of snaps) {
          for await (const f of walk(repo, snapshot.root, '', ctx.abort.signal)) {
            if (matcher.matches(f.path)) results.push({ snapshot: id, time: snapshot.time, path: f.path, entry: f.entry });
          }
        }
        if (ctx.json) return ctx.printJson(results.map((r) => ({ snapshot: r.snapshot, snapshotTime: r.time, ...entryJson(r.path, r.entry) })));
        if (results.length === 0) {
          ctx.out(`Nothing matching "${pattern}" in ${snaps.length} snapshot(s).`);
          return ExitCode.failure;
        }
        for (const r of results) ctx.out(`${r.snapshot.slice(0, 8)}  ${r.time.slice(0, 19).replace('T', ' ')}  ${String(r.entry.size).padStart(12)}  ${formatNs(r.entry.mtime).slice(0, 19).replace('T', ' ')}  ${shownPath(r.path)}`);
      }),
    );

  program
    .command('diff <snapshot1> <snapshot2>')
    .description('show what changed between two snapshots (+ added, - removed, M modified, U metadata, T type)')
    .action(
      run(async (ctx, a: string, b: string) => {
        const repo = await ctx.openRepository();
        await repo.loadIndex();
        const sa = await findFilesSnapshot(repo, a);
        const sb = await findFilesSnapshot(repo, b);
        const sign = { added: '+', removed: '-', modified: 'M', metadata: 'U', type: 'T' } as const;
        const rows: { kind: string; path: string }[] = [];
        for await (const c of diffTrees(repo, sa.snapshot.root, sb.snapshot.root)) rows.push({ kind: c.kind, path: c.path });
        if (ctx.json) return ctx.printJson(rows);
        for (const r of rows) ctx.out(`${sign[r.kind as keyof typeof sign]}  ${shownPath(r.path)}`);
        ctx.info(`${rows.length} change(s) between ${sa.id.slice(0, 8)} and ${sb.id.slice(0, 8)}.`);
      }),
    );

  program
    .command('dump <snapshot> <path>')
    .description('write one file from a snapshot to standard output')
    .action(
      run(async (ctx, ref: string, path: string) => {
        const repo = await ctx.openRepository();
        await repo.loadIndex();
        const { snapshot } = await findFilesSnapshot(repo, ref);
        const at = await resolvePath(repo, snapshot, path);
        if (!at.entry) throw new LifeboatError('usage', 'Name a file inside the snapshot, such as /Documents/notes.txt.');
        await dumpFile(repo, at.entry, ctx.stdout as NodeJS.WritableStream & import('node:stream').Writable, ctx.abort.signal);
      }),
    );

  program
    .command('restore <snapshot>')
    .description('restore a snapshot, or parts of it, into a folder')
    .requiredOption('--target <dir>', 'the folder to restore into (created if missing)')
    .option('--include <path>', 'restore only this path in the snapshot and everything under it (repeatable)', collect, [] as string[])
    .option('--exclude <pattern>', 'do not restore paths matching a pattern (repeatable)', collect, [] as string[])
    .option('--overwrite <when>', 'existing files: always, if-changed (size or time differ), never', 'if-changed')
    .option('--verify', 'read every restored file back and check it against the snapshot')
    .option('--numeric-owner', 'as root, give files the stored user and group numbers instead of looking up the stored names on this machine')
    .action(
      run(async (ctx, ref: string, o: { target: string; include: string[]; exclude: string[]; overwrite: string; verify?: boolean; numericOwner?: boolean }) => {
        if (!['always', 'if-changed', 'never'].includes(o.overwrite)) throw new LifeboatError('usage', `--overwrite ${o.overwrite}: use always, if-changed or never.`);
        const repo = await ctx.openRepository();
        await repo.lock(false, 'restore');
        await repo.loadIndex();
        const { id, snapshot } = await findFilesSnapshot(repo, ref);
        warnPlatformOnce(ctx);
        reuseLargeBlocks(); // before the restore starts its workers
        const progress = new Progress(ctx, 'restore');
        const onEvent = (e: RestoreEvent) => {
          if (e.type === 'warning') {
            progress.done();
            if (ctx.json) ctx.stderr.write(JSON.stringify({ type: 'warning', path: e.path, message: e.message }) + '\n');
            else ctx.warn(e.message);
          } else progress.update({ done: e.bytesDone, total: e.totalBytes, files: e.files });
        };
        const r = await restore(repo, snapshot, {
          target: o.target,
          includes: o.include,
          excludes: o.exclude,
          overwrite: o.overwrite as OverwriteMode,
          verify: o.verify === true,
          numericOwner: o.numericOwner === true,
          signal: ctx.abort.signal,
          onEvent,
        });
        progress.done();
        const s = r.summary;
        if (ctx.json) ctx.printJson({ snapshot: id, target: o.target, summary: s });
        else {
          ctx.out(`Restored ${s.files} files (${formatBytes(s.bytesWritten)}), ${s.dirs} folders, ${s.symlinks} symlinks, ${s.hardlinks} hard links, ${s.special} special files into ${o.target} in ${formatDuration(s.durationSeconds)}.`);
          if (s.skipped > 0) ctx.out(`${s.skipped} existing path(s) were left as they were (--overwrite ${o.overwrite}).`);
          if (s.leftoversRemoved > 0) ctx.out(`Removed ${s.leftoversRemoved} temporary file(s) left by an interrupted restore.`);
          if (o.verify) ctx.out(s.verifyFailures === 0 ? `Verified ${s.verified} files: all match the snapshot.` : `${s.verifyFailures} file(s) do NOT match the snapshot.`);
          if (s.errors > 0) ctx.out(`${s.errors} problem(s); see the warnings above.`);
        }
        return s.errors > 0 || s.verifyFailures > 0 ? ExitCode.failure : ExitCode.ok;
      }),
    );
}
