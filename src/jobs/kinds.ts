/**
 * Every kind of snapshot, registered statically in one place: how check and prune find the blobs
 * a snapshot needs (its reference walker) and how repair rebuilds a damaged one. A new kind of
 * snapshot adds one line to each table here, so the answers of check, prune and repair never
 * depend on which other modules happen to be loaded.
 */
import type { ReferenceWalker } from '../repo/check.js';
import type { Repairers } from '../repo/repair.js';
import type { Snapshot } from '../repo/snapshot.js';
import { fileTreeReferences } from '../files/tree.js';
import { filesRepairer } from '../files/repair.js';
import { imageReferences } from '../image/imager.js';
import { imageRepairer } from '../image/repair.js';

export const referenceWalkers: Record<Snapshot['kind'], ReferenceWalker> = {
  files: (repo, snapshot, visit) => fileTreeReferences(repo, snapshot.root, visit),
  image: (repo, snapshot, visit) => imageReferences(repo, snapshot.root, visit),
};

export const snapshotRepairers: Repairers = { files: filesRepairer, image: imageRepairer };
