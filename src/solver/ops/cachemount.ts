/**
 * RUN --mount=type=cache: which directory a step gets, as BuildKit's cache-mount manager
 * decides it, across every kiln process on the root (holds: cache/mount-lock.ts).
 *
 * A cache is named by its id and what seeds it (`from`, or uid/gid/mode given without a
 * `source`, which BuildKit turns into a directory made with them): `cacheMountName`. It has
 * one directory, `cache/mounts/<name>`, and more where users needed their own copies
 * (`<name>.1`, `<name>.2`, ...). `sharing=shared` (the default) uses any directory nobody
 * holds exclusively, together with other shared users; `private` takes one nobody uses, making
 * a new copy when all are in use; `locked` takes one nobody uses and waits while every one is
 * in use. A new directory gets the mount's mode and owner, or a copy of the `source` of the
 * `from` stage or image (the whole of it without a source); `source` then names the
 * directory inside the cache that is mounted, which must exist and is resolved within it.
 */
import { constants as fsConstants, promises as fs } from 'node:fs';
import path from 'node:path';
import { tryHoldCacheMount } from '../../cache/mount-lock.js';
import { KilnError } from '../../errors.js';
import type { MountSpec } from '../../graph/types.js';
import { kilnPaths } from '../../paths.js';
import { runCommand } from '../../snapshot/util.js';
import { secureResolve } from '../copy.js';
import { hash } from '../keys.js';
import type { StepContext } from '../scheduler.js';
import type { OpDeps } from './deps.js';

/** A cache mount's id: `id=`, else its target (as BuildKit names it). */
export function cacheMountId(m: { id?: string; target: string }): string {
  return m.id ?? m.target;
}

/** What a new directory of the cache starts from, besides its id (empty: an empty directory, 0755 root's). */
function seedOf(m: Pick<MountSpec, 'from' | 'source' | 'mode' | 'uid' | 'gid'>): string[] {
  const seed: string[] = [];
  if (m.from) seed.push(`from:${m.from.digest}`);
  const noSource = path.posix.join('/', m.source ?? '') === '/';
  if (noSource && (m.mode !== undefined || m.uid !== undefined || m.gid !== undefined)) seed.push(`dir:${m.mode ?? 0o755}:${m.uid ?? 0}:${m.gid ?? 0}`);
  return seed;
}

/** The directory name of a cache under cache/mounts: its id and, for a seeded one, the seed. */
export function cacheMountName(m: Pick<MountSpec, 'id' | 'target' | 'from' | 'source' | 'mode' | 'uid' | 'gid'>): string {
  const seed = seedOf(m);
  return hash(seed.length ? [cacheMountId(m), ...seed] : [cacheMountId(m)]).slice(7, 39);
}

/** The directory under the kiln root that holds a cache mount's contents (by its name). */
export function cacheMountDir(root: string, name: string): string {
  return path.join(kilnPaths(root).cacheMounts, name);
}

export interface OpenedCacheMount {
  /** What to bind-mount at the target. */
  source: string;
  release(): Promise<void>;
}

/** The tree a new directory of a cache with `from` is copied from; released after the copy. */
export type SeedRoot = () => Promise<{ dir: string; release(): Promise<void> }>;

const WAIT_REPORT = 'waiting for cache mount';

