/**
 * Who uses a cache mount's directory right now, across every kiln process on a root: the
 * ground for `sharing=shared|private|locked`. A user holds its directory *shared* (any number
 * at once) or *exclusive* (alone). A hold is an empty file in the root's locks/ directory,
 * `cachemount-<kind>-<pid>-<start>-<hex>.<mount name>` (lifecycle.ts `ownedName`): a hold of a
 * process that is gone does not count, and the next command's sweep removes its file, so a
 * killed build never leaves a cache mount locked (its containers are removed before another
 * takes the directory over). Taking a hold looks at the others and adds
 * its file under a short inter-process lock of that mount (oci/lock.ts), so two takers never
 * both see the directory free.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { ownedName, ownerInName, sweepStale } from '../lifecycle.js';
import { withFileLock } from '../oci/lock.js';
import { ownerAlive } from '../owner.js';
import { kilnPaths } from '../paths.js';

const SHARED = 'cachemount-shared';
const EXCLUSIVE = 'cachemount-excl';

export interface CacheMountHold {
  release(): Promise<void>;
}

/** The mount a hold file names (after the first '.'), and whether it is exclusive. */
function parseHold(file: string): { name: string; exclusive: boolean } | undefined {
  if (!file.startsWith(`${SHARED}-`) && !file.startsWith(`${EXCLUSIVE}-`)) return undefined;
  const dot = file.indexOf('.');
  if (dot === -1) return undefined;
  return { name: file.slice(dot + 1), exclusive: file.startsWith(`${EXCLUSIVE}-`) };
}

/**
 * Holds the cache mount `name` shared or exclusive when nobody's hold conflicts (an exclusive
 * hold conflicts with every other, a shared one with exclusive ones); undefined when one does.
 * Never waits for another holder.
 */
export async function tryHoldCacheMount(root: string, name: string, exclusive: boolean): Promise<CacheMountHold | undefined> {
  const locks = kilnPaths(root).locks;
  return withFileLock(
    path.join(locks, `cache-mount-${name}.lock`),
    async () => {
      for (const f of await fsp.readdir(locks)) {
        const hold = parseHold(f);
        if (hold?.name !== name) continue;
        const owner = ownerInName(f);
        if (!owner || !ownerAlive(owner)) {
          // its owner was killed: what it still runs on the root (a container using the
          // directory) goes first, then its hold
          sweepStale(root);
          await fsp.rm(path.join(locks, f), { force: true });
          continue;
        }
        if (exclusive || hold.exclusive) return undefined;
      }
      const file = path.join(locks, `${ownedName(exclusive ? EXCLUSIVE : SHARED)}.${name}`);
      await fsp.writeFile(file, '');
      let released = false;
      return {
        release: async () => {
          if (released) return;
          released = true;
          await fsp.rm(file, { force: true });
        },
      };
    },
    { what: `cache mount ${name} in ${root}` },
  );
}
