/**
 * `kiln sbom`: the SBOM of an image in the store, as SPDX 2.3 or CycloneDX 1.6 JSON.
 */
import { ContentStore } from '../oci/store.js';
import { loadImage } from '../oci/image.js';
import { formatPlatform, hostPlatform, platformMatches } from '../oci/platform.js';
import type { Platform } from '../oci/types.js';
import { KilnError } from '../errors.js';
import { VERSION } from '../version.js';
import { catalogImage } from './catalog.js';
import { cyclonedxDocument } from './cyclonedx.js';
import { spdxDocument, type SbomMeta } from './spdx.js';
import type { Catalog } from './types.js';

export type SbomFormat = 'spdx-json' | 'cyclonedx-json';
export const SBOM_FORMATS: readonly SbomFormat[] = ['spdx-json', 'cyclonedx-json'];

export interface SbomImageOptions {
  format: SbomFormat;
  /** For an index: the platform to describe (default: this machine's). */
  platform?: Platform;
}

export interface SbomImageResult {
  document: Record<string, unknown>;
  catalog: Catalog;
  /** 'catalogued': kiln read the image's layers. */
  source: 'catalogued';
  /** The platform manifest described. */
  manifestDigest: string;
}

/** An SBOM's creation time: now, or SOURCE_DATE_EPOCH when it is set and earlier (RFC 3339, seconds). */
export function sbomCreated(now = new Date()): string {
  const raw = process.env.SOURCE_DATE_EPOCH;
  let t = Math.floor(now.getTime() / 1000);
  if (raw !== undefined && raw !== '') {
    if (!/^\d+$/.test(raw)) throw new KilnError(`SOURCE_DATE_EPOCH must be a number of seconds, got "${raw}"`, { code: 'invalid' });
    t = Math.min(t, Number(raw));
  }
  return new Date(t * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A KilnError unless `format` is one kiln writes. */
export function checkSbomFormat(format: string): asserts format is SbomFormat {
  if (!(SBOM_FORMATS as readonly string[]).includes(format)) {
    throw new KilnError(`unknown SBOM format ${JSON.stringify(format)}`, { code: 'invalid', hint: `use one of: ${SBOM_FORMATS.join(', ')}` });
  }
}

/** The document for a catalogue in the format asked. */
export function sbomDocument(catalog: Catalog, format: SbomFormat, meta: SbomMeta): Record<string, unknown> {
  checkSbomFormat(format);
  return format === 'spdx-json' ? spdxDocument(catalog, meta) : cyclonedxDocument(catalog, meta);
}

/** The SBOM of the image `ref` (a name, digest or image id in the store at `root`). */
export async function sbomImage(root: string, ref: string, options: SbomImageOptions): Promise<SbomImageResult> {
  checkSbomFormat(options.format);
  const store = await ContentStore.open(root);
  const image = await loadImage(store, ref, options.platform ?? hostPlatform());
  const has = { os: image.config.os, architecture: image.config.architecture, ...(image.config.variant ? { variant: image.config.variant } : {}) };
  if (options.platform && !image.indexDescriptor && !platformMatches(options.platform, has)) {
    throw new KilnError(`image ${image.name} is for ${formatPlatform(has)}, not ${formatPlatform(options.platform)}`, {
      code: 'not-found',
      hint: 'leave out --platform, or build or pull the image for that platform',
    });
  }
  const catalog = await catalogImage(store, image.manifestDescriptor);
  const meta: SbomMeta = { name: image.name, created: sbomCreated(), toolVersion: VERSION };
  return { document: sbomDocument(catalog, options.format, meta), catalog, source: 'catalogued', manifestDigest: image.manifestDescriptor.digest };
}
