/**
 * Exporting a build's cache (--cache-to) to a directory or a registry, and reading caches
 * (--cache-from) from either: the manifests and configs only, their layers fetched later,
 * on demand (imported.ts).
 */
import { KilnError } from '../errors.js';
import type { Provider } from '../oci/content.js';
import { layerVariant, type VariantStore } from '../oci/layer.js';
import { platformMatches } from '../oci/platform.js';
import { parseCanonicalReference } from '../oci/reference.js';
import { compressionOfMediaType } from '../oci/variants.js';
import { MediaType, type Descriptor, type ImageIndex, type ImageManifest, type Platform } from '../oci/types.js';
import { isIndexType } from '../oci/walk.js';
import type { PushBlobResult, RemoteRepository } from '../registry/types.js';
import { decodeCache, encodeCache, type CacheContent, type CacheLayer, type ImportedCacheRecords } from './format.js';
import type { CacheSource } from './imported.js';
import { LayoutDir, parseJSON } from './layout.js';
import { describeCacheSpec, type CacheExportSpec, type CacheImportSpec } from './spec.js';

/** What the cache needs of a registry client (RegistryClient). */
export interface CacheRegistry {
  repository(ref: string): RemoteRepository;
}

/** A layer to export: its current blob, and how to have that blob in the local store. */
export interface ExportLayer {
  diffId: string;
  descriptor: Descriptor;
  /** The layer with its blob in the local store (fetching an imported one). */
  local(): Promise<CacheLayer>;
}

export interface CacheExportInput {
  /** With a definition key, the step's state's whole layer chain (base first). */
  steps: Array<{ key: string; createdAt: string; description: string; layer?: ExportLayer; definition?: string; chain?: ExportLayer[] }>;
  mounts: Array<{ id: string; layer: ExportLayer }>;
}

/** Where blobs are known to be on registries (registry/sources.ts): for cross-repository mounts. */
export interface BlobSources {
  /** Repositories on `host` known to have `digest`. */
  known(host: string, digest: string): Promise<string[]>;
  record(host: string, repository: string, digests: string[]): Promise<void>;
}

export interface CacheExportDeps {
  store: VariantStore;
  registry: () => CacheRegistry;
  platform: Platform;
  sources?: BlobSources;
}

/** What an export wrote: the cache manifest, and for a registry how each blob got there. */
export interface CacheExportResult {
  manifest: Descriptor;
  blobs?: Record<PushBlobResult, number>;
}

/** How many blobs an export moves at once. */
const PARALLEL_BLOBS = 4;

async function eachLimited<T>(items: T[], fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_BLOBS, items.length) }, worker));
}

/** A layer in the export's compression, and how to read its blob from the local store. */
async function inCompression(store: VariantStore, l: ExportLayer, compression: 'gzip' | 'none'): Promise<{ layer: CacheLayer; open: () => AsyncIterable<Buffer> }> {
  if (compressionOfMediaType(l.descriptor.mediaType) === compression) {
    const layer = { descriptor: l.descriptor, diffId: l.diffId };
    return {
      layer,
      open: async function* () {
        await l.local();
        yield* store.openBlob(l.descriptor.digest) as AsyncIterable<Buffer>;
      },
    };
  }
  const local = await l.local();
  const v = await layerVariant(store, local, compression);
  return { layer: { descriptor: v.descriptor, diffId: l.diffId }, open: () => store.openBlob(v.descriptor.digest) as AsyncIterable<Buffer> };
}

/**
 * Writes the cache: every layer in the spec's compression, then the config, then the
 * manifest (last: what names the cache never names a missing blob). Returns the manifest.
 */
