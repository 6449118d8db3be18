/**
 * Wires the partition-table reader, the filesystem probes and the platform's device facts into
 * what the imager and the CLI need. The one place that knows which modules exist.
 */
import type { FilesystemProbe, PartitionTableReader } from './layout.js';
import type { ImageWriter } from './imager.js';
import { currentPlatform } from './platform/index.js';
import { linuxMounter, type Mounter } from './platform/mount-linux.js';
import { filesystemProbes, mountedOn, mountWarnings, partitionTableReader, relocateGptOnWriter } from './probes.js';

export interface DiskTools {
  readonly tables: PartitionTableReader | undefined;
  readonly probes: readonly FilesystemProbe[];
  /** Warnings for partitions of this drive that are mounted read-write. */
  mountWarnings(source: string): Promise<string[]>;
  /** Mount points of filesystems on this drive or its partitions. */
  mountedOn(target: string): Promise<string[]>;
  isBlockDevice(path: string): Promise<boolean>;
  /** Size of a drive or file, undefined if it cannot be opened. */
  deviceSize(path: string): Promise<number | undefined>;
  /** Maker and model of a drive, where the platform can tell. */
  deviceModel(path: string): Promise<string | undefined>;
  /** The whole drives attached to this computer (for the rescue kit's list of targets). */
  listDrives(): Promise<string[]>;
  /** Canonical device paths of a drive and of its partitions. */
  relatedDevices(path: string): Promise<string[]>;
  /** Mounts filesystems (Linux only; undefined elsewhere). */
  readonly mounter: Mounter | undefined;
  /** Moves a GPT's backup header to the end of a larger target; true if it did. */
  relocateGpt(target: ImageWriter, originalSize: number): Promise<boolean>;
}

export function diskTools(): DiskTools {
  const platform = currentPlatform();
  return {
    tables: partitionTableReader,
    probes: filesystemProbes,
    mountWarnings: (p) => mountWarnings(p, platform),
    mountedOn: async (p) => (await mountedOn(p, platform)).map((m) => m.mountpoint),
    isBlockDevice: (p) => platform.isBlockDevice(p),
    deviceSize: (p) => platform.deviceSize(p),
    deviceModel: (p) => platform.deviceModel(p),
    listDrives: () => platform.listDrives(),
    relatedDevices: (p) => platform.relatedDevices(p),
    mounter: process.platform === 'linux' ? linuxMounter : undefined,
    relocateGpt: relocateGptOnWriter,
  };
}
