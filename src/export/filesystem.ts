/**
 * The final filesystem of an image, for the exporters that write files (local, tar): its
 * layers unpacked by the snapshotter (a build has them already) and mounted read-only as one
 * overlay, so the kernel applies whiteouts and opaque directories exactly as RUN saw them.
 */
import { loadImage } from '../oci/image.js';
import { layerEntriesFromDirectory, type LayerEntry } from '../oci/layer.js';
import type { ContentStore } from '../oci/store.js';
import type { Descriptor } from '../oci/types.js';
import type { Snapshotter } from '../snapshot/snapshotter.js';
import { KilnError } from '../errors.js';
import type { MountedFilesystem } from './types.js';

/** Mounts the filesystem of the image `descriptor` (a manifest, or an index: this platform's manifest). */
export async function mountImageFilesystem(store: ContentStore, snapshotter: Snapshotter, descriptor: Descriptor): Promise<MountedFilesystem> {
  const img = await loadImage(store, descriptor.digest);
  const diffIds = img.config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== img.manifest.layers.length) {
    throw new KilnError(`image ${descriptor.digest} is malformed: ${img.manifest.layers.length} layers but ${diffIds.length} diff_ids`);
  }
  const lowers: string[] = [];
  for (let i = 0; i < diffIds.length; i++) {
    const layer = img.manifest.layers[i];
    lowers.push((await snapshotter.hasLayer(diffIds[i])) ? snapshotter.layerDir(diffIds[i]) : await snapshotter.unpackLayer(diffIds[i], () => store.openBlob(layer.digest)));
  }
  const mount = await snapshotter.mount(lowers, { readonly: true });
  return { dir: mount.merged, release: () => mount.release() };
}

/**
 * The entries of a mounted filesystem in tar order (parents first, names sorted by bytes), the
 * root itself excluded: owners, modes, mtimes, link targets, device numbers and xattrs as they
 * are on disk; files that share an inode after the first as hard links.
 */
export function filesystemEntries(dir: string): AsyncGenerator<LayerEntry> {
  return layerEntriesFromDirectory(dir, { xattrs: true });
}
