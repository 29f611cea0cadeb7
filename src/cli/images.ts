import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { KilnError } from '../errors.js';
import { listImages, type ImageSummary } from '../images.js';
import { formatTable, humanDuration, humanSize } from './format.js';

/** A line of `kiln images` (--format json prints these objects). */
export interface ImageRow {
  Repository: string;
  Tag: string;
  /** First 12 hex digits of the image ID (the config digest). */
  ID: string;
  FullID: string;
  Digest: string;
  CreatedAt: string;
  CreatedSince: string;
  Size: string;
  SizeBytes: number;
}

function imageRow(image: ImageSummary, now: number): ImageRow {
  return {
    Repository: image.repository,
    Tag: image.tag,
    ID: image.id.slice('sha256:'.length, 'sha256:'.length + 12),
    FullID: image.id,
    Digest: image.digest,
    CreatedAt: image.created ?? '',
    CreatedSince: image.created === undefined ? 'N/A' : `${humanDuration(now - Date.parse(image.created))} ago`,
    Size: image.size === undefined ? 'N/A' : humanSize(image.size),
    SizeBytes: image.size ?? 0,
  };
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
      const now = Date.now();
      const rows = (await listImages(globals().root, filter)).map((image) => imageRow(image, now));
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
