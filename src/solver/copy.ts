/**
 * COPY/ADD into a mounted root filesystem with Docker's semantics: a directory source
 * copies its contents, a file goes to dest/ or to dest, new directories are root-owned
 * unless --chown, context files become root-owned, files from other stages keep owners.
 */
import { chmodSync, closeSync, copyFileSync, fchmodSync, lchownSync, openSync, readdirSync, readFileSync, writeSync, lstatSync, lutimesSync, mkdirSync, promises as fs, readlinkSync, rmSync, symlinkSync, type Stats } from 'node:fs';
import path from 'node:path';
import { KilnError } from '../errors.js';
import type { BuildContext } from './context.js';
import { hasWildcard, matchPath } from './match.js';
import { excludeMatcher } from '../dockerignore.js';
import { makeDirsSync, rootPath } from '../fsroot.js';
import { archiveCompression, extractArchive, type ArchiveCompression } from './extract.js';

export interface Owner {
  uid: number;
  gid: number;
}

/** A file tree to copy from: the build context (honours .dockerignore) or a mounted rootfs. */
export interface CopySourceTree {
  root: string;
  /** Roots the pattern names, and for each every path below it to copy (relative to tree root). */
  resolve(pattern: string, excludes: string[]): Promise<Array<{ rel: string; isDir: boolean; below: string[]; name?: string }>>;
  /** Context files are owned by root in the image; other trees keep their owners. */
  preserveOwner: boolean;
}

export function contextTree(ctx: BuildContext): CopySourceTree {
  return {
    root: ctx.dir,
    preserveOwner: false,
    async resolve(pattern, excludes) {
      const [r] = await ctx.resolveSources([pattern], excludes);
      const files = r.files.map((f) => f.rel);
      return r.roots.map((root) => ({
        rel: root.rel,
        isDir: root.type === 'directory',
        below: root.type === 'directory' ? files.filter((f) => root.rel === '' || f.startsWith(`${root.rel}/`)) : [],
      }));
    },
  };
}

export function rootfsTree(root: string): CopySourceTree {
  return {
    root,
    preserveOwner: true,
    async resolve(pattern, excludes) {
      const clean = path.posix.normalize(`/${pattern}`).slice(1).replace(/\/+$/, '');
      const isExcluded = excludeMatcher(excludes);
      let roots: string[];
      if (hasWildcard(clean)) {
        roots = [];
        await walkMatches(root, clean.split('/'), '', roots);
      } else {
        const abs = await secureResolve(root, clean, true);
        const ok = await fs.lstat(abs).then(() => true, () => false);
        roots = ok ? [clean] : [];
      }
      if (roots.length === 0) {
        throw new KilnError(`COPY --from source "${pattern}" not found`, { hint: 'check the path exists in the source stage or image' });
      }
      const out = [];
      for (const found of roots) {
        // resolved inside the stage's root, never through the host's paths: parents always,
        // and a final symlink to a directory too (its content is what is copied)
        const followed = await secureResolve(root, found);
        const isDir = (await fs.lstat(followed).catch(() => undefined))?.isDirectory() === true;
        const abs = isDir ? followed : await secureResolve(root, found, true);
        const rel = path.relative(root, abs).split(path.sep).join('/');
        const below: string[] = [];
        if (isDir) await walkAll(abs, '', below);
        out.push({
          rel,
          name: found, // the path as the pattern named it (rel is where it resolved): --parents keeps it
          isDir,
          // --exclude patterns are relative to the directory being copied
          below: below.filter((b) => !isExcluded(b)).map((b) => (rel ? `${rel}/${b}` : b)),
        });
      }
      return out;
    },
  };
}

async function walkMatches(root: string, segs: string[], rel: string, out: string[]): Promise<void> {
  if (segs.length === 0) {
    out.push(rel);
    return;
  }
  const [seg, ...rest] = segs;
  const dir = await secureResolve(root, rel);
  const names = hasWildcard(seg) ? (await fs.readdir(dir).catch(() => [] as string[])).sort().filter((n) => matchPath(seg, n)) : [seg];
  for (const n of names) {
    const next = rel ? `${rel}/${n}` : n;
    const exists = await fs.lstat(await secureResolve(root, next, true)).then(() => true, () => false);
    if (exists) await walkMatches(root, rest, next, out);
  }
}

