/**
 * The shared cache's format: a plain OCI image manifest, so every registry stores it (no
 * custom media types). Its layers are the cached steps' layer blobs (gzip, the form images
 * are pushed in, so a cache and the images it built share blobs); its config is a valid image
 * config (architecture, os, rootfs.diff_ids matching the layers) that also holds kiln's
 * records under one top-level key, CACHE_CONFIG_KEY:
 *
 *   "kiln.cache.v1": {
 *     "steps":  [{ "key": "sha256:…", "layer": 1, "createdAt": "…", "description": "[2/3] RUN …",
 *                  "definition": "sha256:…", "chain": [0, 1] }],
 *     "mounts": [{ "id": "/root/.npm", "layer": 3 }]
 *   }
 *
 * `layer` indexes the manifest's layers (and the config's diff_ids); a step that added no
 * layer has none. `definition` is the step's definition key (solver/keys.ts), known before
 * the stages it reads are solved, and `chain` its state's whole layer chain, base first: an
 * importing build takes the step's state from it without solving its inputs. Inline caches put the same key in a built image's own config, the indexes
 * then naming the image's layers.
 */
import { KilnError } from '../errors.js';
import { canonicalJSON } from '../oci/canonical.js';
import { digestOf, isDigest } from '../oci/digest.js';
import { MediaType, type Descriptor, type ImageManifest, type Platform } from '../oci/types.js';

export const CACHE_CONFIG_KEY = 'kiln.cache.v1';

export interface CacheStepEntry {
  key: string;
  layer?: number;
  createdAt: string;
  description: string;
  definition?: string;
  chain?: number[];
}

export interface CacheMountEntry {
  /** The mount's id as the Dockerfile names it (its target when it has no id). */
  id: string;
  layer: number;
}

export interface CacheMetadata {
  steps: CacheStepEntry[];
  mounts?: CacheMountEntry[];
}

/** A layer as the cache names it: its blob and the digest of its uncompressed tar. */
export interface CacheLayer {
  descriptor: Descriptor;
  diffId: string;
}

/** What an export has gathered: each step's key and layer, each mount's id and layer. */
export interface CacheContent {
  steps: Array<{ key: string; createdAt: string; description: string; layer?: CacheLayer; definition?: string; chain?: CacheLayer[] }>;
  mounts: Array<{ id: string; layer: CacheLayer }>;
}

/** A cache as blobs: the config and manifest bytes, and the layers the manifest names. */
export interface EncodedCache {
  config: { descriptor: Descriptor; bytes: Buffer };
  manifest: { descriptor: Descriptor; bytes: Buffer };
  layers: Descriptor[];
}

/** Records of steps and mounts as a reader finds them, their layers resolved. */
export interface ImportedCacheRecords {
  steps: Map<string, { createdAt: string; description: string; layer?: CacheLayer }>;
  /** Steps by definition key: their content key and their state's layer chain. */
  definitions: Map<string, { key: string; createdAt: string; description: string; layer?: CacheLayer; chain: CacheLayer[] }>;
  mounts: Map<string, CacheLayer>;
}

/**
 * The records under CACHE_CONFIG_KEY for `content`, each layer indexed in `layers` (the
 * list is extended with layers not in it yet, deduplicated by diff id).
 */
export function cacheMetadata(content: CacheContent, layers: CacheLayer[]): CacheMetadata {
  const index = new Map(layers.map((l, i) => [l.diffId, i]));
  const at = (l: CacheLayer): number => {
    let i = index.get(l.diffId);
    if (i === undefined) {
      i = layers.push(l) - 1;
      index.set(l.diffId, i);
    }
    return i;
  };
  const seen = new Set<string>();
  const steps: CacheStepEntry[] = [];
  for (const s of content.steps) {
    if (seen.has(`${s.key} ${s.definition}`)) continue;
    seen.add(`${s.key} ${s.definition}`);
    // the chain first: the manifest lists layers base first
    const chain = s.definition !== undefined && s.chain ? { definition: s.definition, chain: s.chain.map(at) } : {};
    steps.push({ key: s.key, ...(s.layer ? { layer: at(s.layer) } : {}), createdAt: s.createdAt, description: s.description, ...chain });
  }
  const mounts = content.mounts.map((m) => ({ id: m.id, layer: at(m.layer) }));
  return mounts.length > 0 ? { steps, mounts } : { steps };
}

/**
 * Inline cache records for an image whose layers have `diffIds`: each step names the image's
 * own layer (a step whose layer the image does not have is left out).
 */
export function inlineMetadata(steps: CacheContent['steps'], diffIds: string[]): CacheMetadata {
  const index = new Map(diffIds.map((d, i) => [d, i]));
  const out: CacheStepEntry[] = [];
  const seen = new Set<string>();
  for (const s of steps) {
    const i = s.layer ? index.get(s.layer.diffId) : undefined;
    if (seen.has(`${s.key} ${s.definition}`) || (s.layer && i === undefined)) continue;
    seen.add(`${s.key} ${s.definition}`);
    const chain = s.chain?.map((l) => index.get(l.diffId));
    const byDefinition = s.definition !== undefined && chain?.every((c) => c !== undefined) ? { definition: s.definition, chain: chain as number[] } : {};
    out.push({ key: s.key, ...(i !== undefined ? { layer: i } : {}), createdAt: s.createdAt, description: s.description, ...byDefinition });
  }
  return { steps: out };
}

