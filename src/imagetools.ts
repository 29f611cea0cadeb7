/**
 * `kiln imagetools`: read an image's index and per-platform manifests, and combine images into
 * one index, as `docker buildx imagetools inspect|create` do — in a registry (`docker://REF`,
 * or a name the store does not hold) or in the local store.
 *
 * create in a registry copies nothing through the store: each source manifest (and an index's
 * manifests) is put by digest into the target repository with its blobs (mounted from the
 * source repository on the same registry, streamed from it otherwise), byte for byte, so the
 * digests stay the sources'; the new index is tagged last, so a failure leaves no tag.
 */
import { KilnError } from './errors.js';
import { canonicalJSON } from './oci/canonical.js';
import { digestOf } from './oci/digest.js';
import { formatPlatform } from './oci/platform.js';
import { parseCanonicalReference, parseReference } from './oci/reference.js';
import type { ContentStore } from './oci/store.js';
import { MediaType, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest, type Platform } from './oci/types.js';
import { isIndexType, isManifestType } from './oci/walk.js';
import { pushImage } from './registry/push.js';
import type { RemoteRepository } from './registry/types.js';

export const REMOTE_PREFIX = 'docker://';

/** Where imagetools reads and writes: the store (opened on first use) and a registry client. */
export interface ImagetoolsContext {
  store(): Promise<ContentStore>;
  client: { repository(ref: string): RemoteRepository };
}

/** An image a reference names, with a way to read the documents and blobs below it. */
export interface SourceImage {
  /** The reference as given (without docker://). */
  ref: string;
  /** "store" or the registry repository ("127.0.0.1:5000/app"). */
  where: string;
  remote?: RemoteRepository;
  descriptor: Descriptor;
  bytes: Buffer;
  readBlob(digest: string): Promise<Buffer>;
  /** A manifest or index below it (a registry serves those from /manifests/, not as blobs). */
  readManifest(digest: string): Promise<Buffer>;
}

function parseJSON<T>(bytes: Buffer, what: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (e) {
    throw new KilnError(`${what} is not valid JSON`, { code: 'invalid', cause: e });
  }
}

/** The stored image `name` names, undefined when the store has no such name (or it is no name). */
async function localImage(ctx: ImagetoolsContext, name: string): Promise<SourceImage | undefined> {
  const store = await ctx.store();
  let descriptor: Descriptor | undefined;
  try {
    descriptor = await store.resolve(name);
  } catch {
    return undefined;
  }
  if (!descriptor || !(isIndexType(descriptor.mediaType) || isManifestType(descriptor.mediaType))) return undefined;
  const readBlob = (d: string) => store.readBlob(d);
  return { ref: name, where: 'store', descriptor, bytes: await store.readBlob(descriptor.digest), readBlob, readManifest: readBlob };
}

async function remoteImage(ctx: ImagetoolsContext, ref: string): Promise<SourceImage> {
  if (ref === '') throw new KilnError(`${REMOTE_PREFIX} needs an image reference after it`, { code: 'invalid', hint: `write ${REMOTE_PREFIX}HOST/REPO:TAG` });
  const reference = parseCanonicalReference(ref);
  const repository = ctx.client.repository(reference.repository);
  const wanted = reference.digest ?? reference.tag ?? 'latest';
  const where = `${repository.host}/${repository.name}`;
  const top = await repository.getManifest(wanted).catch((e: unknown) => {
    if (e instanceof KilnError && e.code === 'not-found') {
      throw new KilnError(`${where} has no image ${wanted} (${e.message})`, { code: 'not-found', hint: 'check the name and tag; kiln images lists what the local store holds', cause: e });
    }
    throw e;
  });
  if (reference.digest !== undefined && top.descriptor.digest !== reference.digest) {
    throw new KilnError(`${ref}: ${where} served ${top.descriptor.digest} for ${reference.digest}`, { code: 'invalid' });
  }
  const provider = repository.provider();
  const readManifest = async (d: string) => {
    const m = await repository.getManifest(d);
    if (m.descriptor.digest !== d) throw new KilnError(`${where} served ${m.descriptor.digest} for the manifest ${d}`, { code: 'invalid' });
    return m.bytes;
  };
  return { ref, where, remote: repository, descriptor: top.descriptor, bytes: top.bytes, readBlob: (d) => provider.readBlob(d), readManifest };
}

