import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { KilnError } from '../errors.js';
import { listImages, type ImageSummary } from '../images.js';
import { familiarRepository } from '../oci/reference.js';
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
  /** repository@sha256:… the image was pushed as or pulled by. */
  RepoDigests: string[];
  /** With --digests: the repo digest of this row's repository ("sha256:…"), or "<none>". */
  RepoDigest?: string;
  /** A multi-platform image's platforms ("linux/amd64,linux/arm64"); "" for a single-platform one. */
  Platforms: string;
}

/** The digest part of the first repo digest in `repository`, or "<none>" (docker images --digests). */
function digestIn(repository: string, repoDigests: string[]): string {
  const own = familiarRepository(repository);
  const hit = repoDigests.find((r) => familiarRepository(r.slice(0, r.lastIndexOf('@'))) === own);
  return hit ? hit.slice(hit.lastIndexOf('@') + 1) : '<none>';
}

/**
 * The rows `kiln images --digests` shows: each name with the digest its repository has, and
 * one more row (tag <none>) for each repository an image was pushed to or pulled from under
 * no name of the store, as docker lists an image pulled by digest.
 */
export function withRepoDigests(rows: ImageRow[]): ImageRow[] {
  const out: ImageRow[] = [];
  const named = new Set(rows.map((r) => `${r.Digest} ${familiarRepository(r.Repository)}`));
  const added = new Set<string>();
  for (const r of rows) {
    out.push({ ...r, RepoDigest: digestIn(r.Repository, r.RepoDigests) });
    for (const rd of r.RepoDigests) {
      const repository = rd.slice(0, rd.lastIndexOf('@'));
      const key = `${r.Digest} ${familiarRepository(repository)}`;
      if (named.has(key) || added.has(key)) continue;
      added.add(key);
      out.push({ ...r, Repository: repository, Tag: '<none>', RepoDigest: rd.slice(rd.lastIndexOf('@') + 1) });
    }
  }
  return out;
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
    RepoDigests: image.repoDigests,
    Platforms: image.platforms?.join(',') ?? '',
  };
}

export const register: Registrar = (program: Command, globals) => {
  program
    .command('images')
    .description('List the images in the kiln store')
    .argument('[repository[:tag]]', 'only images of this repository (and tag)')
    .option('-q, --quiet', 'only image IDs')
    .option('--no-trunc', 'full image IDs')
    .option('--digests', 'show the digests the images were pushed as or pulled by')
    .option('--format <format>', 'table (default) or json (one object per line)', 'table')
    .action(async (filter: string | undefined, o: { quiet?: boolean; trunc: boolean; digests?: boolean; format: string }) => {
      if (o.format !== 'table' && o.format !== 'json') throw new KilnError(`unknown --format ${JSON.stringify(o.format)}: use table or json`);
      const now = Date.now();
      const listed = (await listImages(globals().root, filter)).map((image) => imageRow(image, now));
      const rows = o.digests ? withRepoDigests(listed) : listed;
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
      const table = o.digests
        ? [['REPOSITORY', 'TAG', 'DIGEST', 'IMAGE ID', 'CREATED', 'SIZE'], ...rows.map((r) => [r.Repository, r.Tag, r.RepoDigest ?? '<none>', id(r), r.CreatedSince, r.Size])]
        : [['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'], ...rows.map((r) => [r.Repository, r.Tag, id(r), r.CreatedSince, r.Size])];
      // a PLATFORMS column once the store holds a multi-platform image (the table is docker's otherwise)
      if (rows.some((r) => r.Platforms !== '')) table.forEach((line, i) => line.push(i === 0 ? 'PLATFORMS' : rows[i - 1].Platforms));
      process.stdout.write(formatTable(table));
    });
};
