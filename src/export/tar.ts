/** The tar exporter: the final filesystem as one tar stream (buildx `--output type=tar`). */
import { tarStream } from '../oci/tar.js';
import { destinationName, writeDestination } from './destination.js';
import { filesystemEntries, sourceFilesystem } from './filesystem.js';
import type { ExportContext, ExportDestination, Exporter, ExportSource } from './types.js';

export interface TarExportOptions {
  dest: ExportDestination;
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
