/**
 * Pulling an image from a registry into the local store: the reference resolved (a digest
 * wins over a tag and is verified), the platform's manifest chosen from an index, the config
 * and layers the store lacks downloaded a few at a time, each verified before it is committed,
 * then the manifest stored and named as the user wrote it, so the solver reads a pulled image
 * exactly as it reads an imported one. Also what `kiln inspect docker://` reads: a remote
 * image's manifest and config, no layers.
 */
import { errorCode, isErrnoError, KilnError } from '../errors.js';
import { attestationsFor, chooseManifest } from '../oci/image.js';
import { hostPlatform } from '../oci/platform.js';
import { normalizeName, parseCanonicalReference, parseReference, type CanonicalReference } from '../oci/reference.js';
import { buildIndex, isIndexType, isManifestType } from '../oci/walk.js';
import type { LeaseManager, Provider, RefStore, StagingIngester } from '../oci/content.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform } from '../oci/types.js';
import { recordBlobSources, recordRepoDigest } from './sources.js';
import type { RemoteManifest, RemoteRepository, TransferEvent } from './types.js';

/** What pulling needs of a registry client (RegistryClient). */
export interface RepositoryOpener {
  repository(ref: CanonicalReference | string): RemoteRepository;
}

/** The store roles a pull uses. */
export type PullStore = Provider & StagingIngester & RefStore & LeaseManager;

export interface PullOptions {
  root: string;
  store: PullStore;
  client: RepositoryOpener;
  /** As the user wrote it: "busybox", "localhost:5000/team/app:1", "app:1@sha256:…". */
  ref: string;
  /** Which manifest of an index (default: this machine's platform). */
  platform?: Platform;
  progress?: (ev: TransferEvent) => void;
  signal?: AbortSignal;
  /** Blobs downloaded at once (default 3, as docker's max-concurrent-downloads). */
  concurrency?: number;
}

export interface PulledLayer {
  digest: string;
  size: number;
  /** 'exists': the store had it, nothing was downloaded. */
  how: 'exists' | 'done';
}

export interface PullResult {
  /** The name the image is stored under ("busybox:latest", "localhost:5000/app@sha256:…"). */
  name: string;
  /** Registry host and repository path it came from. */
  host: string;
  repository: string;
  /** The manifest pulled (the platform's, for an index). */
  manifestDescriptor: Descriptor;
  /** The index the reference named, when it named one. */
  indexDigest?: string;
  /** The digest the registry serves the reference as (the index's, or the manifest's). */
  digest: string;
  /** config and layers, with whether each was downloaded */
  blobs: PulledLayer[];
  /** The name already pointed at this image before the pull. */
  upToDate: boolean;
  /**
   * The attestation manifests the index has for the pulled manifest, stored with their blobs.
   * A tag then names an index of the pulled manifest and them (the registry's index less the
   * other platforms, its annotations kept), so `kiln attestations` reads them after the pull.
   */
  attestations?: string[];
}

/** A remote image resolved to one platform's manifest: what pulling and inspecting share. */
export interface RemoteImage {
  repository: RemoteRepository;
  reference: CanonicalReference;
  /** What the reference names, as served (index or manifest). */
  top: RemoteManifest;
  /** The platform's manifest (top itself when it is not an index). */
  manifest: RemoteManifest;
  parsed: ImageManifest;
  index?: ImageIndex;
}

function parseJSON<T>(bytes: Buffer, what: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (e) {
    throw new KilnError(`${what} is not valid JSON`, { code: 'invalid', cause: e });
  }
}

/**
 * Whether a registry error is the network's (the host does not resolve, refuses, times out),
 * not an answer of the registry: a system error is somewhere in its cause chain.
 */
export function networkFailure(e: unknown): boolean {
  for (let c: unknown = e, depth = 0; c instanceof Error && depth < 8; c = c.cause, depth++) if (isErrnoError(c)) return true;
  return errorCode(e) === 'unavailable';
}

/** A registry's "manifest unknown" said in the reference's terms (what the registry lacks), its code kept. */
function remoteError(e: unknown, where: string, reference: string): unknown {
  if (!(e instanceof KilnError) || errorCode(e) !== 'not-found' || networkFailure(e)) return e;
  const what = reference.includes(':') ? `no manifest ${reference}` : `no tag ${JSON.stringify(reference)}`;
  return new KilnError(`${where} has ${what} (${e.message})`, {
    code: 'not-found',
    hint: 'check the name, tag and digest: kiln inspect docker://REF reads what a registry has',
    cause: e,
  });
}

