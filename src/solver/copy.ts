/**
 * COPY/ADD into a root filesystem with BuildKit's semantics (its file op over fsutil's
 * copy): each source is followed through symlinks within its tree and copied on its own;
 * a directory source copies its contents; a file goes into an existing directory under its
 * name, else to the destination path. Directories the copy creates for the destination
 * get 0755 (the octal --chmod mode if given) and the --chown owner (root otherwise); an
 * existing destination directory keeps its mode and owner; entries below a source
 * directory keep the source's mode, and their owner (root for context files) unless
 * --chown. Hard links among one source's files stay hard links.
 */
import { chmodSync, closeSync, copyFileSync, fchmodSync, lchownSync, linkSync, openSync, readdirSync, readFileSync, writeSync, lstatSync, lutimesSync, mkdirSync, promises as fs, readlinkSync, rmSync, symlinkSync, type Stats } from 'node:fs';
import path from 'node:path';
import { KilnError } from '../errors.js';
import type { BuildContext } from './context.js';
import { hasWildcard, matchPath } from './match.js';
import { excludeMatcher } from '../dockerignore.js';
import { applyChmod, createdDirMode, type ChmodSpec } from './chmod.js';
import { makeDirsSync, rootPath } from '../fsroot.js';
import { archiveCompression, extractArchive, type ArchiveCompression } from './extract.js';
import { decodeName, fsPath } from '../fsname.js';
import { readXattrTree, skipXattr } from '../snapshot/diff.js';
import { runCommand, xattrRestoreDump } from '../snapshot/util.js';

export interface Owner {
  uid: number;
  gid: number;
}

/** One source to copy, as its tree resolved it. */
export interface SourceRoot {
  /** Where the source is in the tree (symlinks followed), relative to the tree root. */
  rel: string;
  /** The path it was named or matched as (unfollowed): a file copied into a directory takes its base name. */
  matched: string;
  isDir: boolean;
  /** For a directory: every path below it to copy, relative to the tree root. */
  below: string[];
}

