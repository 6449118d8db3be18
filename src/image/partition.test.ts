import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, openSync, readSync, writeSync, closeSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { LifeboatError } from '../util/errors.js';
import { readPartitionTable, relocateGptOn, type Partition } from './partition.js';
import { memorySource, openSource } from './source.js';
import { prng, sh, shStatus, tempDir } from './testing.js';

interface SfdiskJson {
  partitiontable: { label: string; id: string; sectorsize?: number; partitions?: { node: string; start: number; size: number; type: string; uuid?: string; name?: string; bootable?: boolean }[] };
}

async function table(path: string) {
  const src = await openSource(path);
  try {
    return await readPartitionTable(src);
  } finally {
    await src.close();
  }
}

function patch(path: string, offset: number, bytes: Uint8Array): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, bytes, 0, bytes.length, offset);
  closeSync(fd);
}

function readAt(path: string, offset: number, length: number): Buffer {
  const fd = openSync(path, 'r');
  const b = Buffer.alloc(length);
  readSync(fd, b, 0, length, offset);
  closeSync(fd);
  return b;
}

function compareWithSfdisk(parts: readonly Partition[], json: SfdiskJson, path: string): void {
  const theirs = json.partitiontable.partitions ?? [];
  assert.equal(parts.length, theirs.length);
  for (const t of theirs) {
    const index = Number(t.node.slice(path.length));
    const p = parts.find((x) => x.index === index);
    assert.ok(p, `partition ${index} found`);
    assert.equal(p.start, t.start * 512, `start of ${index}`);
    assert.equal(p.size, t.size * 512, `size of ${index}`);
    if (json.partitiontable.label === 'gpt') {
      assert.equal(p.type, t.type.toLowerCase());
      assert.equal(p.guid, t.uuid?.toLowerCase());
      assert.equal(p.name, t.name);
    } else {
      assert.equal(Number(p.type), parseInt(t.type, 16));
      assert.equal(p.bootable, t.bootable === true);
    }
  }
}

test('MBR with two primaries and an extended partition holding two logical ones matches sfdisk --json', async () => {
  const d = tempDir();
  try {
    const disk = join(d.path, 'mbr.img');
    sh(`truncate -s 64M ${disk} && printf 'label: dos\\nlabel-id: 0x1234abcd\\n,8M,83,*\\n,8M,c\\n,4M,83\\n,,5\\n,10M,83\\n,12M,7\\n' | sfdisk -q ${disk}`);
    const t = await table(disk);
    const json = JSON.parse(sh(`sfdisk --json ${disk}`)) as SfdiskJson;
    assert.equal(t.kind, 'mbr');
    assert.equal(t.diskId, '1234abcd');
    assert.equal(json.partitiontable.id, '0x1234abcd');
    compareWithSfdisk(t.partitions, json, disk);
    assert.deepEqual(t.partitions.map((p) => [p.index, p.role, p.typeName]), [
      [1, 'primary', 'Linux'], [2, 'primary', 'W95 FAT32 (LBA)'], [3, 'primary', 'Linux'], [4, 'extended', 'Extended'], [5, 'logical', 'Linux'], [6, 'logical', 'HPFS/NTFS/exFAT'],
    ]);
    assert.equal(t.partitions[0]!.bootable, true);
    // Structures: the MBR and one EBR per logical partition, each a 512-byte sector.
    const ext = t.partitions[3]!;
    const l6 = t.partitions[5]!;
    assert.deepEqual(t.structures, [{ start: 0, end: 512 }, { start: ext.start, end: ext.start + 512 }, { start: l6.start - 2048 * 512, end: l6.start - 2048 * 512 + 512 }]);
    assert.equal(readAt(disk, l6.start - 2048 * 512 + 510, 2).toString('hex'), '55aa', 'the second EBR is where we say it is');
  } finally {
    d.cleanup();
  }
});

