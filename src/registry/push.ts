/**
 * Pushing a stored image to a registry: every blob the image reaches, then its manifests, the
 * tag last, so a push that fails or is interrupted never leaves a tag naming missing blobs.
 *
 * Layers the store keeps uncompressed (what builds make) go out gzipped: their gzip variant
 * (oci/layer.ts layerVariant: deterministic multi-member gzip, made once and remembered) is
 * uploaded instead, and the manifest is rewritten to name it. So the pushed manifest differs
 * from the local one when the image was built here, and is the same on every machine that
 * pushes the same image. How the two relate:
 * - the local name keeps pointing at the local manifest (plain layers: what runs and later
 *   builds unpack fastest); the config, so the image ID, is the same in both;
 * - the pushed manifest is also written to the store (a derived document: GC may drop it, the
 *   next push makes the same bytes again) and its blobs, the gzip variants, stay with the
 *   layer's other forms;
 * - `host/repo@sha256:<pushed>` is recorded as a repo digest of the local manifest (and of
 *   the pushed one), as docker records RepoDigests: `kiln images --digests` shows it.
 * Images with docker media types, or layers already compressed, are pushed byte for byte.
 */
import { createReadStream } from 'node:fs';
import { KilnError, errorCode } from '../errors.js';
import { canonicalJSON } from '../oci/canonical.js';
import { loadImage, resolveByImageId } from '../oci/image.js';
import { layerVariant } from '../oci/layer.js';
import { parseCanonicalReference, parseReference, familiarRepository } from '../oci/reference.js';
import type { ContentStore } from '../oci/store.js';
import { MediaType, type Descriptor, type ImageIndex, type ImageManifest } from '../oci/types.js';
import { walk, type WalkNode } from '../oci/walk.js';
import { blobSources, recordBlobSources, recordRepoDigest } from './sources.js';
import type { PushBlobResult, RemoteRepository, TransferEvent } from './types.js';

export interface PushOptions {
  /** The kiln root (where blob sources and repo digests are remembered); default store.root. */
  root?: string;
  store: ContentStore;
  /** Gives the destination repository (a RegistryClient from registry/settings.ts). */
  client: { repository(ref: string): RemoteRepository };
  /** A stored name, a digest (or unique prefix) of a stored image, an image ID, or a descriptor. */
  source: string | Descriptor;
  /** Where to: "host/repo:tag" (no tag: latest), or "host/repo@sha256:…" to push by digest only. */
  ref: string;
  progress?: (event: TransferEvent) => void;
  /** Why an image is pushed other than as stored (an index with platforms not in the store). */
  warn?: (message: string) => void;
  signal?: AbortSignal;
  /** Blobs uploaded (and layers compressed) at once. Default 4. */
  concurrency?: number;
  /** Blobs larger than this are uploaded in PATCH chunks of it (the client's default otherwise). */
  chunkSize?: number;
}

export interface PushedBlob {
  digest: string;
  size: number;
  kind: 'config' | 'layer';
  result: PushBlobResult;
  /** With 'mounted': the repositories on the host it was offered from. */
  mountFrom?: string[];
  /** The layer was gzipped for this push (false: stored that way, or its variant remembered). */
  compressed: boolean;
  /** The layer as the store keeps it, when the push sent another form of it. */
  localDigest?: string;
}

export interface PushResult {
  /** The pushed manifest (or index). */
  descriptor: Descriptor;
  digest: string;
  /** "localhost:5000/app:1@sha256:…" (the tag left out when pushed by digest). */
  reference: string;
  /** "localhost:5000/app@sha256:…", as recorded for `kiln images --digests`. */
  repoDigest: string;
  /** The tag put, undefined when pushed by digest. */
  tag?: string;
  /** The local image pushed (the name's manifest or index). */
  localDescriptor: Descriptor;
  /** Every blob, in the order the image lists them (each digest once). */
  blobs: PushedBlob[];
  /** Manifests put, in order (an index's manifests first, the tagged one last). */
  manifests: Descriptor[];
}

