import { createHash } from 'node:crypto';
import { createWriteStream, promises as fsp, type Stats } from 'node:fs';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline as pipelineCb } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Header } from 'tar-stream';
import { decompress, keepBinaryPax, paxXattrs, tarStreamLib } from '../oci/tar.js';

export type TarHeader = Header & { pax?: Record<string, string> | null };
type TarEntry = AsyncIterable<Buffer> & NodeJS.ReadableStream & { header: Header; resume(): unknown };
import { KilnError } from '../errors.js';
import { OPAQUE_MARKER, WHITEOUT_PREFIX } from './types.js';
import { runCommand, xattrRestoreDump } from './util.js';

export type ByteSource = AsyncIterable<Buffer | Uint8Array | string> | NodeJS.ReadableStream;

interface PendingNode {
  type: 'char' | 'block' | 'fifo';
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  devmajor: number;
  devminor: number;
}

interface DirMeta {
  mtime: number;
}

/**
 * Splits a tar entry name into safe relative components: strips leading '/' and './',
 * drops '.' components, refuses '..'. Returns '' for the layer root.
 */
export function normalizeEntryName(name: string, label: string): string {
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      throw new KilnError(`layer ${label}: entry "${name}" escapes the layer root with "..": refusing to extract it`, {
        hint: 'the layer tarball is malformed or malicious; rebuild or re-pull the image',
      });
    }
    parts.push(part);
  }
  return parts.join('/');
}

async function* asBuffers(src: ByteSource): AsyncGenerator<Buffer> {
  for await (const chunk of src as AsyncIterable<Buffer | Uint8Array | string>) {
    if (typeof chunk === 'string') yield Buffer.from(chunk, 'utf8');
    else yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
  }
}

/** An entry's mtime in seconds, PAX's fractional one when there is one. */
export function mtimeOf(h: TarHeader): number {
  const pax = h.pax?.mtime;
  if (pax !== undefined && pax !== '' && Number.isFinite(Number(pax))) return Number(pax);
  return h.mtime ? h.mtime.getTime() / 1000 : 0;
}

/** An entry's numeric uid or gid, PAX's when there is one (ids too big for the header). */
export function idOf(h: TarHeader, key: 'uid' | 'gid'): number {
  const pax = h.pax?.[key];
  if (pax !== undefined && /^\d+$/.test(pax)) return Number(pax);
  return h[key] ?? 0;
}

/**
 * Extracts one layer tarball (plain, gzip or zstd) into `dest` (which must exist and be empty),
 * converting OCI whiteouts into overlayfs form. When `expectedDiffId` is given, the sha256 of
 * the uncompressed tar must match it.
 */
