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
import { randomBytes } from 'node:crypto';
import { release } from 'node:os';
import { LifeboatError, errnoCode, formatBytes } from '../util/errors.js';
import { moduleDependencies, readElf, stripElf } from '../util/elf.js';
import { buildFat32, fatSizeFor, type FatFile } from '../image/fat-writer.js';
import { buildBootDisk, buildInitramfs, PARTITION_START, type CpioEntry } from '../image/boot-disk.js';
import { grubBios } from '../image/platform/grub-linux.js';
import { describeTarget, describeTargetText, type TargetDescription } from '../image/target-info.js';
import { diskTools } from '../image/tools.js';
import type { JobEvent } from './events.js';
import { KIT_LABEL } from './rescue.js';

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

/** Drivers the kit loads (with what they depend on): disks (SATA, IDE, NVMe, virtio, USB), USB keyboards, and the filesystems backups live on. */
export const KIT_MODULES = [
  'crc32c_generic', 'crc32c_intel', 'libata', 'ata_piix', 'ata_generic', 'pata_acpi', 'ahci', 'sd_mod', 'nvme', 'virtio_pci', 'virtio_blk', 'virtio_scsi',
  'xhci_pci', 'ehci_pci', 'ohci_pci', 'uhci_hcd', 'usb_storage', 'uas', 'usbhid', 'hid_generic', 'mmc_block', 'sdhci_pci',
  'ext4', 'vfat', 'exfat', 'nls_cp437', 'nls_ascii', 'nls_iso8859_1', 'nls_utf8',
];

const norm = (m: string) => m.replace(/-/g, '_');

/** The modules to load, in order (dependencies first), from a kernel's module folder (/lib/modules/VERSION); built-in ones are skipped. */
export async function moduleLoadOrder(dir: string, roots: readonly string[] = KIT_MODULES): Promise<{ files: { name: string; path: string }[]; missing: string[] }> {
  const index = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else if (e.name.endsWith('.ko')) index.set(norm(e.name.slice(0, -3)), join(d, e.name));
    }
  };
  await walk(join(dir, 'kernel')).catch((e: unknown) => {
    throw new LifeboatError('not-found', `${dir} holds no kernel modules (${e instanceof Error ? e.message : String(e)}). Name the kernel's module folder with --modules.`);
  });
  const builtin = new Set((await fs.readFile(join(dir, 'modules.builtin'), 'utf8').catch(() => '')).split('\n').map((l) => norm(basename(l.trim(), '.ko'))));
  const files: { name: string; path: string }[] = [];
  const done = new Set<string>();
  const missing: string[] = [];
  const visit = async (m: string, depth: number): Promise<void> => {
    const n = norm(m);
    if (done.has(n) || builtin.has(n) || depth > 50) return;
    done.add(n);
    const path = index.get(n);
    if (!path) {
      missing.push(m);
      return;
    }
    for (const dep of moduleDependencies(await fs.readFile(path), path)) await visit(dep, depth + 1);
    files.push({ name: n, path });
  };
  for (const r of roots) await visit(r, 0);
  return { files, missing };
}

export interface KitBuildOptions {
  /** The Linux kernel (default: this computer's, /boot/vmlinuz-VERSION). */
  readonly kernel?: string;
  /** Its modules folder (default /lib/modules/VERSION). */
  readonly modules?: string;
  /** A statically linked busybox (default /bin/busybox). */
  readonly busybox?: string;
  /** The dialogue on the first serial port (servers, virtual machines) instead of the screen. */
  readonly serial?: boolean;
  readonly onEvent?: (e: JobEvent) => void;
}

export interface KitBuildResult {
  readonly out: string;
  readonly size: number;
  readonly initramfsBytes: number;
  readonly kernelBytes: number;
  readonly modules: number;
  readonly bios: boolean;
  readonly uefi: boolean;
  readonly seconds: number;
}

