/**
 * The final filesystem of an image, for the exporters that write files (local, tar): its
 * layers unpacked by the snapshotter (a build has them already) and mounted read-only as one
 * overlay, so the kernel applies whiteouts and opaque directories exactly as RUN saw them.
 */
import { loadImage } from '../oci/image.js';
import { layerEntriesFromDirectory, type LayerEntry } from '../oci/layer.js';
import type { ContentStore, Lease } from '../oci/store.js';
import type { Descriptor, ImageIndex, Platform } from '../oci/types.js';
import { isIndexType, isManifestType } from '../oci/walk.js';
import type { Snapshotter } from '../snapshot/snapshotter.js';
import { KilnError } from '../errors.js';
import type { ExportSource, MountedFilesystem } from './types.js';
import type { Provider, RefStore } from '../oci/content.js';

/**
 * Mounts the filesystem of the image `descriptor` (a manifest, or an index: this platform's
 * manifest), unpacking the layers the snapshotter does not have yet. With a lease, the
 * unpacked layers are protected from pruning while mounted.
 */
export async function mountImageFilesystem(store: Provider & RefStore, snapshotter: Snapshotter, descriptor: Descriptor, lease?: Lease): Promise<MountedFilesystem> {
  const img = await loadImage(store, descriptor.digest);
  const diffIds = img.config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== img.manifest.layers.length) {
    throw new KilnError(`image ${descriptor.digest} is malformed: ${img.manifest.layers.length} layers but ${diffIds.length} diff_ids`);
  }
  await lease?.protect({ layers: diffIds });
  const lowers: string[] = [];
  for (let i = 0; i < diffIds.length; i++) {
    const layer = img.manifest.layers[i];
    lowers.push((await snapshotter.hasLayer(diffIds[i])) ? snapshotter.layerDir(diffIds[i]) : await snapshotter.unpackLayer(diffIds[i], () => store.openBlob(layer.digest)));
  }
  const mount = await snapshotter.mount(lowers, { readonly: true });
  return { dir: mount.merged, release: () => mount.release() };
}

/**
 * An image's filesystem for a run of exporters: mounted when the first asks for it, shared by
 * the rest (what they release is a no-op), unmounted by `release` at the end. `descriptor` may
 * be an index: `filesystem(manifest)` mounts that platform's, `filesystem()` this machine's.
 */
export function sharedFilesystem(
  store: ContentStore,
  snapshotter: Snapshotter,
  descriptor: Descriptor,
  lease?: Lease,
): { filesystem: (manifest?: Descriptor) => Promise<MountedFilesystem>; release: () => Promise<void> } {
  const mounted = new Map<string, Promise<MountedFilesystem>>();
  return {
    filesystem: async (manifest?: Descriptor) => {
      const which = manifest ?? descriptor;
      let m = mounted.get(which.digest);
      if (!m) {
        m = mountImageFilesystem(store, snapshotter, which, lease);
        mounted.set(which.digest, m);
      }
      return { dir: (await m).dir, release: async () => undefined };
    },
    release: async () => {
      for (const m of mounted.values()) await (await m.catch(() => undefined))?.release();
    },
  };
}

/** One platform's image of an index, as the file-writing exporters lay them out. */
export interface PlatformManifest {
  platform: Platform;
  descriptor: Descriptor;
  /** The subdirectory buildx gives it: os_arch[_variant] (linux_amd64, linux_arm_v7). */
  dir: string;
}

/**
 * The platform images of `descriptor` when it is an index with more than one (attestations
 * and platforms not in the store left out); undefined for a manifest or an index of one,
 * whose filesystem is written as it is.
 */
export async function platformManifests(store: Pick<Provider, 'readJSON' | 'hasBlob'>, descriptor: Descriptor): Promise<PlatformManifest[] | undefined> {
  if (!isIndexType(descriptor.mediaType)) return undefined;
  const index = await store.readJSON<ImageIndex>(descriptor.digest);
  const out: PlatformManifest[] = [];
  for (const m of index.manifests ?? []) {
    if (!isManifestType(m.mediaType) || !m.platform || m.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest') continue;
    if (!(await store.hasBlob(m.digest))) continue;
    const p = m.platform;
    out.push({ platform: p, descriptor: m, dir: [p.os, p.architecture, ...(p.variant ? [p.variant] : [])].join('_') });
  }
  return out.length > 1 ? out : undefined;
}

/**
 * The entries of a mounted filesystem in tar order (parents first, names sorted by bytes), the
 * root itself excluded: owners, modes, mtimes, link targets, device numbers and xattrs as they
 * are on disk; files that share an inode after the first as hard links.
 */
export function filesystemEntries(dir: string): AsyncGenerator<LayerEntry> {
  return layerEntriesFromDirectory(dir, { xattrs: true });
}

/** Needs the source's filesystem; throws a KilnError naming the exporter when it has none. */
export async function sourceFilesystem(source: ExportSource, type: string, manifest?: Descriptor): Promise<MountedFilesystem> {
  if (!source.filesystem || source.images.length !== 1) {
    throw new KilnError(`the ${type} exporter writes the filesystem of one image, and this export has ${source.filesystem ? `${source.images.length} images` : 'no filesystem to read'}`, {
      hint: 'export a single built image, or use the oci or docker exporter for several',
    });
  }
  return source.filesystem(manifest);
}
