/** Test helpers for the read-only filesystem readers: fixture trees, and whole-tree comparison with a folder on the host. */
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FilesystemReader, FsEntry } from './types.js';
import { seededBytes, sh } from '../testing.js';

export async function readAll(r: FilesystemReader, e: FsEntry, stream?: string): Promise<Buffer> {
  const f = await r.open(e, stream);
  const parts: Uint8Array[] = [];
  for (let o = 0; o < f.size; o += 1 << 20) parts.push(await f.read(o, 1 << 20));
  return Buffer.concat(parts);
}

export interface CompareOptions {
  /** Compare permission bits, owners and mtimes (ext only). */
  readonly posix?: boolean;
  /** Host names to leave out of the comparison (e.g. lost+found). */
  readonly ignore?: readonly string[];
}

/** Asserts that the reader's tree equals the host folder: names, types, sizes, contents, symlink targets. Returns the number of entries compared. */
export async function compareTree(r: FilesystemReader, host: string, opts: CompareOptions = {}): Promise<number> {
  let count = 0;
  const walk = async (dir: FsEntry, path: string): Promise<void> => {
    const entries = await r.list(dir);
    const names = entries.map((e) => e.name).filter((n) => !(opts.ignore ?? []).includes(n)).sort();
    const want = readdirSync(join(host, path)).filter((n) => !(opts.ignore ?? []).includes(n)).sort();
    assert.deepEqual(names, want, `names in /${path}`);
    for (const e of entries) {
      if ((opts.ignore ?? []).includes(e.name)) continue;
      count++;
      const hp = join(host, path, e.name);
      const st = lstatSync(hp);
      const where = `/${path ? path + '/' : ''}${e.name}`;
      assert.equal(e.damaged, undefined, where);
      assert.equal(e.type, st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : 'other', `type of ${where}`);
      if (opts.posix) {
        assert.equal(e.mode, st.mode & 0o7777, `mode of ${where}`);
        assert.equal(e.uid, st.uid, `uid of ${where}`);
        assert.equal(Math.floor(e.mtime! / 1000), Math.floor(st.mtimeMs / 1000), `mtime of ${where}`);
      }
      if (e.type === 'file') {
        assert.equal(e.size, st.size, `size of ${where}`);
        assert.ok((await readAll(r, e)).equals(readFileSync(hp)), `content of ${where}`);
      } else if (e.type === 'symlink') {
        assert.equal((await r.readlink(e)).toString(), readlinkSync(hp), `target of ${where}`);
      } else if (e.type === 'dir') {
        await walk(e, path ? `${path}/${e.name}` : e.name);
      }
    }
  };
  await walk(await r.root(), '');
  return count;
}

/** A tree with everything the ext reader must handle. */
export function extTree(t: string): void {
  sh(`mkdir -p "${t}/many" "${t}/a/b/c/d/e/f/g/h" "${t}/empty dir"
for i in $(seq 1 3000); do echo $i > "${t}/many/file-$i"; done
echo deep > "${t}/a/b/c/d/e/f/g/h/file.txt"
ln -s a/b "${t}/fast"
ln -s "$(printf 'x%.0s' $(seq 1 200))" "${t}/slow"
truncate -s 5M "${t}/sparse" && echo middle | dd of="${t}/sparse" bs=1 seek=2000000 conv=notrunc status=none && echo end >> "${t}/sparse"
chmod 4750 "${t}/a/b/c/d/e/f/g/h/file.txt"; chmod 700 "${t}/empty dir"`);
  writeFileSync(join(t, 'big'), seededBytes(5, 400_000));
  sh(`ln "${t}/big" "${t}/big link"`);
  sh(`python3 -c "
f=open('${t}/holey','wb')
for i in range(40): f.seek(i*8192); f.write(bytes([i+1])*1024)"`); // no trailing hole: mkfs.ext4 -d with inline_data drops it (e2fsprogs 1.47.0)
  writeFileSync(join(t, 'inline'), 'short file kept in the inode');
}

export const MT = { MTOOLS_SKIP_CHECK: '1' };

