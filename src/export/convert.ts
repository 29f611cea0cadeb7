/**
 * An image (a manifest, or an index of them) as one output wants it: its layers compressed
 * (`compression=`), its media types OCI or docker (`oci-mediatypes=`), annotations added where
 * BuildKit puts them. The documents that change are made here, in memory; an exporter writes
 * them into its archive, or `persist` puts them into the store (the image store, a push).
 * Nothing changes when nothing is asked: the result is the image itself.
 */
import { KilnError } from '../errors.js';
import { canonicalJSON } from '../oci/canonical.js';
import { Digester } from '../oci/digest.js';
import { attestationsFor } from '../oci/image.js';
import { layerVariant } from '../oci/layer.js';
import { formatPlatform, platformMatches } from '../oci/platform.js';
import type { ContentStore } from '../oci/store.js';
import { MediaType, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest, type Platform } from '../oci/types.js';
import { compressionOfMediaType, type LayerCompression } from '../oci/variants.js';
import { isIndexType, isManifestType } from '../oci/walk.js';
import type { AnnotationSpec } from './output-spec.js';
import type { ExportCompression } from './types.js';

/** docker's media type of an uncompressed layer (OCI's is MediaType.ociLayerTar). */
export const DockerLayerTar = 'application/vnd.docker.image.rootfs.diff.tar';

export interface ConvertOptions {
  /** Absent: every layer kept as it is stored (an archive or a push passes gzip). */
  compression?: ExportCompression;
  /** true: OCI media types; false: docker's; absent: as stored. */
  ociMediatypes?: boolean;
  annotations?: AnnotationSpec[];
}

export interface ConvertedImage {
  /** The top document as converted (the image's own descriptor when nothing changed). */
  descriptor: Descriptor;
  /** Documents made by the conversion, by digest (canonical JSON). */
  documents: Map<string, { descriptor: Descriptor; content: Buffer }>;
  /**
   * Annotations for the descriptor that names the top document (an OCI layout's index.json):
   * `index-descriptor` ones, or `manifest-descriptor` ones for a single manifest.
   */
  descriptorAnnotations: Record<string, string>;
}

function document(mediaType: string, value: unknown): { descriptor: Descriptor; content: Buffer } {
  const content = Buffer.from(canonicalJSON(value));
  const d = new Digester();
  d.update(content);
  return { descriptor: { mediaType, digest: d.digest(), size: content.length }, content };
}

/** The annotations of `target` that apply to `platform` (every platform's, then its own). */
function annotationsFor(specs: AnnotationSpec[], target: AnnotationSpec['target'], platform?: Platform): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of specs) if (s.target === target && !s.platform) out[s.key] = s.value;
  for (const s of specs) if (s.target === target && s.platform && platform && platformMatches(s.platform, platform)) out[s.key] = s.value;
  return out;
}

function layerType(compression: LayerCompression, oci: boolean, digest: string): string {
  if (oci) return compression === 'none' ? MediaType.ociLayerTar : compression === 'gzip' ? MediaType.ociLayerGzip : MediaType.ociLayerZstd;
  if (compression === 'zstd') {
    throw new KilnError(`layer ${digest} is zstd-compressed, which has no docker media type`, { code: 'unsupported', hint: 'drop oci-mediatypes=false, or add compression=gzip,force-compression=true' });
  }
  return compression === 'none' ? DockerLayerTar : MediaType.dockerLayerGzip;
}

