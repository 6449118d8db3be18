/**
 * The rescue kit: the rescue program (bundled into one file by scripts/bundle-rescue.mjs, with its
 * native addons) and the Node.js that runs it, with the shared libraries Node links against (read
 * from its ELF header, not from ldd). `copyRescueKit` puts them and a one-page RESCUE.txt next to a
 * repository, so any live Linux can run the program; `rescue-kit build` (jobs/rescue-disk.ts) puts
 * them into a bootable disk image.
 */
import { promises as fs, constants as C } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LifeboatError, errnoCode } from '../util/errors.js';
import { readElf } from '../util/elf.js';

/** The bundled program's folder (dist/rescue beside dist/jobs). */
export function bundleFolder(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', 'rescue');
}

/** The files of the bundled rescue program; a plain error when it was not built. */
export async function rescueProgramFiles(folder = bundleFolder()): Promise<string[]> {
  const names = await fs.readdir(folder).catch(() => [] as string[]);
  if (!names.includes('lifeboat-rescue.js')) throw new LifeboatError('not-found', `The rescue program is not built (${folder} is missing). Run "npm run build" in Lifeboat's folder, then try again.`);
  return names.sort().map((n) => join(folder, n));
}

const LIBRARY_DIRS = ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib/aarch64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/lib64', '/usr/lib64', '/lib', '/usr/lib'];

export interface Runtime {
  /** The Node.js program. */
  readonly node: string;
  /** The dynamic loader's path as programs name it (/lib64/ld-linux-x86-64.so.2), and the file it is. */
  readonly interpreter?: { readonly path: string; readonly file: string };
  /** Shared libraries by soname, each with the file it resolves to. */
  readonly libraries: readonly { readonly name: string; readonly file: string }[];
}

/**
 * Node.js (this process's own, or `node`) and every shared library it and `addons` need,
 * found through DT_NEEDED in the standard library folders, as the dynamic loader would.
 */
export async function nodeRuntime(addons: readonly string[] = [], node = process.execPath): Promise<Runtime> {
  const libraries = new Map<string, string>();
  let interpreter: { path: string; file: string } | undefined;
  const visit = async (file: string): Promise<void> => {
    const info = readElf(await fs.readFile(file), file);
    if (info.interpreter && !interpreter) interpreter = { path: info.interpreter, file: await fs.realpath(info.interpreter) };
    for (const name of info.needed) {
      if (libraries.has(name)) continue;
      let found: string | undefined;
      for (const d of LIBRARY_DIRS) {
        const p = join(d, name);
        if (await fs.stat(p).then((s) => s.isFile(), () => false)) {
          found = await fs.realpath(p);
          break;
        }
      }
      if (!found) throw new LifeboatError('not-found', `${basename(file)} needs the library ${name}, which is not on this computer.`);
      libraries.set(name, found);
      await visit(found);
    }
  };
  await visit(node);
  for (const a of addons) if (a.endsWith('.node')) await visit(a);
  return { node, ...(interpreter ? { interpreter } : {}), libraries: [...libraries].map(([name, file]) => ({ name, file })).filter((l) => l.file !== interpreter?.file) };
}

/** How the copied program is started on a live Linux (root needed to read and write drives). */
const START_SH = `#!/bin/sh
# Starts the Lifeboat rescue program with the Node.js copied beside it. Run it as root:
#   sudo sh start.sh
# A backup drive is often mounted so that nothing on it may run, so everything is copied to /tmp first.
here=$(cd "$(dirname "$0")" && pwd)
run=\${TMPDIR:-/tmp}/lifeboat-rescue.$$
mkdir -p "$run" && cp -R "$here"/. "$run"/ || exit 1
chmod +x "$run/node" "$run/lib/"*
exec "$run/lib/ld-linux.so" --library-path "$run/lib" "$run/node" "$run/lifeboat-rescue.js" "$@"
`;