export async function extractLayer(
  source: ByteSource,
  dest: string,
  label: string,
  expectedDiffId?: string,
): Promise<void> {
  // every compression oci/tar.ts knows (gzip, zstd), detected from the first bytes
  const stream = Readable.from(decompress(asBuffers(source)), { objectMode: false });
  const hash = createHash('sha256');
  const hasher = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  const extract = (await tarStreamLib()).extract();
  let pipeError: unknown;
  const onPipeEnd = (err: NodeJS.ErrnoException | null): void => {
    if (err) {
      pipeError = err;
      extract.destroy(err);
    }
  };
  const decompressed: Readable = pipelineCb(stream, hasher, onPipeEnd);
  // binary PAX xattr values (security.capability) kept as bytes through tar-stream
  decompressed.pipe(keepBinaryPax()).pipe(extract as unknown as NodeJS.WritableStream);

  /** Paths (relative) known to be real directories created or checked by us. */
  const dirs = new Set<string>(['']);
  const dirMeta = new Map<string, DirMeta>();
  const nodes = new Map<string, PendingNode>();
  const whiteouts = new Map<string, number>();
  const opaques = new Set<string>();
  const xattrs = new Map<string, Record<string, Buffer>>();

  const forgetUnder = (rel: string): void => {
    const prefix = rel + '/';
    for (const set of [dirs, opaques]) {
      for (const d of set) if (d === rel || d.startsWith(prefix)) set.delete(d);
    }
    for (const map of [nodes, dirMeta, xattrs] as Map<string, unknown>[]) {
      for (const k of map.keys()) if (k === rel || k.startsWith(prefix)) map.delete(k);
    }
  };

  /** Makes sure every ancestor of `rel` is a real directory inside dest (never a symlink). */
  const ensureParents = async (rel: string, create: boolean): Promise<void> => {
    const parts = rel.split('/');
    let cur = '';
    for (let i = 0; i < parts.length - 1; i++) {
      cur = cur ? `${cur}/${parts[i]}` : parts[i];
      if (dirs.has(cur)) continue;
      const full = path.join(dest, cur);
      let st: Stats | undefined;
      try {
        st = await fsp.lstat(full);
      } catch {
        st = undefined;
      }
      if (!st) {
        if (!create) throw new KilnError(`layer ${label}: hard link target parent "${cur}" does not exist in the layer`);
        await fsp.mkdir(full, { mode: 0o755 });
      } else if (!st.isDirectory()) {
        throw new KilnError(
          `layer ${label}: entry "${rel}" goes through "${cur}", which is ${st.isSymbolicLink() ? 'a symlink' : 'not a directory'}: refusing to extract it`,
          { hint: 'the layer tarball is malformed or malicious; rebuild or re-pull the image' },
        );
      }
      dirs.add(cur);
    }
  };

  /** Removes whatever is at `rel` unless it is a directory and `keepDir` is set. Returns true if a dir remains. */
  const clearPath = async (rel: string, keepDir: boolean): Promise<boolean> => {
    const full = path.join(dest, rel);
    nodes.delete(rel);
    xattrs.delete(rel);
    let st: Stats;
    try {
      st = await fsp.lstat(full);
    } catch {
      return false;
    }
    if (st.isDirectory()) {
      if (keepDir) return true;
      await fsp.rm(full, { recursive: true, force: true });
      forgetUnder(rel);
      return false;
    }
    await fsp.rm(full, { force: true });
    return false;
  };

  const handle = async (entry: TarEntry): Promise<void> => {
    const h = entry.header as TarHeader;
    const rel = normalizeEntryName(h.name, label);
    const base = rel.split('/').pop() ?? '';
    const mode = (h.mode ?? 0o644) & 0o7777;
    const uid = idOf(h, 'uid');
    const gid = idOf(h, 'gid');
    const mtime = mtimeOf(h);
    const entryXattrs = paxXattrs(h.pax);

    if (base.startsWith(WHITEOUT_PREFIX) && h.type !== 'directory') {
      entry.resume();
      await ensureParents(rel, true);
      const parent = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
      if (base === OPAQUE_MARKER) {
        opaques.add(parent);
      } else {
        const target = (parent ? parent + '/' : '') + base.slice(WHITEOUT_PREFIX.length);
        if (target.split('/').pop() === '' || target.endsWith('/..') || target.endsWith('/.')) {
          throw new KilnError(`layer ${label}: invalid whiteout "${h.name}"`);
        }
        whiteouts.set(target, mtime);
      }
      return;
    }

    if (rel === '') {
      entry.resume();
      if (h.type === 'directory') {
        await fsp.lchown(dest, uid, gid);
        await fsp.chmod(dest, mode);
        dirMeta.set('', { mtime });
      }
      return;
    }

    await ensureParents(rel, true);
    const full = path.join(dest, rel);

    switch (h.type) {
      case 'directory': {
        entry.resume();
        const exists = await clearPath(rel, true);
        if (!exists) await fsp.mkdir(full, { mode: 0o700 });
        dirs.add(rel);
        await fsp.lchown(full, uid, gid);
        await fsp.chmod(full, mode);
        dirMeta.set(rel, { mtime });
        break;
      }
      case 'file':
      case 'contiguous-file':
      case undefined: {
        await clearPath(rel, false);
        await pipeline(entry as unknown as Readable, createWriteStream(full, { flags: 'wx', mode: 0o600 }));
        await fsp.lchown(full, uid, gid);
        await fsp.chmod(full, mode);
        await fsp.utimes(full, mtime, mtime);
        break;
      }
      case 'symlink': {
        entry.resume();
        await clearPath(rel, false);
        await fsp.symlink(h.linkname ?? '', full);
        await fsp.lchown(full, uid, gid);
        await fsp.lutimes(full, mtime, mtime);
        break;
      }
      case 'link': {
        entry.resume();
        const target = normalizeEntryName(h.linkname ?? '', label);
        if (target === '') throw new KilnError(`layer ${label}: hard link "${rel}" has an empty target`);
        await ensureParents(target, false);
        const targetFull = path.join(dest, target);
        let tst: Stats;
        try {
          tst = await fsp.lstat(targetFull);
        } catch {
          throw new KilnError(`layer ${label}: hard link "${rel}" points to "${target}", which is not in the layer before it`);
        }
        if (tst.isDirectory()) throw new KilnError(`layer ${label}: hard link "${rel}" points to a directory`);
        if (target === rel) break;
        await clearPath(rel, false);
        await fsp.link(targetFull, full);
        break;
      }
      case 'character-device':
      case 'block-device':
      case 'fifo': {
        entry.resume();
        await clearPath(rel, false);
        nodes.set(rel, {
          type: h.type === 'fifo' ? 'fifo' : h.type === 'block-device' ? 'block' : 'char',
          mode,
          uid,
          gid,
          mtime,
          devmajor: h.devmajor ?? 0,
          devminor: h.devminor ?? 0,
        });
        break;
      }
      default:
        entry.resume();
        return;
    }
    if (Object.keys(entryXattrs).length) xattrs.set(rel, entryXattrs);
  };

  try {
    for await (const entry of extract) {
      await handle(entry as unknown as TarEntry);
    }
  } catch (e) {
    stream.destroy();
    decompressed.destroy();
    extract.destroy();
    if (pipeError || !(e instanceof KilnError || (e as NodeJS.ErrnoException).code !== undefined)) {
      const err = (pipeError ?? e) as Error;
      throw new KilnError(`layer ${label}: cannot read the layer tarball: ${err.message}`, {
        cause: err,
        hint: 'the layer blob is corrupt or not a tar/gzip/zstd stream; re-pull the image',
      });
    }
    throw e;
  }
  if (pipeError) {
    throw new KilnError(`layer ${label}: cannot read the layer tarball: ${(pipeError as Error).message}`, {
      cause: pipeError,
      hint: 'the layer blob is corrupt or not a tar/gzip/zstd stream; re-pull the image',
    });
  }
  if (expectedDiffId) {
    const got = `sha256:${hash.digest('hex')}`;
    if (got !== expectedDiffId) {
      throw new KilnError(`layer ${label}: uncompressed content has digest ${got}, expected ${expectedDiffId}`, {
        hint: 'the layer blob is corrupt or does not belong to this image; re-pull the image',
      });
    }
  }

  // Whiteouts apply to lower layers only: a path this layer itself provides stays.
  for (const [target, mtime] of whiteouts) {
    if (nodes.has(target)) continue;
    try {
      await fsp.lstat(path.join(dest, target));
      continue;
    } catch {
      /* absent: make the whiteout */
    }
    const parent = target.includes('/') ? target.slice(0, target.lastIndexOf('/')) : '';
    if (!dirs.has(parent)) continue;
    nodes.set(target, { type: 'char', mode: 0, uid: 0, gid: 0, mtime, devmajor: 0, devminor: 0 });
  }
  await makeNodes(dest, nodes, label);
  await applyXattrs(dest, xattrs, opaques, label);

  // Directory mtimes last (deepest first): creating children changed them.
  const dirList = [...dirMeta.entries()].sort((a, b) => b[0].split('/').length - a[0].split('/').length);
  for (const [rel, meta] of dirList) {
    await fsp.utimes(path.join(dest, rel), meta.mtime, meta.mtime);
  }
}