async function walkAll(absDir: string, rel: string, out: string[]): Promise<void> {
  for (const d of (await fs.readdir(path.join(absDir, rel), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const r = rel ? `${rel}/${d.name}` : d.name;
    out.push(r);
    if (d.isDirectory()) await walkAll(absDir, r, out);
  }
}

/** `rel` resolved inside `root` as BuildKit's fs.RootPath does; with `keepLast`, a final symlink is not followed. */
export function secureResolve(root: string, rel: string, keepLast = false): Promise<string> {
  return rootPath(root, rel, { followLast: !keepLast });
}

export interface CopyOptions {
  destRoot: string;
  /** Destination as written (absolute or relative to cwd). */
  dest: string;
  cwd: string;
  owner?: Owner;
  chmod?: number;
  unpackArchives: boolean;
  /** More than one source: dest must be a directory. */
  multipleSources: boolean;
  /** --parents: keep the source's relative path under dest. */
  parents?: boolean;
}

/** mkdir -p inside root; new directories get `owner` (root by default) and 0755. */
export async function mkdirInRoot(root: string, rel: string, owner: Owner = { uid: 0, gid: 0 }): Promise<string> {
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  let sofar = '';
  for (const part of parts) {
    sofar = sofar ? `${sofar}/${part}` : part;
    const abs = await secureResolve(root, sofar);
    const st = await fs.lstat(abs).catch(() => undefined);
    if (!st) {
      makeDirsSync(root, abs, owner); // a symlink to a missing path: its target is made, in the root
    } else if (!st.isDirectory()) {
      throw new KilnError(`cannot create directory /${sofar}: a file is in the way`);
    }
  }
  return secureResolve(root, rel);
}

export async function copyInto(tree: CopySourceTree, patterns: string[], excludes: string[], opts: CopyOptions): Promise<void> {
  const destPath = path.posix.resolve(opts.cwd || '/', opts.dest);
  const destIsDirSyntax = opts.dest.endsWith('/') || opts.dest === '.' || opts.dest.endsWith('/.');
  for (const pattern of patterns) {
    const roots = await tree.resolve(pattern, excludes);
    const multi = opts.multipleSources || roots.length > 1 || hasWildcard(pattern);
    for (const root of roots) {
      const srcAbs = path.join(tree.root, root.rel);
      if (root.isDir) {
        const base = opts.parents && root.rel ? path.posix.join(destPath, root.name ?? root.rel) : destPath;
        const targetDir = await mkdirInRoot(opts.destRoot, base, opts.owner);
        await copyTree(tree, root.rel, root.below, targetDir, base, opts);
        continue;
      }
      let target: string;
      const existing = await fs.stat(await secureResolve(opts.destRoot, destPath)).catch(() => undefined);
      if (opts.parents) target = path.posix.join(destPath, root.name ?? root.rel);
      else if (destIsDirSyntax || multi || existing?.isDirectory()) target = path.posix.join(destPath, path.posix.basename(root.rel));
      else target = destPath;
      await mkdirInRoot(opts.destRoot, path.posix.dirname(target), opts.owner);
      const archive = opts.unpackArchives ? await archiveSource(tree.root, root.rel) : undefined;
      if (archive) {
        // an archive always unpacks into dest as a directory, slash or not (as BuildKit does)
        const dir = await mkdirInRoot(opts.destRoot, destPath, opts.owner);
        await extractArchive(archive.file, archive.kind, dir, { owner: opts.owner, name: root.rel });
        continue;
      }
      await copyOne(srcAbs, opts.destRoot, target, tree.preserveOwner, opts);
    }
  }
}

/** How many files are copied at once: the work is syscalls, and overlayfs lets them overlap. */
const COPY_CONCURRENCY = 32;
/**
 * Up to this many entries, a tree is copied with synchronous calls: each takes microseconds
 * on an idle disk, less than a threadpool round trip. Beyond it, calls overlap on the
 * threadpool: creating files waits on the filesystem journal, and a busy disk makes each
 * create take a millisecond or more (measured: 100 small files, 20-120 ms either way
 * depending on write-back, with the parallel copy ahead as the disk gets busier).
 */
const SYNC_COPY_MAX = 16;

/** The file calls a copy makes, asynchronous (threadpool) or synchronous behind a promise. */
interface FsOps {
  lstat(p: string): Promise<Stats>;
  rm(p: string, o?: { recursive?: boolean; force?: boolean }): Promise<void>;
  symlink(target: string, p: string): Promise<void>;
  readlink(p: string): Promise<string>;
  copyFile(src: string, dst: string): Promise<void>;
  lchown(p: string, uid: number, gid: number): Promise<void>;
  chmod(p: string, mode: number): Promise<void>;
  lutimes(p: string, atime: Date, mtime: Date): Promise<void>;
  mkdir(p: string): Promise<unknown>;
}

const asyncOps: FsOps = {
  lstat: (p) => fs.lstat(p),
  rm: (p, o) => fs.rm(p, o),
  symlink: (t, p) => fs.symlink(t, p),
  readlink: (p) => fs.readlink(p),
  copyFile: (a, b) => fs.copyFile(a, b),
  lchown: (p, u, g) => fs.lchown(p, u, g),
  chmod: (p, m) => fs.chmod(p, m),
  lutimes: (p, a, m) => fs.lutimes(p, a, m),
  mkdir: (p) => fs.mkdir(p),
};

/**
 * copyFile for the synchronous path: a small file is read and written whole (on ext4 that is
 * several times faster than copy_file_range for a few KiB), with the source's mode exactly.
 */
function copySmallSync(src: string, dst: string): void {
  const st = lstatSync(src);
  if (st.size > 256 << 10) {
    copyFileSync(src, dst);
    return;
  }
  const data = readFileSync(src);
  const fd = openSync(dst, 'wx', st.mode & 0o7777);
  try {
    for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
    fchmodSync(fd, st.mode & 0o7777); // the umask applied at open
  } finally {
    closeSync(fd);
  }
}

const syncOps: FsOps = {
  lstat: async (p) => lstatSync(p),
  rm: async (p, o) => rmSync(p, o),
  symlink: async (t, p) => symlinkSync(t, p),
  readlink: async (p) => readlinkSync(p),
  copyFile: async (a, b) => copySmallSync(a, b),
  lchown: async (p, u, g) => lchownSync(p, u, g),
  chmod: async (p, m) => chmodSync(p, m),
  lutimes: async (p, a, m) => lutimesSync(p, a, m),
  mkdir: async (p) => mkdirSync(p),
};

/**
 * Copies the entries below a source directory into `targetDir`: directories first, in
 * order (resolving a destination symlink inside the root only where one is met), then
 * every file with COPY_CONCURRENCY in flight, then directory times, deepest first, so
 * that writing the files does not change them.
 */
async function copyTree(tree: CopySourceTree, rootRel: string, below: string[], targetDir: string, base: string, opts: CopyOptions): Promise<void> {
  const srcRoot = path.join(tree.root, rootRel);
  const dirAbs = new Map<string, string>([['', targetDir]]);
  // directories this copy created are empty: their children need no check for an existing
  // entry (nor does an empty target, as when a step writes into a fresh upper dir)
  const fresh = new Set<string>();
  if (readdirSync(targetDir).length === 0) fresh.add('');
  const dirTimes: Array<[string, import('node:fs').Stats]> = [];
  const io = below.length <= SYNC_COPY_MAX ? syncOps : asyncOps;
  const rootStat = lstatSync(srcRoot);
  await applyMeta(srcRoot, targetDir, tree.preserveOwner, opts, true, rootStat, false, io);
  dirTimes.push([targetDir, rootStat]);
  const files: Array<{ src: string; sub: string; st: import('node:fs').Stats }> = [];
  const prefixLen = rootRel === '' ? 0 : rootRel.length + 1;
  const parentOf = async (sub: string): Promise<string> => {
    const parentSub = path.posix.dirname(sub) === '.' ? '' : path.posix.dirname(sub);
    return dirAbs.get(parentSub) ?? secureResolve(opts.destRoot, path.posix.join(base, parentSub));
  };
  for (const rel of below) {
    const sub = rel.slice(prefixLen);
    const src = path.join(tree.root, rel);
    const st = lstatSync(src);
    if (!st.isDirectory()) {
      files.push({ src, sub, st });
      continue;
    }
    let dst = path.join(await parentOf(sub), path.posix.basename(sub));
    let existing = fresh.has(path.posix.dirname(sub) === '.' ? '' : path.posix.dirname(sub)) ? undefined : lstatSync(dst, { throwIfNoEntry: false });
    if (existing?.isSymbolicLink()) {
      dst = await secureResolve(opts.destRoot, path.posix.join(base, sub));
      existing = lstatSync(dst, { throwIfNoEntry: false });
    }
    if (existing && !existing.isDirectory()) await io.rm(dst, { force: true });
    if (!existing || !existing.isDirectory()) {
      await io.mkdir(dst);
      fresh.add(sub);
    }
    await applyMeta(src, dst, tree.preserveOwner, opts, true, st, false, io);
    dirAbs.set(sub, dst);
    dirTimes.push([dst, st]);
  }
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const f = files[next++];
      const parentSub = path.posix.dirname(f.sub) === '.' ? '' : path.posix.dirname(f.sub);
      await copyFileTo(f.src, path.join(await parentOf(f.sub), path.posix.basename(f.sub)), f.st, tree.preserveOwner, opts, fresh.has(parentSub), io);
    }
  };
  await Promise.all(Array.from({ length: Math.min(io === syncOps ? 1 : COPY_CONCURRENCY, files.length) }, worker));
  for (const [dst, st] of dirTimes.reverse()) await io.lutimes(dst, st.atime, st.mtime);
}

