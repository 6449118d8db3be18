/**
 * The disk-image dataset: a raw file with an MBR holding an ext4 partition (mkfs.ext4 -d from a
 * generated tree) and a FAT32 partition (mkfs.vfat + mcopy), each about half full, a pseudo boot
 * loader in the gap after the MBR, and the mutation step (files rewritten inside both
 * filesystems with debugfs and mtools, so about 2% of the used blocks change).
 *
 * The partitions are built as separate files (partclone reads those) and copied into the disk
 * image; after a mutation only the blocks that differ are written back, and counted.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { must } from './exec.js';
import { Prng } from './prng.js';
import { fillContent } from './content.js';
import { planTree, writeTree, type TreePlan } from './tree.js';

export interface DiskSpec {
  readonly seed: string;
  readonly ext4Bytes: number;
  readonly fatBytes: number;
  /** Fraction of each filesystem filled with files. */
  readonly fill: number;
  readonly largeMin: number;
  readonly largeMax: number;
}

export interface Disk {
  readonly dir: string;
  readonly disk: string;
  readonly size: number;
  readonly parts: readonly { readonly file: string; readonly fs: 'ext4' | 'vfat'; readonly offset: number; readonly size: number }[];
  readonly ext4Plan: TreePlan;
  readonly fatPlan: TreePlan;
}

const MiB = 1024 * 1024;
const SECTOR = 512;
const BLOCK = 4096;
const FAKE_TIME = '1704067200';
const UUID = '4c696665-626f-6174-2d62-656e63680001';

function mtoolsEnv(): NodeJS.ProcessEnv {
  return { ...process.env, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', MTOOLS_SKIP_CHECK: '1' };
}

export function buildDisk(dir: string, spec: DiskSpec, log: (s: string) => void): Disk {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const ext4Src = path.join(dir, 'ext4-src');
  const fatSrc = path.join(dir, 'fat-src');
  const ext4Data = Math.round(spec.ext4Bytes * spec.fill);
  const fatData = Math.round(spec.fatBytes * spec.fill);
  const ext4Plan = planTree({ seed: `${spec.seed}-ext4`, files: Math.round(ext4Data / 40000), bytes: ext4Data, largeMin: spec.largeMin, largeMax: spec.largeMax, medianSize: 6000 });
  const fatPlan = planTree({ seed: `${spec.seed}-fat`, files: Math.round(fatData / 60000), bytes: fatData, largeMin: spec.largeMin, largeMax: spec.largeMax, medianSize: 8000 });
  log(`image: writing ${ext4Plan.files.length} + ${fatPlan.files.length} files for the two filesystems`);
  writeTree(ext4Src, `${spec.seed}-ext4`, ext4Plan);
  writeTree(fatSrc, `${spec.seed}-fat`, fatPlan);

  const ext4 = path.join(dir, 'part1-ext4.img');
  fs.writeFileSync(ext4, '');
  fs.truncateSync(ext4, spec.ext4Bytes);
  log('image: mkfs.ext4 -d');
  must('mkfs.ext4', ['-q', '-F', '-b', '4096', '-L', 'lbbench', '-U', UUID, '-E', `hash_seed=${UUID},root_owner=0:0`, '-d', ext4Src, ext4], {
    env: { ...process.env, E2FSPROGS_FAKE_TIME: FAKE_TIME },
  });

  const fat = path.join(dir, 'part2-vfat.img');
  log('image: mkfs.vfat -F 32 and mcopy');
  const clusterSectors = spec.fatBytes >= 256 * MiB ? '8' : '1';
  must('mkfs.vfat', ['-F', '32', '-s', clusterSectors, '-i', '4c424f54', '-n', 'LBBENCH', '--invariant', '-C', fat, String(spec.fatBytes / 1024)]);
  const top = fs.readdirSync(fatSrc).sort().map((n) => path.join(fatSrc, n));
  must('mcopy', ['-i', fat, '-s', '-m', '-D', 'o', ...top, '::/'], { env: mtoolsEnv() });

  const first = MiB;
  const size = first + spec.ext4Bytes + spec.fatBytes + MiB;
  const disk = path.join(dir, 'disk.img');
  fs.writeFileSync(disk, '');
  fs.truncateSync(disk, size);
  const s1 = first / SECTOR;
  const n1 = spec.ext4Bytes / SECTOR;
  const n2 = spec.fatBytes / SECTOR;
  must('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', disk], {
    input: `label: dos\nlabel-id: 0x4c424f54\nunit: sectors\nstart=${s1}, size=${n1}, type=83, bootable\nstart=${s1 + n1}, size=${n2}, type=c\n`,
  });
  // A stand-in for a boot loader: boot code in the MBR and a core image in the gap after it.
  const rng = new Prng(`${spec.seed}-boot`);
  const fd = fs.openSync(disk, 'r+');
  const code = Buffer.alloc(440);
  rng.fill(code);
  fs.writeSync(fd, code, 0, code.length, 0);
  const core = Buffer.alloc(31 * 1024);
  fillContent('binary', rng, core);
  fs.writeSync(fd, core, 0, core.length, SECTOR);
  fs.closeSync(fd);
  const parts = [
    { file: ext4, fs: 'ext4' as const, offset: first, size: spec.ext4Bytes },
    { file: fat, fs: 'vfat' as const, offset: first + spec.ext4Bytes, size: spec.fatBytes },
  ];
  for (const p of parts) syncPartition(disk, p.file, p.offset);
  return { dir, disk, size, parts, ext4Plan, fatPlan };
}

