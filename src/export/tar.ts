/** The tar exporter: the final filesystem as one tar stream (buildx `--output type=tar`). */
import { KilnError } from '../errors.js';
import { tarStream } from '../oci/tar.js';
import { destinationName, writeDestination } from './destination.js';
import { filesystemEntries } from './filesystem.js';
import type { ExportContext, ExportDestination, Exporter, ExportSource, MountedFilesystem } from './types.js';

export interface TarExportOptions {
  dest: ExportDestination;
}

/** Needs the source's filesystem; throws a KilnError naming the exporter when it has none. */
export async function sourceFilesystem(source: ExportSource, type: string): Promise<MountedFilesystem> {
  if (!source.filesystem || source.images.length !== 1) {
    throw new KilnError(`the ${type} exporter writes the filesystem of one image, and this export has ${source.filesystem ? `${source.images.length} images` : 'no filesystem to read'}`, {
      hint: 'export a single built image, or use the oci or docker exporter for several',
    });
  }
  return source.filesystem();
}

/**
 * Writes the filesystem of `images[0]` as a tar archive: every path with its type, mode,
 * owner, mtime, link target and xattrs, parents before children, no image metadata.
 */
export function tarExporter(options: TarExportOptions): Exporter {
  return {
    type: 'tar',
    async export(source: ExportSource, context?: ExportContext) {
      const fs = await sourceFilesystem(source, 'tar');
      try {
        await writeDestination(tarStream(filesystemEntries(fs.dir)), options.dest, context?.signal);
      } finally {
        await fs.release();
      }
      return { type: 'tar', descriptor: source.images[0].descriptor, dest: destinationName(options.dest) };
    },
  };
}
