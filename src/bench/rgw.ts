/**
 * radosgw for the benchmark's `s3` dataset, started and stopped by the project's own script
 * (scripts/rgw.mjs over scripts/ceph-rgw-up.sh and ceph-rgw-down.sh; /work/shared/notes/ceph-rgw.md):
 * a throw-away single-node Ceph on free ports of 127.0.0.1.
 */
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { tryRun } from './exec.js';

export interface Radosgw {
  readonly seconds: number;
  readonly s3: { readonly endpoint: string; readonly accessKeyId: string; readonly secretAccessKey: string };
  stop(): void;
}

interface RgwModule {
  startRgw(options: { osdStore: 'memstore' | 'bluestore'; osdSize: string }): Promise<Radosgw>;
}

/** Why radosgw cannot run here (Ceph is not installed), or undefined when it can. */
export function cephMissing(): string | undefined {
  const missing = ['radosgw', 'ceph-mon', 'ceph-osd'].filter((b) => tryRun('sh', ['-c', `command -v ${b}`]) === undefined);
  return missing.length ? `Ceph is not installed (${missing.join(', ')} missing; bash scripts/install-test-deps.sh installs it)` : undefined;
}

/** Starts radosgw: objects in memory (memstore) or, for more than fits there, in a sparse file (bluestore) of `osdSize` (such as 40G). */
export async function startRadosgw(root: string, options: { osdStore: 'memstore' | 'bluestore'; osdSize: string }): Promise<Radosgw> {
  const m = (await import(pathToFileURL(path.join(root, 'scripts', 'rgw.mjs')).href)) as RgwModule;
  return m.startRgw(options);
}
