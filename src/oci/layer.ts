import { fsPath } from '../fsname.js';
import { execFile } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import path from 'node:path';
import { KilnError } from '../errors.js';
import type { Ingester, Provider, StagingIngester } from './content.js';
import { Digester } from './digest.js';
import { compressionLevel, gzipBlocks, zstdBlocks } from './compress.js';
import { decompress as decompressStream, detectCompression as detectCompressionOf, tarEntries, tarStream, type TarEntry, type TarReadEntry } from './tar.js';
import { MediaType, type Descriptor } from './types.js';
import { compressionOfMediaType, layerMediaType, variantKey, type LayerCompression, type LayerVariants } from './variants.js';

export { tarEntries, tarStream, decompress, detectCompression } from './tar.js';
export type { TarEntry, TarEntryType, TarHeader, TarReadEntry } from './tar.js';

/**
 * One entry of a layer. `path` is relative with no leading '/', directories without trailing '/'.
 * File content comes from `content`, `contentStream` (exactly `size` bytes) or `sourcePath`.
 */
export type LayerEntry = TarEntry;

export { GZIP_LEVEL, ZSTD_LEVEL } from './compress.js';

export interface WriteLayerOptions {
  /** Clamp every mtime to at most this (seconds since the epoch). */
  sourceDateEpoch?: number;
  compression?: 'gzip' | 'none';
  /**
   * Leave the blob in a temp file, not fsynced and not in blobs/: the caller commits it with
   * ContentStore.commitUnsynced (WrittenLayer.uncommitted) or removes it.
   */
  deferCommit?: boolean;
}

export interface WrittenLayer {
  descriptor: Descriptor;
  /** sha256 of the uncompressed tar (the image config's rootfs.diff_ids entry). */
  diffId: string;
  entries: number;
  /** Size of the uncompressed tar. */
  uncompressedSize: number;
  /** With deferCommit: the temp file holding the blob. */
  uncommitted?: string;
}

/**
 * Writes the entries, in the order given, as a tar layer into the store: normalised headers
 * (empty uname/gname, no atime/ctime, mtimes clamped to sourceDateEpoch), gzip at a fixed level,
 * the diffId and the digest computed while streaming to a temp file, then renamed into blobs/.
 */
export async function writeLayer(
  store: Pick<StagingIngester, 'tempPath' | 'commitFile'>,
  entries: Iterable<LayerEntry> | AsyncIterable<LayerEntry>,
  options: WriteLayerOptions = {},
): Promise<WrittenLayer> {
  const compression = options.compression ?? 'gzip';
  const diff = new Digester();
  const stored = new Digester();
  let count = 0;
  async function* tarBytes(): AsyncGenerator<Buffer> {
    const normalised = prefetchSmallFiles(normaliseEntries(entries));
    for await (const chunk of tarStream(normalised, { sourceDateEpoch: options.sourceDateEpoch, onEntry: () => count++ })) {
      diff.update(chunk);
      yield chunk;
    }
  }
  const tmp = store.tempPath('layer');
  const fh = await fsp.open(tmp, 'wx', 0o644);
  let ok = false;
  try {
    // writes in batches of WRITE_BATCH: a tar of small files is many small chunks
    let batch: Buffer[] = [];
    let batched = 0;
    const flush = async (): Promise<void> => {
      if (batched === 0) return;
      const buf = batch.length === 1 ? batch[0] : Buffer.concat(batch, batched);
      batch = [];
      batched = 0;
      for (let off = 0; off < buf.length; ) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
    };
    const sink = async (source: AsyncIterable<Buffer>, hashed: boolean): Promise<void> => {
      for await (const chunk of source) {
        if (hashed) stored.update(chunk);
        batch.push(chunk);
        batched += chunk.length;
        if (batched >= WRITE_BATCH) await flush();
      }
      await flush();
    };
    if (compression === 'gzip') {
      await sink(gzipBlocks(tarBytes()), true);
    } else {
      // stored bytes are the tar itself: its digest is the diffId
      await sink(tarBytes(), false);
    }
    if (!options.deferCommit) await fh.sync();
    ok = true;
  } finally {
    await fh.close();
    if (!ok) await fsp.rm(tmp, { force: true });
  }
  const diffId = diff.digest();
  const digest = compression === 'gzip' ? stored.digest() : diffId;
  const size = compression === 'gzip' ? stored.size : diff.size;
  if (!options.deferCommit) await store.commitFile(tmp, digest);
  return {
    ...(options.deferCommit ? { uncommitted: tmp } : {}),
    descriptor: { mediaType: compression === 'gzip' ? MediaType.ociLayerGzip : MediaType.ociLayerTar, digest, size },
    diffId,
    entries: count,
    uncompressedSize: diff.size,
  };
}

