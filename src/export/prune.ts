import { ContentStore } from '../oci/store.js';

export interface PruneOptions {
  /** Blob digests to keep besides everything index.json refers to (cache records, leases). */
  extraRoots?: string[];
  /** Keep blobs written less than this many milliseconds ago (in-flight builds). Default 0. */
  keepNewerThanMs?: number;
}

export interface PruneResult {
  removedBlobs: number;
  freedBytes: number;
}

/**
 * Reclaims disk space in the kiln root: removes every blob no image ref (and no extra root)
 * reaches, and temp files of processes that are gone. Cache pruning hooks in here too.
 */
export async function pruneStore(root: string, options: PruneOptions = {}): Promise<PruneResult> {
  const store = await ContentStore.open(root);
  return store.gc(options.extraRoots ?? [], { keepNewerThanMs: options.keepNewerThanMs });
}
