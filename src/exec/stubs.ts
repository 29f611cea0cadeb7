/**
 * Mount-point stubs: the empty files and directories an OCI runtime creates in a rootfs for
 * mount targets that are missing. Found before a run, removed after it if still empty, as
 * BuildKit's stub cleaner does; every path is resolved within the root, and a removal never
 * goes through a symlink the process may have planted where a stub's parent was.
 */
import { lstatSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { parentsConfinedSync } from '../fsroot.js';
import { resolveInRoot } from './user.js';

/** Stubs the runtime will make for `targets`: each missing target and its missing parents, deepest first. */
export async function missingStubs(rootfs: string, targets: string[]): Promise<string[]> {
  const root = path.resolve(rootfs);
  const out = new Set<string>();
  for (const t of targets) {
    if (path.posix.resolve('/', t) === '/') continue;
    let p = await resolveInRoot(root, t);
    while (p !== root && p.startsWith(`${root}/`) && !lstatSync(p, { throwIfNoEntry: false })) {
      out.add(p);
      p = path.dirname(p);
    }
  }
  const depth = (p: string): number => p.split('/').length;
  return [...out].sort((a, b) => depth(b) - depth(a));
}

/**
 * Removes the stubs (empty regular files, empty directories) still there, deepest first; each
 * removal keeps its parent's times, so a directory holding a stub is in a layer only if the
 * step changed it otherwise. What the process put there stays.
 */
export async function removeStubs(rootfs: string, stubs: string[]): Promise<void> {
  for (const p of stubs) {
    if (!parentsConfinedSync(rootfs, p)) continue;
    try {
      const st = await fsp.lstat(p);
      if (st.isDirectory()) {
        if ((await fsp.readdir(p)).length) continue;
      } else if (!st.isFile() || st.size !== 0) continue;
      const parent = path.dirname(p);
      const pst = await fsp.lstat(parent);
      if (st.isDirectory()) await fsp.rmdir(p);
      else await fsp.unlink(p);
      await fsp.lutimes(parent, pst.atime, pst.mtime);
    } catch {
      // already gone, or not ours to remove
    }
  }
}
