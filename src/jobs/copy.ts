/**
 * Copying snapshots (file backups and drive images) from one repository to another — a drive to
 * S3, say — sending only the blobs the destination lacks. Works between repositories that cut and
 * name chunks alike (init --copy-parameters-from): each blob every copied snapshot references (its
 * reference walker, kinds.ts) is read and verified with the source's keys and, unless the
 * destination's index already has it, sealed with the destination's keys under the same id. A
 * snapshot already in the destination (same kind, time, host, paths and root) is skipped, so a
 * nightly copy is incremental. Write order as always: blobs, index, then each snapshot; a copy
 * that dies leaves packs the next one indexes and reuses (repair.ts indexUnindexedPacks).
 * Into a repository made without --copy-parameters-from (its own id key), file snapshots are
 * copied by renaming: chunk boundaries do not depend on the key (the chunker's parameters are the
 * same), so each data blob is stored as it is under the destination's id for it, and every listing
 * is rewritten with the new ids (Renamer). Each blob is then read from the source on every run (its
 * new id needs its bytes); only what the destination lacks is sent. Drive images are not renamed:
 * they are left out with a warning. Repositories whose chunker parameters differ are refused.
 * Pins go along: a copied snapshot (or one copied before) that is pinned in the source and not in
 * the destination is pinned there with the same note and time, so forget and prune of the copy keep
 * it too. An unpin is not copied (the copy only ever protects more).
 */
import { LifeboatError } from '../util/errors.js';
import { pool } from '../util/concurrency.js';
import { reusingLargeBlocks } from '../util/memory.js';
import { fromHex, toHex, type Hex } from '../repo/ids.js';
import { fileContent, loadDir, MAX_INLINE_CONTENT, saveContentParts, saveDir, type TreeEntry } from '../files/tree.js';
import { loadPins, pinSnapshot } from '../repo/pins.js';
import { indexUnindexedPacks } from '../repo/repair.js';
import { BlobType, type Repository } from '../repo/repository.js';
import type { Snapshot } from '../repo/snapshot.js';
import { referenceWalkers } from './kinds.js';
import type { JobOptions } from './events.js';

export interface CopyOptions extends JobOptions {
  /** Snapshots of the source to copy (ids, prefixes or "latest"); every snapshot when empty. */
  readonly snapshots?: readonly string[];
}

export interface CopiedSnapshot {
  /** The snapshot's id in the source. */
  readonly source: Hex;
  /** Its id in the destination (the one found there when it was copied before). */
  readonly copy: Hex;
  readonly kind: Snapshot['kind'];
  readonly time: string;
  readonly host: string;
  readonly paths: readonly string[];
  /** True when the destination already had it (an earlier copy), so nothing was sent for it. */
  readonly alreadyThere: boolean;
}

export interface CopyResult {
  readonly snapshots: readonly CopiedSnapshot[];
  /** Snapshots of the source that could not be read or whose data is damaged there: not copied. */
  readonly failed: readonly { readonly source: Hex; readonly message: string }[];
  /** Blobs sent to the destination, and their plaintext bytes. */
  readonly blobsSent: number;
  readonly bytesSent: number;
  /** Blobs the copied snapshots need that the destination already had. */
  readonly blobsPresent: number;
  /** Bytes of packs written to the destination (compressed and encrypted). */
  readonly bytesWritten: number;
  /** Pins of the source's snapshots newly made on their copies. */
  readonly pinsCopied: number;
}

/** Blobs read from the source and sealed for the destination at once. */
const IN_FLIGHT = 4;

/** A read from the source that found its data damaged or missing: costs the snapshot being copied, not the whole copy. */
class SourceDamage extends Error {
  constructor(readonly reason: LifeboatError) {
    super(reason.message);
  }
}

const sourceDamage = (e: unknown): never => {
  throw e instanceof LifeboatError && (e.code === 'corrupt' || e.code === 'not-found') ? new SourceDamage(e) : e;
};

const sameSnapshot = (s: Snapshot): string => JSON.stringify([s.kind, s.time, s.host, [...s.paths], s.root]);

/**
 * Copies snapshots from `source` to `dest`: both opened by the caller, the source locked shared
 * (reading), the destination shared like a backup.
 */
