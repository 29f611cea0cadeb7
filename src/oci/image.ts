import { Readable } from 'node:stream';
import { KilnError } from '../errors.js';
import { displayName } from './reference.js';
import { formatPlatform, hostPlatform, platformMatches } from './platform.js';
import { canonicalJSON } from './canonical.js';
import type { Provider, RefStore, StagingIngester } from './content.js';
import { digestOf, verifyingStream } from './digest.js';
import { decompress } from './tar.js';
import { isIndexType, isManifestType, walk, type ManifestSource } from './walk.js';
import { MediaType, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest, type Platform } from './types.js';

export interface LoadedImage {
  /** The name as stored ("app:1"), or the input when it was a digest. */
  name: string;
  manifestDescriptor: Descriptor;
  manifest: ImageManifest;
  config: ImageConfig;
  configDescriptor: Descriptor;
  /** Set when the name pointed at an index and a manifest was picked from it. */
  indexDescriptor?: Descriptor;
}

/**
 * Loads the image a name (or digest) refers to. A ref to an index yields the manifest for
 * `platform` (default: this machine's); attestation manifests are never picked.
 */
export async function loadImage(store: Provider & RefStore, name: string, platform: Platform = hostPlatform()): Promise<LoadedImage> {
  const shown = displayName(name);
  const desc = (await store.resolve(name)) ?? (await resolveByImageId(store, name));
  if (!desc) {
    throw new KilnError(`image ${shown} not found in the store; build it, or kiln load/import it`, {
      code: 'not-found',
      hint: 'kiln images lists what the store holds',
    });
  }
  let manifestDescriptor = desc;
  let indexDescriptor: Descriptor | undefined;
  if (isIndexType(desc.mediaType)) {
    indexDescriptor = desc;
    manifestDescriptor = chooseManifest(await store.readJSON<ImageIndex>(desc.digest), platform, `image ${shown}`);
  } else if (!isManifestType(desc.mediaType)) {
    throw new KilnError(`${shown} refers to ${desc.mediaType}, which is not an image manifest or index`, { code: 'unsupported' });
  }
  const manifest = await store.readJSON<ImageManifest>(manifestDescriptor.digest);
  if (!manifest || typeof manifest !== 'object' || !manifest.config || !Array.isArray(manifest.layers)) {
    throw new KilnError(`manifest ${manifestDescriptor.digest} of ${shown} is malformed (no config or layers)`, { code: 'invalid' });
  }
  const configDescriptor = manifest.config;
  const config = await store.readJSON<ImageConfig>(configDescriptor.digest);
  return { name: shown, manifestDescriptor, manifest, config, configDescriptor, indexDescriptor };
}

/** The annotations BuildKit puts on an attestation manifest's index entry. */
export const ReferenceTypeAnnotation = 'vnd.docker.reference.type';
export const ReferenceDigestAnnotation = 'vnd.docker.reference.digest';

/** Whether an index entry is an attestation manifest (never an image to run, pull or build on). */
export function isAttestationManifest(d: Descriptor): boolean {
  return d.annotations?.[ReferenceTypeAnnotation] === 'attestation-manifest';
}

/** The attestation manifests an index lists for its manifest `manifestDigest`. */
export function attestationsFor(index: ImageIndex, manifestDigest: string): Descriptor[] {
  return (Array.isArray(index.manifests) ? index.manifests : []).filter((m) => isAttestationManifest(m) && m.annotations?.[ReferenceDigestAnnotation] === manifestDigest);
}

/**
 * The manifest of an index for `platform` (attestation manifests are never picked; a lone
 * manifest without a platform is taken). A KilnError naming `what` and the platforms the
 * index has when none matches.
 */
export function chooseManifest(index: ImageIndex, platform: Platform, what: string): Descriptor {
  const candidates = (Array.isArray(index.manifests) ? index.manifests : []).filter(
    (m) => isManifestType(m.mediaType) && !isAttestationManifest(m),
  );
  const pick = candidates.find((m) => platformMatches(platform, m.platform)) ?? (candidates.length === 1 && !candidates[0].platform ? candidates[0] : undefined);
  if (!pick) {
    const have = candidates.map((m) => (m.platform ? formatPlatform(m.platform) : 'unknown')).join(', ');
    throw new KilnError(`${what} has no manifest for ${formatPlatform(platform)} (it has: ${have || 'none'})`, {
      code: 'not-found',
      hint: 'build or pull it for this platform, or choose another platform (--platform)',
    });
  }
  return pick;
}