/**
 * One non-directory entry to `dst` (an absolute path already inside the root). In a fresh
 * directory nothing is in the way, and as root a new file is already owned by 0:0 with the
 * source's mode (copyFile sets it), so only what differs is changed.
 */
async function copyFileTo(
  src: string,
  dst: string,
  st: import('node:fs').Stats,
  preserveOwner: boolean,
  opts: CopyOptions,
  inFreshDir: boolean,
  io: FsOps = asyncOps,
): Promise<void> {
  if (!inFreshDir) {
    const existing = await io.lstat(dst).catch(() => undefined);
    if (existing?.isDirectory()) await io.rm(dst, { recursive: true, force: true });
    else if (existing) await io.rm(dst, { force: true });
  }
  if (st.isSymbolicLink()) {
    await io.symlink(await io.readlink(src), dst);
    await applyMeta(src, dst, preserveOwner, opts, false, st, true, io);
    return;
  }
  if (!st.isFile()) return; // devices, fifos, sockets are not copied, as BuildKit skips sockets and contexts hold no devices
  await io.copyFile(src, dst);
  const owner = opts.owner ?? (preserveOwner ? { uid: st.uid, gid: st.gid } : { uid: 0, gid: 0 });
  const asRoot = process.getuid?.() === 0 && process.getgid?.() === 0;
  if (!(asRoot && owner.uid === 0 && owner.gid === 0)) await io.lchown(dst, owner.uid, owner.gid);
  // chown clears setuid/setgid bits, and --chmod overrides: only then is chmod needed
  if (opts.chmod !== undefined || (st.mode & 0o6000) !== 0) await io.chmod(dst, opts.chmod ?? st.mode & 0o7777);
  await io.lutimes(dst, st.atime, st.mtime);
}

