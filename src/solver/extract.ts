/**
 * ADD's archive unpacking, in process: no host `tar` ever runs on an image path. The archive is
 * unpacked into a destination directory the way BuildKit's (chroot) extraction does: that
 * directory is the root for every entry. Names are clamped at it (a leading '/' and '..' never
 * leave it), parents are resolved inside it (symlinks absolute or relative, as if chrooted
 * there), the last component of an entry is never followed (what is there is replaced, except a
 * directory by a directory), and hard links are made to what their target names inside it.
 * Symlinks are written as they are. Owners are numeric (or `--chown`'s, for every entry), modes,
 * times and PAX xattrs are restored, directories' times after their children.
 */
import { spawn } from 'node:child_process';
import {
  chmodSync,
  createReadStream,
  createWriteStream,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  promises as fsp,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { KilnError } from '../errors.js';
import { clampRelative, inRootName, makeDirsSync, parentsConfinedSync, rootPathSync } from '../fsroot.js';
import { keepBinaryPax, paxXattrs, tarStreamLib } from '../oci/tar.js';
import { idOf, mtimeOf, type TarHeader } from '../snapshot/unpack.js';
import { runCommand, xattrRestoreDump } from '../snapshot/util.js';

/** Files up to this size are written in one call rather than streamed. */
const SMALL_FILE = 1 << 20;

export type ArchiveCompression = 'none' | 'gzip' | 'bzip2' | 'xz' | 'zstd';

/** Host decompressors for what node's zlib lacks; they read the archive's bytes from stdin. */
const DECOMPRESSORS: Record<'bzip2' | 'xz' | 'zstd', { cmd: string; pkg: string }> = {
  bzip2: { cmd: 'bzip2', pkg: 'bzip2' },
  xz: { cmd: 'xz', pkg: 'xz-utils' },
  zstd: { cmd: 'zstd', pkg: 'zstd' },
};

function compressionOf(head: Buffer): ArchiveCompression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 3 && head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  if (head.length >= 6 && head[0] === 0xfd && head.subarray(1, 6).toString('latin1') === '7zXZ\0') return 'xz';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}

/**
 * The archive's content, decompressed. `file` is a host path already resolved inside its root:
 * node opens it, and a host decompressor, when one is needed, only sees its bytes on stdin.
 */
function openDecompressed(file: string, kind: ArchiveCompression, name: string): Readable {
  const raw = createReadStream(file);
  if (kind === 'none') return raw;
  if (kind === 'gzip') {
    const gunzip = createGunzip();
    raw.on('error', (e) => gunzip.destroy(e));
    return raw.pipe(gunzip);
  }
  const { cmd, pkg } = DECOMPRESSORS[kind];
  const out = new PassThrough();
  const child = spawn(cmd, ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c) => (stderr += String(c)));
  child.on('error', (e: NodeJS.ErrnoException) => {
    out.destroy(
      e.code === 'ENOENT'
        ? new KilnError(`ADD ${name}: unpacking a ${kind} archive needs the ${cmd} command, which is not installed`, { hint: `apt-get install ${pkg}` })
        : e,
    );
  });
  child.stdin.on('error', () => {
    /* the decompressor stopped reading: its exit status tells why */
  });
  raw.on('error', (e) => out.destroy(e));
  raw.pipe(child.stdin);
  child.stdout.pipe(out, { end: false });
  child.on('close', (code, signal) => {
    if (code === 0) out.end();
    else if (!out.destroyed) out.destroy(new Error(stderr.trim() || `${cmd} exited ${code ?? signal}`));
  });
  out.on('close', () => {
    raw.destroy();
    if (child.exitCode === null) child.kill();
  });
  return out;
}

