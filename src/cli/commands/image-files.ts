/** image ls (partitions, folders and files inside an image) and image restore-files (copy files out of it). */
import type { Command } from 'commander';
import { LifeboatError, formatBytes } from '../../util/errors.js';
import { imagePartitions, parseLocation } from '../../image/browse.js';
import { ImageTree, type ImageNode } from '../../image/image-tree.js';
import type { FilesystemReader, FsEntry } from '../../image/fs/types.js';
import { resolve } from '../../tree/tree.js';
import { restoreImageFiles } from '../../jobs/image.js';
import { renderEvents } from '../events.js';
import type { Run } from './repo.js';
import { localTime } from '../format.js';
import { modeString } from '../../tree/tree.js';

function iso(ms: number | undefined): string | undefined {
  return ms === undefined || !Number.isFinite(ms) ? undefined : new Date(Math.floor(ms)).toISOString();
}

async function entryJson(fs: FilesystemReader, e: FsEntry) {
  let target: string | undefined;
  if (e.type === 'symlink' && e.damaged === undefined) target = (await fs.readlink(e).catch(() => undefined))?.toString('utf8');
  return {
    name: e.name,
    type: e.type,
    size: e.size,
    mode: e.mode,
    ...(e.uid !== undefined ? { uid: e.uid } : {}),
    ...(e.gid !== undefined ? { gid: e.gid } : {}),
    ...(iso(e.mtime) ? { mtime: iso(e.mtime) } : {}),
    ...(iso(e.atime) ? { atime: iso(e.atime) } : {}),
    ...(iso(e.ctime) ? { ctime: iso(e.ctime) } : {}),
    ...(e.nlink !== undefined ? { nlink: e.nlink } : {}),
    ...(target !== undefined ? { target } : {}),
    ...(e.streams ? { streams: e.streams } : {}),
    ...(e.damaged !== undefined ? { damaged: e.damaged } : {}),
  };
}

export function registerImageFileCommands(image: Command, run: Run): void {
  image
    .command('ls <snapshot> [location]')
    .description('list the partitions of an image, or a folder inside one: PARTITION[:PATH], e.g. 2:/Users')
    .option('-l, --long', 'show mode, size and modification time')
    .action(
      run(async (ctx, ref: string, location: string | undefined, o: { long?: boolean }) => {
        const repo = await ctx.openRepository();
        const image = await ImageTree.open(repo, ref);
        const img = image.img;
        if (location === undefined) {
          const parts = imagePartitions(img.manifest).map((p) => ({ index: p.index, filesystem: p.filesystem ?? null, label: p.label ?? null, size: p.size, start: p.start, type: p.typeName, inImage: p.method !== 'excluded' }));
          if (ctx.json) return ctx.printJson({ snapshot: img.id, partitions: parts });
          for (const p of parts) ctx.out(`${String(p.index).padStart(2)}  ${(p.filesystem ?? '-').padEnd(6)} ${(p.label ?? '').padEnd(16)} ${formatBytes(p.size).padStart(9)}  ${p.type}${p.inImage ? '' : '  (not in this image)'}`);
          return;
        }
        const { partition, path } = parseLocation(location);
        const tree = await image.partition(partition);
        const fs = tree.fs;
        const e = ((await resolve(tree, path, '"lifeboat image ls"')) as ImageNode).fsEntry!;
        const entries = e.type === 'dir' ? await fs.list(e) : [e];
        entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        for (const x of entries) if (x.damaged !== undefined) ctx.warn(`${x.name}: its metadata is damaged (${x.damaged}).`);
        if (ctx.json) {
          const out = [];
          for (const x of entries) out.push(await entryJson(fs, x));
          return ctx.printJson({ snapshot: img.id, partition, path, filesystem: fs.type, entries: out });
        }
        for (const x of entries) {
          const name = x.name + (x.type === 'dir' ? '/' : '');
          if (!o.long) {
            ctx.out(name);
            continue;
          }
          const target = x.type === 'symlink' ? await fs.readlink(x).then((t) => ` -> ${t.toString('utf8')}`, () => '') : '';
          const streams = x.streams?.length ? `  [streams: ${x.streams.map((s) => `${s.name} (${s.size})`).join(', ')}]` : '';
          const when = x.mtime !== undefined && Number.isFinite(x.mtime) ? localTime(new Date(Math.floor(x.mtime))) : '-'.padEnd(26);
          ctx.out(`${modeString(x)} ${String(x.size).padStart(12)}  ${when}  ${name}${target}${streams}`);
        }
      }),
    );

  image
    .command('restore-files <snapshot> <locations...>')
    .description('copy files and folders out of an image: PARTITION:PATH (repeatable), without restoring the drive')
    .requiredOption('--target <dir>', 'folder to copy into (created if missing)')
    .action(
      run(async (ctx, ref: string, locations: string[], o: { target: string }) => {
        const repo = await ctx.openRepository();
        const warnings: { path: string; message: string }[] = [];
        const events = renderEvents(ctx);
        const total = await restoreImageFiles(repo, ref, locations, o.target, {
          signal: ctx.abort.signal,
          onEvent: (e) => {
            if (e.type === 'warning') warnings.push({ path: e.path ?? '', message: e.message });
            events(e);
          },
        });
        events.done();
        const { id, chunksFetched, chunksInImage } = total;
        if (ctx.json) ctx.printJson({ snapshot: id, target: o.target, files: total.files, dirs: total.dirs, symlinks: total.symlinks, hardlinks: total.hardlinks, bytesWritten: total.bytesWritten, errors: total.errors, warnings, chunksFetched, chunksInImage });
        else {
          ctx.report(`Restored ${total.files} file(s), ${total.dirs} folder(s), ${total.symlinks} symlink(s)${total.hardlinks ? `, ${total.hardlinks} hard link(s)` : ''} (${formatBytes(total.bytesWritten)}) from image ${id.slice(0, 8)} into ${o.target}.`);
          if (total.errors > 0) ctx.out(`${total.errors} item(s) could not be restored; see the warnings above.`);
        }
        if (total.errors > 0 && total.files + total.dirs + total.symlinks === 0) throw new LifeboatError('corrupt', 'Nothing could be restored; see the warnings above.');
        return total.errors > 0 ? 3 : 0;
      }),
    );
}
