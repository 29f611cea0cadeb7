/**
 * The file op: COPY, ADD and WORKDIR on the step's root filesystem. Sources are the build
 * context, a stage (mounted, or read from the one layer that holds the path), heredocs and
 * fetched URLs.
 */
import { lstatSync, promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { KilnError } from '../../errors.js';
import { resolveUser } from '../../exec/index.js';
import { makeDirsSync, rootPathSync } from '../../fsroot.js';
import { isSource, type FileVertex } from '../../graph/types.js';
import type { ActiveMount } from '../../snapshot/types.js';
import { parseChmod } from '../chmod.js';
import { contextTree, copyInto, mkdirInRoot, rootfsTree, type Owner } from '../copy.js';
import { hasWildcard } from '../match.js';
import type { SolvedLayer, SolvedState } from '../types.js';
import type { OpDeps } from './deps.js';

/**
 * `sourceDir`: read a COPY --from source from this layer dir instead of mounting the stage.
 * Returns whether the operation set extended attributes (copied with the files).
 */
export async function runFileOp(deps: OpDeps, v: FileVertex, others: SolvedState[], mount: ActiveMount, extra: ActiveMount[], sourceDir?: string): Promise<boolean> {
  const a = v.action;
  const root = mount.merged;
  if (a.op === 'mkdir') {
    const owner = a.user ? await ownerOf(root, a.user) : { uid: 0, gid: 0 };
    await mkdirInRoot(root, a.path, owner);
    return false;
  }
  let xattrs = false;
  let owner: Owner | undefined;
  if (a.chown) owner = await chownOf(root, a.chown);
  const chmod = a.chmod === undefined || a.chmod === '' ? undefined : parseChmod(a.chmod);
  const common = { destRoot: root, dest: a.dest, cwd: a.cwd, owner, chmod, parents: a.parents };
  if (a.source.paths.length > 0) {
    let tree;
    const from = a.source.from;
    if (isSource(from)) {
      if (from.kind === 'git') throw new KilnError(`COPY from ${from.name}: a git repository is added with ADD <repository>`);
      const local = deps.local(from);
      if (!local) throw new KilnError('COPY needs a build context, but none was given');
      tree = contextTree(local);
    } else if (sourceDir) {
      tree = rootfsTree(sourceDir);
    } else {
      const sm = await deps.states.mount(others[0].layers, true);
      extra.push(sm);
      tree = rootfsTree(sm.merged);
    }
    xattrs = await copyInto(tree, a.source.paths, a.excludes ?? [], { ...common, unpackArchives: a.unpackArchives });
  }
  for (const g of a.gits ?? []) {
    if (!deps.git) throw new KilnError(`ADD ${g.name}: this build cannot fetch git repositories`);
    const dir = await deps.git.checkout(g);
    // the repository's files, owned by root (or --chown), as BuildKit copies its checkout's "/"
    await copyInto({ ...rootfsTree(dir), preserveOwner: false }, ['.'], [], { ...common, unpackArchives: false });
  }
  if ((a.inline?.length ?? 0) > 0 || (a.urls?.length ?? 0) > 0) {
    const dir = deps.tempPath('files');
    await fs.mkdir(dir, { recursive: true });
    extra.push({ merged: dir, upper: dir, work: dir, release: () => fs.rm(dir, { recursive: true, force: true }) });
    const names: string[] = [];
    for (const inl of a.inline ?? []) {
      // a heredoc name is a path in a scratch root (as BuildKit's Mkfile): "../x" stays in it
      const file = rootPathSync(dir, inl.name);
      makeDirsSync(dir, path.dirname(file));
      await fs.writeFile(file, inl.content, { mode: 0o644 });
      names.push(path.relative(dir, file));
    }
    for (const u of a.urls ?? []) {
      const got = await deps.http.fetch(u);
      const file = path.join(dir, got.name);
      // the fetched file, with its mode and time, as if it had been downloaded here
      await fs.copyFile(got.file, file);
      const st = await fs.stat(got.file);
      await fs.chmod(file, st.mode & 0o7777);
      await fs.utimes(file, st.atime, st.mtime);
      names.push(got.name);
    }
    const tree = { ...rootfsTree(dir), preserveOwner: false };
    if (await copyInto(tree, names, [], { ...common, unpackArchives: a.unpackUrls === true })) xattrs = true;
  }
  return xattrs;
}

async function ownerOf(root: string, user: string): Promise<Owner> {
  const u = await resolveUser(root, user);
  return { uid: u.uid, gid: u.gid };
}

/** --chown=user[:group]: names resolve in the destination rootfs; a lone user means gid = uid. */
async function chownOf(root: string, spec: string): Promise<Owner> {
  const [userPart, groupPart] = spec.split(':', 2);
  const uid = /^\d+$/.test(userPart) ? Number(userPart) : (await resolveUser(root, userPart)).uid;
  let gid = uid;
  if (groupPart !== undefined && groupPart !== '') {
    gid = /^\d+$/.test(groupPart) ? Number(groupPart) : (await resolveUser(root, `0:${groupPart}`)).gid;
  }
  return { uid, gid };
}

/**
 * Whether a file operation can run without mounting anything: it only creates paths that
 * no layer below has (so an empty upper dir ends up exactly as an overlay's would), needs
 * no names resolved in the image (numeric or no owner), and reads its sources from the
 * context or from one layer of the source stage that nothing above shadows. Returns the
 * source stage's layer dir to read from ('' for none), or undefined to mount as usual.
 */
export async function directSource(deps: OpDeps, v: FileVertex, baseLayers: SolvedLayer[], others: SolvedState[]): Promise<string | undefined> {
  const a = v.action;
  const numeric = (u: string | undefined): boolean => u === undefined || u === '' || /^\d+(:\d+)?$/.test(u);
  let target: string;
  if (a.op === 'mkdir') {
    if (!numeric(a.user)) return undefined;
    target = path.posix.resolve('/', a.path);
  } else {
    if (a.unpackArchives || (a.urls?.length ?? 0) > 0 || (a.gits?.length ?? 0) > 0 || a.parents || !numeric(a.chown)) return undefined;
    target = path.posix.resolve(a.cwd || '/', a.dest);
  }
  if (target === '/') return undefined;
  const lowers = await deps.states.layerDirs(baseLayers);
  // every prefix of the target, and the target, must be absent from every layer (a whiteout
  // counts as present: the merged view may differ from an empty dir there)
  const parts = target.split('/').filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const rel = parts.slice(0, i).join('/');
    if (lowers.some((l) => lstatSync(path.join(l, rel), { throwIfNoEntry: false }) !== undefined)) return undefined;
  }
  if (a.op === 'mkdir' || a.source.paths.length === 0 || isSource(a.source.from)) return '';
  const stage = await deps.states.layerDirs(others[0].layers);
  let found: string | undefined;
  for (const p of a.source.paths) {
    const dir = sourceLayer(stage, p);
    if (dir === undefined || (found !== undefined && dir !== found)) return undefined;
    found = dir;
  }
  return found;
}