/**
 * The diffId the entries would get from writeLayer (the sha256 of the same normalised,
 * uncompressed tar), computed without compressing or writing anything. Lets a caller name
 * a layer at once and store it later, off the critical path.
 */
export async function layerDiffId(
  entries: Iterable<LayerEntry> | AsyncIterable<LayerEntry>,
  options: Pick<WriteLayerOptions, 'sourceDateEpoch'> & { keepUpTo?: number } = {},
): Promise<{ diffId: string; size: number; tar?: Buffer }> {
  const diff = new Digester();
  let kept: Buffer[] | undefined = options.keepUpTo ? [] : undefined;
  for await (const chunk of tarStream(prefetchSmallFiles(normaliseEntries(entries)), { sourceDateEpoch: options.sourceDateEpoch })) {
    diff.update(chunk);
    if (kept) {
      kept.push(chunk);
      if (diff.size > options.keepUpTo!) kept = undefined;
    }
  }
  return { diffId: diff.digest(), size: diff.size, ...(kept ? { tar: Buffer.concat(kept, diff.size) } : {}) };
}

/** Bytes gathered before one write to the layer file. */
const WRITE_BATCH = 1 << 20;

const PREFETCH_MAX_FILE = 1 << 20;
const PREFETCH_WINDOW = 64;
/** Files up to this size are read synchronously. */
const SYNC_READ_MAX = 256 << 10;

/**
 * Reads the contents of small files ahead, several at once, while earlier entries are
 * being archived: with many small files the time goes into open/read/close round trips,
 * not bytes. Order is kept; at most PREFETCH_WINDOW entries (each ≤ 1 MiB) are held.
 */
async function* prefetchSmallFiles(entries: AsyncIterable<LayerEntry>): AsyncGenerator<LayerEntry> {
  const window: Array<Promise<LayerEntry>> = [];
  const load = (e: LayerEntry): Promise<LayerEntry> => {
    if (e.type !== 'file' || !e.sourcePath || e.content || e.contentStream || e.size === undefined || e.size > PREFETCH_MAX_FILE) {
      return Promise.resolve(e);
    }
    const expected = e.size;
    if (expected <= SYNC_READ_MAX) {
      // a small read costs microseconds; the threadpool round trips around it cost far more
      try {
        const content = readFileSync(fsPath(e.sourcePath));
        return Promise.resolve(content.length === expected ? { ...e, content } : e);
      } catch (err) {
        return Promise.reject(err as Error);
      }
    }
    return fsp.readFile(fsPath(e.sourcePath)).then((content) => (content.length === expected ? { ...e, content } : e));
  };
  for await (const e of entries) {
    if (e.contentStream) {
      // a stream from a tar being read must be consumed before the next entry is pulled
      while (window.length > 0) yield await window.shift()!;
      yield e;
      continue;
    }
    window.push(load(e));
    // a rejected read surfaces when its turn comes; until then it must not count as unhandled
    window[window.length - 1].catch(() => undefined);
    if (window.length >= PREFETCH_WINDOW) yield await window.shift()!;
  }
  while (window.length > 0) yield await window.shift()!;
}

/** Drops uname/gname (layers are normalised to numeric ids). */
async function* normaliseEntries(entries: Iterable<LayerEntry> | AsyncIterable<LayerEntry>): AsyncGenerator<LayerEntry> {
  for await (const e of entries) {
    if (e.uname || e.gname) yield { ...e, uname: '', gname: '' };
    else yield e;
  }
}

function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * Layer order: a depth-first walk with the names of each directory in byte order, i.e. paths
 * compared component by component ("a", "a/b", "a-b").
 */
export function comparePaths(a: string, b: string): number {
  const pa = a.split('/');
  const pb = b.split('/');
  const n = Math.min(pa.length, pb.length);
  for (let i = 0; i < n; i++) {
    const c = compareBytes(pa[i], pb[i]);
    if (c !== 0) return c;
  }
  return pa.length - pb.length;
}

/** A sorted copy (see comparePaths). */
export function sortEntries<T extends { path: string }>(entries: Iterable<T>): T[] {
  return [...entries].sort((x, y) => comparePaths(x.path, y.path));
}

export interface DirectoryWalkOptions {
  /** Prepended to every path ("app" → "app/file"); the prefix directories themselves are not emitted. */
  prefix?: string;
  /** Read extended attributes (with getfattr from the attr package); default false. */
  xattrs?: boolean;
}

function devMajor(rdev: bigint): number {
  return Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
}
function devMinor(rdev: bigint): number {
  return Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
}

/**
 * The entries of a directory tree (the directory itself excluded), in layer order: lstat-based,
 * symlinks not followed, files that share an inode after the first become hardlink entries,
 * sockets skipped.
 */