export const RESCUE_TXT = `LIFEBOAT RESCUE: getting your computer back when it no longer starts
===================================================================

This drive holds your Lifeboat backups. If your computer's drive has died, you can put the last
drive image back onto a new drive with the rescue program beside this file. You need:
  - this backup drive,
  - a new drive at least as large as the old one, fitted in the computer (or in a USB case),
  - the password of the backups, or the recovery key you wrote down when the backups were set up.

Easiest: the Lifeboat rescue stick
  1. On any working computer with Lifeboat, make a rescue stick:
        lifeboat rescue-kit build rescue.img
        lifeboat rescue-kit write /dev/sdX      (the USB stick: everything on it is erased)
  2. Start the broken computer from the stick (press the boot menu key, often F12, F11, Esc or F8,
     right after switching it on, and choose the USB stick).
  3. Connect this backup drive. The rescue program starts by itself and asks you questions.

Or: any "live" Linux USB stick (Ubuntu, Debian, Fedora...)
  1. Start the broken computer from the live stick and connect this backup drive.
  2. Open a terminal in the folder of this file and type:
        sudo sh lifeboat-rescue/start.sh
  3. If the program does not find the backups, tell it where they are:
        sudo sh lifeboat-rescue/start.sh --search /media
     (the folder where the live system shows this drive).

What the rescue program does, step by step
  1. It finds the backups and asks for the password or the recovery key.
  2. It lists the drive images with their dates, computer names and sizes: choose one (usually the newest).
  3. It lists the drives it can write to, with their make and size. It never offers this backup
     drive, nor a drive too small. Choose the new drive.
  4. It shows the drive's make and size again and asks you to type "yes": everything on that drive
     is then replaced by the image. Check the make and size: this cannot be undone.
  5. It restores, showing how far it is and how long is left, then reads everything back to check it.
  6. Remove the rescue stick and the backup drive, and restart: the computer starts as it was on the
     day of the image.

Only need a few files? Choose "Copy single files to a USB drive", pick the backup, the folder or
file, and the USB drive to copy onto.

Nothing on this backup drive is ever changed by the rescue program.
`;

export interface CopyToResult {
  /** The folder the program went into. */
  readonly folder: string;
  readonly readme: string;
  readonly bytes: number;
}

/**
 * Copies the rescue program, Node.js and its libraries into DIR/lifeboat-rescue, and RESCUE.txt into DIR.
 * DIR is the backup drive (or a folder on it); when DIR is a repository itself, its parent is used.
 */
export async function copyRescueKit(dir: string): Promise<CopyToResult> {
  let where = resolve(dir);
  const st = await fs.stat(where).catch((e: unknown) => {
    if (errnoCode(e) === 'ENOENT') throw new LifeboatError('not-found', `${dir} does not exist. Name the backup drive's folder (where it is mounted).`);
    throw e;
  });
  if (!st.isDirectory()) throw new LifeboatError('invalid-argument', `${dir} is not a folder. Name the backup drive's folder (where it is mounted).`);
  if (await fs.stat(join(where, 'config')).then((s) => s.isFile(), () => false)) where = dirname(where);
  const program = await rescueProgramFiles();
  const runtime = await nodeRuntime(program);
  const folder = join(where, 'lifeboat-rescue');
  const staging = join(where, `.lifeboat-rescue.tmp-${process.pid}`);
  await fs.rm(staging, { recursive: true, force: true });
  let bytes = 0;
  const copy = async (from: string, to: string) => {
    await fs.copyFile(from, to, C.COPYFILE_FICLONE);
    bytes += (await fs.stat(to)).size;
  };
  try {
    await fs.mkdir(join(staging, 'lib'), { recursive: true });
    for (const f of program) await copy(f, join(staging, basename(f)));
    await copy(runtime.node, join(staging, 'node'));
    for (const l of runtime.libraries) await copy(l.file, join(staging, 'lib', l.name));
    if (runtime.interpreter) await copy(runtime.interpreter.file, join(staging, 'lib', 'ld-linux.so'));
    await fs.writeFile(join(staging, 'start.sh'), START_SH, { mode: 0o755 });
    await fs.rm(folder, { recursive: true, force: true });
    await fs.rename(staging, folder);
  } catch (e) {
    await fs.rm(staging, { recursive: true, force: true });
    if (errnoCode(e) === 'ENOSPC') throw new LifeboatError('no-space', `${where} is full: the rescue program needs about ${Math.ceil(bytes / 1e6) + 100} MB.`);
    throw e;
  }
  const readme = join(where, 'RESCUE.txt');
  await fs.writeFile(readme, RESCUE_TXT.replace(/\n/g, '\r\n')); // CRLF: readable in Windows' Notepad too
  return { folder, readme, bytes };
}