const DEFAULT_CONCURRENCY = 4;
/** Repositories offered for a cross-repository mount. */
const MOUNT_CANDIDATES = 3;

function interrupted(where: string): KilnError {
  return new KilnError(`push to ${where} interrupted: no manifest was put, so no tag points at it`, {
    code: 'cancelled',
    exitCode: 130,
    hint: 'run the push again: blobs already uploaded are skipped',
  });
}

/** What the source names, as a descriptor of the store. */
async function resolveSource(store: ContentStore, source: string | Descriptor): Promise<Descriptor> {
  if (typeof source !== 'string') return source;
  const d = (await store.resolve(source)) ?? (await resolveByImageId(store, source));
  if (!d) {
    throw new KilnError(`image ${source} not found in the store`, {
      code: 'not-found',
      hint: 'kiln images lists what the store holds; build, pull or load it first',
    });
  }
  return d;
}

/** One blob to upload: the stored one, or (for a plain layer) the gzip variant made for it. */
interface BlobJob {
  stored: Descriptor;
  kind: 'config' | 'layer';
  /** The descriptor pushed (set once the job prepared it). */
  pushed?: Descriptor;
  result?: PushedBlob;
}

export async function pushImage(options: PushOptions): Promise<PushResult> {
  const { store } = options;
  const root = options.root ?? store.root;
  const dest = parseReference(options.ref);
  const canonical = parseCanonicalReference(options.ref);
  const shownRepo = familiarRepository(dest.repository);
  const where = `${shownRepo}${dest.tag !== undefined ? `:${dest.tag}` : ''}`;
  const tag = dest.tag ?? (dest.digest === undefined ? 'latest' : undefined);
  const repo = options.client.repository(canonical.repository);
  const emit = options.progress ?? (() => undefined);
  if (options.signal?.aborted) throw interrupted(where);

  const local = await resolveSource(store, options.source);
  const lease = await store.lease();
  try {
    // everything the image reaches; an index whose platforms are not all here pushes the
    // platform this machine runs (as skopeo copy does without --all)
    const nodes = new Map<string, WalkNode>();
    const absent: string[] = [];
    const collect = async (from: Descriptor): Promise<void> => {
      nodes.clear();
      absent.length = 0;
      await walk(
        store,
        [from],
        async (node) => {
          if ((node.kind === 'config' || node.kind === 'layer') && !(await store.hasBlob(node.descriptor.digest))) {
            throw new KilnError(`${node.kind} ${node.descriptor.digest} of ${typeof options.source === 'string' ? options.source : local.digest} is missing from the store`, {
              code: 'not-found',
              hint: 'the image is incomplete: rebuild, or pull/load it again',
            });
          }
          nodes.set(node.descriptor.digest, node);
        },
        {
          missing: (node) => {
            if (node.parent?.kind !== 'index') return 'error';
            absent.push(node.descriptor.digest);
            return 'skip';
          },
        },
      );
    };
    let pushedFrom = local;
    await collect(local);
    if (absent.length > 0) {
      const one = await loadImage(store, local.digest);
      options.warn?.(
        `${typeof options.source === 'string' ? options.source : local.digest} is an index with ${absent.length} platform(s) not in the store: pushing only its ${one.config.os}/${one.config.architecture} manifest`,
      );
      pushedFrom = one.manifestDescriptor;
      await collect(pushedFrom);
    }
    const [indexes, manifests] = [[...nodes.values()].filter((n) => n.index), [...nodes.values()].filter((n) => n.manifest)];

    // one job per distinct blob: configs and layers
    const jobs = new Map<string, BlobJob>();
    for (const m of manifests) {
      const doc = m.manifest!;
      if (!jobs.has(doc.config.digest)) jobs.set(doc.config.digest, { stored: doc.config, kind: 'config' });
      for (const l of doc.layers) if (!jobs.has(l.digest)) jobs.set(l.digest, { stored: l, kind: 'layer' });
    }

    const stop = new AbortController();
    const onAbort = (): void => stop.abort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await runPool([...jobs.values()], options.concurrency ?? DEFAULT_CONCURRENCY, stop, async (job) => {
        let pushed = job.stored;
        let compressed = false;
        if (job.kind === 'layer' && job.stored.mediaType === MediaType.ociLayerTar) {
          const v = await layerVariant(store, { descriptor: job.stored, diffId: job.stored.digest }, 'gzip');
          pushed = v.descriptor;
          compressed = !v.reused;
          await lease.add(pushed.digest);
        }
        job.pushed = pushed;
        if (stop.signal.aborted) throw interrupted(where);
        // progress names a blob by its digest (renderers show docker's 12 hex digits)
        const id = pushed.digest;
        const mountFrom = (await blobSources(root, repo.host, pushed.digest)).filter((r) => r !== repo.name).slice(0, MOUNT_CANDIDATES);
        emit({ type: 'transfer-start', id, action: 'push', total: pushed.size });
        let result: PushBlobResult;
        try {
          result = await repo.pushBlob(pushed, () => guarded(blobBytes(store, pushed.digest), stop.signal, () => interrupted(where)), {
            ...(mountFrom.length > 0 ? { mountFrom } : {}),
            ...(options.chunkSize ? { chunkSize: options.chunkSize } : {}),
            onProgress: (bytes) => emit({ type: 'transfer-progress', id, current: bytes, total: pushed.size }),
          });
        } catch (e) {
          emit({ type: 'transfer-error', id, message: (e as Error).message });
          throw e;
        }
        emit({ type: 'transfer-done', id, how: result === 'uploaded' ? 'done' : result });
        job.result = {
          digest: pushed.digest,
          size: pushed.size,
          kind: job.kind,
          result,
          ...(result === 'mounted' ? { mountFrom } : {}),
          compressed,
          ...(pushed.digest !== job.stored.digest ? { localDigest: job.stored.digest } : {}),
        };
      });
    } catch (e) {
      if (options.signal?.aborted || errorCode(e) === 'cancelled') throw interrupted(where);
      throw e;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
    const blobs = [...jobs.values()].map((j) => j.result!);
    await recordBlobSources(root, repo.host, repo.name, blobs.map((b) => b.digest));

    // the documents as pushed: manifests naming the pushed layers, indexes naming those
    const rewritten = new Map<string, { descriptor: Descriptor; bytes: Buffer }>();
    const document = async (d: Descriptor, value: object, changed: boolean): Promise<{ descriptor: Descriptor; bytes: Buffer }> => {
      if (!changed) return { descriptor: d, bytes: await store.readBlob(d.digest) };
      const written = await store.writeJSON(value, d.mediaType);
      await lease.add(written.digest);
      const bytes = Buffer.from(canonicalJSON(value));
      return { descriptor: { ...d, digest: written.digest, size: written.size }, bytes };
    };
    for (const m of manifests) {
      const doc = m.manifest!;
      const layers = doc.layers.map((l) => ({ ...l, mediaType: jobs.get(l.digest)!.pushed!.mediaType, digest: jobs.get(l.digest)!.pushed!.digest, size: jobs.get(l.digest)!.pushed!.size }));
      const changed = layers.some((l, i) => l.digest !== doc.layers[i].digest);
      const value: ImageManifest = { ...doc, layers };
      rewritten.set(m.descriptor.digest, await document(m.descriptor as Descriptor, value, changed));
    }
    // indexes below others first (the walk lists parents first)
    for (const n of [...indexes].reverse()) {
      const doc = n.index!;
      const entries = doc.manifests
        .filter((e) => nodes.has(e.digest))
        .map((e) => {
          const r = rewritten.get(e.digest)!;
          return { ...e, mediaType: r.descriptor.mediaType, digest: r.descriptor.digest, size: r.descriptor.size };
        });
      const changed = entries.some((e, i) => e.digest !== doc.manifests[i].digest);
      const value: ImageIndex = { ...doc, manifests: entries };
      rewritten.set(n.descriptor.digest, await document(n.descriptor as Descriptor, value, changed));
    }
    const top = rewritten.get(pushedFrom.digest)!;
    if (dest.digest !== undefined && dest.digest !== top.descriptor.digest) {
      throw new KilnError(`${options.ref} names digest ${dest.digest}, but the image pushes as ${top.descriptor.digest}`, {
        code: 'invalid',
        hint: `push it by tag, or as ${shownRepo}@${top.descriptor.digest}`,
      });
    }

    // manifests last: an index's manifests by digest, then the index, the top one under its tag
    const put: Descriptor[] = [];
    const order = [...manifests, ...[...indexes].reverse()].map((n) => n.descriptor.digest).filter((d) => d !== pushedFrom.digest);
    for (const original of [...order, pushedFrom.digest]) {
      if (options.signal?.aborted) throw interrupted(where);
      const r = rewritten.get(original)!;
      const mediaType = (JSON.parse(r.bytes.toString('utf8')) as { mediaType?: string }).mediaType ?? r.descriptor.mediaType;
      await repo.putManifest(original === pushedFrom.digest ? (tag ?? r.descriptor.digest) : r.descriptor.digest, { mediaType, bytes: r.bytes });
      put.push(r.descriptor);
    }

    const digest = top.descriptor.digest;
    const repoDigest = `${shownRepo}@${digest}`;
    await recordRepoDigest(root, local.digest, repoDigest);
    if (pushedFrom.digest !== local.digest) await recordRepoDigest(root, pushedFrom.digest, repoDigest);
    if (digest !== local.digest) await recordRepoDigest(root, digest, repoDigest);
    return {
      descriptor: { mediaType: top.descriptor.mediaType, digest, size: top.descriptor.size },
      digest,
      reference: `${shownRepo}${tag !== undefined ? `:${tag}` : ''}@${digest}`,
      repoDigest,
      ...(tag !== undefined ? { tag } : {}),
      localDescriptor: local,
      blobs,
      manifests: put,
    };
  } finally {
    await lease.release();
  }
}