/** Largest kit Lifeboat builds: it must fit any USB stick. */
export const KIT_LIMIT = 150 * 1024 * 1024;
const SYSLINUX_EFI = ['/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi', '/usr/lib/syslinux/modules/efi64/ldlinux.e64'];
const BUSYBOX_APPLETS = ['sh', 'mount', 'umount', 'insmod', 'mkdir', 'sleep', 'reboot', 'poweroff', 'cat', 'echo', 'ls', 'sync', 'setsid', 'cttyhack', 'dmesg', 'findfs', 'cp', 'mv', 'rm', 'vi', 'less', 'lsblk', 'blkid', 'df'];

/** The kit's /init: mount the kernel's filesystems, load the drivers, run the rescue program (again, until it asks to restart). */
const INIT = `#!/bin/sh
export PATH=/bin HOME=/root LD_LIBRARY_PATH=/lib TERM=linux
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /run /tmp /root /kit
echo "Lifeboat rescue kit: loading the drivers..."
while read m; do insmod "/lib/modules/$m.ko" 2>/dev/null; done < /etc/lifeboat-modules
# Node.js stays on the stick (the firmware loads less): wait for the stick's partition (USB drives appear a few seconds after their driver).
i=0
until dev=$(findfs LABEL=${KIT_LABEL} 2>/dev/null) && mount -t vfat -o ro "$dev" /kit 2>/dev/null; do
  i=$((i + 1))
  if [ $i -gt 30 ]; then echo "The rescue stick (a partition labelled ${KIT_LABEL}) cannot be read. Type exit to try again."; setsid cttyhack sh; i=0; fi
  sleep 1
done
sleep 2
while :; do
  /kit/LIFEBOAT/NODE /lifeboat/lifeboat-rescue.js
  case $? in
    0) echo "Restarting..."; sync; reboot -f ;;
    65) echo "Type exit to go back to the rescue program."; setsid cttyhack sh ;;
    *) echo "Press Enter to start the rescue program again."; read x ;;
  esac
done
`;

/**
 * Builds the bootable rescue kit image OUT: a FAT32 partition with the Linux kernel, an initramfs
 * (busybox, the drivers, the rescue program and Node's libraries) and Node.js beside them (the
 * initramfs mounts the stick to run it, so the firmware loads 20 MB instead of 50), started by
 * GRUB on a BIOS and by syslinux.efi on UEFI. Taken from this computer: nothing is downloaded.
 */
