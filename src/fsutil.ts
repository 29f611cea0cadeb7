import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ownedName } from './lifecycle.js';

/**
 * Replaces `file` with `data` atomically (a temp file beside it, then rename), making its
 * directory first. Not fsynced: for kiln's own caches and indexes, which a crash may lose
 * but never leaves half-written. Blobs go through the content store, which syncs.
 */
export async function writeFileAtomic(file: string, data: string | Buffer): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  // named after its owner: the reaper (lifecycle.ts) removes it if this process dies first
  const tmp = `${file}.${ownedName('atomic')}.tmp`;
  try {
    await fs.writeFile(tmp, data);
    await fs.rename(tmp, file);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}