/** A 512-byte block whose checksum is a tar header's (unsigned or signed sum, as Go's reader accepts). */
function isTarHeader(block: Buffer): boolean {
  if (block.length < 512 || block.every((b) => b === 0)) return false;
  const field = block.subarray(148, 156).toString('latin1').replace(/[\0 ]+$/g, '').replace(/^[\0 ]+/, '');
  if (!/^[0-7]+$/.test(field)) return false;
  const stored = parseInt(field, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < 512; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i];
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

/**
 * How `file` is compressed when it holds a tar archive (BuildKit's test: it decompresses, and the
 * first tar header reads), else undefined: then ADD copies it as it is. `file` must be resolved
 * inside its root already; only a regular file can be an archive.
 */
export async function archiveCompression(file: string, name = path.basename(file)): Promise<ArchiveCompression | undefined> {
  const st = lstatSync(file, { throwIfNoEntry: false });
  if (!st?.isFile() || st.size === 0) return undefined;
  const fh = await fsp.open(file, 'r');
  let head: Buffer;
  try {
    head = Buffer.alloc(6);
    head = head.subarray(0, (await fh.read(head, 0, 6, 0)).bytesRead);
  } finally {
    await fh.close();
  }
  const kind = compressionOf(head);
  const stream = openDecompressed(file, kind, name);
  const chunks: Buffer[] = [];
  let got = 0;
  try {
    for await (const c of stream as AsyncIterable<Buffer>) {
      chunks.push(c);
      got += c.length;
      if (got >= 512) break;
    }
  } catch (e) {
    if (e instanceof KilnError) throw e;
    return undefined; // not a complete compressed stream of anything: not an archive
  } finally {
    stream.destroy();
  }
  return isTarHeader(Buffer.concat(chunks).subarray(0, 512)) ? kind : undefined;
}

export interface ExtractOptions {
  /** ADD --chown: the owner of every unpacked entry (else the archive's numeric ids). */
  owner?: { uid: number; gid: number };
  /** The source as the Dockerfile names it, for messages. */
  name: string;
}

type Entry = AsyncIterable<Buffer> & Readable & { header: TarHeader };

/**
 * Unpacks the archive at `file` (resolved inside its own root) into `dest`, an existing
 * directory that is the root of the extraction (see the module comment).
 */
export async function extractArchive(file: string, kind: ArchiveCompression, dest: string, opts: ExtractOptions): Promise<void> {
  const root = path.resolve(dest);
  const where = (abs: string): string => inRootName(root, abs);
  const fail = (msg: string, hint?: string): KilnError => new KilnError(`ADD ${opts.name}: ${msg}`, { hint });
  const input = openDecompressed(file, kind, opts.name);
  const extract = (await tarStreamLib()).extract();
  const piped = pipeline(input, keepBinaryPax(), extract).catch((e: unknown) => e);

  /** Resolved parent directories by entry-relative name; reset whenever something is removed. */
  let parents = new Map<string, string>();
  const dirTimes: Array<{ abs: string; atime: number; mtime: number }> = [];
  const xattrs: Array<{ abs: string; attrs: Record<string, Buffer> }> = [];

  const parentDir = (rel: string, entryName: string): string => {
    const parentRel = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
    const known = parents.get(parentRel);
    if (known !== undefined) return known;
    const confined = <T>(fn: () => T): T => {
      try {
        return fn();
      } catch (e) {
        if (!(e instanceof KilnError)) throw e;
        throw fail(`cannot unpack "${entryName}": ${e.message}`, e.hint);
      }
    };
    const abs = confined(() => rootPathSync(root, parentRel));
    if (!lstatSync(abs, { throwIfNoEntry: false })) refuseDanglingParent(parentRel, entryName);
    confined(() => makeDirsSync(root, abs));
    parents.set(parentRel, abs);
    return abs;
  };

  /**
   * Missing parents are made, as BuildKit makes them, but not through a symlink whose target
   * is missing: BuildKit's extraction fails there (the kernel will not create through it).
   */
  const refuseDanglingParent = (parentRel: string, entryName: string): void => {
    const parts = parentRel.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const prefix = parts.slice(0, i).join('/');
      const st = lstatSync(rootPathSync(root, prefix, { followLast: false }), { throwIfNoEntry: false });
      if (!st) return;
      if (!st.isSymbolicLink()) continue;
      const target = rootPathSync(root, prefix);
      if (!lstatSync(target, { throwIfNoEntry: false })) {
        throw fail(`cannot unpack "${entryName}": /${prefix} is a symlink to ${where(target)}, which does not exist`, 'create that directory in an earlier step, or fix the link');
      }
    }
  };

  /** Clears the way for a new entry at `abs` (never following it); true when a directory stays. */
  const clear = (abs: string, keepDir: boolean): boolean => {
    const st = lstatSync(abs, { throwIfNoEntry: false });
    if (!st) return false;
    if (st.isDirectory() && keepDir) return true;
    rmSync(abs, { recursive: true, force: true });
    parents = new Map();
    return false;
  };

  const handle = async (entry: Entry): Promise<void> => {
    const h = entry.header;
    const rel = clampRelative(h.name);
    if (rel === '') {
      entry.resume(); // the destination itself ("./"): BuildKit leaves it as it is
      return;
    }
    const abs = path.join(parentDir(rel, h.name), path.posix.basename(rel));
    const uid = opts.owner?.uid ?? idOf(h, 'uid');
    const gid = opts.owner?.gid ?? idOf(h, 'gid');
    const mode = (h.mode ?? 0o644) & 0o7777;
    const mtime = mtimeOf(h);
    const atimeRaw = Number(h.pax?.atime);
    const atime = Number.isFinite(atimeRaw) && h.pax?.atime ? atimeRaw : mtime;
    const attrs = paxXattrs(h.pax);
    const meta = (isLink: boolean): void => {
      lchownSync(abs, uid, gid);
      if (Object.keys(attrs).length > 0) xattrs.push({ abs, attrs });
      if (!isLink) chmodSync(abs, mode); // after chown, which clears setuid/setgid
    };
    switch (h.type) {
      case 'directory': {
        entry.resume();
        if (!clear(abs, true)) mkdirSync(abs, { mode: 0o700 });
        meta(false);
        dirTimes.push({ abs, atime, mtime });
        return;
      }
      case 'file':
      case 'contiguous-file':
      case undefined:
      case null: {
        clear(abs, false);
        // 'wx' creates or fails: never writes through whatever might be at abs. A small file
        // is gathered and written with one synchronous call (a stream per file costs more)
        if ((h.size ?? 0) <= SMALL_FILE) {
          const chunks: Buffer[] = [];
          for await (const c of entry) chunks.push(c);
          writeFileSync(abs, Buffer.concat(chunks), { flag: 'wx', mode: 0o600 });
        } else {
          await pipeline(entry, createWriteStream(abs, { flags: 'wx', mode: 0o600 }));
        }
        meta(false);
        lutimesSync(abs, atime, mtime);
        return;
      }
      case 'symlink': {
        entry.resume();
        clear(abs, false);
        symlinkSync(h.linkname ?? '', abs);
        meta(true);
        lutimesSync(abs, atime, mtime);
        return;
      }
      case 'link': {
        entry.resume();
        const targetRel = clampRelative(h.linkname ?? '');
        const target = targetRel === '' ? root : path.join(parentDir(targetRel, h.linkname ?? ''), path.posix.basename(targetRel));
        const tst = lstatSync(target, { throwIfNoEntry: false });
        if (!tst) throw fail(`hard link "${h.name}" points to "${h.linkname ?? ''}", which is neither in the archive before it nor in the destination`, 'the archive is malformed');
        if (tst.isDirectory()) throw fail(`hard link "${h.name}" points to a directory, ${where(target)}`, 'the archive is malformed');
        if (target === abs) return;
        clear(abs, false);
        linkSync(target, abs); // link(2) does not follow a symlink target: the link is to the symlink
        if (!tst.isSymbolicLink()) {
          meta(false);
          lutimesSync(abs, atime, mtime);
        } else {
          lchownSync(abs, uid, gid);
        }
        return;
      }
      case 'character-device':
      case 'block-device':
      case 'fifo': {
        entry.resume();
        clear(abs, false);
        const type = h.type === 'fifo' ? 'p' : h.type === 'block-device' ? 'b' : 'c';
        await makeNode({ abs, type, mode, major: h.devmajor ?? 0, minor: h.devminor ?? 0, uid, gid, mtime }, where, fail);
        if (Object.keys(attrs).length > 0) xattrs.push({ abs, attrs });
        return;
      }
      default:
        entry.resume(); // global PAX headers and the like: nothing to make
    }
  };

  try {
    for await (const entry of extract) await handle(entry as unknown as Entry);
  } catch (e) {
    input.destroy();
    extract.destroy();
    throw describe(e, opts.name);
  }
  const streamErr = await piped;
  if (streamErr) throw describe(streamErr, opts.name);

  await applyXattrs(root, xattrs);
  // directories last, so that their children do not change their times; a directory a later
  // entry replaced by a symlink is skipped, never followed
  for (const d of dirTimes.reverse()) {
    if (parentsConfinedSync(root, d.abs) && lstatSync(d.abs, { throwIfNoEntry: false })?.isDirectory()) lutimesSync(d.abs, d.atime, d.mtime);
  }
}