/** Long, non-ASCII (mtools writes no characters beyond U+FFFF) and 8.3 names, nested folders, empty and multi-cluster files. */
export function fatTree(t: string): void {
  mkdirSync(join(t, 'Long folder name with spaces', 'nested'), { recursive: true });
  mkdirSync(join(t, 'SHORT'), { recursive: true });
  writeFileSync(join(t, 'README.TXT'), 'upper-case 8.3 name\n');
  writeFileSync(join(t, 'lower.txt'), 'lower-case 8.3 name\n');
  writeFileSync(join(t, 'Ünïcödé – ファイル.bin'), seededBytes(1, 5000));
  writeFileSync(join(t, 'empty'), '');
  writeFileSync(join(t, 'Long folder name with spaces', 'a rather long file name.data'), seededBytes(2, 70_000));
  writeFileSync(join(t, 'Long folder name with spaces', 'nested', 'deep.txt'), 'deep\n');
  for (let i = 0; i < 40; i++) writeFileSync(join(t, 'SHORT', `file number ${i}.txt`), `${i}\n`);
}

/**
 * Fills a freshly made NTFS volume through ntfs-3g: the host tree `t` copied in, then what only
 * NTFS has: a symlink (ntfs-3g writes an Interix link), fragmented files (appended to in turn on a volume whose free space is a checkerboard), a sparse file, a stream, compressed files, hard links (twelve of one
 * file, which pushes its names into an attribute list) and a folder big enough for an index B+ tree.
 */
export function fillNtfs(img: string, t: string, mnt: string): void {
  mkdirSync(mnt, { recursive: true });
  writeFileSync(join(mnt, '..', 'text.txt'), 'compressible line of text\n'.repeat(12_000));
  writeFileSync(join(mnt, '..', 'mixed.bin'), Buffer.concat([Buffer.from('abc\n'.repeat(17_500)), seededBytes(13, 50_000)]));
  sh(`ntfs-3g -o streams_interface=windows ${img} ${mnt}`);
  try {
    sh(`cp -r ${t}/. ${mnt}/
mkdir ${mnt}/frag ${mnt}/packed ${mnt}/links ${mnt}/index
for i in $(seq 1 120); do head -c 8192 /dev/urandom > ${mnt}/frag/s$i; done
dd if=/dev/zero of=${mnt}/filler bs=1M status=none 2>/dev/null || true
for i in $(seq 1 2 120); do rm ${mnt}/frag/s$i; done
for i in $(seq 1 40); do head -c 4096 /dev/urandom >> ${mnt}/frag/a.bin; head -c 4096 /dev/urandom >> ${mnt}/frag/b.bin; done
rm ${mnt}/filler ${mnt}/frag/s*
truncate -s 3M ${mnt}/sparse.bin && echo middle | dd of=${mnt}/sparse.bin bs=1 seek=1500000 conv=notrunc status=none
echo main > ${mnt}/streamy.txt && echo "hidden stream" > "${mnt}/streamy.txt:secret"
python3 -c "import os; os.setxattr('${mnt}/packed', 'system.ntfs_attrib_be', (0x810).to_bytes(4, 'big'))"
cp ${mnt}/../text.txt ${mnt}/../mixed.bin ${mnt}/packed/ && head -c 100000 /dev/urandom > ${mnt}/packed/noise.bin
echo linked > ${mnt}/links/original.txt
for i in $(seq 1 12); do ln ${mnt}/links/original.txt "${mnt}/links/a fairly long hard link name number $i.txt"; done
for i in $(seq 1 400); do echo $i > "${mnt}/index/entry with a long name $i.txt"; done
ln -s "Dir with spaces/sub/deep.txt" ${mnt}/link-rel`);
  } finally {
    sh(`umount ${mnt} || fusermount3 -u ${mnt}`);
  }
}

export function ntfsHostTree(t: string): void {
  mkdirSync(join(t, 'Dir with spaces', 'sub'), { recursive: true });
  writeFileSync(join(t, 'Ünïcödé – ファイル 📁.bin'), seededBytes(11, 5000));
  writeFileSync(join(t, 'Dir with spaces', 'sub', 'deep.txt'), 'deep\n');
  writeFileSync(join(t, 'resident.txt'), 'small enough to live in the MFT record\n');
  writeFileSync(join(t, 'big.bin'), seededBytes(12, 700_000));
  writeFileSync(join(t, 'empty'), '');
}