/**
 * A stored blob's bytes for an upload, read in large pieces and not hashed here: the registry
 * checks the digest of what it receives (distribution refuses a PUT whose bytes do not match,
 * and the client says the local blob is corrupt), so hashing on both sides would only spend a
 * core on a second sha256 of every byte.
 */
async function* blobBytes(store: ContentStore, digest: string): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of createReadStream(store.blobPath(digest), { highWaterMark: 1 << 20 })) yield chunk as Buffer;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new KilnError(`blob ${digest} is missing from the store ${store.root}`, { code: 'not-found', hint: 'the image is incomplete: rebuild, or pull/load it again' });
    }
    throw e;
  }
}

/** The blob's bytes, ending the upload as soon as the push is stopped. */
async function* guarded(stream: AsyncIterable<Buffer>, signal: AbortSignal, error: () => Error): AsyncGenerator<Buffer> {
  for await (const chunk of stream) {
    if (signal.aborted) throw error();
    yield chunk;
  }
}

/**
 * Runs `work` on every item, `limit` at a time. The first failure stops the rest (`stop` is
 * aborted, so running uploads end and nothing new starts) and is thrown once every started
 * one has settled; an abort from outside is thrown as a cancellation.
 */
async function runPool<T>(items: T[], limit: number, stop: AbortController, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (next < items.length && !stop.signal.aborted) {
      const item = items[next++];
      try {
        await work(item);
      } catch (e) {
        failure ??= { error: e };
        stop.abort();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure) throw failure.error;
  if (stop.signal.aborted) throw new KilnError('push interrupted', { code: 'cancelled', exitCode: 130 });
}
