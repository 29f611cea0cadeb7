import { KilnError } from '../errors.js';
import { displayName } from './reference.js';
import { formatPlatform, hostPlatform, platformMatches } from './platform.js';
import { canonicalJSON } from './canonical.js';
import { digestOf } from './digest.js';
import { isIndexType, isManifestType, type ContentStore } from './store.js';
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
export async function loadImage(store: ContentStore, name: string, platform: Platform = hostPlatform()): Promise<LoadedImage> {
  const shown = displayName(name);
  const desc = (await store.resolve(name)) ?? (await resolveByImageId(store, name));
  if (!desc) {
    throw new KilnError(`image ${shown} not found in the store; build it, or kiln load/import it`, {
      hint: 'kiln images lists what the store holds',
    });
  }
  let manifestDescriptor = desc;
  let indexDescriptor: Descriptor | undefined;
  if (isIndexType(desc.mediaType)) {
    indexDescriptor = desc;
    const index = await store.readJSON<ImageIndex>(desc.digest);
    const candidates = index.manifests.filter(
      (m) => isManifestType(m.mediaType) && m.annotations?.['vnd.docker.reference.type'] !== 'attestation-manifest',
    );
    const pick = candidates.find((m) => platformMatches(platform, m.platform)) ?? (candidates.length === 1 && !candidates[0].platform ? candidates[0] : undefined);
    if (!pick) {
      const have = candidates.map((m) => (m.platform ? formatPlatform(m.platform) : 'unknown')).join(', ');
      throw new KilnError(`image ${shown} has no manifest for ${formatPlatform(platform)} (it has: ${have || 'none'})`, {
        hint: 'build or pull it for this platform, or choose another platform',
      });
    }
    manifestDescriptor = pick;
  } else if (!isManifestType(desc.mediaType)) {
    throw new KilnError(`${shown} refers to ${desc.mediaType}, which is not an image manifest or index`);
  }
  const manifest = await store.readJSON<ImageManifest>(manifestDescriptor.digest);
  if (!manifest || typeof manifest !== 'object' || !manifest.config || !Array.isArray(manifest.layers)) {
    throw new KilnError(`manifest ${manifestDescriptor.digest} of ${shown} is malformed (no config or layers)`);
  }
  const configDescriptor = manifest.config;
  const config = await store.readJSON<ImageConfig>(configDescriptor.digest);
  return { name: shown, manifestDescriptor, manifest, config, configDescriptor, indexDescriptor };
}

/**
 * An image id as docker shows it (the config digest, or a prefix of its hex of at least
 * 4 digits) → the manifest of the named image that has that config.
 */
export async function resolveByImageId(store: ContentStore, id: string): Promise<Descriptor | undefined> {
  const hex = id.replace(/^sha256:/, '');
  if (!/^[0-9a-f]{4,64}$/.test(hex)) return undefined;
  for (const { descriptor } of await store.listRefs()) {
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
export async function prepareImage(store: ContentStore, image: ImageToWrite): Promise<PreparedImage> {
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
  store: ContentStore,
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
export async function imageSize(store: ContentStore, descriptor: Descriptor): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const add = (d: Descriptor): boolean => {
    if (seen.has(d.digest)) return false;
    seen.add(d.digest);
    total += d.size;
    return true;
  };
  const visit = async (d: Descriptor): Promise<void> => {
    if (!add(d)) return;
    if (isIndexType(d.mediaType)) {
      const index = await store.readJSON<ImageIndex>(d.digest);
      for (const m of index.manifests) await visit(m);
    } else if (isManifestType(d.mediaType)) {
      const manifest = await store.readJSON<ImageManifest>(d.digest);
      add(manifest.config);
      for (const l of manifest.layers) add(l);
    }
  };
  await visit(descriptor);
  return total;
}
