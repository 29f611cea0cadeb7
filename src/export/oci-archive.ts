/**
 * The OCI archive exporter: a tar of an OCI image layout holding the images, each named by
 * ref.name and containerd's image-name annotations (what `skopeo copy oci-archive:`,
 * `docker buildx --output type=oci` and containerd's import use).
 */
import { createWriteStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { describeErrno, isErrnoError, KilnError } from '../errors.js';
import { writeFileAtomic } from '../fsutil.js';
import { tempBeside } from '../lifecycle.js';
import { canonicalJSON } from '../oci/canonical.js';
import { Digester, digestHex } from '../oci/digest.js';
import type { ContentStore } from '../oci/store.js';
import { walk, type WalkRoot } from '../oci/walk.js';
import { convertImage, type ConvertOptions } from './convert.js';
import { tarStream, type TarEntry } from '../oci/tar.js';
import { MediaType, RefNameAnnotation, type Descriptor, type ImageIndex } from '../oci/types.js';
import { ContainerdImageNameAnnotation } from '../oci/archive.js';
import { destinationName, writeDestination } from './destination.js';
import { blobEntry, dirEntry, fileEntry } from './entries.js';
import type { ExportContext, ExportDestination, Exporter, ExportImage, ExportSource } from './types.js';

export interface OciArchiveOptions {
  dest: ExportDestination;
  /** false: an OCI layout directory at `dest` (a path) instead of a tar of one (buildx `tar=false`). */
  tar?: boolean;
  /** Layer compression, media types and annotations of the images (default: plain layers gzipped). */
  convert?: ConvertOptions;
}

/**
 * Writes the source's images as an OCI layout archive (or directory). Layers kept
 * uncompressed in the store (what builds make) are compressed on the way out,
 * deterministically, so the archive is what a registry would get; their manifests (and any
 * index above them) are rewritten to match (export/convert.ts). The layout's index lists one
 * entry per image, in order; the result's descriptor is that index.
 */
export function ociArchiveExporter(options: OciArchiveOptions): Exporter {
  return {
    type: 'oci',
    async export(source: ExportSource, context?: ExportContext) {
      if (source.images.length === 0) throw new KilnError('no images to save', { hint: 'name at least one image' });
      const { entries, index, blobs } = await ociLayout(source.store, source.images, { ...options.convert, compression: options.convert?.compression ?? { compression: 'gzip' } });
      if (options.tar === false) {
        if (typeof options.dest !== 'string') throw new KilnError('an OCI layout directory cannot be written to a stream', { code: 'invalid', hint: 'name a directory: dest=DIR' });
        await writeLayoutDirectory(source.store, options.dest, blobs, index);
      } else {
        await writeDestination(tarStream(entries), options.dest, context?.signal);
      }
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

type LayoutBlob = { descriptor: Descriptor; content?: Buffer };

async function ociLayout(store: ContentStore, images: ExportImage[], convert: ConvertOptions): Promise<{ entries: AsyncGenerator<TarEntry>; index: ImageIndex; blobs: LayoutBlob[] }> {
  const refs: Descriptor[] = [];
  /** Blobs to write: from the store, or made by the conversion (rewritten JSON). */
  const blobs = new Map<string, LayoutBlob>();
  const missing = (d: WalkRoot) =>
    new KilnError(`blob ${d.digest} (${d.mediaType}) is missing from the store ${store.root}`, { hint: 'the image is incomplete: rebuild, or pull/load it again' });
  for (const image of images) {
    if (!(await store.hasBlob(image.descriptor.digest))) throw missing(image.descriptor);
    const converted = await convertImage(store, image.descriptor, convert);
    const made = converted.documents;
    // every index and manifest the converted image reaches; an index may list platforms that
    // were never fetched (the archive carries what we have), anything else must be there
    const source = {
      hasBlob: async (digest: string) => made.has(digest) || (await store.hasBlob(digest)),
      readBlob: async (digest: string) => made.get(digest)?.content ?? (await store.readBlob(digest)),
    };
    await walk(
      source,
      [converted.descriptor],
      async (node) => {
        if ((node.kind === 'config' || node.kind === 'layer') && !(await store.hasBlob(node.descriptor.digest))) throw missing(node.descriptor);
        const d = node.descriptor as Descriptor;
        if (!blobs.has(d.digest)) blobs.set(d.digest, { descriptor: d, content: made.get(d.digest)?.content });
      },
      { missing: (node) => (node.parent?.kind === 'index' ? 'skip' : 'error') },
    );
    const written = converted.descriptor;
    const annotations: Record<string, string> = { ...(image.descriptor.annotations ?? {}), ...converted.descriptorAnnotations };
    const full = image.names[0];
    if (full) {
      annotations[ContainerdImageNameAnnotation] = full;
      annotations[RefNameAnnotation] = full;
    }
    refs.push({ mediaType: written.mediaType, digest: written.digest, size: written.size, ...(Object.keys(annotations).length > 0 ? { annotations } : {}) });
  }
  const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: refs };
  const sorted = [...blobs.values()].sort((a, c) => (a.descriptor.digest < c.descriptor.digest ? -1 : 1));
  async function* gen(): AsyncGenerator<TarEntry> {
    yield dirEntry('blobs');
    yield dirEntry('blobs/sha256');
    for (const b of sorted) {
      if (b.content) yield fileEntry(`blobs/sha256/${digestHex(b.descriptor.digest)}`, b.content);
      else yield blobEntry(store, b.descriptor);
    }
    yield fileEntry('index.json', Buffer.from(canonicalJSON(index)));
    yield fileEntry('oci-layout', Buffer.from(canonicalJSON({ imageLayoutVersion: '1.0.0' })));
  }
  return { entries: gen(), index, blobs: sorted };
}

/**
 * An OCI layout directory at `dest`: made when absent (in a temp directory beside it, renamed
 * when complete, removed on failure); an existing layout gets the blobs it lacks and a new
 * index.json, written last and atomically. Anything else already there is refused.
 */
async function writeLayoutDirectory(store: ContentStore, dest: string, blobs: LayoutBlob[], index: ImageIndex): Promise<void> {
  const st = await fsp.lstat(dest).catch(() => undefined);
  if (st && !st.isDirectory()) throw new KilnError(`cannot write an OCI layout to ${dest}: it is not a directory`, { code: 'invalid', hint: 'name a directory (it is made when absent), or drop tar=false to write a tar file' });
  if (st) {
    const names = await fsp.readdir(dest);
    if (names.length > 0 && !names.includes('oci-layout')) {
      throw new KilnError(`cannot write an OCI layout to ${dest}: the directory holds other files`, { code: 'exists', hint: 'name an empty or new directory, or an existing OCI layout' });
    }
  }
  const target = st ? dest : `${tempBeside(dest, 'layout')}`;
  try {
    const dir = path.join(target, 'blobs', 'sha256');
    await fsp.mkdir(dir, { recursive: true });
    for (const b of blobs) {
      const file = path.join(dir, digestHex(b.descriptor.digest));
      if (await fsp.stat(file).then((s) => s.size === b.descriptor.size, () => false)) continue;
      const tmp = tempBeside(file, 'blob');
      if (b.content) await fsp.writeFile(tmp, b.content, { mode: 0o644 });
      else await pipeline(store.openBlob(b.descriptor.digest), createWriteStream(tmp, { mode: 0o644 }));
      await fsp.rename(tmp, file);
    }
    await writeFileAtomic(path.join(target, 'oci-layout'), canonicalJSON({ imageLayoutVersion: '1.0.0' }));
    await writeFileAtomic(path.join(target, 'index.json'), canonicalJSON(index));
    if (!st) await fsp.rename(target, dest);
  } catch (e) {
    if (!st) await fsp.rm(target, { recursive: true, force: true }).catch(() => undefined);
    if (isErrnoError(e)) throw new KilnError(`cannot write the OCI layout ${dest}: ${describeErrno(e).what}`, { hint: `check that ${path.dirname(path.resolve(dest))} exists and is writable`, cause: e });
    throw e;
  }
}
