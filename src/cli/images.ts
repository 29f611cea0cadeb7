import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { KilnError } from '../errors.js';
import { ContentStore } from '../oci/store.js';
import { imageSize, loadImage } from '../oci/image.js';
import { parseReference, splitRepoTag } from '../refs.js';
import { formatTable, humanDuration, humanSize } from './format.js';

export interface ImageRow {
  Repository: string;
  Tag: string;
  /** First 12 hex digits of the manifest (or index) digest. */
  ID: string;
  FullID: string;
  Digest: string;
  CreatedAt: string;
  CreatedSince: string;
  Size: string;
  SizeBytes: number;
}

/** One row per name in the store, newest first. `filter` is "repo" or "repo:tag". */
export async function listImages(root: string, filter?: string): Promise<ImageRow[]> {
  const store = await ContentStore.open(root);
  let want: { repository: string; tag?: string } | undefined;
  if (filter) {
    const ref = parseReference(filter);
    want = { repository: ref.repository, tag: ref.tag };
  }
  const rows: (ImageRow & { created: number })[] = [];
  const now = Date.now();
  for (const { name, descriptor } of await store.listRefs()) {
    const { repository, tag } = splitRepoTag(name);
    if (want && (want.repository !== repository || (want.tag !== undefined && want.tag !== tag))) continue;
    let created = NaN;
    // IMAGE ID is the config digest, as docker shows it (kiln build prints the same)
    let imageId = descriptor.digest;
    try {
      const img = await loadImage(store, descriptor.digest);
      created = img.config.created ? Date.parse(img.config.created) : NaN;
      imageId = img.configDescriptor.digest;
    } catch {
      // an index without this platform, or a foreign artifact: still listed
    }
    let size = NaN;
    try {
      size = await imageSize(store, descriptor);
    } catch {
      // incomplete image
    }
    rows.push({
      Repository: repository,
      Tag: tag,
      ID: imageId.slice('sha256:'.length, 'sha256:'.length + 12),
      FullID: imageId,
      Digest: descriptor.digest,
      CreatedAt: Number.isNaN(created) ? '' : new Date(created).toISOString(),
      CreatedSince: Number.isNaN(created) ? 'N/A' : `${humanDuration(now - created)} ago`,
      Size: Number.isNaN(size) ? 'N/A' : humanSize(size),
      SizeBytes: Number.isNaN(size) ? 0 : size,
      created: Number.isNaN(created) ? -Infinity : created,
    });
  }
  rows.sort((a, b) => b.created - a.created || a.Repository.localeCompare(b.Repository) || a.Tag.localeCompare(b.Tag));
  return rows.map(({ created: _created, ...row }) => row);
}

export const register: Registrar = (program: Command, globals) => {
  program
    .command('images')
    .description('List the images in the kiln store')
    .argument('[repository[:tag]]', 'only images of this repository (and tag)')
    .option('-q, --quiet', 'only image IDs')
    .option('--no-trunc', 'full image IDs')
    .option('--format <format>', 'table (default) or json (one object per line)', 'table')
    .action(async (filter: string | undefined, o: { quiet?: boolean; trunc: boolean; format: string }) => {
      if (o.format !== 'table' && o.format !== 'json') throw new KilnError(`unknown --format ${JSON.stringify(o.format)}: use table or json`);
      const rows = await listImages(globals().root, filter);
      const id = (r: ImageRow) => (o.trunc ? r.ID : r.FullID);
      if (o.quiet) {
        const seen = new Set<string>();
        for (const r of rows) {
          if (seen.has(id(r))) continue;
          seen.add(id(r));
          process.stdout.write(`${id(r)}\n`);
        }
        return;
      }
      if (o.format === 'json') {
        for (const r of rows) process.stdout.write(`${JSON.stringify({ ...r, ID: id(r) })}\n`);
        return;
      }
      const table = [['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'], ...rows.map((r) => [r.Repository, r.Tag, id(r), r.CreatedSince, r.Size])];
      process.stdout.write(formatTable(table));
    });
};