/** A file tree to copy from: the build context (honours .dockerignore) or a mounted rootfs. */
export interface CopySourceTree {
  root: string;
  /** The sources a pattern names: none for a wildcard without match; throws for a missing path. */
  resolve(pattern: string, excludes: string[]): Promise<SourceRoot[]>;
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
        matched: root.matched,
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
      const matches: string[] = [];
      if (hasWildcard(clean)) await walkMatches(root, clean.split('/'), '', matches);
      else matches.push(clean === '.' ? '' : clean);
      const out: SourceRoot[] = [];
      for (const matched of matches) {
        // followed within the root, the last link too, as BuildKit follows source links
        const abs = await secureResolve(root, matched);
        const st = await fs.lstat(fsPath(abs)).catch(() => undefined);
        if (!st) {
          throw new KilnError(`COPY --from source "${pattern}" not found${matched !== clean ? ` (${matched} leads nowhere)` : ''}`, {
            hint: 'check the path exists in the source stage or image',
          });
        }
        const rel = path.relative(root, abs).split(path.sep).join('/');
        const below: string[] = [];
        if (st.isDirectory()) await walkAll(abs, '', below);
        out.push({
          rel,
          matched,
          isDir: st.isDirectory(),
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
  const names = hasWildcard(seg) ? (await fs.readdir(fsPath(dir), { encoding: 'buffer' }).catch(() => [] as Buffer[])).map(decodeName).sort().filter((n) => matchPath(seg, n)) : [seg];
  for (const n of names) {
    const next = rel ? `${rel}/${n}` : n;
    const exists = await fs.lstat(fsPath(path.join(dir, n))).then(() => true, () => false);
    if (exists) await walkMatches(root, rest, next, out);
  }
}

async function walkAll(absDir: string, rel: string, out: string[]): Promise<void> {
  const dirents = await fs.readdir(fsPath(path.join(absDir, rel)), { withFileTypes: true, encoding: 'buffer' });
  for (const d of dirents.map((e) => ({ name: decodeName(e.name), isDirectory: () => e.isDirectory() })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
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
  chmod?: ChmodSpec;
  unpackArchives: boolean;
  /** --parents: keep the source's relative path (after a `/./` pivot, if any) under dest. */
  parents?: boolean;
  /** Filled by copyInto: each entry copied (source, destination), for its xattrs. */
  copied?: Array<[string, string]>;
}

/**
 * mkdir -p inside root; directories it creates get `owner` (root by default) and `mode`
 * (0755 by default), existing ones are left alone.
 */
export async function mkdirInRoot(root: string, rel: string, owner: Owner = { uid: 0, gid: 0 }, mode = 0o755): Promise<string> {
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  let sofar = '';
  for (const part of parts) {
    sofar = sofar ? `${sofar}/${part}` : part;
    const abs = await secureResolve(root, sofar);
    const st = await fs.lstat(fsPath(abs)).catch(() => undefined);
    if (!st) {
      makeDirsSync(root, abs, owner, mode); // a symlink to a missing path: its target is made, in the root
    } else if (!st.isDirectory()) {
      throw new KilnError(`cannot create directory /${sofar}: a file is in the way`);
    }
  }
  return secureResolve(root, rel);
}

/** `dest/.` and `dest/` name a directory; the bare `.` the working directory. */
function isDirSyntax(dest: string): boolean {
  return dest === '' || dest === '.' || dest.endsWith('/') || dest.endsWith('/.');
}

/**
 * Copies what the patterns name from the tree into the destination, extended attributes
 * included (security.capability too, with its bytes, as BuildKit's copy keeps them). Returns
 * whether it set any xattrs (the layer's diff must read them then).
 */
export async function copyInto(tree: CopySourceTree, patterns: string[], excludes: string[], options: CopyOptions): Promise<boolean> {
  const opts: CopyOptions = { ...options, copied: [] };
  const sourceRoots = new Set<string>();
  await copyEntries(tree, patterns, excludes, opts, sourceRoots);
  return copyXattrs(opts.copied!, sourceRoots);
}

/**
 * Gives each copied entry its source's xattrs (after the owner and mode are set: a chown
 * drops security.capability), reading them with one getfattr per source root and setting
 * them with one setfattr. Best effort, as BuildKit's copy: a filesystem that refuses one is
 * not an error. The overlay's own (trusted.overlay.*) and security.selinux are never copied.
 */
async function copyXattrs(copied: Array<[string, string]>, sourceRoots: Set<string>): Promise<boolean> {
  if (copied.length === 0) return false;
  const attrs = new Map<string, Map<string, Buffer>>();
  for (const root of sourceRoots) {
    const tree = await readXattrTree(root).catch(() => undefined);
    for (const [abs, m] of tree ?? []) attrs.set(abs, m);
  }
  if (attrs.size === 0) return false;
  const set: Array<[string, Record<string, Buffer>]> = [];
  for (const [src, dst] of copied) {
    const m = attrs.get(path.resolve(src));
    if (!m) continue;
    const keep: Record<string, Buffer> = {};
    for (const [k, v] of m) if (!skipXattr(k)) keep[k] = v;
    if (Object.keys(keep).length > 0) set.push([dst, keep]);
  }
  if (set.length === 0) return false;
  await runCommand('setfattr', ['-h', '--restore=-'], { input: xattrRestoreDump(set) }).catch(() => undefined);
  return true;
}

async function copyEntries(tree: CopySourceTree, patterns: string[], excludes: string[], opts: CopyOptions, sourceRoots: Set<string>): Promise<void> {
  const destPath = path.posix.resolve(opts.cwd || '/', opts.dest);
  const dirSyntax = isDirSyntax(opts.dest);
  const dirMode = createdDirMode(opts.chmod);
  for (const pattern of patterns) {
    if (opts.parents) {
      await copyParents(tree, pattern, excludes, destPath, opts, sourceRoots);
      continue;
    }
    const roots = await tree.resolve(pattern, excludes);
    // a wildcard matching nothing copies nothing, and creates nothing (BuildKit)
    if (roots.length === 0) continue;
    await mkdirInRoot(opts.destRoot, dirSyntax ? destPath : path.posix.dirname(destPath), opts.owner, dirMode);
    for (const root of roots) {
      // hard links are kept among the files of one source (one copy in BuildKit's file op)
      const links: HardLinks = new Map();
      const srcAbs = path.join(tree.root, root.rel);
      sourceRoots.add(srcAbs);
      const existing = await fs.lstat(fsPath(await secureResolve(opts.destRoot, destPath))).catch(() => undefined);
      if (root.isDir) {
        if (existing && !existing.isDirectory()) {
          throw new KilnError(`cannot copy directory ${root.matched || '.'} to ${destPath}: a file is in the way`, { hint: 'remove the file first, or copy to another destination' });
        }
        const targetDir = await mkdirInRoot(opts.destRoot, destPath, opts.owner, dirMode);
        await copyTree(tree, root.rel, root.below, targetDir, destPath, opts, links);
        continue;
      }
      const target = existing?.isDirectory() ? path.posix.join(destPath, path.posix.basename(root.matched)) : destPath;
      const archive = opts.unpackArchives ? await archiveSource(tree.root, root.rel) : undefined;
      if (archive) {
        // an archive always unpacks into dest as a directory, slash or not (as BuildKit does)
        const dir = await mkdirInRoot(opts.destRoot, destPath, opts.owner);
        await extractArchive(archive.file, archive.kind, dir, { owner: opts.owner, name: root.rel });
        continue;
      }
      await copyOne(srcAbs, opts.destRoot, target, tree.preserveOwner, opts, links);
    }
  }
}

/**
 * COPY --parents, as BuildKit runs it: the source is split at its first `/./` into a
 * directory (`/` without one; it may hold wildcards) and a pattern below it; every entry
 * under that directory the pattern matches (a matched directory with what it holds) is
 * copied to the same path under dest, the directories on the way keeping their metadata.
 * Dest is a directory. A source without wildcards must exist; one with wildcards may match
 * nothing (dest is still created when the directory part exists).
 */
async function copyParents(tree: CopySourceTree, source: string, excludes: string[], destPath: string, opts: CopyOptions, sourceRoots: Set<string>): Promise<void> {
  const at = source.indexOf('/./');
  const base = at < 0 ? '/' : source.slice(0, at) || '/';
  const pattern = path.posix.normalize(`/${at < 0 ? source : source.slice(at + 3)}`).slice(1).replace(/\/+$/, '');
  if (!hasWildcard(base) && !hasWildcard(pattern)) await tree.resolve(path.posix.join(base, pattern), []);
  const included = pattern === '' ? () => true : excludeMatcher([pattern]);
  const isExcluded = excludeMatcher(excludes);
  for (const root of await tree.resolve(base, [])) {
    const targetDir = await mkdirInRoot(opts.destRoot, destPath, opts.owner, createdDirMode(opts.chmod));
    if (!root.isDir) continue;
    const prefixLen = root.rel === '' ? 0 : root.rel.length + 1;
    const chosen = new Set<string>();
    for (const rel of root.below) {
      const sub = rel.slice(prefixLen);
      if (!included(sub) || isExcluded(sub)) continue;
      // the directories above a match come along
      for (let p = path.posix.dirname(rel); p.length > root.rel.length && p !== '.'; p = path.posix.dirname(p)) {
        if (chosen.has(p)) break;
        chosen.add(p);
      }
      chosen.add(rel);
    }
    const below = root.below.filter((rel) => chosen.has(rel));
    sourceRoots.add(path.join(tree.root, root.rel));
    await copyTree(tree, root.rel, below, targetDir, destPath, opts, new Map());
  }
}

/** Source inode (dev:ino) to the copy already made of it, for the hard links of one source. */
type HardLinks = Map<string, Promise<string>>;

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
  link(existing: string, p: string): Promise<void>;
  /** An empty regular file with exactly `mode`. */
  writeEmpty(p: string, mode: number): Promise<void>;
}

const asyncOps: FsOps = {
  lstat: (p) => fs.lstat(fsPath(p)),
  rm: (p, o) => fs.rm(fsPath(p), o),
  symlink: (t, p) => fs.symlink(fsPath(t), fsPath(p)),
  readlink: async (p) => decodeName(await fs.readlink(fsPath(p), { encoding: 'buffer' })),
  copyFile: (a, b) => fs.copyFile(fsPath(a), fsPath(b)),
  lchown: (p, u, g) => fs.lchown(fsPath(p), u, g),
  chmod: (p, m) => fs.chmod(fsPath(p), m),
  lutimes: (p, a, m) => fs.lutimes(fsPath(p), a, m),
  mkdir: (p) => fs.mkdir(fsPath(p)),
  link: (a, b) => fs.link(fsPath(a), fsPath(b)),
  writeEmpty: async (p, mode) => {
    await fs.writeFile(fsPath(p), '', { flag: 'wx', mode });
    await fs.chmod(fsPath(p), mode);
  },
};

/**
 * copyFile for the synchronous path: a small file is read and written whole (on ext4 that is
 * several times faster than copy_file_range for a few KiB), with the source's mode exactly.
 */
function copySmallSync(srcName: string, dstName: string): void {
  const src = fsPath(srcName);
  const dst = fsPath(dstName);
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
  lstat: async (p) => lstatSync(fsPath(p)),
  rm: async (p, o) => rmSync(fsPath(p), o),
  symlink: async (t, p) => symlinkSync(fsPath(t), fsPath(p)),
  readlink: async (p) => decodeName(readlinkSync(fsPath(p), { encoding: 'buffer' })),
  copyFile: async (a, b) => copySmallSync(a, b),
  lchown: async (p, u, g) => lchownSync(fsPath(p), u, g),
  chmod: async (p, m) => chmodSync(fsPath(p), m),
  lutimes: async (p, a, m) => lutimesSync(fsPath(p), a, m),
  mkdir: async (p) => mkdirSync(fsPath(p)),
  link: async (a, b) => linkSync(fsPath(a), fsPath(b)),
  writeEmpty: async (p, mode) => {
    closeSync(openSync(fsPath(p), 'wx', mode));
    chmodSync(fsPath(p), mode);
  },
};

/**
 * Copies the entries below a source directory into `targetDir` (which keeps its own
 * metadata): directories first, in order (resolving a destination symlink inside the root
 * only where one is met), then every file with COPY_CONCURRENCY in flight, then directory
 * times, deepest first, so that writing the files does not change them.
 */
async function copyTree(tree: CopySourceTree, rootRel: string, below: string[], targetDir: string, base: string, opts: CopyOptions, links: HardLinks): Promise<void> {
  const srcRoot = path.join(tree.root, rootRel);
  const dirAbs = new Map<string, string>([['', targetDir]]);
  // directories this copy created are empty: their children need no check for an existing
  // entry (nor does an empty target, as when a step writes into a fresh upper dir)
  const fresh = new Set<string>();
  if (readdirSync(fsPath(targetDir)).length === 0) fresh.add('');
  const dirTimes: Array<[string, Stats]> = [];
  const io = below.length <= SYNC_COPY_MAX ? syncOps : asyncOps;
  // the target directory takes the source's times (BuildKit restores them) and xattrs
  dirTimes.push([targetDir, lstatSync(fsPath(srcRoot))]);
  opts.copied?.push([srcRoot, targetDir]);
  const files: Array<{ src: string; sub: string; st: Stats }> = [];
  const prefixLen = rootRel === '' ? 0 : rootRel.length + 1;
  const parentOf = async (sub: string): Promise<string> => {
    const parentSub = path.posix.dirname(sub) === '.' ? '' : path.posix.dirname(sub);
    return dirAbs.get(parentSub) ?? secureResolve(opts.destRoot, path.posix.join(base, parentSub));
  };
  for (const rel of below) {
    const sub = rel.slice(prefixLen);
    const src = path.join(tree.root, rel);
    const st = lstatSync(fsPath(src));
    if (!st.isDirectory()) {
      files.push({ src, sub, st });
      continue;
    }
    let dst = path.join(await parentOf(sub), path.posix.basename(sub));
    let existing = fresh.has(path.posix.dirname(sub) === '.' ? '' : path.posix.dirname(sub)) ? undefined : lstatSync(fsPath(dst), { throwIfNoEntry: false });
    if (existing?.isSymbolicLink()) {
      dst = await secureResolve(opts.destRoot, path.posix.join(base, sub));
      existing = lstatSync(fsPath(dst), { throwIfNoEntry: false });
    }
    if (existing && !existing.isDirectory()) await io.rm(dst, { force: true });
    if (!existing || !existing.isDirectory()) {
      await io.mkdir(dst);
      fresh.add(sub);
    }
    // an existing directory below the target takes the source's metadata too (BuildKit)
    await applyMeta(src, dst, tree.preserveOwner, opts, true, st, false, io);
    opts.copied?.push([src, dst]);
    dirAbs.set(sub, dst);
    dirTimes.push([dst, st]);
  }
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const f = files[next++];
      const parentSub = path.posix.dirname(f.sub) === '.' ? '' : path.posix.dirname(f.sub);
      const dst = path.join(await parentOf(f.sub), path.posix.basename(f.sub));
      await copyFileTo(f.src, dst, f.st, tree.preserveOwner, opts, fresh.has(parentSub), io, links);
      opts.copied?.push([f.src, dst]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(io === syncOps ? 1 : COPY_CONCURRENCY, files.length) }, worker));
  for (const [dst, st] of dirTimes.reverse()) await io.lutimes(dst, st.atime, st.mtime);
}

/**
 * One non-directory entry to `dst` (an absolute path already inside the root). In a fresh
 * directory nothing is in the way, and as root a new file is already owned by 0:0 with the
 * source's mode (copyFile sets it), so only what differs is changed. A second name of an
 * inode already copied becomes a hard link to that copy; a socket or device node becomes
 * an empty file and a FIFO is skipped (what BuildKit's context transfer and copy give).
 */
async function copyFileTo(src: string, dst: string, st: Stats, preserveOwner: boolean, opts: CopyOptions, inFreshDir: boolean, io: FsOps, links: HardLinks): Promise<void> {
  if (st.isFIFO()) return;
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
  if (st.isFile() && st.nlink > 1) {
    const key = `${st.dev}:${st.ino}`;
    const first = links.get(key);
    if (first !== undefined) {
      await io.link(await first, dst);
      return;
    }
    let done!: (p: string) => void;
    links.set(key, new Promise<string>((resolve) => (done = resolve)));
    try {
      await copyRegular(src, dst, st, preserveOwner, opts, io);
    } finally {
      done(dst);
    }
    return;
  }
  await copyRegular(src, dst, st, preserveOwner, opts, io);
}

async function copyRegular(src: string, dst: string, st: Stats, preserveOwner: boolean, opts: CopyOptions, io: FsOps): Promise<void> {
  if (st.isFile()) await io.copyFile(src, dst);
  else await io.writeEmpty(dst, st.mode & 0o7777);
  const owner = opts.owner ?? (preserveOwner ? { uid: st.uid, gid: st.gid } : { uid: 0, gid: 0 });
  const asRoot = process.getuid?.() === 0 && process.getgid?.() === 0;
  if (!(asRoot && owner.uid === 0 && owner.gid === 0)) await io.lchown(dst, owner.uid, owner.gid);
  // chown clears setuid/setgid bits, and --chmod overrides: only then is chmod needed
  if (opts.chmod !== undefined || (st.mode & 0o6000) !== 0) await io.chmod(dst, modeFor(st, opts));
  await io.lutimes(dst, st.atime, st.mtime);
}

/** The permission bits a copied entry gets: the source's, or --chmod applied to them. */
function modeFor(st: Stats, opts: CopyOptions): number {
  return opts.chmod ? applyChmod(opts.chmod, st.mode, st.isDirectory()) : st.mode & 0o7777;
}

async function copyOne(srcAbs: string, destRoot: string, targetRel: string, preserveOwner: boolean, opts: CopyOptions, links: HardLinks): Promise<void> {
  const st = await fs.lstat(fsPath(srcAbs));
  const parent = await secureResolve(destRoot, path.posix.dirname(targetRel));
  const dst = path.join(parent, path.posix.basename(targetRel));
  await copyFileTo(srcAbs, dst, st, preserveOwner, opts, false, asyncOps, links);
  opts.copied?.push([srcAbs, dst]);
}

async function applyMeta(srcAbs: string, dst: string, preserveOwner: boolean, opts: CopyOptions, isDir: boolean, known?: Stats, setTimes = true, io: FsOps = asyncOps): Promise<void> {
  const st = known ?? (await io.lstat(srcAbs));
  const owner = opts.owner ?? (preserveOwner ? { uid: st.uid, gid: st.gid } : { uid: 0, gid: 0 });
  await io.lchown(dst, owner.uid, owner.gid);
  if (!st.isSymbolicLink()) await io.chmod(dst, modeFor(st, opts));
  if (setTimes && (!isDir || st.isDirectory())) await io.lutimes(dst, st.atime, st.mtime);
}

/** The source file, resolved in its tree, when it holds a tar archive (compressed or not). */
async function archiveSource(treeRoot: string, rel: string): Promise<{ file: string; kind: ArchiveCompression } | undefined> {
  const file = await secureResolve(treeRoot, rel);
  const kind = await archiveCompression(file, rel);
  return kind === undefined ? undefined : { file, kind };
}
