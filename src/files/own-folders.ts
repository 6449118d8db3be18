/** Lifeboat's own folders, which a backup leaves out (its own module so the CLI names them without loading the backup). */

/** Folders a backup leaves out whatever the patterns say, with the reason shown to the user. */
export interface OwnFolder {
  readonly path: string;
  readonly reason: string;
}

/**
 * Lifeboat's own folders, which no backup includes, with the reason shown: the repository being
 * written (when it is a local folder), the cache and the data folder. The caller says where they
 * are (the CLI, a scheduler); this decides that they are left out.
 */
export function lifeboatOwnFolders(where: { readonly repository?: string; readonly cache?: string; readonly data?: string }): OwnFolder[] {
  const out: OwnFolder[] = [];
  if (where.repository !== undefined) out.push({ path: where.repository, reason: "it is this backup's own repository" });
  if (where.cache !== undefined) out.push({ path: where.cache, reason: "it is Lifeboat's cache" });
  if (where.data !== undefined) out.push({ path: where.data, reason: "it holds Lifeboat's own data" });
  return out;
}