export async function exportCache(spec: CacheExportSpec, input: CacheExportInput, deps: CacheExportDeps): Promise<CacheExportResult> {
  const compression = spec.compression === 'uncompressed' ? 'none' : 'gzip';
  const opened = new Map<string, () => AsyncIterable<Buffer>>();
  const convert = async (l: ExportLayer): Promise<CacheLayer> => {
    const c = await inCompression(deps.store, l, compression);
    opened.set(c.layer.descriptor.digest, c.open);
    return c.layer;
  };
  const content: CacheContent = { steps: [], mounts: [] };
  const converted = new Map<string, Promise<CacheLayer>>();
  const convertOnce = (l: ExportLayer): Promise<CacheLayer> => {
    let p = converted.get(l.diffId);
    if (!p) converted.set(l.diffId, (p = convert(l)));
    return p;
  };
  for (const s of input.steps) {
    const chain = s.chain && { definition: s.definition, chain: await Promise.all(s.chain.map(convertOnce)) };
    content.steps.push({ key: s.key, createdAt: s.createdAt, description: s.description, layer: s.layer && (await convertOnce(s.layer)), ...chain });
  }
  for (const m of input.mounts) content.mounts.push({ id: m.id, layer: await convert(m.layer) });
  const encoded = encodeCache(content, deps.platform);
  const open = (d: Descriptor): (() => AsyncIterable<Buffer>) => opened.get(d.digest)!;
  if (spec.type === 'local') {
    const dir = new LayoutDir(spec.dest!);
    await eachLimited(encoded.layers, async (d) => dir.putBlob(d.digest, open(d)()));
    await dir.putBlob(encoded.config.descriptor.digest, encoded.config.bytes);
    await dir.putBlob(encoded.manifest.descriptor.digest, encoded.manifest.bytes);
    await dir.setManifest(encoded.manifest.descriptor);
  } else if (spec.type === 'registry') {
    const ref = parseCanonicalReference(spec.ref!);
    if (ref.digest !== undefined && ref.tag === undefined) throw new KilnError(`cannot export a cache to ${spec.ref}: a digest names content, not a place to write`, { code: 'invalid', hint: 'give a tag: type=registry,ref=HOST/REPO:buildcache' });
    const repo = deps.registry().repository(spec.ref!);
    const blobs: Record<PushBlobResult, number> = { exists: 0, mounted: 0, uploaded: 0 };
    // a blob pushed with an image (or another cache) on this registry is mounted, not uploaded
    const mountFrom = async (digest: string) => ((await deps.sources?.known(repo.host, digest)) ?? []).filter((r) => r !== repo.name);
    await eachLimited(encoded.layers, async (d) => {
      blobs[await repo.pushBlob(d, open(d), { mountFrom: await mountFrom(d.digest) })]++;
    });
    const bytes = encoded.config.bytes;
    const config = async function* () {
      yield bytes;
    };
    blobs[await repo.pushBlob(encoded.config.descriptor, config, { mountFrom: await mountFrom(encoded.config.descriptor.digest) })]++;
    await repo.putManifest(ref.tag ?? 'latest', { mediaType: MediaType.ociManifest, bytes: encoded.manifest.bytes });
    await deps.sources?.record(repo.host, repo.name, [...encoded.layers.map((d) => d.digest), encoded.config.descriptor.digest]).catch(() => undefined);
    return { manifest: encoded.manifest.descriptor, blobs };
  } else {
    throw new KilnError('type=inline is written into the image, not exported on its own');
  }
  return { manifest: encoded.manifest.descriptor };
}

/** The manifest of `platform` when `desc` is an index, else `desc`. */
function pickManifest(index: ImageIndex, platform: Platform, where: string): Descriptor {
  const manifests = Array.isArray(index.manifests) ? index.manifests : [];
  const m = manifests.find((d) => platformMatches(platform, d.platform)) ?? (manifests.length === 1 ? manifests[0] : undefined);
  if (!m) throw new KilnError(`${where} has no manifest for this platform`, { code: 'not-found' });
  return m;
}

async function records(manifest: ImageManifest, readConfig: (d: Descriptor) => Promise<Buffer>, where: string): Promise<ImportedCacheRecords> {
  if (!manifest.config || typeof manifest.config.digest !== 'string') throw new KilnError(`the cache at ${where} is malformed: its manifest has no config`, { code: 'invalid' });
  const config = parseJSON<unknown>(await readConfig(manifest.config), `the config of the cache at ${where}`);
  const r = decodeCache(manifest, config, where);
  if (!r) {
    throw new KilnError(`${where} holds no kiln cache records`, {
      code: 'invalid',
      hint: 'name a cache written by --cache-to, or an image built with --cache-to type=inline',
    });
  }
  return r;
}

/** Reads one cache's manifest and config (no layers). */
export async function openCacheSource(spec: CacheImportSpec, deps: { registry: () => CacheRegistry; platform: Platform; sources?: BlobSources }): Promise<CacheSource> {
  const where = describeCacheSpec(spec);
  if (spec.type === 'local') {
    const dir = new LayoutDir(spec.src!);
    let desc = await dir.manifest();
    if (isIndexType(desc.mediaType)) desc = pickManifest(await dir.readJSON<ImageIndex>(desc.digest), deps.platform, where);
    const manifest = await dir.readJSON<ImageManifest>(desc.digest);
    return { where, provider: dir, records: await records(manifest, (d) => dir.readBlob(d.digest), where) };
  }
  const ref = parseCanonicalReference(spec.ref!);
  const repo = deps.registry().repository(spec.ref!);
  let got = await repo.getManifest(ref.digest ?? ref.tag ?? 'latest');
  if (isIndexType(got.descriptor.mediaType)) {
    got = await repo.getManifest(pickManifest(parseJSON<ImageIndex>(got.bytes, `the index at ${where}`), deps.platform, where).digest);
  }
  const provider: Provider = repo.provider();
  const manifest = parseJSON<ImageManifest>(got.bytes, `the manifest at ${where}`);
  const sources = deps.sources;
  return {
    where,
    provider,
    records: await records(manifest, (d) => provider.readBlob(d.digest), where),
    // a blob fetched from this repository can be mounted from it by a later push
    fetched: sources && ((digest) => sources.record(repo.host, repo.name, [digest]).catch(() => undefined)),
  };
}

/** Opens every --cache-from; one that fails is a warning (the build runs without it). */
export async function openCacheSources(specs: CacheImportSpec[], deps: { registry: () => CacheRegistry; platform: Platform; sources?: BlobSources; warn?: (m: string) => void }): Promise<CacheSource[]> {
  const out = await Promise.all(
    specs.map((s) =>
      openCacheSource(s, deps).catch((e: unknown) => {
        deps.warn?.(`cache import from ${describeCacheSpec(s)} failed, building without it: ${(e as Error).message}`);
        return undefined;
      }),
    ),
  );
  return out.filter((s): s is CacheSource => s !== undefined);
}