/**
 * Resolves a reference on its registry to one manifest: the digest (verified) when the
 * reference has one, else the tag; an index gives the manifest for `platform`.
 */
export async function resolveRemoteImage(client: RepositoryOpener, ref: string, platform: Platform = hostPlatform()): Promise<RemoteImage> {
  const reference = parseCanonicalReference(ref);
  const repository = client.repository(reference);
  const where = `${repository.host}/${repository.name}`;
  const wanted = reference.digest ?? reference.tag ?? 'latest';
  const top = await repository.getManifest(wanted).catch((e: unknown) => {
    throw remoteError(e, where, wanted);
  });
  if (reference.digest !== undefined && top.descriptor.digest !== reference.digest) {
    throw new KilnError(`${ref}: ${where} served a manifest with digest ${top.descriptor.digest} for ${reference.digest}`, {
      code: 'invalid',
      hint: 'the registry served other content than the digest names; nothing was stored',
    });
  }
  let manifest = top;
  let index: ImageIndex | undefined;
  if (isIndexType(top.descriptor.mediaType)) {
    index = parseJSON<ImageIndex>(top.bytes, `the index of ${ref}`);
    const pick = chooseManifest(index, platform, `${ref} (${where}@${top.descriptor.digest})`);
    manifest = await repository.getManifest(pick.digest).catch((e: unknown) => {
      throw remoteError(e, where, pick.digest);
    });
    if (manifest.descriptor.digest !== pick.digest) {
      throw new KilnError(`${ref}: ${where} served ${manifest.descriptor.digest} for the manifest ${pick.digest} its index lists`, { code: 'invalid' });
    }
  }
  if (!isManifestType(manifest.descriptor.mediaType)) {
    throw new KilnError(`${ref}: ${where} serves ${manifest.descriptor.mediaType}, which is not an image manifest or index`, {
      code: 'unsupported',
      hint: 'kiln pulls OCI and Docker schema 2 images',
    });
  }
  const parsed = parseJSON<ImageManifest>(manifest.bytes, `the manifest ${manifest.descriptor.digest} of ${ref}`);
  if (!parsed || typeof parsed !== 'object' || !parsed.config?.digest || !Array.isArray(parsed.layers)) {
    throw new KilnError(`${ref}: the manifest ${manifest.descriptor.digest} is malformed (no config or layers)`, { code: 'invalid' });
  }
  return { repository, reference, top, manifest, parsed, index };
}

/** The config of a resolved remote image, read (verified) from its registry. */
export async function remoteConfig(image: RemoteImage): Promise<ImageConfig> {
  const bytes = await image.repository.provider().readBlob(image.parsed.config.digest);
  return parseJSON<ImageConfig>(bytes, `the config ${image.parsed.config.digest}`);
}

/** Runs `jobs` at most `limit` at a time; the first failure stops new ones and is thrown once the running ones settle. */
async function inParallel<T>(items: T[], limit: number, job: (item: T) => Promise<void>, signal?: AbortSignal): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      if (signal?.aborted) {
        failure = { error: signal.reason };
        return;
      }
      const item = items[next++];
      try {
        await job(item);
      } catch (e) {
        failure ??= { error: e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure) throw failure.error;
}