export async function copySnapshots(source: Repository, dest: Repository, o: CopyOptions = {}): Promise<CopyResult> {
  if (source.config.id === dest.config.id) {
    throw new LifeboatError('invalid-argument', 'The repository to copy from and the one to copy to are the same repository; choose another destination with --repo.');
  }
  const [a, b] = [source.config.chunker, dest.config.chunker];
  if (a.algorithm !== b.algorithm || a.min !== b.min || a.avg !== b.avg || a.max !== b.max) {
    throw new LifeboatError(
      'invalid-argument',
      `The repository at ${dest.store.location} cuts its files into chunks differently from the one at ${source.store.location}, so snapshots cannot be copied into it. Make the destination with "lifeboat init --copy-parameters-from ${source.store.location}" and copy into that one.`,
    );
  }
  // Another id key: file snapshots are renamed blob by blob (see the module comment).
  const renamer = dest.sharesChunkParameters(source) ? undefined : new Renamer(source, dest);
  await source.lock(false, 'copy (reading)', { reading: true });
  await dest.lock(false, 'copy');
  await source.loadIndex();
  await indexUnindexedPacks(dest); // loads the index; reuses what an interrupted copy uploaded
  // Blobs are opened here one after the other: with the allocator keeping large blocks for reuse,
  // their buffers are not fresh memory faulted in page by page (537 MB copied: 811,000 page faults
  // and 17 CPU-s before).
  return reusingLargeBlocks(async () => {
    o.signal?.throwIfAborted();

    const failed: { source: Hex; message: string }[] = [];
    const all = await source.listSnapshots((id, e) => failed.push({ source: id, message: e instanceof Error ? e.message : String(e) }));
    for (const f of failed) o.onEvent?.({ type: 'warning', kind: 'snapshot', message: `The snapshot ${f.source.slice(0, 8)} of the source cannot be read, so it was not copied: ${f.message}` });
    let chosen = all;
    if (o.snapshots && o.snapshots.length > 0) {
      const ids = new Set<Hex>();
      for (const ref of o.snapshots) ids.add((await source.findSnapshot(ref)).id);
      chosen = all.filter((s) => ids.has(s.id));
    }

    // What the destination holds already, and where each source snapshot's copy is (for parents).
    // (A renamed copy has another root: it is known by the rest.)
    const identity = (s: Snapshot): string => (renamer ? JSON.stringify([s.kind, s.time, s.host, [...s.paths]]) : sameSnapshot(s));
    const inDest = new Map<string, Hex>();
    for (const d of await dest.listSnapshots(() => undefined)) inDest.set(identity(d.snapshot), d.id);
    const copyOf = new Map<Hex, Hex>();
    for (const s of all) {
      const there = inDest.get(identity(s.snapshot));
      if (there) copyOf.set(s.id, there);
    }

    const walked = new Set<string>();
    let blobsSent = 0;
    let bytesSent = 0;
    let blobsPresent = 0;
    const out: CopiedSnapshot[] = [];
    const written0 = dest.bytesWritten;
    const progress = () => o.onEvent?.({ type: 'progress', phase: 'copying', done: renamer ? renamer.counts.bytesSent : bytesSent, stored: dest.bytesWritten - written0 });

    for (const { id, snapshot: s } of chosen) {
      o.signal?.throwIfAborted();
      const row = { source: id, kind: s.kind, time: s.time, host: s.host, paths: s.paths };
      const there = copyOf.get(id);
      if (there) {
        out.push({ ...row, copy: there, alreadyThere: true });
        continue;
      }
      if (renamer) {
        if (s.kind !== 'files') {
          const message = `The drive image ${id.slice(0, 8)} was not copied: images can be copied only into a repository made with "lifeboat init --copy-parameters-from".`;
          failed.push({ source: id, message });
          o.onEvent?.({ type: 'warning', kind: 'snapshot', message });
          continue;
        }
        let root: Hex;
        try {
          root = await renamer.dir(s.root, o.signal, progress);
        } catch (e) {
          if (!(e instanceof SourceDamage)) throw e;
          failed.push({ source: id, message: e.message });
          o.onEvent?.({ type: 'warning', kind: 'snapshot', message: `The snapshot ${id.slice(0, 8)} was not copied: its data in the source is damaged (${e.message})` });
          continue;
        }
        const { parent, ...rest } = s;
        const copiedParent = parent === undefined ? undefined : copyOf.get(parent);
        const copy = await dest.saveSnapshot({ ...rest, root, ...(copiedParent ? { parent: copiedParent } : {}) });
        copyOf.set(id, copy);
        out.push({ ...row, copy, alreadyThere: false });
        continue;
      }
      // Every blob the snapshot needs that this run has not met yet; a tree met before had its
      // whole subtree handled then. The walk always descends into trees the destination has: a
      // copy that died may have left a tree there without everything below it.
      const todo: Buffer[] = [];
      const met: string[] = [];
      try {
        await referenceWalkers[s.kind](source, s, (blob) => {
          const hex = Buffer.from(blob).toString('hex');
          if (walked.has(hex)) return false;
          walked.add(hex);
          met.push(hex);
          if (dest.hasBlob(blob)) blobsPresent++;
          else todo.push(Buffer.from(blob));
          return true;
        }).catch(sourceDamage);
        let stop = false; // after a failure, the other workers take no more blobs
        await pool(todo.length, IN_FLIGHT, async (i) => {
          if (stop) return;
          const blob = todo[i]!;
          o.signal?.throwIfAborted();
          const loc = source.index.get(blob);
          if (!loc) throw new SourceDamage(source.notIndexed(blob));
          // Deltas arrive rebuilt (loadBlob checks the id) and are stored whole: a delta's base may not be in the destination.
          const plain = await source.loadBlob(blob).catch((e: unknown) => {
            stop = true;
            return sourceDamage(e);
          });
          const r = await dest.saveBlob(loc.type === BlobType.tree ? BlobType.tree : BlobType.data, plain, blob).catch((e: unknown) => {
            stop = true;
            throw e;
          });
          if (r.added) {
            blobsSent++;
            bytesSent += plain.length;
            progress();
          } else blobsPresent++;
        });
      } catch (e) {
        // Damage in the source costs that snapshot only; anything else (the destination) stops the copy.
        if (!(e instanceof SourceDamage)) throw e;
        for (const hex of met) walked.delete(hex); // another snapshot that needs them walks them again
        failed.push({ source: id, message: e.message });
        o.onEvent?.({ type: 'warning', kind: 'snapshot', message: `The snapshot ${id.slice(0, 8)} was not copied: its data in the source is damaged (${e.message})` });
        continue;
      }
      const { parent, ...rest } = s;
      const copiedParent = parent === undefined ? undefined : copyOf.get(parent);
      const copy = await dest.saveSnapshot(copiedParent ? { ...rest, parent: copiedParent } : rest); // flushes the blobs and their index first
      copyOf.set(id, copy);
      out.push({ ...row, copy, alreadyThere: false });
    }
    await dest.flush();
    const pinsCopied = await copyPins(source, dest, out);
    const sent = renamer ? renamer.counts : { blobsSent, bytesSent, blobsPresent };
    return { snapshots: out, failed, ...sent, bytesWritten: dest.bytesWritten - written0, pinsCopied };
  });
}

