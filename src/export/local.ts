/** The local exporter: the final filesystem written to a directory (buildx `--output type=local`). */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { describeErrno, KilnError } from '../errors.js';
import { tarStream } from '../oci/tar.js';
import { extractLayer } from '../snapshot/unpack.js';
import { filesystemEntries, platformManifests, sourceFilesystem } from './filesystem.js';
import type { LayerEntry } from '../oci/layer.js';
import type { Exporter, ExportSource } from './types.js';

async function* ownedBy(entries: AsyncIterable<LayerEntry>, uid: number, gid: number): AsyncGenerator<LayerEntry> {
  for await (const e of entries) yield { ...e, uid, gid };
}

export interface LocalExportOptions {
  /** The directory to write to; made when absent. */
  dest: string;
  /**
   * Who owns what is written: `exporter` (default), the user running the export, as BuildKit's
   * local exporter does (the client receiving the files chowns them to itself); `image`, the
   * owners the image gives (a root filesystem to boot or chroot into; needs root).
   */
  owners?: 'exporter' | 'image';
}

/**
 * Writes the filesystem of `images[0]` into `dest` with modes, mtimes, links, device nodes and
 * xattrs as in the image, owned as `owners` says. What `dest` already holds stays unless the
 * image has the same path, which is replaced (BuildKit's merge); every path is made inside
 * `dest` (an existing symlink on the way is replaced by the image's directory, never
 * followed). The tree goes through the same safe extractor as layers do (snapshot/unpack.ts),
 * fed a tar of the mounted filesystem. An index of several platforms gives one subdirectory
 * per platform (`linux_amd64/`, `linux_arm_v7/`), as buildx writes them.
 */
export function localExporter(options: LocalExportOptions): Exporter {
  return {
    type: 'local',
    async export(source: ExportSource) {
      const dest = path.resolve(options.dest);
      if (dest === path.parse(dest).root) {
        throw new KilnError(`refusing to export an image's filesystem over ${dest}`, { hint: 'name a directory of its own, e.g. dest=./out' });
      }
      const st = await fsp.stat(dest).catch(() => undefined);
      if (st && !st.isDirectory()) throw new KilnError(`cannot export to ${options.dest}: it is not a directory`, { hint: 'name a directory (it is made when absent)' });
      if (!st) {
        await fsp.mkdir(dest, { recursive: true }).catch((e: NodeJS.ErrnoException) => {
          throw new KilnError(`cannot make the export directory ${options.dest}: ${describeErrno(e).what}`, { hint: 'name a directory you can write to', cause: e });
        });
      }
      // several platforms: each in its own subdirectory (linux_amd64/, linux_arm64/), as buildx
      const platforms = source.images[0] ? await platformManifests(source.store, source.images[0].descriptor) : undefined;
      for (const p of platforms ?? [undefined]) {
        const fs = await sourceFilesystem(source, 'local', p?.descriptor);
        try {
          const into = p ? path.join(dest, p.dir) : dest;
          if (p) await fsp.mkdir(into, { recursive: true });
          const entries = filesystemEntries(fs.dir);
          await extractLayer(tarStream(options.owners === 'image' ? entries : ownedBy(entries, process.getuid?.() ?? 0, process.getgid?.() ?? 0)), into, 'export');
        } finally {
          await fs.release();
        }
      }
      return { type: 'local', descriptor: source.images[0].descriptor, dest: options.dest };
    },
  };
}