/** Converts the image `top` (in `store`) as `options` say. */
export async function convertImage(store: ContentStore, top: Descriptor, options: ConvertOptions): Promise<ConvertedImage> {
  const specs = options.annotations ?? [];
  const documents = new Map<string, { descriptor: Descriptor; content: Buffer }>();
  const keep = (made: { descriptor: Descriptor; content: Buffer }): Descriptor => {
    documents.set(made.descriptor.digest, made);
    return made.descriptor;
  };
  const layerCache = new Map<string, Descriptor>();
  const want = options.compression;

  const convertLayer = async (layer: Descriptor, diffId: string | undefined): Promise<Descriptor> => {
    const have = compressionOfMediaType(layer.mediaType);
    // a layer of another kind (foreign, non-distributable) goes as it is
    if (have === undefined && layer.mediaType !== DockerLayerTar) return layer;
    const stored = have ?? 'none';
    let target: LayerCompression = stored;
    if (want && (stored === 'none' || (want.force && stored !== want.compression))) target = want.compression;
    let out = layer;
    // force-compression also compresses again a layer already in the asked compression (at the
    // asked level); an uncompressed one has only one form
    const again = want?.force === true && target === stored && stored !== 'none';
    if (target !== stored || again) {
      const key = `${layer.digest}:${target}:${want?.level ?? ''}:${again}`;
      let converted = layerCache.get(key);
      if (!converted) {
        if (!diffId) throw new KilnError(`layer ${layer.digest} has no diff id in its image config`, { hint: 'the image is malformed; rebuild it' });
        converted = (await layerVariant(store, { descriptor: { ...layer, mediaType: have === undefined ? MediaType.ociLayerTar : layer.mediaType }, diffId }, target, { level: want?.level, force: want?.force })).descriptor;
        layerCache.set(key, converted);
      }
      out = converted;
    }
    const oci = options.ociMediatypes ?? !out.mediaType.startsWith('application/vnd.docker.');
    const mediaType = layerType(target, oci, layer.digest);
    return mediaType === out.mediaType ? out : { ...out, mediaType };
  };

  const convertManifest = async (d: Descriptor, platformHint?: Platform): Promise<{ descriptor: Descriptor; platform: Platform }> => {
    const manifest = await store.readJSON<ImageManifest>(d.digest);
    const config = await store.readJSON<ImageConfig>(manifest.config.digest);
    const platform: Platform = platformHint ?? { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) };
    const diffIds = config.rootfs?.diff_ids ?? [];
    const layers: Descriptor[] = [];
    for (let i = 0; i < manifest.layers.length; i++) layers.push(await convertLayer(manifest.layers[i], diffIds[i] ?? (compressionOfMediaType(manifest.layers[i].mediaType) === 'none' ? manifest.layers[i].digest : undefined)));
    const oci = options.ociMediatypes ?? d.mediaType !== MediaType.dockerManifest;
    const mediaType = oci ? MediaType.ociManifest : MediaType.dockerManifest;
    const configType = oci ? MediaType.ociConfig : MediaType.dockerConfig;
    const annotations = { ...(manifest.annotations ?? {}), ...annotationsFor(specs, 'manifest', platform) };
    // fields are only added or changed where the conversion asks: an image that needs nothing
    // keeps its very bytes (and digest), whatever it omits
    const value: ImageManifest = {
      ...manifest,
      ...(manifest.mediaType !== undefined || mediaType !== d.mediaType ? { mediaType } : {}),
      config: configType === manifest.config.mediaType ? manifest.config : { ...manifest.config, mediaType: configType },
      layers,
      ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
    };
    const same = canonicalJSON(value) === canonicalJSON(manifest) && mediaType === d.mediaType;
    return { descriptor: same ? d : keep(document(mediaType, value)), platform };
  };

  const head = await store.readJSON<ImageIndex | ImageManifest>(top.digest);
  const indexOnly = specs.filter((s) => s.target === 'index' || s.target === 'index-descriptor');
  if (isManifestType(top.mediaType) || (!isIndexType(top.mediaType) && 'config' in head)) {
    if (indexOnly.length > 0) {
      throw new KilnError(`annotation ${indexOnly[0].target}.${indexOnly[0].key} needs an image index, and this build made a single manifest`, {
        code: 'invalid',
        hint: 'build several platforms (--platform a,b), or annotate the manifest (annotation.KEY=VALUE)',
      });
    }
    const { descriptor, platform } = await convertManifest(top);
    return { descriptor, documents, descriptorAnnotations: annotationsFor(specs, 'manifest-descriptor', platform) };
  }
  const index = head as ImageIndex;
  const manifests: Descriptor[] = [];
  for (const m of index.manifests) {
    if (!isManifestType(m.mediaType) || m.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' || !(await store.hasBlob(m.digest))) {
      manifests.push(m);
      continue;
    }
    const { descriptor, platform } = await convertManifest(m, m.platform);
    if (descriptor.digest !== m.digest && attestationsFor(index, m.digest).length > 0) {
      // the attestations' statements name the manifest by digest: a converted one would be another image
      throw new KilnError(`the ${platform ? formatPlatform(platform) : ''} image ${m.digest} has attestations naming its digest, which this output would change (compression, media types or annotations)`, {
        code: 'unsupported',
        hint: 'drop the output option that rewrites the image (force-compression, oci-mediatypes=false, annotation.*: --annotation is applied before the attestations), or build without --sbom/--provenance',
      });
    }
    const annotations = { ...(m.annotations ?? {}), ...annotationsFor(specs, 'manifest-descriptor', platform) };
    manifests.push({ ...m, mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size, ...(Object.keys(annotations).length > 0 ? { annotations } : {}) });
  }
  for (const s of specs) {
    if (s.platform && !index.manifests.some((m) => platformMatches(s.platform!, m.platform))) {
      throw new KilnError(`annotation for ${formatPlatform(s.platform)} (${s.key}), but the image has no such platform`, { code: 'invalid', hint: 'name one of the platforms built' });
    }
  }
  const oci = options.ociMediatypes ?? top.mediaType !== MediaType.dockerManifestList;
  const mediaType = oci ? MediaType.ociIndex : MediaType.dockerManifestList;
  const annotations = { ...(index.annotations ?? {}), ...annotationsFor(specs, 'index') };
  const value: ImageIndex = {
    ...index,
    ...(index.mediaType !== undefined || mediaType !== top.mediaType ? { mediaType } : {}),
    manifests,
    ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
  };
  const same = canonicalJSON(value) === canonicalJSON(index) && mediaType === top.mediaType;
  return { descriptor: same ? top : keep(document(mediaType, value)), documents, descriptorAnnotations: annotationsFor(specs, 'index-descriptor') };
}

/** Writes the documents a conversion made into the store (its layers are there already). */
export async function persistConverted(store: ContentStore, converted: ConvertedImage): Promise<Descriptor> {
  for (const { descriptor, content } of converted.documents.values()) await store.writeBlob(content, descriptor.digest);
  return converted.descriptor;
}