export async function* layerEntriesFromDirectory(dir: string, options: DirectoryWalkOptions = {}): AsyncGenerator<LayerEntry> {
  const prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
  const inodes = new Map<string, string>();
  const xattrs = options.xattrs ? await readXattrs(dir) : undefined;
  async function* walk(abs: string, rel: string): AsyncGenerator<LayerEntry> {
    const names = (await fsp.readdir(abs)).sort(compareBytes);
    for (const name of names) {
      const full = path.join(abs, name);
      const relPath = rel ? `${rel}/${name}` : name;
      const st = await fsp.lstat(full, { bigint: true });
      const base = {
        path: relPath,
        mode: Number(st.mode & 0o7777n),
        uid: Number(st.uid),
        gid: Number(st.gid),
        mtime: Number(st.mtimeMs / 1000n),
        ...(xattrs?.has(full) ? { xattrs: xattrs.get(full) } : {}),
      };
      if (st.isDirectory()) {
        yield { ...base, type: 'directory' };
        yield* walk(full, relPath);
        continue;
      }
      if (st.isSocket()) continue;
      if (st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        const first = inodes.get(key);
        if (first !== undefined) {
          // xattrs belong to the inode, which the first entry carries
          yield { path: base.path, mode: base.mode, uid: base.uid, gid: base.gid, mtime: base.mtime, type: 'hardlink', linkname: first };
          continue;
        }
        inodes.set(key, relPath);
      }
      if (st.isFile()) yield { ...base, type: 'file', size: Number(st.size), sourcePath: full };
      else if (st.isSymbolicLink()) yield { ...base, type: 'symlink', linkname: await fsp.readlink(full) };
      else if (st.isCharacterDevice()) yield { ...base, type: 'char', devmajor: devMajor(st.rdev), devminor: devMinor(st.rdev) };
      else if (st.isBlockDevice()) yield { ...base, type: 'block', devmajor: devMajor(st.rdev), devminor: devMinor(st.rdev) };
      else if (st.isFIFO()) yield { ...base, type: 'fifo' };
    }
  }
  yield* walk(path.resolve(dir), prefix);
}

function unescapeGetfattr(s: string): string {
  return Buffer.from(s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))), 'latin1').toString('utf8');
}

/** Every extended attribute under dir (absolute path → name → value), except security.selinux. */
async function readXattrs(dir: string): Promise<Map<string, Record<string, Buffer>>> {
  const out = await new Promise<string>((resolve, reject) => {
    execFile('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', path.resolve(dir)], { maxBuffer: 1 << 30 }, (err, stdout) => {
      if (err && !stdout) reject(err);
      else resolve(stdout);
    });
  }).catch(() => '');
  const result = new Map<string, Record<string, Buffer>>();
  let current: string | undefined;
  for (const line of out.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = unescapeGetfattr(line.slice(8));
      continue;
    }
    const eq = line.indexOf('=');
    if (!current || eq <= 0) continue;
    const name = line.slice(0, eq);
    if (name === 'security.selinux') continue;
    const raw = line.slice(eq + 1);
    const value = raw.startsWith('0x') ? Buffer.from(raw.slice(2), 'hex') : Buffer.from(raw.replace(/^"|"$/g, ''));
    const rec = result.get(current) ?? {};
    rec[name] = value;
    result.set(current, rec);
  }
  return result;
}

/** The entries of a layer blob (gzip, zstd where Node supports it, or plain tar), verified against its digest. */
export function readLayer(store: Pick<Provider, 'openBlob'>, descriptor: Descriptor): AsyncGenerator<TarReadEntry> {
  return tarEntries(store.openBlob(descriptor.digest));
}

/**
 * Stores a tar stream (plain, gzip or zstd) as a gzip OCI layer: gzip input is kept byte for
 * byte (its digest survives), anything else is decompressed and recompressed as writeLayer does (gzipBlocks at GZIP_LEVEL).
 * The diffId is always computed from the uncompressed bytes.
 */
