/** Images the store holds, by name, through an exporter: `kiln save` (docker or OCI archive), or any other sink. */
import { KilnError } from '../errors.js';
import { normalizeName, parseReference } from '../oci/reference.js';
import { isDigest } from '../oci/digest.js';
import { loadImage, type LoadedImage } from '../oci/image.js';
import { isIndexType } from '../oci/walk.js';
import type { Platform } from '../oci/types.js';
import { ContentStore } from '../oci/store.js';
import { Snapshotter } from '../snapshot/snapshotter.js';
import { sharedFilesystem } from './filesystem.js';
import { dockerArchiveExporter } from './docker-archive.js';
import { ociArchiveExporter } from './oci-archive.js';
import type { ExportContext, ExportDestination, Exporter, ExportImage, ExportResult } from './types.js';

export type ArchiveFormat = 'docker' | 'oci';

function notFound(name: string): KilnError {
  let shown = name;
  try {
    shown = normalizeName(name);
  } catch {
    // shown as given
  }
  return new KilnError(`image ${shown} not found in the store; build it, or kiln load/import it`, { hint: 'kiln images lists what the store holds' });
}

/** The stored "repo:tag" a command-line name refers to; undefined for digests and id prefixes. */
async function tagFor(store: ContentStore, name: string): Promise<string | undefined> {
  if (isDigest(name)) return undefined;
  let ref;
  try {
    ref = parseReference(name);
  } catch {
    return undefined;
  }
  const tagged = ref.tag !== undefined ? `${ref.repository}:${ref.tag}` : ref.digest === undefined ? `${ref.repository}:latest` : undefined;
  if (!tagged) return undefined;
  const refs = await store.listRefs();
  return refs.some((r) => r.name === tagged) ? tagged : undefined;
}

export interface SaveOptions {
  /**
   * One platform of a multi-platform image: its manifest alone is saved (both formats). Without
   * it `oci` keeps the whole index and `docker` takes this machine's platform.
   */
  platform?: Platform;
}

/**
 * Writes the named images to a tar archive: `docker` is what `docker save` writes and
 * `docker load` reads; `oci` is an OCI image layout with the names as ref.name annotations.
 * A name given by tag is recorded in the archive; a digest or image id is not. For `oci` a
 * name pointing at an index keeps the index (or, with `platform`, that platform's manifest);
 * `docker` takes one platform's manifest from it (`platform`, default this machine's) and also
 * accepts image ids. A file is written to a temp name and renamed when complete.
 */
export async function saveImages(store: ContentStore, names: string[], out: ExportDestination, format: ArchiveFormat = 'docker', options: SaveOptions = {}): Promise<ExportResult> {
  if (names.length === 0) throw new KilnError('no images to save', { hint: 'name at least one image' });
  const images: ExportImage[] = [];
  for (const name of names) {
    let descriptor;
    if (format === 'oci' && !options.platform) {
      descriptor = await store.resolve(name);
      if (!descriptor) throw notFound(name);
    } else {
      descriptor = (await loadPlatform(store, name, format, options.platform)).manifestDescriptor;
    }
    const tag = await tagFor(store, name);
    images.push({ descriptor, names: tag ? [tag] : [] });
  }
  const exporter = format === 'oci' ? ociArchiveExporter({ dest: out }) : dockerArchiveExporter({ dest: out });
  return exporter.export({ images, store });
}

/**
 * The image `name` names, for one platform: a docker archive holds single-platform images only,
 * so an index without this machine's platform says how to choose one.
 */
async function loadPlatform(store: ContentStore, name: string, format: ArchiveFormat, platform: Platform | undefined): Promise<LoadedImage> {
  try {
    return await loadImage(store, name, platform);
  } catch (e) {
    if (platform || !(e instanceof KilnError) || e.code !== 'not-found' || !isIndexType((await store.resolve(name).catch(() => undefined))?.mediaType)) throw e;
    throw new KilnError(`${e.message}: a ${format} archive holds one platform of it`, {
      code: 'not-found',
      hint: `choose one with kiln save --platform OS/ARCH, or keep every platform with kiln save --format oci`,
      cause: e,
    });
  }
}

/**
 * Exports one image of the store in `root` (a name, digest or image id; an index gives this
 * platform's manifest) through any exporter, its filesystem mounted when the exporter asks
 * (layers unpacked as needed, held by a lease until done): `docker export`'s job with the tar
 * exporter, a root filesystem with the local one.
 */
export async function exportStoredImage(root: string, name: string, exporter: Exporter, context?: ExportContext): Promise<ExportResult> {
  const store = await ContentStore.open(root);
  const { manifestDescriptor: descriptor } = await loadImage(store, name);
  const tag = await tagFor(store, name);
  const lease = await store.lease();
  const fs = sharedFilesystem(store, new Snapshotter(root), descriptor, lease);
  try {
    return await exporter.export({ images: [{ descriptor, names: tag ? [tag] : [] }], store, filesystem: fs.filesystem }, context);
  } finally {
    await fs.release();
    await lease.release();
  }
}