test('GPT with names and attributes matches sfdisk --json and sgdisk; both header locations are reported', async () => {
  const d = tempDir();
  try {
    const disk = join(d.path, 'gpt.img');
    sh(`truncate -s 64M ${disk} && sgdisk -U 11111111-2222-3333-4444-555555555555 -n 1:2048:+1M -t 1:EF02 -c 1:bios -n 2:0:+20M -t 2:EF00 -c 2:"EFI system" -n 3:0:0 -t 3:8300 -c 3:"Linux root ünï" -A 3:set:2 ${disk} >/dev/null`);
    const t = await table(disk);
    const json = JSON.parse(sh(`sfdisk --json ${disk}`)) as SfdiskJson;
    assert.equal(t.kind, 'gpt');
    assert.equal(t.diskId, '11111111-2222-3333-4444-555555555555');
    compareWithSfdisk(t.partitions, json, disk);
    assert.deepEqual(t.partitions.map((p) => p.typeName), ['BIOS boot', 'EFI System', 'Linux filesystem']);
    assert.equal(t.partitions[2]!.bootable, true);
    assert.equal(t.partitions[0]!.bootable, false);
    const sgdisk = sh(`sgdisk -p ${disk}`);
    assert.match(sgdisk, /Disk identifier \(GUID\): 11111111-2222-3333-4444-555555555555/);
    const sectors = 64 * 2048;
    assert.equal(t.gpt?.primaryHeaderLba, 1);
    assert.equal(t.gpt?.backupHeaderLba, sectors - 1);
    assert.equal(t.gpt?.backupHeaderOffset, (sectors - 1) * 512);
    assert.equal(t.gpt?.lastUsableLba, Number(/last usable sector is (\d+)/.exec(sgdisk)?.[1]));
    assert.deepEqual(t.structures, [{ start: 0, end: 34 * 512 }, { start: (sectors - 33) * 512, end: sectors * 512 }]);
    assert.deepEqual(t.warnings, []);
  } finally {
    d.cleanup();
  }
});

test('a damaged primary GPT header falls back to the backup at the end, with a warning', async () => {
  const d = tempDir();
  try {
    const disk = join(d.path, 'gpt.img');
    sh(`truncate -s 32M ${disk} && sgdisk -n 1:0:+8M -c 1:one -n 2:0:0 -c 2:two ${disk} >/dev/null`);
    const good = await table(disk);
    patch(disk, 512 + 40, Buffer.from([0x99])); // first usable LBA: breaks the header CRC
    const t = await table(disk);
    assert.equal(t.gpt?.usedBackup, true);
    assert.equal(t.gpt?.primaryValid, false);
    assert.match(t.warnings.join('\n'), /primary GPT header is damaged \(header CRC mismatch\)/);
    assert.deepEqual(t.partitions, good.partitions);
    // Entries array CRC broken instead: the same fallback.
    const disk2 = join(d.path, 'gpt2.img');
    sh(`truncate -s 32M ${disk2} && sgdisk -n 1:0:+8M -c 1:one -n 2:0:0 -c 2:two ${disk2} >/dev/null`);
    patch(disk2, 1024 + 56, Buffer.from('X', 'utf16le'));
    const t2 = await table(disk2);
    assert.match(t2.warnings.join('\n'), /entry array CRC mismatch/);
    assert.deepEqual(t2.partitions.map((p) => p.name), ['one', 'two']);
  } finally {
    d.cleanup();
  }
});