/**
 * An image id as docker shows it (the config digest, or a prefix of its hex of at least
 * 4 digits) → the manifest of the named image that has that config.
 */
export async function resolveByImageId(store: Provider & RefStore, id: string): Promise<Descriptor | undefined> {
  const hex = id.replace(/^sha256:/, '');
  if (!/^[0-9a-f]{4,64}$/.test(hex)) return undefined;
  for (const { descriptor } of await store.listRefs()) {
    // a multi-platform image's id is its index digest (kiln images, kiln build -q)
    if (isIndexType(descriptor.mediaType) && descriptor.digest.slice(7).startsWith(hex)) return descriptor;
    if (!isManifestType(descriptor.mediaType)) continue;
    const manifest = await store.readJSON<ImageManifest>(descriptor.digest).catch(() => undefined);
    if (manifest?.config?.digest.slice(7).startsWith(hex)) return descriptor;
  }
  return undefined;
}

export interface ImageToWrite {
  config: ImageConfig;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

/** Writes config + manifest (OCI media types) and points every name at the manifest. */
/** An image's config and manifest written to temp files, not yet fsynced nor in blobs/. */
export interface PreparedImage {
  manifestDescriptor: Descriptor;
  configDescriptor: Descriptor;
  /** Temp files to commit (ContentStore.commitUnsynced) before the image is named. */
  unsynced: Array<{ tmp: string; digest: string }>;
}

/**
 * Writes an image's config and manifest as temp files, so a caller can make them durable in
 * the same fsync round as the layers it is committing.
 */
export async function prepareImage(store: Pick<Provider, 'hasBlob'> & StagingIngester, image: ImageToWrite): Promise<PreparedImage> {
  if (image.config.rootfs.diff_ids.length !== image.layers.length) {
    throw new Error(`writeImage: ${image.layers.length} layers but ${image.config.rootfs.diff_ids.length} diff_ids`);
  }
  const configJSON = canonicalJSON(image.config);
  const configDescriptor: Descriptor = { mediaType: MediaType.ociConfig, digest: digestOf(configJSON), size: Buffer.byteLength(configJSON) };
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: configDescriptor,
    layers: image.layers,
  };
  if (image.annotations && Object.keys(image.annotations).length > 0) manifest.annotations = image.annotations;
  const manifestJSON = canonicalJSON(manifest);
  const manifestDescriptor: Descriptor = { mediaType: MediaType.ociManifest, digest: digestOf(manifestJSON), size: Buffer.byteLength(manifestJSON) };
  const unsynced: Array<{ tmp: string; digest: string }> = [];
  for (const [json, d] of [
    [configJSON, configDescriptor],
    [manifestJSON, manifestDescriptor],
  ] as const) {
    if (await store.hasBlob(d.digest)) continue;
    unsynced.push({ tmp: await store.writeTempUnsynced(json), digest: d.digest });
  }
  return { manifestDescriptor, configDescriptor, unsynced };
}

export async function writeImage(
  store: Pick<Provider, 'hasBlob'> & StagingIngester & RefStore,
  image: ImageToWrite,
  names: string[],
): Promise<{ manifestDescriptor: Descriptor; configDescriptor: Descriptor }> {
  const prepared = await prepareImage(store, image);
  await store.commitUnsynced(prepared.unsynced);
  for (const name of names) await store.setRef(name, prepared.manifestDescriptor);
  return { manifestDescriptor: prepared.manifestDescriptor, configDescriptor: prepared.configDescriptor };
}

/**
 * Bytes the image occupies in the store (compressed): the manifest, its config and layers; for an
 * index, the index plus every distinct blob of its manifests.
 */
export async function imageSize(store: ManifestSource, descriptor: Descriptor): Promise<number> {
  let total = 0;
  await walk(store, [descriptor], (node) => void (total += node.descriptor.size ?? 0));
  return total;
}

// ---- lazy accessors ------------------------------------------------------------------------

/**
 * One layer of an image, read only when asked (go-containerregistry's v1.Layer): what the
 * manifest and config say about it is at hand; its bytes come from a Provider, which may be
 * the local store, a registry, or one in front of the other (fallbackProvider).
 */