export async function buildRescueKit(out: string, o: KitBuildOptions = {}): Promise<KitBuildResult> {
  const started = performance.now();
  const phase = (p: string) => o.onEvent?.({ type: 'phase', phase: p });
  const warn = (message: string) => o.onEvent?.({ type: 'warning', message });
  const version = release();
  const kernelPath = o.kernel ?? `/boot/vmlinuz-${version}`;
  const modulesDir = o.modules ?? `/lib/modules/${version}`;
  const busyboxPath = o.busybox ?? '/bin/busybox';
  const need = async (path: string, what: string, fix: string) => {
    try {
      return await fs.readFile(path);
    } catch {
      throw new LifeboatError('not-found', `${what} ${path} is missing. ${fix}`);
    }
  };
  const kernel = await need(kernelPath, 'The Linux kernel', 'Name one with --kernel (and its modules folder with --modules).');
  const busybox = await need(busyboxPath, 'The busybox program', 'Install a statically linked busybox (Debian/Ubuntu: busybox-static) or name it with --busybox.');
  if (readElf(busybox, busyboxPath).interpreter) throw new LifeboatError('invalid-argument', `${busyboxPath} is not statically linked; the kit needs a static busybox (Debian/Ubuntu: busybox-static).`);

  phase('collecting');
  const program = await rescueProgramFiles();
  const runtime = await nodeRuntime(program);
  const mods = await moduleLoadOrder(modulesDir);
  if (mods.missing.length > 0) warn(`These drivers are not in ${modulesDir}, so the kit goes without them: ${mods.missing.join(', ')}.`);
  const entries: CpioEntry[] = [];
  const dir = (p: string) => entries.push({ path: p, mode: 0o40755 });
  const file = (p: string, data: Uint8Array, mode = 0o100644) => entries.push({ path: p, mode, data });
  for (const d of ['bin', 'dev', 'proc', 'sys', 'run', 'tmp', 'root', 'etc', 'lib', 'lib/modules', 'lifeboat']) dir(d);
  file('init', Buffer.from(INIT), 0o100755);
  file('bin/busybox', busybox, 0o100755);
  for (const a of BUSYBOX_APPLETS) entries.push({ path: `bin/${a}`, mode: 0o120777, data: Buffer.from('busybox') });
  file('etc/lifeboat-modules', Buffer.from(mods.files.map((m) => m.name).join('\n') + '\n'));
  for (const m of mods.files) file(`lib/modules/${m.name}.ko`, await fs.readFile(m.path));
  for (const l of runtime.libraries) file(`lib/${l.name}`, await fs.readFile(l.file), 0o100755);
  if (runtime.interpreter) {
    const ip = runtime.interpreter.path.replace(/^\/+/, '');
    if (dirname(ip) !== 'lib') dir(dirname(ip));
    file(ip, await fs.readFile(runtime.interpreter.file), 0o100755);
  }
  for (const f of program) file(`lifeboat/${basename(f)}`, await fs.readFile(f), f.endsWith('.node') ? 0o100755 : 0o100644);
  phase('compressing');
  const initramfs = buildInitramfs(entries);

  const cmdline = `${o.serial ? 'console=tty0 console=ttyS0,115200' : 'console=ttyS0,115200 console=tty0'} quiet loglevel=3`;
  const files: FatFile[] = [
    { path: 'VMLINUZ', data: kernel },
    { path: 'INITRD.GZ', data: initramfs },
    { path: 'RESCUE.TXT', data: Buffer.from(RESCUE_TXT.replace(/\n/g, '\r\n')) },
    { path: 'LIFEBOAT/NODE', data: stripElf(await fs.readFile(runtime.node), runtime.node) },
  ];
  const efi = await Promise.all(SYSLINUX_EFI.map((p) => fs.readFile(p).catch(() => undefined)));
  const uefi = efi.every((x) => x !== undefined);
  if (uefi) {
    files.push({ path: 'EFI/BOOT/BOOTX64.EFI', data: efi[0]! }, { path: 'EFI/BOOT/LDLINUX.E64', data: efi[1]! });
    files.push({ path: 'EFI/BOOT/SYSLINUX.CFG', data: Buffer.from(`DEFAULT rescue\nPROMPT 0\nTIMEOUT 1\nLABEL rescue\n  KERNEL /VMLINUZ\n  APPEND initrd=/INITRD.GZ ${cmdline}\n`) });
  } else warn(`syslinux for UEFI is not installed (${SYSLINUX_EFI.join(', ')}; Debian/Ubuntu: syslinux-efi and syslinux-common), so the kit starts on BIOS computers only.`);
  const grub = await grubBios(`set root=(hd0,msdos1)\nlinux /VMLINUZ ${cmdline}\ninitrd /INITRD.GZ\nboot\n`);
  if (!grub) warn('GRUB for BIOS is not installed (Debian/Ubuntu: grub-pc-bin and grub-common), so the kit starts on UEFI computers only.');
  if (!uefi && !grub) throw new LifeboatError('not-found', 'Neither GRUB for BIOS nor syslinux for UEFI is installed, so nothing could start the kit. Install grub-pc-bin, grub-common, syslinux-efi and syslinux-common.');

  phase('writing');
  const partition = buildFat32(files, { size: fatSizeFor(files), hiddenSectors: PARTITION_START, label: KIT_LABEL, volumeId: randomBytes(4).readUInt32LE() });
  const disk = buildBootDisk({ partition, signature: randomBytes(4).readUInt32LE(), ...(grub ? { bootImage: grub.boot, coreImage: grub.core } : {}) });
  if (disk.length > KIT_LIMIT) throw new LifeboatError('invalid-argument', `The kit would take ${formatBytes(disk.length)}, more than the ${formatBytes(KIT_LIMIT)} it may: this Node.js or kernel is unusually large.`);
  const tmp = `${resolve(out)}.tmp-${process.pid}`;
  try {
    await fs.writeFile(tmp, disk);
    await fs.rename(tmp, resolve(out));
  } catch (e) {
    await fs.rm(tmp, { force: true });
    if (errnoCode(e) === 'ENOSPC') throw new LifeboatError('no-space', `There is no room for the kit (${formatBytes(disk.length)}) at ${out}.`);
    throw e;
  }
  return { out: resolve(out), size: disk.length, initramfsBytes: initramfs.length, kernelBytes: kernel.length, modules: mods.files.length, bios: grub !== undefined, uefi, seconds: (performance.now() - started) / 1000 };
}