test('a partition past the end of the disk is a clear error naming it', async () => {
  const d = tempDir();
  try {
    const mbr = join(d.path, 'mbr.img');
    sh(`truncate -s 64M ${mbr} && printf 'label: dos\\n,8M,83\\n,50M,83\\n' | sfdisk -q ${mbr} && truncate -s 32M ${mbr}`);
    await assert.rejects(table(mbr), (e: unknown) => e instanceof LifeboatError && e.code === 'corrupt' && /^Partition 2 \(type 0x83\) starts at byte 9437184/.test(e.message) && /past the end of the disk \(33554432 bytes\)/.test(e.message));
    const gpt = join(d.path, 'gpt.img');
    sh(`truncate -s 64M ${gpt} && sgdisk -n 1:0:+8M -n 2:0:+40M -c 2:data ${gpt} >/dev/null`);
    // Shrink the disk but keep a valid backup at the new end, as a cut-short copy would look after a bad restore.
    const head = readAt(gpt, 0, 34 * 512);
    sh(`truncate -s 32M ${gpt}`);
    patch(gpt, 0, head);
    await assert.rejects(table(gpt), /^LifeboatError: Partition 2 \("data"\) starts at byte 9437184 and is 41943040 bytes long/);
  } finally {
    d.cleanup();
  }
});

test('no table: an empty disk and a FAT filesystem written to the whole disk', async () => {
  const d = tempDir();
  try {
    assert.equal((await readPartitionTable(memorySource(new Uint8Array(1 << 20)))).kind, 'none');
    const fat = join(d.path, 'fat.img');
    sh(`truncate -s 32M ${fat} && mkfs.vfat -F 16 ${fat} >/dev/null`);
    const t = await table(fat);
    assert.equal(t.kind, 'none');
    assert.deepEqual(t.partitions, []);
  } finally {
    d.cleanup();
  }
});

test('an EBR chain that loops is cut with a warning, not followed forever', async () => {
  const d = tempDir();
  try {
    const disk = join(d.path, 'loop.img');
    sh(`truncate -s 64M ${disk} && printf 'label: dos\\n,8M,83\\n,2M,83\\n,2M,83\\n,,5\\n,10M,83\\n,12M,83\\n' | sfdisk -q ${disk}`);
    const t0 = await table(disk);
    const ext = t0.partitions.find((p) => p.role === 'extended')!;
    // Point the second EBR's "next" entry back at the first EBR (relative LBA 0 is "no next"; use the first's own link).
    const firstEbr = readAt(disk, ext.start, 512);
    const nextLba = firstEbr.readUInt32LE(446 + 16 + 8);
    const secondEbrOffset = ext.start + nextLba * 512;
    const loopEntry = Buffer.from(firstEbr.subarray(446 + 16, 446 + 32));
    loopEntry.writeUInt32LE(nextLba, 8); // the second EBR points to itself
    patch(disk, secondEbrOffset + 446 + 16, loopEntry);
    const t = await table(disk);
    assert.deepEqual(t.partitions.map((p) => p.index), [1, 2, 3, 4, 5, 6]);
    assert.match(t.warnings.join('\n'), /loops back/);
  } finally {
    d.cleanup();
  }
});