export interface Layer {
  /** The descriptor the manifest lists. */
  descriptor(): Descriptor;
  /** Digest of the blob as stored (compressed). */
  digest(): string;
  /** Digest of the uncompressed tar (the config's rootfs.diff_ids entry). */
  diffId(): string;
  /** Size of the blob as stored. */
  size(): number;
  mediaType(): string;
  /** The blob as stored, verified against digest() (the stream errors at the end otherwise). */
  compressed(): Readable;
  /** The uncompressed tar (gzip, zstd or plain underneath), verified against diffId(). */
  uncompressed(): Readable;
}

/** An image manifest and what it refers to, read only when asked (go-containerregistry's v1.Image). */
export interface Image {
  /** The manifest's descriptor. */
  descriptor(): Descriptor;
  digest(): string;
  manifest(): Promise<ImageManifest>;
  configDescriptor(): Promise<Descriptor>;
  config(): Promise<ImageConfig>;
  /** The layers, lowest first, each with its diff id from the config. */
  layers(): Promise<Layer[]>;
  /** Bytes of the manifest, config and layers as stored. */
  size(): Promise<number>;
}

/** A layer whose bytes `provider` holds under descriptor.digest. */
export function layerFrom(provider: Pick<Provider, 'openBlob'>, descriptor: Descriptor, diffId: string): Layer {
  return {
    descriptor: () => descriptor,
    digest: () => descriptor.digest,
    diffId: () => diffId,
    size: () => descriptor.size,
    mediaType: () => descriptor.mediaType,
    compressed: () => provider.openBlob(descriptor.digest),
    uncompressed: () => {
      const check = verifyingStream(
        diffId,
        (actual) =>
          new KilnError(`layer ${descriptor.digest}: its uncompressed content hashes to ${actual}, expected ${diffId}`, {
            hint: 'the layer blob is corrupt or does not belong to this image; rebuild, or pull/load it again',
          }),
      );
      const src = Readable.from(decompress(provider.openBlob(descriptor.digest)));
      src.on('error', (e) => check.destroy(e));
      return src.pipe(check);
    },
  };
}

/** The image whose manifest is `manifestDescriptor`, read from `provider` on first use (and once). */
export function imageFrom(provider: Provider, manifestDescriptor: Descriptor, known: { manifest?: ImageManifest; config?: ImageConfig } = {}): Image {
  let manifest: Promise<ImageManifest> | undefined = known.manifest && Promise.resolve(known.manifest);
  let config: Promise<ImageConfig> | undefined = known.config && Promise.resolve(known.config);
  const getManifest = (): Promise<ImageManifest> =>
    (manifest ??= provider.readJSON<ImageManifest>(manifestDescriptor.digest).then((m) => {
      if (!m || typeof m !== 'object' || !m.config || !Array.isArray(m.layers)) {
        throw new KilnError(`manifest ${manifestDescriptor.digest} is malformed (no config or layers)`);
      }
      return m;
    }));
  const getConfig = (): Promise<ImageConfig> => (config ??= getManifest().then((m) => provider.readJSON<ImageConfig>(m.config.digest)));
  return {
    descriptor: () => manifestDescriptor,
    digest: () => manifestDescriptor.digest,
    manifest: getManifest,
    configDescriptor: async () => (await getManifest()).config,
    config: getConfig,
    layers: async () => {
      const [m, c] = await Promise.all([getManifest(), getConfig()]);
      const diffIds = c.rootfs?.diff_ids ?? [];
      if (diffIds.length !== m.layers.length) {
        throw new KilnError(`image ${manifestDescriptor.digest} lists ${m.layers.length} layers but its config ${diffIds.length} diff ids`, {
          hint: 'the image is malformed: rebuild it, or pull/load it again',
        });
      }
      return m.layers.map((l, i) => layerFrom(provider, l, diffIds[i]));
    },
    size: () => imageSize(provider, manifestDescriptor),
  };
}

/** The lazy form of an image loadImage found (its manifest and config are already read). */
export function imageOf(provider: Provider, loaded: LoadedImage): Image {
  return imageFrom(provider, loaded.manifestDescriptor, { manifest: loaded.manifest, config: loaded.config });
}
