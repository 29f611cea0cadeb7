import { ownerAlive, ownerToken } from '../owner.js';
import { mountsUnder, ownedName, ownerInName, registerProcess } from '../lifecycle.js';
import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { KilnError } from '../errors.js';
import { normalizeName, normalizeTagName, parseReference } from './reference.js';
import { canonicalJSON } from './canonical.js';
import { Digester, DigestMismatchError, digestHex, digestOf, isDigest, verifyingStream } from './digest.js';
import { withFileLock } from './lock.js';
import { MediaType, RefNameAnnotation, type Descriptor, type ImageIndex } from './types.js';
import { kilnPaths, type KilnPaths } from '../paths.js';
import type { BlobInfo, BlobWriter, ContentStoreRoles, GcOptions, GcResult, Lease, Leased, NamedDescriptor } from './content.js';
import { LayerVariants } from './variants.js';
import { isIndexType, isManifestType, SNIFF_MAX, walk, type WalkRoot } from './walk.js';

export { isIndexType, isManifestType };
export type { GcOptions, Lease, Leased } from './content.js';

const LAYOUT_VERSION = '1.0.0';
/** Temp names of kiln versions that recorded only the pid. */
const LEGACY_TMP_NAME = /^oci-[a-z]+-(\d+)-[0-9a-f]+$/;
const STALE_TMP_MS = 24 * 3600_000;

function code(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException)?.code;
}

/**
 * The kiln content store: an OCI image layout at `root` (oci-layout, index.json, blobs/sha256).
 * Blob writes go to `<root>/tmp` then fsync + rename; index.json is rewritten atomically under
 * an inter-process lock; every read is verified against its digest. It plays every role of
 * oci/content.ts (Provider, Ingester, RefStore, LeaseManager, GarbageCollector): code that needs
 * only one takes that interface.
 */
export class ContentStore implements ContentStoreRoles {
  readonly paths: KilnPaths;
  /** Compression variants of layers (oci/variants.ts); the GC keeps a layer's forms together. */
  readonly variants: LayerVariants;

  private constructor(readonly root: string) {
    this.paths = kilnPaths(root);
    this.variants = new LayerVariants(this.paths.variants, (kind) => this.tempPath(kind));
  }

  static async open(root: string): Promise<ContentStore> {
    const abs = path.resolve(root);
    const store = new ContentStore(abs);
    try {
      await fsp.mkdir(store.paths.blobs, { recursive: true });
      await fsp.mkdir(store.tmpDir(), { recursive: true });
    } catch (e) {
      throw new KilnError(`cannot create the kiln store at ${abs}: ${(e as Error).message}`, {
        hint: 'choose a writable directory with --root or KILN_ROOT',
      });
    }
    await store.initFile('oci-layout', canonicalJSON({ imageLayoutVersion: LAYOUT_VERSION }));
    await store.initFile('index.json', canonicalJSON({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] }));
    const layout = await fsp.readFile(store.paths.ociLayout, 'utf8');
    let version: unknown;
    try {
      version = (JSON.parse(layout) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
    } catch {
      version = undefined;
    }
    if (version !== LAYOUT_VERSION) {
      throw new KilnError(`${store.paths.ociLayout} is not an OCI image layout version ${LAYOUT_VERSION}`, {
        hint: 'point --root at an empty directory or an existing kiln root',
      });
    }
    return store;
  }

  /** Creates root/<name> with content unless it exists; never clobbers (link fails on EEXIST). */
  private async initFile(name: string, content: string): Promise<void> {
    const target = path.join(this.root, name);
    try {
      await fsp.access(target);
      return;
    } catch {
      // create below
    }
    const tmp = await this.writeTemp('init', Buffer.from(content));
    try {
      await fsp.link(tmp, target);
    } catch (e) {
      if (code(e) !== 'EEXIST') throw e;
    } finally {
      await fsp.rm(tmp, { force: true });
    }
  }

  /** Directory for temporary files on the store's filesystem (rename into blobs/ is atomic). */
  tmpDir(): string {
    return this.paths.tmp;
  }