async function copyOne(srcAbs: string, destRoot: string, targetRel: string, preserveOwner: boolean, opts: CopyOptions): Promise<void> {
  const st = await fs.lstat(srcAbs);
  const parent = await secureResolve(destRoot, path.posix.dirname(targetRel));
  const dst = path.join(parent, path.posix.basename(targetRel));
  const existing = await fs.lstat(dst).catch(() => undefined);
  if (st.isDirectory()) {
    if (existing && !existing.isDirectory()) await fs.rm(dst, { force: true });
    if (!existing || !existing.isDirectory()) await fs.mkdir(dst);
    await applyMeta(srcAbs, dst, preserveOwner, opts, true);
    return;
  }
  if (existing?.isDirectory()) await fs.rm(dst, { recursive: true, force: true });
  else if (existing) await fs.rm(dst, { force: true });
  if (st.isSymbolicLink()) {
    await fs.symlink(await fs.readlink(srcAbs), dst);
  } else if (st.isFile()) {
    await fs.copyFile(srcAbs, dst);
  } else {
    // devices, fifos, sockets: not copied, as BuildKit skips sockets and the context has no devices
    return;
  }
  await applyMeta(srcAbs, dst, preserveOwner, opts, false, st);
}

async function applyMeta(
  srcAbs: string,
  dst: string,
  preserveOwner: boolean,
  opts: CopyOptions,
  isDir: boolean,
  known?: import('node:fs').Stats,
  setTimes = true,
  io: FsOps = asyncOps,
): Promise<void> {
  const st = known ?? (await io.lstat(srcAbs));
  const owner = opts.owner ?? (preserveOwner ? { uid: st.uid, gid: st.gid } : { uid: 0, gid: 0 });
  await io.lchown(dst, owner.uid, owner.gid);
  if (!st.isSymbolicLink()) {
    const mode = opts.chmod !== undefined ? opts.chmod : st.mode & 0o7777;
    await io.chmod(dst, mode);
  }
  if (setTimes && (!isDir || st.isDirectory())) await io.lutimes(dst, st.atime, st.mtime);
}

/** The source file, resolved in its tree, when it holds a tar archive (compressed or not). */
async function archiveSource(treeRoot: string, rel: string): Promise<{ file: string; kind: ArchiveCompression } | undefined> {
  const file = await secureResolve(treeRoot, rel);
  const kind = await archiveCompression(file, rel);
  return kind === undefined ? undefined : { file, kind };
}
