/**
 * Attestation manifests in an image index, as BuildKit's image exporter writes them
 * (docs/attestations/attestation-storage.md, the default form without `oci-artifact=true`):
 * for each platform manifest, one OCI image manifest whose layers are in-toto statements
 * (`application/vnd.in-toto+json`, each annotated with its `in-toto.io/predicate-type`) and
 * whose config is an image config for `unknown/unknown` listing those layers as diff ids; its
 * index entry has platform unknown/unknown and the annotations
 * `vnd.docker.reference.type=attestation-manifest` and `vnd.docker.reference.digest=<the
 * platform manifest>`, after every image manifest. A single manifest becomes an index of it and
 * its attestation manifest, as buildx makes it. Same statements, same bytes.
 */
import { KilnError } from '../errors.js';
import type { ContentStore, Lease } from '../oci/store.js';
import { MediaType, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest, type Platform } from '../oci/types.js';
import { isIndexType, isManifestType, writeIndex } from '../oci/walk.js';
import { IN_TOTO_MEDIA_TYPE, PREDICATE_TYPE_ANNOTATION, type Statement } from './intoto.js';

export const REFERENCE_TYPE_ANNOTATION = 'vnd.docker.reference.type';
export const REFERENCE_DIGEST_ANNOTATION = 'vnd.docker.reference.digest';
export const ATTESTATION_MANIFEST = 'attestation-manifest';
export const ATTESTATION_PLATFORM: Platform = { architecture: 'unknown', os: 'unknown' };

/** Whether an index entry is an attestation manifest (BuildKit's annotation says so). */
export function isAttestationEntry(d: Descriptor): boolean {
  return d.annotations?.[REFERENCE_TYPE_ANNOTATION] === ATTESTATION_MANIFEST;
}

/** The statement's bytes as stored: compact JSON in the statement's own field order. */
export function statementBytes(s: Statement): Buffer {
  return Buffer.from(JSON.stringify(s));
}

/** Writes one attestation manifest (statements, config, manifest) for `target`; returns its index entry. */
export async function writeAttestationManifest(store: ContentStore, lease: Lease, target: Descriptor, statements: Statement[]): Promise<Descriptor> {
  const layers: Descriptor[] = [];
  for (const s of statements) {
    const { digest, size } = await store.writeBlob(statementBytes(s));
    await lease.add(digest);
    layers.push({ mediaType: IN_TOTO_MEDIA_TYPE, digest, size, annotations: { [PREDICATE_TYPE_ANNOTATION]: s.predicateType } });
  }
  const config = {
    architecture: ATTESTATION_PLATFORM.architecture,
    os: ATTESTATION_PLATFORM.os,
    config: {},
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
  };
  const configDescriptor = await store.writeJSON(config, MediaType.ociConfig);
  await lease.add(configDescriptor.digest);
  const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.ociManifest, config: configDescriptor, layers };
  const written = await store.writeJSON(manifest, MediaType.ociManifest);
  await lease.add(written.digest);
  return {
    ...written,
    annotations: { [REFERENCE_DIGEST_ANNOTATION]: target.digest, [REFERENCE_TYPE_ANNOTATION]: ATTESTATION_MANIFEST },
    platform: ATTESTATION_PLATFORM,
  };
}

/** The platform of a stored image manifest, read from its config. */
async function manifestPlatform(store: ContentStore, d: Descriptor): Promise<Platform> {
  const manifest = await store.readJSON<ImageManifest>(d.digest);
  const config = await store.readJSON<ImageConfig>(manifest.config.digest);
  return { architecture: config.architecture, os: config.os, ...(config.variant ? { variant: config.variant } : {}) };
}

/**
 * The index `top` with an attestation manifest for each platform manifest `statements` names
 * (an earlier attestation manifest of that platform manifest is replaced), kept under `lease`.
 * The index's own annotations and its entries' stay as they are.
 */
export async function attachAttestations(store: ContentStore, lease: Lease, top: Descriptor, statements: Map<string, Statement[]>): Promise<Descriptor> {
  let entries: Descriptor[];
  let annotations: Record<string, string> | undefined;
  if (isIndexType(top.mediaType)) {
    const index = await store.readJSON<ImageIndex>(top.digest);
    entries = index.manifests;
    annotations = index.annotations;
  } else if (isManifestType(top.mediaType)) {
    entries = [{ mediaType: top.mediaType, digest: top.digest, size: top.size, platform: await manifestPlatform(store, top) }];
  } else {
    throw new KilnError(`cannot attach attestations to ${top.mediaType} ${top.digest}: it is not an image manifest or index`, { code: 'unsupported' });
  }
  const images = entries.filter((e) => !isAttestationEntry(e));
  const kept = entries.filter((e) => isAttestationEntry(e) && !statements.has(e.annotations![REFERENCE_DIGEST_ANNOTATION]));
  for (const digest of statements.keys()) {
    if (!images.some((e) => e.digest === digest)) throw new KilnError(`cannot attach attestations to ${digest}: ${top.digest} has no such image manifest`, { code: 'invalid' });
  }
  const made: Descriptor[] = [];
  for (const image of images) {
    const list = statements.get(image.digest);
    if (list?.length) made.push(await writeAttestationManifest(store, lease, image, list));
  }
  const index = await writeIndex(store, [...images, ...kept, ...made], annotations ? { annotations } : {});
  await lease.add(index.digest);
  return index;
}