/** Pulls `ref` into the store (see the module comment). */
export async function pullImage(opts: PullOptions): Promise<PullResult> {
  const { store, root } = opts;
  opts.signal?.throwIfAborted();
  // the stored name, as written: "busybox" → "busybox:latest", "app:1@sha256:…" → "app:1",
  // "app@sha256:…" stays (a name by digest)
  const written = parseReference(opts.ref);
  const name = normalizeName(opts.ref);
  const image = await resolveRemoteImage(opts.client, opts.ref, opts.platform);
  const { repository, top, manifest, parsed } = image;
  // the pulled manifest's attestation manifests (BuildKit's layout): small, fetched with it
  const attestationEntries = image.index ? attestationsFor(image.index, manifest.descriptor.digest).filter((d) => isManifestType(d.mediaType)) : [];
  const attestations = await Promise.all(
    attestationEntries.map(async (d) => {
      const got = await repository.getManifest(d.digest).catch((e: unknown) => {
        throw remoteError(e, `${repository.host}/${repository.name}`, d.digest);
      });
      if (got.descriptor.digest !== d.digest) throw new KilnError(`${opts.ref}: the registry served ${got.descriptor.digest} for the attestation manifest ${d.digest}`, { code: 'invalid' });
      const doc = parseJSON<ImageManifest>(got.bytes, `the attestation manifest ${d.digest} of ${opts.ref}`);
      if (!doc?.config?.digest || !Array.isArray(doc.layers)) throw new KilnError(`${opts.ref}: the attestation manifest ${d.digest} is malformed (no config or layers)`, { code: 'invalid' });
      return { entry: d, got, blobs: [doc.config, ...doc.layers] };
    }),
  );
  const blobs = [parsed.config, ...parsed.layers];
  const attestationBlobs = attestations.flatMap((a) => a.blobs);
  const lease = await store.lease();
  try {
    // leased before the existence checks: a prune running now keeps what is found here
    await lease.add(top.descriptor.digest, manifest.descriptor.digest, ...blobs.map((b) => b.digest), ...attestations.map((a) => a.entry.digest), ...attestationBlobs.map((b) => b.digest));
    const results = new Map<string, PulledLayer>();
    const unique = [...new Map([...blobs, ...attestationBlobs].map((b) => [b.digest, b])).values()];
    const isLayerOfImage = new Set(parsed.layers.map((l) => l.digest));
    await inParallel(
      unique,
      opts.concurrency ?? 3,
      async (blob) => {
        const isLayer = isLayerOfImage.has(blob.digest);
        const emit = (ev: TransferEvent): void => {
          if (isLayer) opts.progress?.(ev);
        };
        if ((await store.hasBlob(blob.digest)) && (await store.touchBlob(blob.digest))) {
          emit({ type: 'transfer-start', id: blob.digest, action: 'pull', total: blob.size });
          emit({ type: 'transfer-done', id: blob.digest, how: 'exists' });
          results.set(blob.digest, { digest: blob.digest, size: blob.size, how: 'exists' });
          return;
        }
        emit({ type: 'transfer-start', id: blob.digest, action: 'pull', total: blob.size });
        try {
          await repository.fetchBlob(blob, store, {
            onProgress: (bytes) => emit({ type: 'transfer-progress', id: blob.digest, current: bytes, total: blob.size }),
          });
        } catch (e) {
          emit({ type: 'transfer-error', id: blob.digest, message: (e as Error).message });
          throw e;
        }
        emit({ type: 'transfer-done', id: blob.digest, how: 'done' });
        results.set(blob.digest, { digest: blob.digest, size: blob.size, how: 'done' });
      },
      opts.signal,
    );
    opts.signal?.throwIfAborted();
    // the manifest (and the index) last: a store never holds a manifest whose blobs are missing
    await store.writeBlob(manifest.bytes, manifest.descriptor.digest);
    for (const a of attestations) await store.writeBlob(a.got.bytes, a.entry.digest);
    if (top !== manifest) await store.writeBlob(top.bytes, top.descriptor.digest);
    // a name by digest names what the digest is (an index stays one); a tag names the platform's
    // manifest, or with attestations an index of it and them
    let named = written.digest !== undefined && written.tag === undefined ? top.descriptor : manifest.descriptor;
    if (named === manifest.descriptor && attestations.length > 0 && image.index) {
      const own = image.index.manifests.find((m) => m.digest === manifest.descriptor.digest)!;
      const index = buildIndex([own, ...attestations.map((a) => a.entry)], image.index.annotations ? { annotations: image.index.annotations } : {});
      named = await store.writeJSON(index, index.mediaType!);
      await lease.add(named.digest);
    }
    const namedDescriptor: Descriptor = { mediaType: named.mediaType, digest: named.digest, size: named.size };
    const before = await store.resolve(name).catch(() => undefined);
    await store.setRef(name, namedDescriptor);
    await Promise.all([
      recordRepoDigest(root, namedDescriptor.digest, `${written.repository}@${top.descriptor.digest}`),
      namedDescriptor.digest !== manifest.descriptor.digest ? recordRepoDigest(root, manifest.descriptor.digest, `${written.repository}@${top.descriptor.digest}`) : undefined,
      recordBlobSources(root, repository.host, repository.name, blobs.map((b) => b.digest)),
    ]);
    return {
      name,
      host: repository.host,
      repository: repository.name,
      manifestDescriptor: { mediaType: manifest.descriptor.mediaType, digest: manifest.descriptor.digest, size: manifest.descriptor.size },
      indexDigest: top !== manifest ? top.descriptor.digest : undefined,
      digest: top.descriptor.digest,
      blobs: blobs.map((b) => results.get(b.digest) ?? { digest: b.digest, size: b.size, how: 'exists' }),
      upToDate: before?.digest === namedDescriptor.digest,
      ...(attestations.length > 0 ? { attestations: attestations.map((a) => a.entry.digest) } : {}),
    };
  } finally {
    await lease.release();
  }
}
