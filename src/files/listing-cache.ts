/**
 * The listing cache: lets a backup keep an unchanged folder's listing without loading it from the
 * repository. For every folder listing a backup wrote or kept, it records a digest of the
 * file-system metadata the listing was made from, and the listings of its sub-folders. The next
 * backup whose parent is that snapshot lstat()s a folder as always; when the digest matches and no
 * sub-folder changed, the listing id is kept as it is. Loading and parsing listings is most of a
 * no-change backup after the lstat calls themselves.
 *
 * One file per repository and set of backed-up paths, in the user's cache folder. It names the
 * snapshot it describes (used only when that snapshot is the parent) and is authenticated with the
 * repository's MAC key, so a damaged or foreign file is ignored: the cache only ever costs or
 * saves time, never correctness. Only folders whose backup raised no warning are recorded, so a
 * file that could not be read is tried (and reported) again every time.
 *
 * May import repo/'s public face (ids, the repository's Authenticator) and util/.
 */
import { createHash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { join } from 'node:path';
import { isId, type Hex } from '../repo/ids.js';
import type { Authenticator } from '../repo/repository.js';

/** The lstat fields a digest covers; backup.ts's FileMeta has them all (declared here so neither module imports the other). */
type DigestMeta = Pick<
  BigIntStats,
  'mode' | 'dev' | 'ino' | 'nlink' | 'uid' | 'gid' | 'rdev' | 'size' | 'atimeNs' | 'mtimeNs' | 'ctimeNs' |
  'isFile' | 'isDirectory' | 'isSymbolicLink' | 'isCharacterDevice' | 'isBlockDevice'
>;

const VERSION = 1;

export interface CachedListing {
  /** Digest of the folder's entries as lstat() saw them (ListingDigest). */
  readonly digest: string;
  /** Listing ids of the sub-folders, by name (latin1). */
  readonly children: ReadonlyMap<string, Hex>;
}

/** One entry as lstat() saw it. */
export interface DigestEntry {
  readonly name: Buffer;
  readonly st: DigestMeta;
}

const fields = new BigUint64Array(12);
const fieldBytes = new Uint8Array(fields.buffer);

/**
 * Digest of a folder's entries (in listing order): everything its listing would hold except what
 * follows from it. Equal digests mean an equal listing, given the same sub-folder listings:
 * contents, holes and extended attributes are kept when inode, size, mtime and ctime are unchanged,
 * and a folder's or symlink's atime is kept when its inode, ctime and mtime are (see Backup.meta).
 * Entries are added in order, a part of the folder at a time if need be (a huge folder is walked
 * in windows); `digest` ends it.
 */
export class ListingDigest {
  private readonly h = createHash('sha256');
  private readonly owners = new Set<string>();

  add(entries: readonly DigestEntry[]): this {
    for (const { name, st } of entries) {
      const dirOrLink = st.isDirectory() || st.isSymbolicLink();
      fields[0] = BigInt(name.length);
      fields[1] = BigInt(st.mode);
      fields[2] = BigInt(st.uid);
      fields[3] = BigInt(st.gid);
      fields[4] = BigInt(st.mtimeNs);
      fields[5] = BigInt(st.ctimeNs);
      fields[6] = BigInt(st.ino);
      fields[7] = BigInt(st.dev);
      fields[8] = BigInt(st.nlink);
      fields[9] = st.isFile() || st.isSymbolicLink() ? BigInt(st.size) : 0n;
      fields[10] = st.isCharacterDevice() || st.isBlockDevice() ? BigInt(st.rdev) : 0n;
      fields[11] = dirOrLink ? 0n : BigInt(st.atimeNs);
      this.h.update(name).update(fieldBytes);
      this.owners.add(`${st.uid}:${st.gid}`);
    }
    return this;
  }

  /** The digest; `owner` gives the user and group names stored for a uid and gid (asked once per pair). */
  digest(owner: (uid: number, gid: number) => string): string {
    for (const o of [...this.owners].sort()) {
      const [uid, gid] = o.split(':').map(Number) as [number, number];
      this.h.update(`${o}=${owner(uid, gid)}\n`);
    }
    return this.h.digest('hex').slice(0, 32);
  }
}

interface Stored {
  version: number;
  repository: Hex;
  snapshot: Hex;
  options: string;
  folders: [Hex, string, [string, Hex][]][];
}

/**
 * What each cache file was last saved with in this process, and the file's stamp then: the next
 * backup of a long-running process (continuous protection takes a snapshot every few minutes)
 * takes it from memory instead of reading and parsing the file again (2 MB for 11,000 folders),
 * as long as the file is still the one written.
 */
const saved = new Map<string, { readonly stamp: string; readonly snapshot: Hex; readonly options: string; readonly folders: ReadonlyMap<Hex, CachedListing> }>();

/** A file's size, modification time (ms) and inode, or undefined when it is gone. */
async function stampOf(file: string): Promise<string | undefined> {
  try {
    const st = await fsp.stat(file, { bigint: true });
    return `${st.size}:${st.mtimeNs / 1_000_000n}:${st.ino}`;
  } catch {
    return undefined;
  }
}

export class ListingCache {
  private found: ReadonlyMap<Hex, CachedListing> = new Map();
  private readonly recorded = new Map<Hex, CachedListing>();

  private constructor(private readonly file: string, private readonly auth: Authenticator, private readonly repository: Hex, private readonly options: string) {}

  /**
   * Opens the cache for backups of `paths` (with the options that shape listings). Folders are
   * looked up only when `parent` is the snapshot the file describes.
   */
  static async open(dir: string, repository: Hex, auth: Authenticator, paths: readonly string[], options: object, parent: Hex | undefined): Promise<ListingCache> {
    const name = createHash('sha256').update(JSON.stringify([...paths].sort())).digest('hex').slice(0, 16);
    const c = new ListingCache(join(dir, repository, `listings-${name}.json`), auth, repository, JSON.stringify(options));
    if (parent !== undefined) await c.load(parent);
    return c;
  }

  private async load(parent: Hex): Promise<void> {
    const memo = saved.get(this.file);
    if (memo && memo.snapshot === parent && memo.options === this.options && memo.stamp === (await stampOf(this.file))) {
      this.found = memo.folders;
      return;
    }
    let text: string;
    try {
      text = await fsp.readFile(this.file, 'latin1');
    } catch {
      return;
    }
    const nl = text.indexOf('\n');
    const body = text.slice(nl + 1);
    if (nl < 0 || !this.auth.verify(Buffer.from(text.slice(0, nl), 'hex'), Buffer.from(body, 'latin1'))) return;
    try {
      const s = JSON.parse(body) as Stored;
      if (s.version !== VERSION || s.repository !== this.repository || s.snapshot !== parent || s.options !== this.options) return;
      const found = new Map<Hex, CachedListing>();
      for (const [id, digest, children] of s.folders) {
        if (!isId(id)) return;
        found.set(id, { digest, children: new Map(children) });
      }
      this.found = found;
    } catch {
      // Not what was written: ignored.
    }
  }

  get(listing: Hex): CachedListing | undefined {
    return this.found.get(listing);
  }

  record(listing: Hex, digest: string, children: ReadonlyMap<string, Hex>): void {
    this.recorded.set(listing, { digest, children });
  }

  /** A folder kept as it was without a look (a changed-folders backup): what is known of it and below it stays known. */
  carry(listing: Hex): void {
    const c = this.found.get(listing);
    if (!c || this.recorded.has(listing)) return;
    this.recorded.set(listing, c);
    for (const child of c.children.values()) this.carry(child);
  }

  /** Writes what this backup recorded, for the next one (whose parent is `snapshot`). Failing to write only costs speed. */
  async save(snapshot: Hex): Promise<void> {
    const stored: Stored = {
      version: VERSION,
      repository: this.repository,
      snapshot,
      options: this.options,
      folders: [...this.recorded].map(([id, c]) => [id, c.digest, [...c.children]]),
    };
    const body = JSON.stringify(stored);
    const text = `${this.auth.sign(Buffer.from(body, 'latin1')).toString('hex')}\n${body}`;
    const tmp = `${this.file}.${process.pid}.tmp`;
    try {
      await fsp.mkdir(join(this.file, '..'), { recursive: true, mode: 0o700 });
      await fsp.writeFile(tmp, text, { encoding: 'latin1', mode: 0o600 });
      await fsp.rename(tmp, this.file);
      const stamp = await stampOf(this.file);
      if (stamp) saved.set(this.file, { stamp, snapshot, options: this.options, folders: this.recorded });
    } catch {
      saved.delete(this.file);
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
    }
  }
}