/** `docker://REF` reads the registry; a name the store holds reads the store; any other name the registry. */
export async function openImage(ctx: ImagetoolsContext, ref: string): Promise<SourceImage> {
  if (ref.startsWith(REMOTE_PREFIX)) return remoteImage(ctx, ref.slice(REMOTE_PREFIX.length));
  const local = await localImage(ctx, ref);
  if (local) return local;
  return remoteImage(ctx, ref).catch((e: unknown) => {
    if (!(e instanceof KilnError)) throw e;
    throw new KilnError(`${ref} is not in the store, and its registry answered: ${e.message}`, {
      code: e.code,
      hint: e.hint ?? 'kiln images lists what the store holds; docker://REF always reads the registry',
      cause: e,
    });
  });
}

export interface InspectedManifest {
  descriptor: Descriptor;
  manifest: ImageManifest;
  /** The image config (undefined for a manifest whose config is not an image's, e.g. an attestation). */
  config?: ImageConfig;
}

export interface Inspected {
  name: string;
  descriptor: Descriptor;
  /** The document the reference names (an index or a manifest). */
  document: ImageIndex | ImageManifest;
  /** Each image manifest: the index's (in its order), or the one. */
  manifests: InspectedManifest[];
}

const CONFIG_TYPES: readonly string[] = [MediaType.ociConfig, MediaType.dockerConfig];

async function readManifest(image: SourceImage, descriptor: Descriptor): Promise<InspectedManifest> {
  const bytes = descriptor.digest === image.descriptor.digest ? image.bytes : await image.readManifest(descriptor.digest);
  const manifest = parseJSON<ImageManifest>(bytes, `the manifest ${descriptor.digest} of ${image.ref}`);
  if (!manifest?.config?.digest || !Array.isArray(manifest.layers)) {
    throw new KilnError(`${image.ref}: the manifest ${descriptor.digest} is malformed (no config or layers)`, { code: 'invalid' });
  }
  const config = CONFIG_TYPES.includes(manifest.config.mediaType) ? parseJSON<ImageConfig>(await image.readBlob(manifest.config.digest), `the config of ${descriptor.digest}`) : undefined;
  return { descriptor, manifest, config };
}

/** The index (or manifest) an image reference names, with each platform's manifest and config. */
export async function inspectImage(image: SourceImage): Promise<Inspected> {
  const { descriptor } = image;
  if (isIndexType(descriptor.mediaType)) {
    const index = parseJSON<ImageIndex>(image.bytes, `the index of ${image.ref}`);
    const manifests: InspectedManifest[] = [];
    for (const d of index.manifests ?? []) if (isManifestType(d.mediaType)) manifests.push(await readManifest(image, d));
    return { name: image.ref, descriptor, document: index, manifests };
  }
  if (!isManifestType(descriptor.mediaType)) {
    throw new KilnError(`${image.ref} is ${descriptor.mediaType}, not an image manifest or index`, { code: 'unsupported' });
  }
  const one = await readManifest(image, descriptor);
  return { name: image.ref, descriptor, document: one.manifest, manifests: [one] };
}

function platformOf(m: InspectedManifest): Platform | undefined {
  if (m.descriptor.platform) return m.descriptor.platform;
  const c = m.config as (ImageConfig & { variant?: string; 'os.version'?: string }) | undefined;
  if (!c?.os || !c.architecture) return undefined;
  return { architecture: c.architecture, os: c.os, ...(c.variant ? { variant: c.variant } : {}), ...(c['os.version'] ? { 'os.version': c['os.version'] } : {}) };
}