/** Device nodes and fifos, which node cannot create: one GNU tar run for all of them. */
async function makeNodes(dest: string, nodes: Map<string, PendingNode>, label: string): Promise<void> {
  const list = [...nodes.entries()];
  if (list.length === 0) return;
  const pack = (await tarStreamLib()).pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const [rel, n] of list) {
    pack.entry({
      name: rel,
      type: n.type === 'fifo' ? 'fifo' : n.type === 'block' ? 'block-device' : 'character-device',
      mode: n.mode,
      uid: n.uid,
      gid: n.gid,
      mtime: new Date(n.mtime * 1000),
      devmajor: n.devmajor,
      devminor: n.devminor,
      size: 0,
    });
  }
  pack.finalize();
  await collected;
  const res = await runCommand(
    'tar',
    ['-x', '-f', '-', '-C', dest, '--numeric-owner', '--same-owner', '--same-permissions', '--no-overwrite-dir'],
    { input: Buffer.concat(chunks) },
  );
  if (res.code !== 0) {
    throw new KilnError(`layer ${label}: cannot create device nodes/whiteouts: ${res.stderr}`, {
      hint: 'kiln needs root (CAP_MKNOD) and GNU tar to unpack layers',
    });
  }
}

async function applyXattrs(
  dest: string,
  xattrs: Map<string, Record<string, Buffer>>,
  opaques: Set<string>,
  label: string,
): Promise<void> {
  if (xattrs.size === 0 && opaques.size === 0) return;
  const dump = xattrRestoreDump([
    ...[...xattrs].map(([rel, attrs]) => [rel === '' ? '.' : rel, attrs] as const),
    ...[...opaques].map((rel) => [rel === '' ? '.' : rel, { 'trusted.overlay.opaque': 'y' }] as const),
  ]);
  const res = await runCommand('setfattr', ['-h', '--restore=-'], { input: dump, cwd: dest });
  if (res.code !== 0) {
    throw new KilnError(`layer ${label}: cannot set extended attributes: ${res.stderr}`, {
      hint: 'kiln needs root, the attr package (setfattr) and a filesystem with trusted.* xattrs (ext4, xfs) under its root',
    });
  }
}