/**
 * The one layer dir (of `layers`, lowest first) a COPY --from source can be read from
 * directly: the topmost layer holding the path, reached through real directories, with no
 * layer above holding the path or any parent of it (one could be an opaque directory or a
 * whiteout) and, for a directory, no layer below holding it (its content would merge).
 * Undefined when any of that does not hold: the caller mounts the stage instead.
 */
function sourceLayer(layers: string[], pattern: string): string | undefined {
  if (hasWildcard(pattern)) return undefined;
  const parts = pattern.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0 || parts.includes('..')) return undefined;
  const rel = parts.join('/');
  const present = (l: string, r: string): Stats | undefined => lstatSync(path.join(l, r), { throwIfNoEntry: false });
  let top = -1;
  for (let i = layers.length - 1; i >= 0; i--) {
    if (present(layers[i], rel)) {
      top = i;
      break;
    }
  }
  if (top < 0) return undefined;
  const st = present(layers[top], rel)!;
  if (!st.isFile() && !st.isDirectory()) return undefined;
  for (let i = 1; i < parts.length; i++) {
    const prefix = parts.slice(0, i).join('/');
    if (!present(layers[top], prefix)?.isDirectory()) return undefined;
    for (let j = top + 1; j < layers.length; j++) if (present(layers[j], prefix)) return undefined;
  }
  if (st.isDirectory()) for (let j = 0; j < top; j++) if (present(layers[j], rel)) return undefined;
  return layers[top];
}