/** The cache manifest and config for `content`: a valid image of the cached layers. */
export function encodeCache(content: CacheContent, platform: Platform): EncodedCache {
  const layers: CacheLayer[] = [];
  const meta = cacheMetadata(content, layers);
  const config = {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: {},
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map(() => ({ created_by: 'kiln build cache', comment: 'kiln build cache' })),
    [CACHE_CONFIG_KEY]: meta,
  };
  const configBytes = Buffer.from(canonicalJSON(config));
  const configDescriptor: Descriptor = { mediaType: MediaType.ociConfig, digest: digestOf(configBytes), size: configBytes.length };
  const layerDescriptors = layers.map((l) => plainDescriptor(l.descriptor));
  const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.ociManifest, config: configDescriptor, layers: layerDescriptors };
  const manifestBytes = Buffer.from(canonicalJSON(manifest));
  return {
    config: { descriptor: configDescriptor, bytes: configBytes },
    manifest: { descriptor: { mediaType: MediaType.ociManifest, digest: digestOf(manifestBytes), size: manifestBytes.length }, bytes: manifestBytes },
    layers: layerDescriptors,
  };
}

/** A layer descriptor with only what a manifest needs (no annotations a store added). */
export function plainDescriptor(d: Descriptor): Descriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

/**
 * The records in a manifest's config (a cache manifest, or an image with an inline cache),
 * checked: every key a digest, every layer index in range, diff ids as many as layers.
 * Undefined when the config holds no cache records; a KilnError naming `where` when they are malformed.
 */
export function decodeCache(manifest: ImageManifest, config: unknown, where: string): ImportedCacheRecords | undefined {
  const bad = (what: string): KilnError => new KilnError(`the cache at ${where} is malformed: ${what}`, { code: 'invalid', hint: 'export the cache again (--cache-to), or leave this --cache-from out' });
  if (typeof config !== 'object' || config === null) throw bad('its config is not a JSON object');
  const c = config as { rootfs?: { diff_ids?: unknown }; [CACHE_CONFIG_KEY]?: unknown };
  const meta = c[CACHE_CONFIG_KEY];
  if (meta === undefined) return undefined;
  const diffIds = c.rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || !diffIds.every((d) => typeof d === 'string' && isDigest(d))) throw bad('rootfs.diff_ids is not a list of digests');
  if (!Array.isArray(manifest.layers) || manifest.layers.length !== diffIds.length) throw bad(`its manifest has ${manifest.layers?.length ?? 0} layers but its config ${diffIds.length} diff ids`);
  const layerAt = (i: unknown, what: string): CacheLayer => {
    if (typeof i !== 'number' || !Number.isInteger(i) || i < 0 || i >= diffIds.length) throw bad(`${what} names layer ${JSON.stringify(i)}, which the manifest does not have`);
    const d = manifest.layers[i];
    if (!d || typeof d.digest !== 'string' || !isDigest(d.digest) || typeof d.size !== 'number') throw bad(`layer ${i} has no valid descriptor`);
    return { descriptor: plainDescriptor(d), diffId: diffIds[i] as string };
  };
  if (typeof meta !== 'object' || meta === null || !Array.isArray((meta as CacheMetadata).steps)) throw bad(`${CACHE_CONFIG_KEY}.steps is not a list`);
  const out: ImportedCacheRecords = { steps: new Map(), definitions: new Map(), mounts: new Map() };
  for (const s of (meta as CacheMetadata).steps) {
    if (typeof s !== 'object' || s === null || typeof s.key !== 'string' || !isDigest(s.key)) throw bad('a step record has no valid key');
    const record = {
      createdAt: typeof s.createdAt === 'string' ? s.createdAt : '',
      description: typeof s.description === 'string' ? s.description : '',
      layer: s.layer === undefined ? undefined : layerAt(s.layer, `step ${s.key}`),
    };
    out.steps.set(s.key, record);
    if (s.definition === undefined) continue;
    if (typeof s.definition !== 'string' || !isDigest(s.definition) || !Array.isArray(s.chain)) throw bad(`step ${s.key} has no valid definition key and layer chain`);
    out.definitions.set(s.definition, { key: s.key, ...record, chain: s.chain.map((i) => layerAt(i, `the layer chain of step ${s.key}`)) });
  }
  const mounts = (meta as CacheMetadata).mounts ?? [];
  if (!Array.isArray(mounts)) throw bad(`${CACHE_CONFIG_KEY}.mounts is not a list`);
  for (const m of mounts) {
    if (typeof m !== 'object' || m === null || typeof m.id !== 'string' || m.id === '') throw bad('a cache mount record has no id');
    out.mounts.set(m.id, layerAt(m.layer, `cache mount ${m.id}`));
  }
  return out;
}