  /** A fresh path in tmpDir() that gc recognises (and removes once its process is gone). */
  tempPath(kind: string): string {
    registerProcess(this.root);
    return path.join(this.tmpDir(), ownedName(`oci-${kind}`));
  }

  blobPath(digest: string): string {
    if (!isDigest(digest)) {
      throw new KilnError(`${JSON.stringify(digest)} is not a sha256 digest`, { hint: 'digests look like sha256:<64 hex digits>' });
    }
    return path.join(this.paths.blobs, digestHex(digest));
  }

  async info(digest: string): Promise<BlobInfo | undefined> {
    const st = await fsp.stat(this.blobPath(digest)).catch(() => undefined);
    return st?.isFile() ? { digest, size: st.size, updatedAt: st.mtimeMs } : undefined;
  }

  async hasBlob(digest: string): Promise<boolean> {
    try {
      await fsp.access(this.blobPath(digest));
      return true;
    } catch {
      return false;
    }
  }

  private async writeTemp(kind: string, data: Buffer): Promise<string> {
    const tmp = this.tempPath(kind);
    const fh = await fsp.open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } catch (e) {
      await fh.close();
      await fsp.rm(tmp, { force: true });
      throw e;
    }
    await fh.close();
    return tmp;
  }

  /** Moves a finished temp file into blobs/ (or drops it when the blob already exists). */
  private async commitTemp(tmp: string, digest: string): Promise<void> {
    const target = this.blobPath(digest);
    if (await this.touchBlob(digest)) {
      await fsp.rm(tmp, { force: true });
      return;
    }
    try {
      await fsp.rename(tmp, target);
      // gc keeps blobs committed after it started: the commit time must be the mtime
      const now = new Date();
      await fsp.utimes(target, now, now);
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw e;
    }
  }

  /**
   * Marks a blob as just used, so a gc that is already running keeps it. False when the
   * blob is not there (then the caller must write or rebuild it).
   */
  async touchBlob(digest: string): Promise<boolean> {
    const now = new Date();
    return fsp.utimes(this.blobPath(digest), now, now).then(
      () => true,
      () => false,
    );
  }

  /**
   * A lease keeps what a process works with alive against a concurrent prune: blobs it wrote
   * but has not yet named (a build between writing a layer and tagging the image), unpacked
   * layers it mounts and cache mounts it binds. gc and prune treat what live leases hold as
   * roots; the lease of a process that died is removed by the next command.
   */
  async lease(): Promise<Lease> {
    registerProcess(this.root);
    const dir = this.paths.leases;
    await fsp.mkdir(dir, { recursive: true });
    const file = path.join(dir, ownedName('lease'));
    await fsp.writeFile(file, `${ownerToken()} ${Date.now()}\n`);
    const seen = new Set<string>();
    const fresh = (lines: string[]): string[] => {
      const out = lines.filter((l) => !seen.has(l));
      for (const l of out) seen.add(l);
      return out;
    };
    return {
      add: async (...digests: string[]) => {
        const lines = fresh(digests);
        if (lines.length > 0) await fsp.appendFile(file, `${lines.join('\n')}\n`);
      },
      protect: async ({ layers = [], mounts = [] }) => {
        const lines = fresh([...layers.map((d) => `layer ${digestHex(d)}`), ...mounts.map((m) => `mount ${m}`)]);
        if (lines.length === 0) return;
        // under the gc lock: a prune that is deciding what to remove sees this entry, or has
        // already moved its victims away (so the caller's existence check sees them gone)
        await this.withLock('gc', () => fsp.appendFile(file, `${lines.join('\n')}\n`));
      },
      release: () => fsp.rm(file, { force: true }),
    };
  }

  /** What the leases of running processes hold. Leases of dead processes are removed. */
  async leased(): Promise<Leased> {
    const dir = this.paths.leases;
    const out: Leased = { digests: new Set(), layers: new Set(), mounts: new Set(), oldestStart: Infinity };
    for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
      const file = path.join(dir, name);
      const text = await fsp.readFile(file, 'utf8').catch(() => undefined);
      if (text === undefined) continue;
      const [owner, ...lines] = text.split('\n');
      if (!ownerAlive(owner)) {
        await fsp.rm(file, { force: true });
        continue;
      }
      const start = Number(owner.trim().split(/\s+/)[2]);
      if (Number.isFinite(start)) out.oldestStart = Math.min(out.oldestStart, start);
      for (const l of lines) {
        if (l.startsWith('layer ')) out.layers.add(l.slice(6));
        else if (l.startsWith('mount ')) out.mounts.add(l.slice(6));
        else if (l) out.digests.add(l);
      }
    }
    return out;
  }

  private mismatch(expected: string, actual: string, what: string): DigestMismatchError {
    return new DigestMismatchError(expected, actual, what);
  }

  async writeBlob(data: Buffer | string, expectedDigest?: string): Promise<{ digest: string; size: number }> {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    const digest = digestOf(buf);
    if (expectedDigest !== undefined && expectedDigest !== digest) throw this.mismatch(expectedDigest, digest, 'a blob');
    if (!(await this.hasBlob(digest))) {
      const tmp = await this.writeTemp('blob', buf);
      await this.commitTemp(tmp, digest);
    }
    return { digest, size: buf.length };
  }

  async writeBlobFromStream(
    src: NodeJS.ReadableStream | AsyncIterable<Buffer>,
    expectedDigest?: string,
  ): Promise<{ digest: string; size: number }> {
    const w = await this.writer();
    try {
      for await (const chunk of src as AsyncIterable<Buffer | string>) await w.write(chunk);
      return await w.commit(expectedDigest !== undefined ? { digest: expectedDigest } : {});
    } finally {
      await w.abort();
    }
  }

  /**
   * A blob written piece by piece (a layer streamed from a registry, say) into a temp file,
   * hashed as it goes; commit() fsyncs, checks what the caller expected and renames it into
   * blobs/. Writes must be awaited one after another.
   */
  async writer(): Promise<BlobWriter> {
    const tmp = this.tempPath('blob');
    const fh = await fsp.open(tmp, 'wx', 0o644);
    const digester = new Digester();
    let open = true;
    const close = async (): Promise<void> => {
      if (!open) return;
      open = false;
      await fh.close();
    };
    const ensureOpen = (): void => {
      if (!open) throw new Error('blob writer used after commit or abort');
    };
    return {
      get written() {
        return digester.size;
      },
      write: async (chunk: Buffer | string) => {
        ensureOpen();
        const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        digester.update(buf);
        for (let off = 0; off < buf.length; ) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
      },
      commit: async (expected = {}) => {
        ensureOpen();
        try {
          await fh.sync();
        } finally {
          await close();
        }
        const digest = digester.digest();
        const size = digester.size;
        try {
          if (expected.digest !== undefined && expected.digest !== digest) throw this.mismatch(expected.digest, digest, 'a blob');
          if (expected.size !== undefined && expected.size !== size) {
            throw new KilnError(`size mismatch for blob ${digest}: expected ${expected.size} bytes, got ${size}`, {
              hint: 'the content was cut short or altered in transit; fetch it again',
            });
          }
          await this.commitTemp(tmp, digest);
        } catch (e) {
          await fsp.rm(tmp, { force: true });
          throw e;
        }
        return { digest, size };
      },
      abort: async () => {
        await close().catch(() => undefined);
        await fsp.rm(tmp, { force: true });
      },
    };
  }

  /**
   * Commits a temp file the caller wrote and fsynced (e.g. a layer streamed through gzip) under
   * the digest the caller computed while writing it.
   */
  async commitFile(tmpFile: string, digest: string): Promise<void> {
    await this.commitTemp(tmpFile, digest);
  }

  /** A temp file holding `data`, not fsynced: for commitUnsynced. */
  async writeTempUnsynced(data: Buffer | string): Promise<string> {
    const tmp = this.tempPath('blob');
    await fsp.writeFile(tmp, data, { flag: 'wx', mode: 0o644 });
    return tmp;
  }

  /**
   * Commits several temp files written without fsync: all are fsynced at once (on one
   * filesystem that is about one journal commit, where one fsync per file during a build
   * made every file creation and mount wait on a commit), then renamed into blobs/.
   */
  async commitUnsynced(files: Array<{ tmp: string; digest: string }>): Promise<void> {
    await Promise.all(
      files.map(async ({ tmp }) => {
        const fh = await fsp.open(tmp, 'r+');
        try {
          await fh.sync();
        } finally {
          await fh.close();
        }
      }),
    );
    for (const f of files) await this.commitTemp(f.tmp, f.digest);
  }

  async writeJSON(value: unknown, mediaType: string): Promise<Descriptor> {
    const { digest, size } = await this.writeBlob(canonicalJSON(value));
    return { mediaType, digest, size };
  }

  private missing(digest: string, e: unknown): KilnError {
    return new KilnError(`blob ${digest} is missing from the store ${this.root}`, {
      hint: 'the store is incomplete: rebuild, or pull/load the image again',
      cause: e,
    });
  }

  private corrupt(digest: string, actual: string): KilnError {
    return new KilnError(`blob ${digest} in the store ${this.root} is corrupt: its content hashes to ${actual}`, {
      hint: `delete ${this.blobPath(digest)} and rebuild, pull or load the image again`,
    });
  }

  async readBlob(digest: string): Promise<Buffer> {
    let data: Buffer;
    try {
      data = await fsp.readFile(this.blobPath(digest));
    } catch (e) {
      if (code(e) === 'ENOENT') throw this.missing(digest, e);
      throw e;
    }
    const actual = digestOf(data);
    if (actual !== digest) throw this.corrupt(digest, actual);
    return data;
  }

  /** A stream of the blob; it errors with a KilnError at the end if the content does not match. */
  openBlob(digest: string): Readable {
    const file = this.blobPath(digest);
    const verify = verifyingStream(digest, (actual) => this.corrupt(digest, actual));
    const src = createReadStream(file);
    src.on('error', (e) => verify.destroy(code(e) === 'ENOENT' ? this.missing(digest, e) : e));
    src.pipe(verify);
    return verify;
  }

  async readJSON<T>(digest: string): Promise<T> {
    const data = await this.readBlob(digest);
    try {
      return JSON.parse(data.toString('utf8')) as T;
    } catch (e) {
      throw new KilnError(`blob ${digest} in the store ${this.root} is not valid JSON`, { cause: e });
    }
  }

  // ---- index.json -------------------------------------------------------------------------

  private indexPath(): string {
    return this.paths.index;
  }

  /** The layout's index.json as it is now (atomic renames mean a reader never sees half a file). */
  async readIndex(): Promise<ImageIndex> {
    let text: string;
    try {
      text = await fsp.readFile(this.indexPath(), 'utf8');
    } catch (e) {
      if (code(e) === 'ENOENT') return { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
      throw e;
    }
    try {
      const index = JSON.parse(text) as ImageIndex;
      if (!Array.isArray(index.manifests)) throw new Error('manifests is not an array');
      return index;
    } catch (e) {
      throw new KilnError(`${this.indexPath()} is corrupt: ${(e as Error).message}`, {
        hint: 'restore it from a backup, or remove it (images must then be re-tagged)',
      });
    }
  }

  /** Read-modify-write of index.json under the 'index' lock; the rewrite is temp + fsync + rename. */
  async updateIndex<T>(fn: (index: ImageIndex) => T | Promise<T>): Promise<T> {
    return this.withLock('index', async () => {
      const index = await this.readIndex();
      const result = await fn(index);
      const tmp = await this.writeTemp('index', Buffer.from(canonicalJSON(index)));
      try {
        await fsp.rename(tmp, this.indexPath());
      } catch (e) {
        await fsp.rm(tmp, { force: true });
        throw e;
      }
      const dir = await fsp.open(this.root, 'r');
      try {
        await dir.sync();
      } catch {
        // some filesystems cannot fsync a directory; the rename is still atomic
      } finally {
        await dir.close();
      }
      return result;
    });
  }

  async listRefs(): Promise<NamedDescriptor[]> {
    const index = await this.readIndex();
    const out: NamedDescriptor[] = [];
    for (const d of index.manifests) {
      const name = d.annotations?.[RefNameAnnotation];
      if (name !== undefined) out.push({ name, descriptor: withoutRefName(d) });
    }
    return out;
  }

  /**
   * Finds a name ("app", "app:1", "localhost:5000/app:1"), a digest ("sha256:…", "app@sha256:…")
   * or a unique digest prefix of a stored ref ("3f2a9c"). Undefined when nothing matches; a
   * KilnError for a malformed name or an ambiguous prefix.
   */
  async resolve(nameOrDigest: string): Promise<Descriptor | undefined> {
    const input = nameOrDigest.trim();
    const index = await this.readIndex();
    if (isDigest(input)) return this.resolveDigest(index, input);
    const prefix = /^(?:sha256:)?([a-f0-9]{4,63})$/.exec(input);
    let ref;
    try {
      ref = parseReference(input);
    } catch (e) {
      if (!prefix) throw e;
    }
    if (ref?.digest !== undefined) return this.resolveDigest(index, ref.digest);
    if (ref) {
      const name = normalizeName(input);
      const hit = index.manifests.find((d) => d.annotations?.[RefNameAnnotation] === name);
      if (hit) return withoutRefName(hit);
    }
    if (prefix) {
      const hex = prefix[1];
      const digests = new Set(index.manifests.map((d) => d.digest).filter((d) => d.startsWith(`sha256:${hex}`)));
      if (digests.size > 1) {
        throw new KilnError(`${JSON.stringify(input)} matches more than one image`, { hint: 'give more digits of the digest' });
      }
      if (digests.size === 1) {
        const [only] = digests;
        return withoutRefName(index.manifests.find((d) => d.digest === only)!);
      }
    }
    return undefined;
  }

  private async resolveDigest(index: ImageIndex, digest: string): Promise<Descriptor | undefined> {
    const hit = index.manifests.find((d) => d.digest === digest);
    if (hit) return withoutRefName(hit);
    const st = await this.info(digest);
    if (!st || st.size > SNIFF_MAX) return undefined;
    try {
      const doc = await this.readJSON<{ mediaType?: string; manifests?: unknown; layers?: unknown }>(digest);
      const mediaType =
        doc.mediaType ?? (Array.isArray(doc.manifests) ? MediaType.ociIndex : Array.isArray(doc.layers) ? MediaType.ociManifest : undefined);
      if (isManifestType(mediaType) || isIndexType(mediaType)) return { mediaType: mediaType!, digest, size: st.size };
    } catch {
      // not JSON: a layer or some other blob, not an image
    }
    return undefined;
  }

  /**
   * Points a name at `desc`: "repository:tag", or "repository@digest" for an image pulled by
   * digest (then the digest must be desc's: a name by digest cannot move).
   */
  async setRef(name: string, desc: Descriptor): Promise<void> {
    const byDigest = parseReference(name);
    const refName = byDigest.digest !== undefined && byDigest.tag === undefined && byDigest.digest === desc.digest ? normalizeName(name) : normalizeTagName(name);
    const entry: Descriptor = {
      mediaType: desc.mediaType,
      digest: desc.digest,
      size: desc.size,
      ...(desc.platform ? { platform: desc.platform } : {}),
      ...(desc.urls ? { urls: desc.urls } : {}),
      annotations: { ...(desc.annotations ?? {}), [RefNameAnnotation]: refName },
    };
    await this.updateIndex((index) => {
      const at = index.manifests.findIndex((d) => d.annotations?.[RefNameAnnotation] === refName);
      if (at >= 0) index.manifests[at] = entry;
      else index.manifests.push(entry);
    });
  }

  async deleteRef(name: string): Promise<boolean> {
    const refName = normalizeName(name);
    return this.updateIndex((index) => {
      const before = index.manifests.length;
      index.manifests = index.manifests.filter((d) => d.annotations?.[RefNameAnnotation] !== refName);
      return index.manifests.length !== before;
    });
  }

  /** Runs fn holding the inter-process lock <root>/locks/<name>.lock (re-entrant within a call chain). */
  async withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`invalid lock name ${JSON.stringify(name)}`);
    return withFileLock(path.join(this.paths.locks, `${name}.lock`), fn, { what: `${name} in ${this.root}` });
  }

  /**
   * Mark and sweep: every blob reachable (oci/walk.ts) from index.json, from extraRootDigests or
   * from live leases survives, and with it every other compression variant of a layer one of
   * whose forms survives; other blobs are removed, as are temp files of processes that are gone.
   */
  async gc(extraRootDigests: string[] = [], options: GcOptions = {}): Promise<GcResult> {
    return this.withLock('gc', () =>
      this.withLock('index', async () => {
        const started = Date.now();
        const index = await this.readIndex();
        const leases = await this.leased();
        const roots: WalkRoot[] = [...index.manifests];
        // bare digests: read (to follow a manifest or index) only when small, see walk.ts
        for (const d of [...extraRootDigests, ...leases.digests]) {
          if (isDigest(d)) roots.push({ digest: d, size: (await this.info(d))?.size });
        }
        const marked = new Set<string>();
        await walk(this, roots, (node) => void marked.add(node.descriptor.digest), { missing: 'skip', malformed: 'skip' });
        const variants = await this.variants.list();
        for (const { variants: forms } of variants) {
          const digests = Object.values(forms).map((d) => d.digest);
          if (digests.some((d) => marked.has(d))) for (const d of digests) marked.add(d);
        }
        const keepSince = Math.min(started, leases.oldestStart);
        let removedBlobs = 0;
        let freedBytes = 0;
        const now = Date.now();
        const blobDir = this.paths.blobs;
        for (const name of await fsp.readdir(blobDir)) {
          if (!/^[a-f0-9]{64}$/.test(name) || marked.has(`sha256:${name}`)) continue;
          const file = path.join(blobDir, name);
          const st = await fsp.lstat(file).catch(() => undefined);
          if (!st) continue;
          if (options.keepNewerThanMs && now - st.mtimeMs < options.keepNewerThanMs) continue;
          // committed or reused since a running build started (or since this gc did): it may
          // be about to be leased or named
          if (st.mtimeMs >= keepSince) continue;
          await fsp.rm(file, { force: true });
          removedBlobs++;
          freedBytes += st.size;
        }
        // a record none of whose blobs is left names nothing
        for (const { diffId, variants: forms } of variants) {
          const left = await Promise.all(Object.values(forms).map((d) => this.hasBlob(d.digest)));
          if (!left.includes(true)) await this.variants.remove(diffId);
        }
        freedBytes += await this.sweepTemp(now);
        return { removedBlobs, freedBytes };
      }),
    );
  }

  private async sweepTemp(now: number): Promise<number> {
    let freed = 0;
    let names: string[];
    try {
      names = await fsp.readdir(this.tmpDir());
    } catch {
      return 0;
    }
    // never delete through a mount (a dead owner's secrets tmpfs: the reaper unmounts it first)
    const mounted = mountsUnder(this.tmpDir());
    for (const name of names) {
      const owner = ownerInName(name);
      const legacy = LEGACY_TMP_NAME.exec(name);
      if (!owner && !legacy) continue;
      const file = path.join(this.tmpDir(), name);
      const st = await fsp.lstat(file).catch(() => undefined);
      if (!st) continue;
      const alive = owner ? ownerAlive(owner) : ownerAlive(legacy![1]) && now - st.mtimeMs < STALE_TMP_MS;
      if (alive || mounted.some((m) => m === file || m.startsWith(`${file}/`))) continue;
      if (st.isFile()) freed += st.size;
      await fsp.rm(file, { recursive: true, force: true });
    }
    return freed;
  }
}

function withoutRefName(d: Descriptor): Descriptor {
  const copy: Descriptor = { ...d };
  if (d.annotations) {
    const rest = { ...d.annotations };
    delete rest[RefNameAnnotation];
    if (Object.keys(rest).length > 0) copy.annotations = rest;
    else delete copy.annotations;
  }
  return copy;
}