/** A clear error for a stream or file failure while unpacking; KilnErrors pass through. */
function describe(e: unknown, name: string): KilnError {
  if (e instanceof KilnError) return e;
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOSPC') return new KilnError(`ADD ${name}: no space left on the device while unpacking`, { cause: e, hint: 'free disk space under the kiln root' });
  if (err.code && err.syscall) {
    return new KilnError(`ADD ${name}: cannot unpack the archive: ${err.syscall} failed (${err.code})`, { cause: e, hint: 'check the archive\'s entries' });
  }
  return new KilnError(`ADD ${name}: the archive is truncated or corrupt (${err.message})`, {
    cause: e,
    hint: 'check the file (tar -tf), or add it without unpacking with ADD --unpack=false',
  });
}

async function makeNode(
  n: { abs: string; type: 'c' | 'b' | 'p'; mode: number; major: number; minor: number; uid: number; gid: number; mtime: number },
  where: (abs: string) => string,
  fail: (msg: string, hint?: string) => KilnError,
): Promise<void> {
  // node cannot mknod; the path's parents were just resolved to real directories inside the
  // root, and mknod(1) never follows its last component (it fails on anything there)
  const args = ['-m', (n.mode & 0o7777).toString(8), n.abs, n.type, ...(n.type === 'p' ? [] : [String(n.major), String(n.minor)])];
  const res = await runCommand('mknod', args);
  if (res.code !== 0) throw fail(`cannot create the device node ${where(n.abs)}: ${res.stderr}`, 'unpacking device nodes needs root (CAP_MKNOD)');
  lchownSync(n.abs, n.uid, n.gid);
  chmodSync(n.abs, n.mode & 0o7777);
  lutimesSync(n.abs, n.mtime, n.mtime);
}

/**
 * PAX xattrs, best effort as BuildKit's (a filesystem or kernel refusing one is not an error).
 * An entry whose path changed since it was made (a parent now a symlink) is skipped.
 */
async function applyXattrs(root: string, list: Array<{ abs: string; attrs: Record<string, Buffer> }>): Promise<void> {
  const dump = xattrRestoreDump(list.filter(({ abs }) => parentsConfinedSync(root, abs) && lstatSync(abs, { throwIfNoEntry: false })).map(({ abs, attrs }) => [abs, attrs] as const));
  if (dump === '') return;
  await runCommand('setfattr', ['-h', '--restore=-'], { input: dump }).catch(() => undefined);
}