/** buildx's text form: the reference, its media type and digest, then each manifest. */
export function formatInspect(r: Inspected): string {
  const name = r.name.startsWith(REMOTE_PREFIX) ? r.name.slice(REMOTE_PREFIX.length) : r.name;
  const repo = parseReference(name).repository;
  const lines = [`Name:      ${name}`, `MediaType: ${r.descriptor.mediaType}`, `Digest:    ${r.descriptor.digest}`];
  if (isIndexType(r.descriptor.mediaType)) {
    lines.push('', 'Manifests:');
    const index = r.document as ImageIndex;
    for (const [i, d] of index.manifests.entries()) {
      if (i > 0) lines.push('');
      lines.push(`  Name:        ${repo}@${d.digest}`, `  MediaType:   ${d.mediaType}`);
      if (d.platform) lines.push(`  Platform:    ${formatPlatform(d.platform)}`);
      for (const [k, v] of Object.entries(d.annotations ?? {})) lines.push(`  Annotations: ${k}: ${v}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** `--format json`: the document, and the config of the image (or of each platform, keyed "os/arch[/variant]"). */
export function inspectJSON(r: Inspected): Record<string, unknown> {
  const out: Record<string, unknown> = { name: r.name, manifest: { ...r.document, digest: r.descriptor.digest } };
  if (!isIndexType(r.descriptor.mediaType)) {
    if (r.manifests[0]?.config) out.image = r.manifests[0].config;
    return out;
  }
  const images: Record<string, unknown> = {};
  for (const m of r.manifests) {
    const p = platformOf(m);
    if (p && m.config) images[formatPlatform(p)] = m.config;
  }
  out.image = images;
  return out;
}

// ---- create ------------------------------------------------------------------------------

export interface CreateOptions {
  sources: string[];
  tags: string[];
  /** "K=V", "index:K=V" (the index) or "manifest-descriptor:K=V" (each of its entries). */
  annotations?: string[];
  dryRun?: boolean;
}

export interface CreateResult {
  descriptor: Descriptor;
  index: ImageIndex;
  bytes: Buffer;
  /** "store" or "registry"; undefined with dryRun. */
  wrote?: 'store' | 'registry';
  /** The references tagged, each with @digest. */
  references: string[];
}

function parseAnnotations(list: string[]): { index: Record<string, string>; descriptor: Record<string, string> } {
  const index: Record<string, string> = {};
  const descriptor: Record<string, string> = {};
  for (const a of list) {
    const m = /^(?:([a-z-]+):)?([^=:][^=]*)=(.*)$/s.exec(a);
    const kind = m?.[1] ?? 'index';
    if (!m || (kind !== 'index' && kind !== 'manifest-descriptor')) {
      throw new KilnError(`--annotation ${JSON.stringify(a)} is not KEY=VALUE, index:KEY=VALUE or manifest-descriptor:KEY=VALUE`, {
        code: 'invalid',
        hint: 'imagetools create writes only the index: annotate the index or its entries (manifest annotations need a rebuild with --annotation)',
      });
    }
    (kind === 'index' ? index : descriptor)[m[2]] = m[3];
  }
  return { index, descriptor };
}

/** The index entries a source gives: its own manifests (an index) or itself with its platform. */
async function entriesOf(image: SourceImage): Promise<Descriptor[]> {
  if (isIndexType(image.descriptor.mediaType)) return parseJSON<ImageIndex>(image.bytes, `the index of ${image.ref}`).manifests ?? [];
  const one = await readManifest(image, image.descriptor);
  const platform = platformOf(one);
  return [{ mediaType: image.descriptor.mediaType, digest: image.descriptor.digest, size: image.descriptor.size, ...(platform ? { platform } : {}) }];
}

const DOCKER_TYPES: readonly string[] = [MediaType.dockerManifest, MediaType.dockerManifestList];

/** The index combining `sources` (in order, each digest once), as bytes and descriptor. */
export async function planIndex(images: SourceImage[], annotations: string[] = []): Promise<{ index: ImageIndex; bytes: Buffer; descriptor: Descriptor }> {
  const ann = parseAnnotations(annotations);
  const seen = new Map<string, string>();
  const manifests: Descriptor[] = [];
  for (const image of images) {
    for (const e of await entriesOf(image)) {
      if (seen.has(e.digest)) continue;
      seen.set(e.digest, image.ref);
      const annotated = { ...(e.annotations ?? {}), ...ann.descriptor };
      manifests.push({ ...e, ...(Object.keys(annotated).length > 0 ? { annotations: annotated } : {}) });
    }
  }
  if (manifests.length === 0) throw new KilnError('the sources list no manifests', { code: 'invalid' });
  // a docker manifest list when every source is docker's and nothing needs OCI annotations (as buildx)
  const docker = images.every((i) => DOCKER_TYPES.includes(i.descriptor.mediaType)) && Object.keys(ann.index).length === 0 && Object.keys(ann.descriptor).length === 0;
  const index: ImageIndex = { schemaVersion: 2, mediaType: docker ? MediaType.dockerManifestList : MediaType.ociIndex, manifests };
  if (Object.keys(ann.index).length > 0) index.annotations = ann.index;
  const bytes = Buffer.from(canonicalJSON(index));
  return { index, bytes, descriptor: { mediaType: index.mediaType!, digest: digestOf(bytes), size: bytes.length } };
}

/** Copies `descriptor` (a manifest or index) and everything below it from `from` into `to`, manifests by digest. */
async function copyTree(from: SourceImage, to: RemoteRepository, descriptor: Descriptor, done: Set<string>): Promise<void> {
  if (done.has(descriptor.digest)) return;
  done.add(descriptor.digest);
  if (await to.headManifest(descriptor.digest)) return;
  const bytes = descriptor.digest === from.descriptor.digest ? from.bytes : await from.readManifest(descriptor.digest);
  if (isIndexType(descriptor.mediaType)) {
    for (const child of parseJSON<ImageIndex>(bytes, `the index ${descriptor.digest}`).manifests ?? []) await copyTree(from, to, child, done);
  } else {
    const m = parseJSON<ImageManifest>(bytes, `the manifest ${descriptor.digest}`);
    const src = from.remote!;
    const sameHost = src.host === to.host && src.name !== to.name;
    const provider = src.provider();
    for (const blob of [m.config, ...(m.layers ?? [])]) {
      await to.pushBlob(blob, () => provider.openBlob(blob.digest), sameHost ? { mountFrom: [src.name] } : {});
    }
  }
  await to.putManifest(descriptor.digest, { mediaType: descriptor.mediaType, bytes });
}

/**
 * `imagetools create`: the index of `sources` written to the store (every source in the store,
 * no docker:// target) or to the registry of each target (sources in a registry, or a
 * docker:// target: store sources are then pushed as `kiln push` pushes them).
 */
export async function createIndex(ctx: ImagetoolsContext, options: CreateOptions): Promise<CreateResult> {
  if (options.sources.length === 0) throw new KilnError('imagetools create needs at least one source image', { code: 'invalid', hint: 'kiln imagetools create -t REF SRC...' });
  if (options.tags.length === 0 && !options.dryRun) throw new KilnError('imagetools create needs -t REF (or --dry-run)', { code: 'invalid' });
  const targets = options.tags.map((t) => ({ remote: t.startsWith(REMOTE_PREFIX), ref: t.startsWith(REMOTE_PREFIX) ? t.slice(REMOTE_PREFIX.length) : t }));
  for (const t of targets) {
    const r = parseReference(t.ref);
    if (r.digest !== undefined) throw new KilnError(`-t ${t.ref}: a target is a tag, not a digest`, { code: 'invalid', hint: 'write -t HOST/REPO:TAG' });
  }
  const images: SourceImage[] = [];
  for (const s of options.sources) images.push(await openImage(ctx, s));
  const plan = await planIndex(images, options.annotations);
  const result: CreateResult = { ...plan, references: [] };
  if (options.dryRun) return result;

  const local = images.filter((i) => !i.remote);
  if (local.length > 0 && local.length < images.length) {
    throw new KilnError(`imagetools create: ${local.map((i) => i.ref).join(', ')} ${local.length > 1 ? 'are' : 'is'} in the store, the other sources in a registry`, {
      code: 'invalid',
      hint: 'push the stored images first (kiln push), then combine the registry references; or give docker://REF for every source',
    });
  }
  if (local.length > 0) {
    const store = await ctx.store();
    const lease = await store.lease();
    try {
      await lease.add(plan.descriptor.digest);
      const written = await store.writeJSON(plan.index, plan.descriptor.mediaType);
      if (written.digest !== plan.descriptor.digest) throw new KilnError(`imagetools create: the index was written as ${written.digest}, planned as ${plan.descriptor.digest}`, { code: 'failed' });
      for (const t of targets.filter((x) => !x.remote)) {
        await store.setRef(t.ref, plan.descriptor);
        result.references.push(`${t.ref}@${plan.descriptor.digest}`);
      }
      for (const t of targets.filter((x) => x.remote)) {
        const pushed = await pushImage({ store, client: ctx.client, source: plan.descriptor, ref: t.ref });
        result.references.push(pushed.reference);
      }
    } finally {
      await lease.release();
    }
    result.wrote = targets.some((t) => t.remote) ? 'registry' : 'store';
    return result;
  }

  for (const t of targets) {
    const ref = parseReference(t.ref);
    const to = ctx.client.repository(t.ref);
    const done = new Set<string>();
    const index = parseJSON<ImageIndex>(plan.bytes, 'the new index');
    for (const entry of index.manifests) {
      const from = images.find((i) => i.descriptor.digest === entry.digest) ?? images.find((i) => isIndexType(i.descriptor.mediaType) && (parseJSON<ImageIndex>(i.bytes, 'index').manifests ?? []).some((d) => d.digest === entry.digest))!;
      await copyTree(from, to, entry, done);
    }
    const tag = ref.tag ?? 'latest';
    await to.putManifest(tag, { mediaType: plan.descriptor.mediaType, bytes: plan.bytes });
    result.references.push(`${ref.repository}:${tag}@${plan.descriptor.digest}`);
  }
  result.wrote = 'registry';
  return result;
}