/** Takes a directory of the cache mount `m` for one step, as its sharing mode says. */
export async function openCacheMount(deps: OpDeps, m: MountSpec, seedRoot: SeedRoot | undefined, ctx: StepContext, pin: { activeDir: string; index: number }): Promise<OpenedCacheMount> {
  const base = cacheMountName(m);
  const sharing = m.sharing ?? 'shared';
  let reported = false;
  for (;;) {
    if (ctx.signal.aborted) throw ctx.cancelled();
    let anyExisting = false;
    for (let k = 0; ; k++) {
      const name = k === 0 ? base : `${base}.${k}`;
      const dir = cacheMountDir(deps.root, name);
      const exists = (await fs.stat(dir).catch(() => undefined))?.isDirectory() === true;
      // locked waits for a directory in use rather than making another one
      if (!exists && sharing === 'locked' && anyExisting) break;
      anyExisting ||= exists;
      const hold = await tryHoldCacheMount(deps.root, name, sharing !== 'shared');
      if (!hold) continue;
      try {
        await deps.lease?.protect({ mounts: [name] });
        if (!exists) await createDir(deps, m, dir, seedRoot);
        const sub = await subdir(dir, m, pin.activeDir, pin.index);
        return {
          source: sub.path,
          release: async () => {
            await sub.release();
            await hold.release();
          },
        };
      } catch (e) {
        await hold.release();
        throw e;
      }
    }
    if (!reported) {
      reported = true;
      ctx.log('stderr', Buffer.from(`${WAIT_REPORT} ${cacheMountId(m)} (sharing=locked): another step holds it\n`));
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The directory to mount: the cache's own, or `source` inside it. A source is resolved within
 * the cache, then pinned: opened, checked to be what was resolved (another step using the
 * cache may swap a directory for a link to the host meanwhile), and bind-mounted through that
 * open descriptor onto a directory of the step's own, which is what the runtime mounts.
 */
async function subdir(dir: string, m: MountSpec, activeDir: string, n: number): Promise<{ path: string; release(): Promise<void> }> {
  const none = { path: dir, release: () => Promise.resolve() };
  if (path.posix.join('/', m.source ?? '') === '/') return none;
  const notThere = (): KilnError =>
    new KilnError(`cache mount ${cacheMountId(m)}: source ${m.source} is not a directory in the cache (it is resolved within the cache, links included)`, {
      code: 'not-found',
      hint: 'create it in the cache first, or seed the cache with from= and a source that exists there',
    });
  for (let attempt = 0; attempt < 10; attempt++) {
    const p = await secureResolve(dir, m.source!);
    const fh = await fs.open(p, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY).catch(() => undefined);
    if (!fh) throw notThere();
    try {
      const fdPath = `/proc/${process.pid}/fd/${fh.fd}`;
      // changed between resolving and opening: resolve again
      if ((await fs.readlink(fdPath)) !== p) continue;
      const pin = path.join(activeDir, `cache-source-${n}`);
      await fs.mkdir(pin, { recursive: true });
      const r = await runCommand('mount', ['--bind', fdPath, pin]);
      if (r.code !== 0) throw new KilnError(`cannot mount cache mount ${cacheMountId(m)}'s source ${m.source}: ${r.stderr}`, { code: 'failed' });
      return {
        path: pin,
        release: async () => {
          const u = await runCommand('umount', [pin]);
          if (u.code !== 0) await runCommand('umount', ['-l', pin]);
          await fs.rmdir(pin).catch(() => undefined);
        },
      };
    } finally {
      await fh.close();
    }
  }
  throw new KilnError(`cache mount ${cacheMountId(m)}: source ${m.source} keeps changing while it is resolved`, { code: 'conflict', hint: 'another step using this cache is changing that path; retry, or give this step a cache of its own' });
}

/** Makes a new directory of the cache: empty with the mount's mode and owner, or seeded from `from`. */
async function createDir(deps: OpDeps, m: MountSpec, dir: string, seedRoot: SeedRoot | undefined): Promise<void> {
  const tmp = deps.tempPath('cache-mount');
  await fs.mkdir(tmp, { recursive: true });
  try {
    const noSource = path.posix.join('/', m.source ?? '') === '/';
    if (seedRoot && !(noSource && seedOf({ ...m, from: undefined }).length > 0)) {
      const seed = await seedRoot();
      try {
        const from = await secureResolve(seed.dir, m.source ?? '.');
        const st = await fs.lstat(from).catch(() => undefined);
        if (!st?.isDirectory()) throw new KilnError(`cache mount ${cacheMountId(m)}: ${m.source ?? '/'} is not a directory in the stage it is seeded from`, { code: 'not-found', hint: 'give from= a stage or image holding that directory, and source= its path there' });
        const into = noSource ? tmp : path.join(tmp, path.posix.normalize(`/${m.source}`));
        await fs.mkdir(into, { recursive: true });
        const r = await runCommand('cp', ['-a', '--reflink=auto', `${from}/.`, `${into}/`]);
        if (r.code !== 0) throw new KilnError(`cannot seed cache mount ${cacheMountId(m)}: ${r.stderr}`, { code: 'failed' });
      } finally {
        await seed.release();
      }
    } else {
      await fs.chown(tmp, m.uid ?? 0, m.gid ?? 0);
      await fs.chmod(tmp, m.mode ?? 0o755);
    }
    await fs.mkdir(path.dirname(dir), { recursive: true });
    // a shared user making the same directory at the same time: the first one wins
    await fs.rename(tmp, dir).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOTEMPTY' && e.code !== 'EEXIST') throw e;
    });
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}
