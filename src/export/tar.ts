/** The tar exporter: the final filesystem as one tar stream (buildx `--output type=tar`). */
import { tarStream } from '../oci/tar.js';
import type { LayerEntry } from '../oci/layer.js';
import { destinationName, writeDestination } from './destination.js';
import { filesystemEntries, platformManifests, sourceFilesystem, type PlatformManifest } from './filesystem.js';
import { dirEntry } from './entries.js';
import type { ExportContext, ExportDestination, Exporter, ExportSource, MountedFilesystem } from './types.js';

export interface TarExportOptions {
  dest: ExportDestination;
}

/** The entries of one platform's filesystem under `dir/` (hard link targets too). */
async function* under(dir: string, entries: AsyncIterable<LayerEntry>): AsyncGenerator<LayerEntry> {
  yield dirEntry(dir);
  for await (const e of entries) yield { ...e, path: `${dir}/${e.path}`, ...(e.type === 'hardlink' && e.linkname !== undefined ? { linkname: `${dir}/${e.linkname}` } : {}) };
}

/**
 * Writes the filesystem of `images[0]` as a tar archive: every path with its type, mode,
 * owner, mtime, link target and xattrs, parents before children, no image metadata. An index
 * of several platforms gives each platform's tree under its own directory (`linux_amd64/`,
 * `linux_arm64/`), as buildx does.
 */
export function tarExporter(options: TarExportOptions): Exporter {
  return {
    type: 'tar',
    async export(source: ExportSource, context?: ExportContext) {
      const platforms = source.images[0] ? await platformManifests(source.store, source.images[0].descriptor) : undefined;
      const mounted: MountedFilesystem[] = [];
      try {
        const trees: Array<{ p?: PlatformManifest; fs: MountedFilesystem }> = [];
        for (const p of platforms ?? [undefined]) {
          const fs = await sourceFilesystem(source, 'tar', p?.descriptor);
          mounted.push(fs);
          trees.push({ p, fs });
        }
        async function* all(): AsyncGenerator<LayerEntry> {
          for (const { p, fs } of trees) yield* p ? under(p.dir, filesystemEntries(fs.dir)) : filesystemEntries(fs.dir);
        }
        await writeDestination(tarStream(all()), options.dest, context?.signal);
      } finally {
        for (const fs of mounted) await fs.release();
      }
      return { type: 'tar', descriptor: source.images[0].descriptor, dest: destinationName(options.dest) };
    },
  };
}