export async function storeTarAsLayer(
  store: Pick<Provider, 'openBlob'> & Pick<Ingester, 'writeBlobFromStream'>,
  open: () => AsyncIterable<Buffer> | NodeJS.ReadableStream,
): Promise<{ descriptor: Descriptor; diffId: string }> {
  const src = open();
  const it = (src as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const first = await it.next();
  const head: Buffer = first.done ? Buffer.alloc(0) : first.value;
  async function* all(): AsyncGenerator<Buffer> {
    if (head.length > 0) yield head;
    if (first.done) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  }
  if (detectCompressionOf(head) === 'gzip') {
    const { digest, size } = await store.writeBlobFromStream(all());
    const diff = new Digester();
    for await (const chunk of decompressStream(store.openBlob(digest))) diff.update(chunk);
    return { descriptor: { mediaType: MediaType.ociLayerGzip, digest, size }, diffId: diff.digest() };
  }
  const diff = new Digester();
  async function* plain(): AsyncGenerator<Buffer> {
    for await (const chunk of decompressStream(all())) {
      diff.update(chunk);
      yield chunk;
    }
  }
  const { digest, size } = await store.writeBlobFromStream(gzipBlocks(plain()));
  return { descriptor: { mediaType: MediaType.ociLayerGzip, digest, size }, diffId: diff.digest() };
}

/** What layerVariant needs of a store: reads, a blob writer, re-use marks and the variant records. */
export type VariantStore = Pick<Provider, 'openBlob'> & Pick<Ingester, 'writer'> & Pick<StagingIngester, 'touchBlob'> & { variants: LayerVariants; blobPath?: (digest: string) => string };

/** Read size for a plain layer blob being compressed. */
const PLAIN_READ = 1 << 20;

export interface LayerVariantOptions {
  /** gzip 0–9 (default GZIP_LEVEL), zstd 1–22 (default ZSTD_LEVEL); not with 'none'. */
  level?: number;
  /** Compress again even when the layer is already stored in `compression` (force-compression). */
  force?: boolean;
}

/**
 * The layer `diffId` (stored as `layer`) in `compression`: the layer itself when it already is
 * (whatever level made it, as BuildKit does) unless `force`, else the variant recorded the
 * first time one was asked for at that level, while its blob is still there, else made now
 * (compress.ts: deterministic parallel gzip or zstd), committed to the store and recorded, so
 * every later export reuses it. The uncompressed bytes are checked against diffId on the way.
 * `reused` tells whether anything was compressed.
 */
export async function layerVariant(
  store: VariantStore,
  layer: { descriptor: Descriptor; diffId: string },
  compression: LayerCompression,
  options: LayerVariantOptions = {},
): Promise<{ descriptor: Descriptor; reused: boolean }> {
  const as = (d: Pick<Descriptor, 'mediaType' | 'digest' | 'size'>): Descriptor => ({
    ...layer.descriptor,
    mediaType: d.mediaType,
    digest: d.digest,
    size: d.size,
  });
  const have = compressionOfMediaType(layer.descriptor.mediaType);
  if (have === undefined) {
    throw new KilnError(`layer ${layer.descriptor.digest} has media type ${layer.descriptor.mediaType}, which kiln cannot recompress`, {
      hint: 'export it without changing its compression',
    });
  }
  const level = compressionLevel(compression, options.level);
  // an uncompressed layer is only ever one blob: forcing it changes nothing
  if (have === compression && (!options.force || compression === 'none')) return { descriptor: layer.descriptor, reused: true };
  const key = variantKey(compression, level);
  const recorded = (await store.variants.get(layer.diffId)).variants[key];
  // forced: not the very blob asked to be compressed again (recorded as the layer's stored form)
  const usable = recorded && !(options.force && recorded.digest === layer.descriptor.digest);
  if (usable && (await store.touchBlob(recorded.digest))) return { descriptor: as(recorded), reused: true };

  const diff = new Digester();
  const digest = layer.descriptor.digest;
  // a plain blob read straight from its file in 1 MiB reads (the diff id check below is its
  // digest check): 64 KiB stream chunks cost the main thread more than the hashing does
  async function* source(): AsyncGenerator<Buffer> {
    const fh = have === 'none' && store.blobPath ? await fsp.open(store.blobPath(digest)).catch(() => undefined) : undefined;
    // without the file, openBlob says what is missing
    if (!fh) return yield* decompressStream(store.openBlob(digest));
    yield* fh.createReadStream({ highWaterMark: PLAIN_READ }) as AsyncIterable<Buffer>;
  }
  async function* tar(): AsyncGenerator<Buffer> {
    for await (const chunk of source()) {
      diff.update(chunk);
      yield chunk;
    }
  }
  const bytes = compression === 'gzip' ? gzipBlocks(tar(), level) : compression === 'zstd' ? zstdBlocks(tar(), level) : tar();
  const w = await store.writer();
  let written: { digest: string; size: number };
  try {
    for await (const chunk of bytes) await w.write(chunk);
    const got = diff.digest();
    if (got !== layer.diffId) {
      throw new KilnError(`layer ${layer.descriptor.digest}: its uncompressed content hashes to ${got}, expected ${layer.diffId}`, {
        hint: 'the layer blob is corrupt or does not belong to this image; rebuild, or pull/load it again',
      });
    }
    written = await w.commit();
  } finally {
    await w.abort();
  }
  const descriptor = as({ mediaType: layerMediaType(compression), ...written });
  // the stored form is recorded under its compression only (its level is not known)
  if (have !== compression) await store.variants.record(layer.diffId, have, layer.descriptor);
  await store.variants.record(layer.diffId, key, descriptor);
  return { descriptor, reused: false };
}
