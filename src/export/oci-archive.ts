/**
 * The OCI archive exporter: a tar of an OCI image layout holding the images, each named by
 * ref.name and containerd's image-name annotations (what `skopeo copy oci-archive:`,
 * `docker buildx --output type=oci` and containerd's import use).
 */
import { KilnError } from '../errors.js';
import { canonicalJSON } from '../oci/canonical.js';
import { Digester, digestHex } from '../oci/digest.js';
import { layerVariant } from '../oci/layer.js';
import type { ContentStore } from '../oci/store.js';
import { walk, type WalkNode } from '../oci/walk.js';
import { tarStream, type TarEntry } from '../oci/tar.js';
import { MediaType, RefNameAnnotation, type Descriptor, type ImageIndex } from '../oci/types.js';
import { ContainerdImageNameAnnotation } from '../oci/archive.js';
import { destinationName, writeDestination } from './destination.js';
import { blobEntry, dirEntry, fileEntry } from './entries.js';
import type { ExportContext, ExportDestination, Exporter, ExportImage, ExportSource } from './types.js';

export interface OciArchiveOptions {
  dest: ExportDestination;
}

/**
 * Writes the source's images as an OCI layout archive. Layers kept uncompressed in the store
 * (what builds make) are gzipped on the way out, deterministically, so the archive is what a
 * registry would get; their manifests (and any index above them) are rewritten to match. The
 * layout's index lists one entry per image, in order; the result's descriptor is that index.
 */
export function ociArchiveExporter(options: OciArchiveOptions): Exporter {
  return {
    type: 'oci',
    async export(source: ExportSource, context?: ExportContext) {
      if (source.images.length === 0) throw new KilnError('no images to save', { hint: 'name at least one image' });
      const { entries, index } = await ociLayout(source.store, source.images);
      await writeDestination(tarStream(entries), options.dest, context?.signal);
      const json = Buffer.from(canonicalJSON(index));
      const d = new Digester();
      d.update(json);
      return {
        type: 'oci',
        descriptor: { mediaType: MediaType.ociIndex, digest: d.digest(), size: json.length },
        names: source.images.flatMap((i) => i.names.slice(0, 1)),
        dest: destinationName(options.dest),
      };
    },
  };
}

async function ociLayout(store: ContentStore, images: ExportImage[]): Promise<{ entries: AsyncGenerator<TarEntry>; index: ImageIndex }> {
  const refs: Descriptor[] = [];
  /** Blobs to write: from the store, or made here (rewritten JSON). */
  const blobs = new Map<string, { descriptor: Descriptor; content?: Buffer }>();
  const seen = new Map<string, Descriptor | undefined>();
  const addJSON = (mediaType: string, value: unknown): Descriptor => {
    const content = Buffer.from(canonicalJSON(value));
    const d = new Digester();
    d.update(content);
    const descriptor: Descriptor = { mediaType, digest: d.digest(), size: content.length };
    blobs.set(descriptor.digest, { descriptor, content });
    return descriptor;
  };
  // every index and manifest the images reach, read once; an index may list platforms that
  // were never fetched (the archive carries what we have), anything else must be there
  const nodes = new Map<string, WalkNode>();
  const missing = (d: Descriptor) =>
    new KilnError(`blob ${d.digest} (${d.mediaType}) is missing from the store ${store.root}`, { hint: 'the image is incomplete: rebuild, or pull/load it again' });
  for (const image of images) if (!(await store.hasBlob(image.descriptor.digest))) throw missing(image.descriptor);
  await walk(
    store,
    images.map((i) => i.descriptor),
    async (node) => {
      if ((node.kind === 'config' || node.kind === 'layer') && !(await store.hasBlob(node.descriptor.digest))) throw missing(node.descriptor as Descriptor);
      nodes.set(node.descriptor.digest, node);
    },
    { missing: (node) => (node.parent?.kind === 'index' ? 'skip' : 'error') },
  );
  const keep = (d: Descriptor) => {
    if (!blobs.has(d.digest)) blobs.set(d.digest, { descriptor: d });
  };
  /** The descriptor `d` becomes in the archive (undefined: a manifest of an index that we do not have). */
  const rewrite = async (d: Descriptor): Promise<Descriptor | undefined> => {
    if (seen.has(d.digest)) return seen.get(d.digest);
    const node = nodes.get(d.digest);
    let out: Descriptor | undefined = d;
    if (!node) {
      out = undefined;
    } else if (node.index) {
      const manifests: Descriptor[] = [];
      let changed = false;
      for (const m of node.index.manifests) {
        const nm = await rewrite(m);
        if (nm && nm.digest !== m.digest) changed = true;
        manifests.push(nm ? { ...m, mediaType: nm.mediaType, digest: nm.digest, size: nm.size } : m);
      }
      if (changed) out = addJSON(d.mediaType, { ...node.index, manifests });
      else keep(d);
    } else if (node.manifest) {
      const manifest = node.manifest;
      keep(manifest.config);
      const layers: Descriptor[] = [];
      let changed = false;
      for (const l of manifest.layers) {
        if (l.mediaType === MediaType.ociLayerTar) {
          let gz = seen.get(`gzip:${l.digest}`);
          if (!gz) {
            // the layer's gzip form: made once (the first export that wants it), recorded as
            // a variant of the layer and reused by every later export
            gz = (await layerVariant(store, { descriptor: l, diffId: l.digest }, 'gzip')).descriptor;
            keep(gz);
            seen.set(`gzip:${l.digest}`, gz);
          }
          layers.push(gz);
          changed = true;
        } else {
          keep(l);
          layers.push(l);
        }
      }
      if (changed) out = addJSON(d.mediaType, { ...manifest, layers });
      else keep(d);
    } else {
      keep(d);
    }
    seen.set(d.digest, out);
    return out;
  };
  for (const image of images) {
    const written = (await rewrite(image.descriptor))!;
    const annotations: Record<string, string> = { ...(image.descriptor.annotations ?? {}) };
    const full = image.names[0];
    if (full) {
      annotations[ContainerdImageNameAnnotation] = full;
      annotations[RefNameAnnotation] = full;
    }
    refs.push({ mediaType: written.mediaType, digest: written.digest, size: written.size, ...(Object.keys(annotations).length > 0 ? { annotations } : {}) });
  }
  const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: refs };
  async function* gen(): AsyncGenerator<TarEntry> {
    yield dirEntry('blobs');
    yield dirEntry('blobs/sha256');
    for (const b of [...blobs.values()].sort((a, c) => (a.descriptor.digest < c.descriptor.digest ? -1 : 1))) {
      if (b.content) yield fileEntry(`blobs/sha256/${digestHex(b.descriptor.digest)}`, b.content);
      else yield blobEntry(store, b.descriptor);
    }
    yield fileEntry('index.json', Buffer.from(canonicalJSON(index)));
    yield fileEntry('oci-layout', Buffer.from(canonicalJSON({ imageLayoutVersion: '1.0.0' })));
  }
  return { entries: gen(), index };
}
