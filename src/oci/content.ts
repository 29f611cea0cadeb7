/**
 * The content store split by role, after containerd's content package: code that only reads
 * blobs takes a Provider, code that writes them an Ingester, code that names images a RefStore;
 * leases and GC are roles of their own. ContentStore (oci/store.ts) is the local implementation
 * of all of them; a registry-backed Provider can stand in wherever only reads are needed, and
 * test/oci/content-suite.ts checks any implementation against the same expectations.
 */
import { PassThrough, type Readable } from 'node:stream';
import type { Descriptor } from './types.js';

export interface BlobInfo {
  digest: string;
  size: number;
  /** When the blob was last committed or marked used (ms since the epoch). */
  updatedAt: number;
}

/** Reads blobs. Every read is verified against the digest it was asked for. */
export interface Provider {
  /** Size and last use of a stored blob; undefined when it is not there. */
  info(digest: string): Promise<BlobInfo | undefined>;
  hasBlob(digest: string): Promise<boolean>;
  /** The whole blob; a KilnError when it is missing or its content does not match its digest. */
  readBlob(digest: string): Promise<Buffer>;
  /** The blob as a stream; it errors with a KilnError when missing, or at the end when corrupt. */
  openBlob(digest: string): Readable;
  /** The blob parsed as JSON; a KilnError when it is not JSON. */
  readJSON<T>(digest: string): Promise<T>;
}

/**
 * One blob being written: bytes go in with write(), and commit() makes the blob visible in one
 * atomic step, after checking what the caller expected. Two writers of the same content may
 * run at once: both commit, one blob results.
 */
export interface BlobWriter {
  write(chunk: Buffer | string): Promise<void>;
  /** Bytes written so far. */
  readonly written: number;
  /**
   * Makes the blob durable and visible. With `expected`, a digest or size that does not match
   * what was written is a KilnError and nothing is committed.
   */
  commit(expected?: { digest?: string; size?: number }): Promise<{ digest: string; size: number }>;
  /** Drops what was written (also safe after a failed commit). */
  abort(): Promise<void>;
}

/** Writes blobs. */
export interface Ingester {
  writer(): Promise<BlobWriter>;
  writeBlob(data: Buffer | string, expectedDigest?: string): Promise<{ digest: string; size: number }>;
  writeBlobFromStream(src: NodeJS.ReadableStream | AsyncIterable<Buffer>, expectedDigest?: string): Promise<{ digest: string; size: number }>;
  /** Canonical JSON of `value` as a blob. */
  writeJSON(value: unknown, mediaType: string): Promise<Descriptor>;
}

/**
 * The build path's writes: temp files on the store's filesystem written without fsync, then
 * made durable together in one fsync round (see ContentStore.commitUnsynced), and re-use marks.
 */
export interface StagingIngester extends Ingester {
  /** A fresh temp path that the store's GC recognises and removes once its process is gone. */
  tempPath(kind: string): string;
  /** Commits a temp file the caller wrote and fsynced under the digest it computed. */
  commitFile(tmpFile: string, digest: string): Promise<void>;
  writeTempUnsynced(data: Buffer | string): Promise<string>;
  commitUnsynced(files: Array<{ tmp: string; digest: string }>): Promise<void>;
  /** Marks a blob just used, so a running GC keeps it; false when it is not there. */
  touchBlob(digest: string): Promise<boolean>;
}

export interface NamedDescriptor {
  name: string;
  descriptor: Descriptor;
}

/** Names → descriptors (the OCI layout's index.json for the local store). */
export interface RefStore {
  listRefs(): Promise<NamedDescriptor[]>;
  /**
   * A name ("app:1"), a digest, or a unique digest prefix of a stored ref; undefined when
   * nothing matches.
   */
  resolve(nameOrDigest: string): Promise<Descriptor | undefined>;
  /** Points the (normalised) name at `desc`, replacing what it pointed at. */
  setRef(name: string, desc: Descriptor): Promise<void>;
  /** False when the name was not there. */
  deleteRef(name: string): Promise<boolean>;
}

export interface Lease {
  /** Blobs (by digest) this process is about to write or use. */
  add(...digests: string[]): Promise<void>;
  /**
   * Unpacked layers (by diff id) and cache mounts (by directory name) this process is about
   * to use: once this resolves, no prune removes them until the lease is released. Call it
   * before checking whether they exist.
   */
  protect(what: { layers?: string[]; mounts?: string[] }): Promise<void>;
  release(): Promise<void>;
}

/** What the leases of running processes hold. */
export interface Leased {
  digests: Set<string>;
  /** Hex of the diff ids of unpacked layers. */
  layers: Set<string>;
  /** Names of cache mount directories. */
  mounts: Set<string>;
  /** When the oldest live lease was taken (ms since the epoch). */
  oldestStart: number;
}

export interface LeaseManager {
  lease(): Promise<Lease>;
  /** What live leases hold; leases of dead processes are removed. */
  leased(): Promise<Leased>;
}

export interface GcOptions {
  /** Blobs modified less than this many milliseconds ago survive (protects in-flight writes). Default 0. */
  keepNewerThanMs?: number;
}

export interface GcResult {
  removedBlobs: number;
  freedBytes: number;
}

export interface GarbageCollector {
  /**
   * Removes every blob not reachable (oci/walk.ts) from the refs, from `extraRootDigests` or from
   * live leases, and what dead processes left in the temp dir.
   */
  gc(extraRootDigests?: string[], options?: GcOptions): Promise<GcResult>;
}

/** All of the roles: what the local store is. */
export interface ContentStoreRoles extends Provider, StagingIngester, RefStore, LeaseManager, GarbageCollector {}

/**
 * A Provider that reads each blob from the first of `providers` that has it (a local store in
 * front of a registry, say): a layer can then live in either, or both.
 */
export function fallbackProvider(...providers: Provider[]): Provider {
  if (providers.length === 0) throw new Error('fallbackProvider needs at least one provider');
  const holder = async (digest: string): Promise<Provider> => {
    for (const p of providers) if (await p.hasBlob(digest)) return p;
    // none has it: the first one's read raises its "missing" error
    return providers[0];
  };
  return {
    info: async (digest) => {
      for (const p of providers) {
        const i = await p.info(digest);
        if (i) return i;
      }
      return undefined;
    },
    hasBlob: async (digest) => {
      for (const p of providers) if (await p.hasBlob(digest)) return true;
      return false;
    },
    readBlob: async (digest) => (await holder(digest)).readBlob(digest),
    readJSON: async <T>(digest: string) => (await holder(digest)).readJSON<T>(digest),
    openBlob: (digest) => {
      const out = new PassThrough();
      holder(digest).then(
        (p) => {
          const src = p.openBlob(digest);
          src.on('error', (e) => out.destroy(e));
          src.pipe(out);
        },
        (e: Error) => out.destroy(e),
      );
      return out;
    },
  };
}
