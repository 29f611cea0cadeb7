/**
 * The docker archive exporter: what `docker save` writes and `docker load` reads
 * (manifest.json, repositories, <config>.json, <diffid>/layer.tar uncompressed).
 */
import { createWriteStream, promises as fsp } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { KilnError } from '../errors.js';
import { Digester, digestHex, isDigest } from '../oci/digest.js';
import { loadImage } from '../oci/image.js';
import { decompress, tarStream, type TarEntry } from '../oci/tar.js';
import { compressionOfMediaType } from '../oci/variants.js';
import type { Descriptor, ImageConfig, ImageManifest } from '../oci/types.js';
import type { DockerManifestItem } from '../oci/archive.js';
import { destinationName, writeDestination } from './destination.js';
import { blobEntry, dirEntry, fileEntry } from './entries.js';
import type { ExportContext, ExportDestination, Exporter, ExportImage, ExportSource } from './types.js';
import type { Provider, RefStore, StagingIngester } from '../oci/content.js';

export interface DockerArchiveOptions {
  dest: ExportDestination;
}

/**
 * Writes the source's images as a docker archive. Images with the same manifest are one
 * entry of manifest.json with all their names as RepoTags; an index gives the manifest for
 * this machine's platform (a docker archive holds one platform per image).
 */
export function dockerArchiveExporter(options: DockerArchiveOptions): Exporter {
  return {
    type: 'docker',
    async export(source: ExportSource, context?: ExportContext) {
      if (source.images.length === 0) throw new KilnError('no images to save', { hint: 'name at least one image' });
      const cleanups: string[] = [];
      try {
        const { entries, names } = await dockerArchive(source.store, source.images, cleanups);
        await writeDestination(tarStream(entries), options.dest, context?.signal);
        return { type: 'docker', names, dest: destinationName(options.dest) };
      } finally {
        for (const f of cleanups) await fsp.rm(f, { force: true });
      }
    },
  };
}

async function dockerArchive(store: Provider & RefStore & Pick<StagingIngester, 'tempPath'>, images: ExportImage[], cleanups: string[]): Promise<{ entries: AsyncGenerator<TarEntry>; names: string[] }> {
  const items = new Map<string, { manifest: ImageManifest; config: ImageConfig; configDescriptor: Descriptor; tags: string[] }>();
  for (const image of images) {
    const img = await loadImage(store, image.descriptor.digest);
    const key = img.manifestDescriptor.digest;
    const item = items.get(key) ?? { manifest: img.manifest, config: img.config, configDescriptor: img.configDescriptor, tags: [] };
    for (const tag of image.names) if (!item.tags.includes(tag)) item.tags.push(tag);
    items.set(key, item);
  }
  const manifestJSON: DockerManifestItem[] = [];
  const repositories: Record<string, Record<string, string>> = {};
  const layerMembers = new Map<string, { blob: Descriptor } | { file: string; size: number }>();
  const configs = new Map<string, Descriptor>();
  for (const item of items.values()) {
    const diffIds = item.config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== item.manifest.layers.length) {
      throw new KilnError(`image ${item.tags[0] ?? item.configDescriptor.digest} is malformed: ${item.manifest.layers.length} layers but ${diffIds.length} diff_ids`);
    }
    const layerPaths: string[] = [];
    for (let i = 0; i < diffIds.length; i++) {
      const diffId = diffIds[i];
      if (!isDigest(diffId)) throw new KilnError(`image config ${item.configDescriptor.digest} has an invalid diff_id ${JSON.stringify(diffId)}`);
      const dir = digestHex(diffId);
      layerPaths.push(`${dir}/layer.tar`);
      if (layerMembers.has(dir)) continue;
      // docker load wants the uncompressed tar, its size in the header: a layer stored plain
      // (what builds make) is streamed from the store as it is; a compressed one is unpacked
      // to a temp file first, checked against its diff id
      const layer = item.manifest.layers[i];
      if (compressionOfMediaType(layer.mediaType) === 'none') {
        if (layer.digest !== diffId) throw inconsistent(layer.digest, layer.digest, diffId);
        layerMembers.set(dir, { blob: layer });
        continue;
      }
      const tmp = store.tempPath('save');
      cleanups.push(tmp);
      const digester = new Digester();
      await pipeline(
        decompress(store.openBlob(layer.digest)),
        async function* (src: AsyncIterable<Buffer>) {
          for await (const chunk of src) {
            digester.update(chunk);
            yield chunk;
          }
        },
        createWriteStream(tmp),
      );
      const actual = digester.digest();
      if (actual !== diffId) throw inconsistent(layer.digest, actual, diffId);
      layerMembers.set(dir, { file: tmp, size: digester.size });
    }
    const configFile = `${digestHex(item.configDescriptor.digest)}.json`;
    configs.set(configFile, item.configDescriptor);
    manifestJSON.push({ Config: configFile, RepoTags: item.tags.length > 0 ? item.tags : null, Layers: layerPaths });
    const top = layerPaths.length > 0 ? layerPaths[layerPaths.length - 1].split('/')[0] : digestHex(item.configDescriptor.digest);
    for (const tag of item.tags) {
      const colon = tag.lastIndexOf(':');
      const repo = tag.slice(0, colon);
      (repositories[repo] ??= {})[tag.slice(colon + 1)] = top;
    }
  }
  async function* gen(): AsyncGenerator<TarEntry> {
    for (const [dir, member] of layerMembers) {
      yield dirEntry(dir);
      yield fileEntry(`${dir}/VERSION`, Buffer.from('1.0'));
      if ('blob' in member) yield blobEntry(store, member.blob, `${dir}/layer.tar`);
      else yield { path: `${dir}/layer.tar`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: member.size, sourcePath: member.file };
    }
    for (const [file, d] of configs) yield blobEntry(store, d, file);
    yield fileEntry('manifest.json', Buffer.from(JSON.stringify(manifestJSON)));
    if (Object.keys(repositories).length > 0) yield fileEntry('repositories', Buffer.from(JSON.stringify(repositories)));
  }
  return { entries: gen(), names: [...items.values()].flatMap((i) => i.tags) };
}

function inconsistent(layer: string, actual: string, diffId: string): KilnError {
  return new KilnError(`layer ${layer} uncompresses to ${actual}, but the image config says ${diffId}`, { hint: 'the image is inconsistent; rebuild it' });
}