/** Writes into `disk` at `offset` every 4 KiB block of `part` that differs; returns how many did. */
export function syncPartition(disk: string, part: string, offset: number): number {
  const size = fs.statSync(part).size;
  const a = Buffer.alloc(MiB);
  const b = Buffer.alloc(MiB);
  const src = fs.openSync(part, 'r');
  const dst = fs.openSync(disk, 'r+');
  let changed = 0;
  try {
    for (let pos = 0; pos < size; pos += MiB) {
      const n = fs.readSync(src, a, 0, Math.min(MiB, size - pos), pos);
      const m = fs.readSync(dst, b, 0, n, offset + pos);
      b.fill(0, m, n);
      for (let o = 0; o < n; o += BLOCK) {
        const e = Math.min(n, o + BLOCK);
        if (a.compare(b, o, e, o, e) !== 0) {
          fs.writeSync(dst, a, o, e - o, offset + pos + o);
          changed++;
        }
      }
    }
  } finally {
    fs.closeSync(src);
    fs.closeSync(dst);
  }
  return changed;
}

export interface DiskMutation {
  ext4Files: number;
  fatFiles: number;
  bytesRewritten: number;
  /** 4 KiB blocks of the disk image that differ after the mutation. */
  blocksChanged: number;
}

/**
 * Rewrites whole files inside both filesystems (debugfs rm + write; mcopy -D o) until about
 * `fraction` of each filesystem's data has been rewritten with new contents.
 */
export function mutateDisk(d: Disk, seed: string, fraction: number): DiskMutation {
  const rng = new Prng(`${seed}\0image-mutation`);
  const work = path.join(d.dir, 'mutation');
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  let bytesRewritten = 0;
  const choose = (plan: TreePlan, budget: number): typeof plan.files => {
    const order = plan.files.filter((f) => f.size > 0 && f.size <= budget);
    const out: typeof plan.files = [];
    let sum = 0;
    while (sum < budget && order.length) {
      const [f] = order.splice(rng.int(order.length), 1);
      if (!f || sum + f.size > budget * 1.25) continue;
      out.push(f);
      sum += f.size;
    }
    return out;
  };
  const newContent = (rel: string, size: number, kind: Parameters<typeof fillContent>[0], n: number): string => {
    const file = path.join(work, `new-${n}`);
    const buf = Buffer.alloc(size);
    fillContent(kind, new Prng(`${seed}\0${rel}\0rewrite`), buf);
    fs.writeFileSync(file, buf);
    bytesRewritten += size;
    return file;
  };
  const sum = (plan: TreePlan): number => plan.files.reduce((s, f) => s + f.size, 0);

  const ext4Files = choose(d.ext4Plan, sum(d.ext4Plan) * fraction);
  const cmds: string[] = [];
  ext4Files.forEach((f, n) => {
    const local = newContent(f.rel, f.size, f.kind, n);
    const dir = path.posix.dirname(f.rel);
    cmds.push(`cd /${dir === '.' ? '' : dir}`, `rm ${path.posix.basename(f.rel)}`, `write ${local} ${path.posix.basename(f.rel)}`);
  });
  const cmdFile = path.join(work, 'debugfs.cmd');
  fs.writeFileSync(cmdFile, `${cmds.join('\n')}\n`);
  must('debugfs', ['-w', '-f', cmdFile, d.parts[0]!.file], { env: { ...process.env, E2FSPROGS_FAKE_TIME: '1738627200' } });

  const fatFiles = choose(d.fatPlan, sum(d.fatPlan) * fraction);
  fatFiles.forEach((f, n) => {
    const local = newContent(f.rel, f.size, f.kind, 100000 + n);
    must('mcopy', ['-i', d.parts[1]!.file, '-o', '-D', 'o', local, `::/${f.rel}`], { env: mtoolsEnv() });
  });

  let blocksChanged = 0;
  for (const p of d.parts) blocksChanged += syncPartition(d.disk, p.file, p.offset);
  fs.rmSync(work, { recursive: true, force: true });
  return { ext4Files: ext4Files.length, fatFiles: fatFiles.length, bytesRewritten, blocksChanged };
}
