/**
 * The images of a kiln root, as the library gives them: list and remove names. The CLI's
 * `kiln images` and `kiln rmi` are these plus printing.
 */
import { ContentStore } from './oci/store.js';
import { imageSize, loadImage, resolveByImageId } from './oci/image.js';
import { isIndexType, isManifestType } from './oci/walk.js';
import { formatPlatform } from './oci/platform.js';
import type { ImageIndex } from './oci/types.js';
import { isDigest } from './oci/digest.js';
import { normalizeName, parseReference, splitRepoTag } from './oci/reference.js';
import { repoDigests } from './registry/sources.js';

export interface ImageSummary {
  /** The name as stored ("app:1", "localhost:5000/team/app:2"). */
  name: string;
  repository: string;
  /** The tag, or "<none>" for a name stored by digest. */
  tag: string;
  /** The image ID: the config digest, as docker shows it (kiln build prints the same). */
  id: string;
  /** The digest of the manifest (or index) the name points at. */
  digest: string;
  /** When the image was made (ISO 8601), when its config says and it can be read. */
  created?: string;
  /** Bytes of the manifest, config and layers (all platforms of an index); undefined when incomplete. */
  size?: number;
  /**
   * The `repository@sha256:…` names the image was pushed as or pulled by (most recent first),
   * as docker's RepoDigests: the digest of the manifest in that registry, which differs from
   * `digest` when the push gzipped the layers the store keeps uncompressed.
   */
  repoDigests: string[];
  /**
   * For a multi-platform image (an index): the platforms it has images for ("linux/amd64",
   * "linux/arm64"), in the index's order; its `id` is then the index digest, as for a
   * containerd-backed docker, since no one config stands for it.
   */
  platforms?: string[];
}

/** The platforms of an index's image manifests (attestations left out). */
function indexPlatforms(index: ImageIndex): string[] {
  const out: string[] = [];
  for (const m of Array.isArray(index.manifests) ? index.manifests : []) {
    if (!isManifestType(m.mediaType) || m.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest') continue;
    const p = m.platform ? formatPlatform(m.platform) : 'unknown';
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

/**
 * One entry per name in the store, newest first (then by repository and tag). `filter` is
 * "repo" or "repo:tag"; a malformed filter is a KilnError.
 */
export async function listImages(root: string, filter?: string): Promise<ImageSummary[]> {
  const store = await ContentStore.open(root);
  let want: { repository: string; tag?: string } | undefined;
  if (filter) {
    const ref = parseReference(filter);
    want = { repository: ref.repository, tag: ref.tag };
  }
  const rows: (ImageSummary & { at: number })[] = [];
  for (const { name, descriptor } of await store.listRefs()) {
    const { repository, tag } = splitRepoTag(name);
    if (want && (want.repository !== repository || (want.tag !== undefined && want.tag !== tag))) continue;
    let created = NaN;
    let id = descriptor.digest;
    let platforms: string[] | undefined;
    try {
      if (isIndexType(descriptor.mediaType)) {
        const index = await store.readJSON<ImageIndex>(descriptor.digest);
        platforms = indexPlatforms(index);
        // created: this machine's image, else the first platform's
        const first = index.manifests.find((m) => isManifestType(m.mediaType) && m.platform);
        const img = await loadImage(store, descriptor.digest).catch(() => (first?.platform ? loadImage(store, descriptor.digest, first.platform) : undefined));
        created = img?.config.created ? Date.parse(img.config.created) : NaN;
      } else {
        const img = await loadImage(store, descriptor.digest);
        created = img.config.created ? Date.parse(img.config.created) : NaN;
        id = img.configDescriptor.digest;
      }
    } catch {
      // an incomplete index, or a foreign artifact: still listed
    }
    let size: number | undefined;
    try {
      size = await imageSize(store, descriptor);
    } catch {
      // incomplete image
    }
    rows.push({
      name,
      repository,
      tag,
      id,
      digest: descriptor.digest,
      repoDigests: await repoDigests(root, descriptor.digest),
      ...(platforms ? { platforms } : {}),
      ...(Number.isNaN(created) ? {} : { created: new Date(created).toISOString() }),
      ...(size === undefined || Number.isNaN(size) ? {} : { size }),
      at: Number.isNaN(created) ? -Infinity : created,
    });
  }
  rows.sort((a, b) => b.at - a.at || a.repository.localeCompare(b.repository) || a.tag.localeCompare(b.tag));
  return rows.map(({ at: _at, ...row }) => row);
}

/**
 * Removes names from the store. A name removes that ref; a digest or ID (or a unique prefix)
 * removes every name that points at it. Blobs stay until a prune. Gives the names removed and
 * the inputs that matched nothing.
 */
export async function removeImages(root: string, names: string[]): Promise<{ removed: string[]; missing: string[] }> {
  const store = await ContentStore.open(root);
  const removed: string[] = [];
  const missing: string[] = [];
  for (const input of names) {
    let byName: string | undefined;
    if (!isDigest(input)) {
      try {
        const ref = parseReference(input);
        if (ref.digest === undefined) byName = normalizeName(input);
      } catch (e) {
        if (!/^[a-f0-9]{4,64}$/.test(input)) throw e;
      }
    }
    if (byName && (await store.deleteRef(byName))) {
      removed.push(byName);
      continue;
    }
    const desc =
      (await store.resolve(input).catch((e: unknown) => {
        if (byName) return undefined;
        throw e;
      })) ?? (await resolveByImageId(store, input));
    const refs = desc ? (await store.listRefs()).filter((r) => r.descriptor.digest === desc.digest) : [];
    if (refs.length === 0) {
      missing.push(input);
      continue;
    }
    for (const r of refs) if (await store.deleteRef(r.name)) removed.push(r.name);
  }
  return { removed, missing };
}