test('relocating the GPT backup after growing the disk gives a table sgdisk -v accepts', async () => {
  const d = tempDir();
  try {
    const disk = join(d.path, 'gpt.img');
    const oldSize = 32 * 1024 * 1024;
    sh(`truncate -s ${oldSize} ${disk} && sgdisk -n 1:0:+8M -t 1:EF00 -c 1:esp -n 2:0:0 -c 2:root ${disk} >/dev/null`);
    const before = await table(disk);
    sh(`truncate -s 80M ${disk}`);
    assert.match(shStatus(`sgdisk -v ${disk}`).out, /problem|Problem|corrupt|damaged|Caution/, 'a grown disk is not valid as is');
    const grown = await table(disk);
    assert.match(grown.warnings.join('\n'), /backup GPT header is at LBA 65535, not at the end/);
    const fd = openSync(disk, 'r+');
    const target = {
      size: 80 * 1024 * 1024,
      read: async (o: number, l: number) => {
        const b = Buffer.alloc(l);
        readSync(fd, b, 0, l, o);
        return b;
      },
      write: async (o: number, data: Uint8Array) => void writeSync(fd, data, 0, data.length, o),
    };
    try {
      assert.equal(await relocateGptOn(target, oldSize), true);
    } finally {
      closeSync(fd);
    }
    const v = shStatus(`sgdisk -v ${disk}`);
    assert.equal(v.status, 0, v.out);
    assert.match(v.out, /No problems found/);
    const after = await table(disk);
    assert.deepEqual(after.partitions, before.partitions);
    assert.equal(after.gpt?.backupHeaderLba, 80 * 2048 - 1);
    assert.equal(after.gpt?.lastUsableLba, 80 * 2048 - 34);
    assert.deepEqual(after.warnings, []);
    // The same from a disk whose primary side is damaged: rebuilt from the old backup.
    const disk2 = join(d.path, 'gpt2.img');
    copyFileSync(join(d.path, 'gpt.img'), disk2);
    sh(`truncate -s ${oldSize} ${disk2} && sgdisk -o -n 1:0:+8M -c 1:esp -n 2:0:0 -c 2:root ${disk2}`);
    patch(disk2, 512 + 8, Buffer.from([0xff]));
    sh(`truncate -s 64M ${disk2}`);
    const fd2 = openSync(disk2, 'r+');
    try {
      const t2 = { ...target, size: 64 * 1024 * 1024, read: async (o: number, l: number) => { const b = Buffer.alloc(l); readSync(fd2, b, 0, l, o); return b; }, write: async (o: number, data: Uint8Array) => void writeSync(fd2, data, 0, data.length, o) };
      assert.equal(await relocateGptOn(t2, oldSize), true);
    } finally {
      closeSync(fd2);
    }
    const v2 = shStatus(`sgdisk -v ${disk2}`);
    assert.match(v2.out, /No problems found/, v2.out);
    assert.equal(await relocateGptOn({ ...target, size: oldSize }, oldSize), false, 'not larger: nothing to do');
    truncateSync(disk2, 0);
  } finally {
    d.cleanup();
  }
});

test('fuzz: mutated MBR, EBR and GPT sectors give a table or a LifeboatError, quickly', async () => {
  const d = tempDir();
  try {
    const mbr = join(d.path, 'mbr.img');
    sh(`truncate -s 16M ${mbr} && printf 'label: dos\\n,2M,83\\n,1M,83\\n,1M,83\\n,,5\\n,3M,83\\n,3M,83\\n' | sfdisk -q ${mbr}`);
    const gpt = join(d.path, 'gpt.img');
    sh(`truncate -s 16M ${gpt} && sgdisk -n 1:0:+2M -n 2:0:+3M -n 3:0:0 ${gpt} >/dev/null`);
    const r = prng(42);
    for (const [file, hot] of [[mbr, [0, 6 * 1024 * 1024, 6 * 1024 * 1024 + 4 * 1024 * 1024]], [gpt, [0, 512, 1024, 16 * 1024 * 1024 - 512]]] as const) {
      const orig = readAt(file, 0, 16 * 1024 * 1024);
      for (let iter = 0; iter < 300; iter++) {
        const img = Buffer.from(orig);
        const n = 1 + Math.floor(r() * 8);
        for (let k = 0; k < n; k++) {
          const base = hot[Math.floor(r() * hot.length)]!;
          // Mostly the table fields, sometimes anywhere in the sector.
          const off = base + (r() < 0.7 ? 440 + Math.floor(r() * 72) : Math.floor(r() * 512));
          img[off] = r() < 0.3 ? 0xff : Math.floor(r() * 256);
        }
        // Recompute nothing: CRCs will mostly fail, which must lead to the backup or an error.
        try {
          const t = await readPartitionTable(memorySource(img));
          for (const p of t.partitions) assert.ok(p.start + p.size <= img.length);
        } catch (e) {
          assert.ok(e instanceof LifeboatError, `unexpected ${String(e)}`);
        }
      }
    }
  } finally {
    d.cleanup();
  }
});
