/**
 * Adapters from the parsing half of the image layer to the interfaces the imager already uses
 * (layout.ts: PartitionTableReader, FilesystemProbe; tools.ts: mount checks, GPT relocation), so
 * tools.ts can wire them in with one line each. No logic of its own beyond the translation.
 */
import type { ImageReader, ImageWriter } from './imager.js';
import type { FilesystemProbe, PartitionTableReader } from './layout.js';
import { filesystems, FilesystemError } from './fs/index.js';
import { readPartitionTable, relocateGptOn } from './partition.js';
import { currentPlatform, type Platform } from './platform/index.js';
import type { BlockSource } from './source.js';

function asSource(reader: ImageReader): BlockSource {
  return { size: reader.size, read: (o, l) => reader.read(o, l), close: async () => undefined };
}

/** MBR/GPT reader. Extended containers are left out: their logical partitions are listed instead. */
export const partitionTableReader: PartitionTableReader = {
  async read(reader) {
    const t = await readPartitionTable(asSource(reader));
    return {
      table: { kind: t.kind, ...(t.diskId !== undefined ? { id: t.diskId } : {}), sectorSize: t.sectorSize, ...(t.gpt ? { gpt: t.gpt } : {}), warnings: t.warnings },
      partitions: t.partitions
        .filter((p) => p.role !== 'extended')
        .map((p) => ({ index: p.index, start: p.start, size: p.size, type: p.type, typeName: p.typeName, ...(p.name !== undefined ? { name: p.name } : {}) })),
    };
  },
};

/** One probe per filesystem module: undefined when not that filesystem, a FilesystemError when untrusted. */
export const filesystemProbes: readonly FilesystemProbe[] = filesystems.map((m) => ({
  name: m.name,
  async probe(reader, start, size) {
    const src = asSource(reader);
    if (!(await m.detect(src, start, size))) return undefined;
    const a = await m.analyze(src, start, size); // FilesystemError propagates: layout.ts warns and reads everything
    return { filesystem: a.info.type, ...(a.info.label ? { label: a.info.label } : {}), used: [...a.used] };
  },
  async identify(reader, start, size) {
    const src = asSource(reader);
    if (!(await m.detect(src, start, size))) return undefined;
    const fs = await m.open(src, start, size); // superblock or boot sector (and NTFS's $Volume): no allocation data
    return { filesystem: fs.type, ...(fs.label ? { label: fs.label } : {}) };
  },
}));

export { FilesystemError };

/** Mount points of filesystems on a drive or any of its partitions. */
export async function mountedOn(path: string, platform: Platform = currentPlatform()): Promise<{ mountpoint: string; device: string; readOnly: boolean }[]> {
  const related = new Set(await platform.relatedDevices(path));
  const out: { mountpoint: string; device: string; readOnly: boolean }[] = [];
  for (const m of await platform.mountedFilesystems()) {
    if (!m.device.startsWith('/')) continue;
    const real = (await platform.relatedDevices(m.device))[0] ?? m.device;
    if (related.has(real)) out.push({ mountpoint: m.mountpoint, device: m.device, readOnly: m.readOnly });
  }
  return out;
}

/** Plain-language warnings for filesystems of the drive that are mounted read-write. */
export async function mountWarnings(path: string, platform: Platform = currentPlatform()): Promise<string[]> {
  return (await mountedOn(path, platform))
    .filter((m) => !m.readOnly)
    .map((m) => `${m.device} is mounted read-write at ${m.mountpoint}; files changing while it is imaged may be inconsistent in the image. Image a snapshot (LVM or btrfs) or boot from a live USB for a consistent copy.`);
}

/** tools.ts's relocateGpt: moves the GPT backup to the end of a larger restore target. */
export function relocateGptOnWriter(target: ImageWriter, originalSize: number): Promise<boolean> {
  return relocateGptOn(target, originalSize);
}
