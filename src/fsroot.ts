/**
 * Paths inside an image root, resolved as a process chrooted there would see them (the way
 * BuildKit's `fs.RootPath` does): every component is looked at in turn, a symlink's target
 * (absolute or relative) is followed from the root or from the link's directory, and `..` never
 * climbs above the root. The result is a host path below `root` none of whose existing
 * components is a symlink (except the last one, when asked not to follow it), so a call on it
 * cannot reach outside the root. Missing components are kept as they are.
 */
import { chmodSync, lchownSync, lstatSync, mkdirSync, promises as fsp, readlinkSync } from 'node:fs';
import path from 'node:path';
import { KilnError } from './errors.js';

/** As Linux and continuity allow: more hops than this is a loop. */
export const MAX_SYMLINK_HOPS = 255;

export interface RootPathOptions {
  /** Follow a symlink in the last component (default true). */
  followLast?: boolean;
}

/**
 * The resolution itself, as a generator: it yields each host path it must look at and is sent
 * back that path's symlink target (or undefined when it is no symlink, or missing), so the
 * synchronous and asynchronous variants share one algorithm.
 */
function* walk(root: string, unsafe: string, followLast: boolean): Generator<string, string, string | undefined> {
  const pending = unsafe.split('/').filter((p) => p !== '' && p !== '.');
  const done: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '..') {
      done.pop();
      continue;
    }
    if (pending.length === 0 && !followLast) {
      done.push(part);
      break;
    }
    const target = yield path.join(root, ...done, part);
    if (target === undefined) {
      done.push(part);
      continue;
    }
    if (++hops > MAX_SYMLINK_HOPS) {
      throw new KilnError(`too many levels of symbolic links resolving ${unsafe.startsWith('/') ? unsafe : `/${unsafe}`} inside the image`, {
        hint: 'a symlink loop in the image or archive: fix the links on that path',
        code: 'invalid',
      });
    }
    if (target.startsWith('/')) done.length = 0;
    pending.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
  }
  return done.length === 0 ? root : path.join(root, ...done);
}

function linkTargetSync(p: string): string | undefined {
  try {
    return lstatSync(p, { throwIfNoEntry: false })?.isSymbolicLink() ? readlinkSync(p) : undefined;
  } catch {
    return undefined; // ENOTDIR and the like: nothing to follow, the path is just missing
  }
}

async function linkTarget(p: string): Promise<string | undefined> {
  try {
    return (await fsp.lstat(p)).isSymbolicLink() ? await fsp.readlink(p) : undefined;
  } catch {
    return undefined;
  }
}

/** `unsafe` (absolute or relative to the root) resolved inside `root`; see the module comment. */
export function rootPathSync(root: string, unsafe: string, opts: RootPathOptions = {}): string {
  const it = walk(path.resolve(root), unsafe, opts.followLast ?? true);
  let r = it.next();
  while (!r.done) r = it.next(linkTargetSync(r.value));
  return r.value;
}

/** The asynchronous form of rootPathSync (lstat and readlink on the threadpool). */
export async function rootPath(root: string, unsafe: string, opts: RootPathOptions = {}): Promise<string> {
  const it = walk(path.resolve(root), unsafe, opts.followLast ?? true);
  let r = it.next();
  while (!r.done) r = it.next(await linkTarget(r.value));
  return r.value;
}

/** The path of `abs` (a host path at or below `root`) as seen inside the root: "/a/b". */
export function inRootName(root: string, abs: string): string {
  const rel = path.relative(path.resolve(root), abs);
  return rel === '' ? '/' : `/${rel.split(path.sep).join('/')}`;
}

/**
 * Normalises a path from an archive or a Dockerfile to components relative to a root: leading
 * '/' and '.' dropped, '..' clamped at the root (as BuildKit's extraction does). '' is the root.
 */
export function clampRelative(name: string): string {
  const out: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return out.join('/');
}

/**
 * True when every existing component of `abs` below `root` is a real directory (no symlink),
 * so that a path-based call on it stays inside the root. The last component is not looked at.
 */
export function parentsConfinedSync(root: string, abs: string): boolean {
  const rel = path.relative(path.resolve(root), abs);
  if (rel.startsWith('..') || path.isAbsolute(rel)) return false;
  const parts = rel === '' ? [] : rel.split(path.sep);
  let cur = path.resolve(root);
  for (const part of parts.slice(0, -1)) {
    cur = path.join(cur, part);
    const st = lstatSync(cur, { throwIfNoEntry: false });
    if (!st) return true; // missing: nothing below it can exist either
    if (!st.isDirectory()) return false;
  }
  return true;
}

/**
 * mkdir -p of `abs`, a path below `root` as rootPath returns it: each missing directory is made
 * with `mode` (0755 by default) and the given owner. An existing component that is not a directory (a file, or
 * a symlink, which a resolved path cannot hold unless something changed it since) is an error.
 * Returns the directories it made, outermost first.
 */
export function makeDirsSync(root: string, abs: string, owner: { uid: number; gid: number } = { uid: 0, gid: 0 }, mode = 0o755): string[] {
  const base = path.resolve(root);
  const rel = path.relative(base, abs);
  if (rel.startsWith('..') || path.isAbsolute(rel)) throw new Error(`internal: ${abs} is not below ${base}`);
  const made: string[] = [];
  let cur = base;
  for (const part of rel === '' ? [] : rel.split(path.sep)) {
    cur = path.join(cur, part);
    const st = lstatSync(cur, { throwIfNoEntry: false });
    if (st?.isDirectory()) continue;
    if (st) {
      throw new KilnError(`cannot create directory ${inRootName(base, cur)}: ${st.isSymbolicLink() ? 'a symlink' : 'a file'} is in the way`, {
        hint: 'remove or rename that path in an earlier step',
        code: 'conflict',
      });
    }
    mkdirSync(cur, { mode });
    chmodSync(cur, mode); // the umask applied at mkdir
    lchownSync(cur, owner.uid, owner.gid);
    made.push(cur);
  }
  return made;
}