/**
 * Copies file trees into a repository with another id key: each listing is loaded from the source,
 * its files' chunks stored in the destination under the destination's ids, and the listing saved
 * again with them. Remembers within a run what it renamed, so shared folders and chunks cost once.
 */
class Renamer {
  private readonly trees = new Map<Hex, Hex>();
  private readonly chunks = new Map<Hex, Hex>();
  readonly counts = { blobsSent: 0, bytesSent: 0, blobsPresent: 0 };

  constructor(
    private readonly source: Repository,
    private readonly dest: Repository,
  ) {}

  /** The destination's id of the source's listing `id` (and of everything under it). */
  async dir(id: Hex, signal: AbortSignal | undefined, progress: () => void): Promise<Hex> {
    const known = this.trees.get(id);
    if (known) return known;
    signal?.throwIfAborted();
    const entries = await loadDir(this.source, id).catch(sourceDamage);
    const out: TreeEntry[] = [];
    for (const e of entries) {
      if (e.type === 'dir' && e.subtree !== undefined) {
        out.push({ ...e, subtree: await this.dir(e.subtree, signal, progress) });
        continue;
      }
      if (e.type !== 'file' || (e.content === undefined && e.contentParts === undefined)) {
        out.push(e);
        continue;
      }
      const from = await fileContent(this.source, e).catch(sourceDamage);
      const to = new Array<Hex>(from.length);
      let stop = false;
      await pool(from.length, IN_FLIGHT, async (i) => {
        if (stop) return;
        signal?.throwIfAborted();
        to[i] = await this.chunk(from[i]!, progress).catch((err: unknown) => {
          stop = true;
          throw err;
        });
      });
      const { content: _content, contentParts: _parts, ...rest } = e;
      out.push(to.length > MAX_INLINE_CONTENT ? { ...rest, contentParts: await saveContentParts(this.dest, to) } : { ...rest, content: to });
    }
    const renamed = await saveDir(this.dest, out, (bytes, added) => this.count(bytes, added));
    this.trees.set(id, renamed);
    return renamed;
  }

  private async chunk(id: Hex, progress: () => void): Promise<Hex> {
    const known = this.chunks.get(id);
    if (known) return known;
    const plain = await this.source.loadBlob(fromHex(id)).catch(sourceDamage); // a delta arrives rebuilt and is stored whole
    const r = await this.dest.saveBlob(BlobType.data, plain);
    this.count(plain.length, r.added);
    if (r.added) progress();
    const renamed = toHex(r.id);
    this.chunks.set(id, renamed);
    return renamed;
  }

  private count(bytes: number, added: boolean): void {
    if (added) {
      this.counts.blobsSent++;
      this.counts.bytesSent += bytes;
    } else this.counts.blobsPresent++;
  }
}

/** Pins the copies of the source's pinned snapshots that are not pinned in the destination yet; returns how many. */
async function copyPins(source: Repository, dest: Repository, copied: readonly CopiedSnapshot[]): Promise<number> {
  const pinned = await loadPins(source);
  if (pinned.size === 0) return 0;
  const there = await loadPins(dest);
  let n = 0;
  for (const c of copied) {
    const pin = pinned.get(c.source);
    if (!pin || there.has(c.copy)) continue;
    // A damaged pin still pins (when in doubt, keep); its time is unknown, so the copy's is now.
    const time = pin.damaged ? undefined : new Date(pin.time);
    await pinSnapshot(dest, c.copy, pin.damaged ? '' : pin.note, time && Number.isFinite(time.getTime()) ? time : undefined);
    n++;
  }
  return n;
}
