/**
 * What a restore would erase: before an image is written over a drive or a file that exists, the
 * person is shown its model, size and partitions (with labels and filesystems), read with the
 * image layer's own partition and filesystem code. Nothing here writes.
 */
import { promises as fs } from 'node:fs';
import { errnoCode, formatBytes } from '../util/errors.js';
import { analyzeDisk } from './layout.js';
import { openSource } from './source.js';
import type { DiskTools } from './tools.js';

export interface TargetDescription {
  readonly path: string;
  readonly kind: 'device' | 'file';
  readonly size: number;
  readonly model?: string;
  /** 'mbr', 'gpt', or 'none' (no table, or unreadable). */
  readonly table: string;
  /** `type` is the partition table's name for the partition ("Linux swap", "EFI system"), for one whose filesystem is not known. */
  readonly partitions: readonly { readonly index: number; readonly size: number; readonly filesystem?: string; readonly label?: string; readonly type?: string }[];
}

/** The target as it is now, or undefined when it does not exist (a new file erases nothing). */
export async function describeTarget(path: string, tools: DiskTools): Promise<TargetDescription | undefined> {
  let st;
  try {
    st = await fs.stat(path);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw e;
  }
  const kind = st.isBlockDevice() ? 'device' : 'file';
  const model = kind === 'device' ? await tools.deviceModel(path) : undefined;
  let size = kind === 'file' ? st.size : ((await tools.deviceSize(path)) ?? 0);
  let table = 'none';
  let partitions: TargetDescription['partitions'] = [];
  if (size > 0) {
    try {
      const src = await openSource(path);
      try {
        size = src.size;
        const layout = await analyzeDisk(src, tools.tables, tools.probes);
        table = layout.table.kind;
        partitions = layout.partitions.map((p) => ({ index: p.index, size: p.size, ...(p.filesystem ? { filesystem: p.filesystem } : {}), ...(p.label ? { label: p.label } : {}), ...(p.typeName ? { type: p.typeName } : {}) }));
      } finally {
        await src.close();
      }
    } catch {
      // Unreadable or damaged: described by its size alone.
    }
  }
  return { path, kind, size, ...(model ? { model } : {}), table, partitions };
}

/** "/dev/sdb (SanDisk Ultra, 32.0 GB): a GPT partition table with 3 partition(s): 1 ext4 "home" 20.0 GB; 2 ntfs 11.0 GB; 3 (Linux swap) 1.0 GB" */
export function describeTargetText(d: TargetDescription): string {
  const what = d.kind === 'device' ? `${d.path} (${d.model ? `${d.model}, ` : ''}${formatBytes(d.size)})` : `the file ${d.path} (${formatBytes(d.size)})`;
  if (d.partitions.length === 0) return `${what}${d.table !== 'none' ? `: ${d.table === 'mbr' ? 'an' : 'a'} ${d.table.toUpperCase()} partition table without partitions` : ''}`;
  const parts = d.partitions.map((p) => `${p.index} ${p.filesystem ?? (p.type ? `(${p.type})` : '(no filesystem Lifeboat knows)')}${p.label ? ` "${p.label}"` : ''} ${formatBytes(p.size)}`).join('; ');
  const table = d.table === 'none' ? 'a filesystem on the whole drive' : `${d.table === 'mbr' ? 'an' : 'a'} ${d.table.toUpperCase()} partition table with ${d.partitions.length} partition(s)`;
  return `${what}: ${table}: ${parts}`;
}
