import { createReadStream, promises as fsp } from 'node:fs';
import { describeErrno, KilnError } from '../errors.js';
import { archiveReadError } from './archive.js';
import { normalizeTagName } from './reference.js';
import { applyChanges } from './changes.js';
import { writeImage } from './image.js';
import { writeLayer, type LayerEntry } from './layer.js';
import { hostPlatform } from './platform.js';
import type { ContentStore } from './store.js';
import { tarEntries } from './tar.js';
import type { ContainerConfig, Descriptor, ImageConfig, Platform } from './types.js';

export interface ImportOptions {
  /** Dockerfile instructions applied to the config (docker import --change). */
  changes?: string[];
  /** Default: this machine's platform. */
  platform?: Platform;
  /** Clamp file mtimes and set `created` (seconds since the epoch); default from SOURCE_DATE_EPOCH. */
  sourceDateEpoch?: number;
  /** History comment (docker writes "Imported from <file>"). */
  message?: string;
}

function epochFromEnv(): number | undefined {
  const v = process.env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    throw new KilnError(`SOURCE_DATE_EPOCH=${JSON.stringify(v)} is not a whole number of seconds`, { hint: 'set it to a Unix timestamp, e.g. $(git log -1 --format=%ct)' });
  }
  return n;
}

function cleanPath(name: string, tarFile: string): string | undefined {
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) {
    throw new KilnError(`${tarFile} contains the path ${JSON.stringify(name)}, which leaves the root filesystem`, { hint: 'remove ".." entries from the archive' });
  }
  return parts.length === 0 ? undefined : parts.join('/');
}

async function* entriesFromTar(tarFile: string): AsyncGenerator<LayerEntry> {
  for await (const { header, stream } of tarEntries(createReadStream(tarFile))) {
    const p = cleanPath(header.name, tarFile);
    if (p === undefined) continue;
    const xattrs = header.xattrs ?? {};
    const base = {
      path: p,
      mode: (header.mode ?? 0o644) & 0o7777,
      uid: header.uid ?? 0,
      gid: header.gid ?? 0,
      mtime: header.mtime ? Math.floor(header.mtime.getTime() / 1000) : 0,
      ...(Object.keys(xattrs).length > 0 ? { xattrs } : {}),
    };
    switch (header.type) {
      case 'file':
      case 'contiguous-file':
        yield { ...base, type: 'file', size: header.size ?? 0, contentStream: stream };
        break;
      case 'directory':
        yield { ...base, type: 'directory' };
        break;
      case 'symlink':
        yield { ...base, type: 'symlink', linkname: header.linkname ?? '' };
        break;
      case 'link': {
        const target = cleanPath(header.linkname ?? '', tarFile);
        if (target === undefined) throw new KilnError(`${tarFile}: hard link ${p} has no target`);
        yield { ...base, type: 'hardlink', linkname: target };
        break;
      }
      case 'character-device':
        yield { ...base, type: 'char', devmajor: header.devmajor ?? 0, devminor: header.devminor ?? 0 };
        break;
      case 'block-device':
        yield { ...base, type: 'block', devmajor: header.devmajor ?? 0, devminor: header.devminor ?? 0 };
        break;
      case 'fifo':
        yield { ...base, type: 'fifo' };
        break;
      default:
        // pax globals, GNU volume labels and the like carry no file
        break;
    }
  }
}

/**
 * `docker import`: a root filesystem tarball (.tar, .tar.gz, .tar.zst) becomes a one-layer image
 * named `name`. The layer is rewritten deterministically (normalised headers, leading "./" and
 * "/" dropped, entries in the archive's order); the config gets this machine's platform and a
 * history entry "kiln import". Returns the manifest descriptor.
 */
export async function importRootfs(store: ContentStore, tarFile: string, name: string, options: ImportOptions = {}): Promise<Descriptor> {
  normalizeTagName(name);
  const hint = 'give the path of a .tar or .tar.gz of a root filesystem';
  const st = await fsp.stat(tarFile).catch((e: NodeJS.ErrnoException) => {
    throw new KilnError(`cannot import ${tarFile}: ${describeErrno(e).what}`, { hint });
  });
  if (!st.isFile()) throw new KilnError(`cannot import ${tarFile}: it is not a regular file`, { hint });
  const epoch = options.sourceDateEpoch ?? epochFromEnv();
  const containerConfig: ContainerConfig = applyChanges({}, options.changes ?? []);
  const layer = await writeLayer(store, entriesFromTar(tarFile), { sourceDateEpoch: epoch }).catch((e: unknown) => {
    throw archiveReadError(e, tarFile, 'make the tarball again');
  });
  if (layer.entries === 0) throw new KilnError(`${tarFile} contains no files`, { hint: 'import a tarball of a root filesystem' });
  const platform = options.platform ?? hostPlatform();
  const created = new Date(epoch !== undefined ? epoch * 1000 : Date.now()).toISOString().replace(/\.000Z$/, 'Z');
  const config: ImageConfig = {
    created,
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: containerConfig,
    rootfs: { type: 'layers', diff_ids: [layer.diffId] },
    history: [{ created, created_by: 'kiln import', ...(options.message ? { comment: options.message } : {}) }],
  };
  const { manifestDescriptor } = await writeImage(store, { config, layers: [layer.descriptor] }, [name]);
  return manifestDescriptor;
}