export interface KitWriteOptions {
  /** Write onto a drive larger than 256 GB (rarely a USB stick) without refusing. */
  readonly force?: boolean;
  /** Asked with the drive's description before anything is written; without it, nothing is written. */
  readonly confirm?: (target: TargetDescription) => Promise<boolean>;
  readonly onEvent?: (e: JobEvent) => void;
}

/** Largest drive `rescue-kit write` takes without --force: bigger ones are seldom USB sticks. */
export const STICK_LIMIT = 256e9;

/** Writes the kit image onto a USB stick (or a file), after the refusals: mounted, larger than 256 GB, not confirmed. */
export async function writeRescueKit(image: string, target: string, o: KitWriteOptions = {}): Promise<{ target: TargetDescription; bytes: number; seconds: number }> {
  const tools = diskTools();
  const st = await fs.stat(image).catch(() => undefined);
  if (!st?.isFile()) throw new LifeboatError('not-found', `${image} does not exist; make the kit first with "lifeboat rescue-kit build ${image}".`);
  const d = await describeTarget(target, tools);
  if (!d) throw new LifeboatError('not-found', `${target} does not exist. Plug in the USB stick and name its drive (/dev/sdX).`);
  const mounted = await tools.mountedOn(target);
  if (mounted.length > 0) throw new LifeboatError('invalid-argument', `${describeTargetText(d)} is in use (${mounted.join(', ')} mounted). Unmount it first; Lifeboat will not overwrite a drive in use.`);
  if (d.kind === 'device' && d.size > STICK_LIMIT && !o.force) throw new LifeboatError('invalid-argument', `${describeTargetText(d)} is larger than 256 GB, which is seldom a USB stick. Check the drive; if it is the right one, run again with --force.`);
  if (d.kind === 'device' && d.size < st.size) throw new LifeboatError('invalid-argument', `${target} holds ${formatBytes(d.size)}; the kit needs ${formatBytes(st.size)}.`);
  if (!o.confirm || !(await o.confirm(d))) throw new LifeboatError(o.confirm ? 'conflict' : 'usage', o.confirm ? `Nothing was written to ${target}.` : `Writing the kit would erase everything on ${describeTargetText(d)}. Lifeboat does that only when you confirm on a terminal.`);
  const started = performance.now();
  const data = await fs.readFile(image);
  const h = await fs.open(target, d.kind === 'device' ? 'r+' : 'w');
  try {
    const step = 4 * 1024 * 1024;
    for (let off = 0; off < data.length; off += step) {
      const n = Math.min(step, data.length - off);
      await h.write(data, off, n, off);
      o.onEvent?.({ type: 'progress', phase: 'writing', done: off + n, total: data.length });
    }
    await h.sync();
  } finally {
    await h.close();
  }
  return { target: d, bytes: data.length, seconds: (performance.now() - started) / 1000 };
}
