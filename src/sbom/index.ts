/**
 * `kiln sbom`: the SBOM of an image in the store, as SPDX 2.3 or CycloneDX 1.6 JSON.
 *
 * When the image carries an SPDX attestation for the platform described (an in-toto statement
 * with predicate type https://spdx.dev/Document in its attestation manifest, as
 * `kiln build --sbom=true` attaches) and kiln wrote it, that SBOM is read instead of
 * cataloguing the layers again: spdx-json prints the attested document as it is, cyclonedx-json
 * is made from the catalogue it restores (catalogFromSpdx). An attached SBOM kiln did not write,
 * or one whose subject is another manifest, is not trusted as a catalogue: the layers are
 * catalogued and the result says why (`note`).
 */
import { ContentStore } from '../oci/store.js';
import { loadImage } from '../oci/image.js';
import { formatPlatform, hostPlatform, platformMatches } from '../oci/platform.js';
import type { Platform } from '../oci/types.js';
import { KilnError } from '../errors.js';
import { VERSION } from '../version.js';
import type { Provider } from '../oci/content.js';
import type { Descriptor } from '../oci/types.js';
import { listAttestations, readStatement } from '../attest/index.js';
import { SPDX_PREDICATE } from '../attest/intoto.js';
import { catalogImage } from './catalog.js';
import { cyclonedxDocument } from './cyclonedx.js';
import { catalogFromSpdx, spdxDocument, type SbomMeta } from './spdx.js';
import type { Catalog } from './types.js';

export type SbomFormat = 'spdx-json' | 'cyclonedx-json';
export const SBOM_FORMATS: readonly SbomFormat[] = ['spdx-json', 'cyclonedx-json'];

export interface SbomImageOptions {
  format: SbomFormat;
  /** For an index: the platform to describe (default: this machine's). */
  platform?: Platform;
  /** Catalogue the layers even when the image carries an SBOM attestation. */
  fromLayers?: boolean;
}

export interface SbomImageResult {
  document: Record<string, unknown>;
  catalog: Catalog;
  /** 'catalogued': kiln read the image's layers; 'attestation': the SBOM attached to the image. */
  source: 'catalogued' | 'attestation';
  /** The platform manifest described. */
  manifestDigest: string;
  /** With source 'attestation': the statement's blob (the attestation manifest's layer). */
  attestation?: string;
  /** Why an attached SBOM was not used, when there was one. */
  note?: string;
}

/** The kiln-written SPDX SBOM attached to `index` for `manifest`, if any; a reason when one is there but unusable. */
async function attachedSbom(
  store: Provider,
  index: Descriptor,
  manifest: Descriptor,
): Promise<{ doc: Record<string, unknown>; catalog: Catalog; layer: string } | { note: string } | undefined> {
  for (const a of await listAttestations(store, index)) {
    if (a.subject !== manifest.digest) continue;
    for (const l of a.layers) {
      if (l.predicateType !== SPDX_PREDICATE) continue;
      const statement = await readStatement(store, l.descriptor);
      if (!statement.subject.some((s) => `sha256:${s.digest.sha256}` === manifest.digest)) {
        return { note: `the SBOM attestation ${l.descriptor.digest} names another image as its subject` };
      }
      try {
        const catalog = catalogFromSpdx(statement.predicate);
        if (catalog.manifestDigest !== manifest.digest) return { note: `the SBOM attestation ${l.descriptor.digest} describes ${catalog.manifestDigest}` };
        return { doc: statement.predicate as Record<string, unknown>, catalog, layer: l.descriptor.digest };
      } catch (e) {
        if (!(e instanceof KilnError)) throw e;
        return { note: `the SBOM attestation ${l.descriptor.digest} was not written by kiln` };
      }
    }
  }
  return undefined;
}

/**
 * The catalogue of `manifest`: restored from the kiln-written SBOM that `index` attaches to it
 * (the build's --sbom), else read from its layers. What a build has just catalogued is not
 * catalogued again (the gate's scan after --sbom=true).
 */
export async function imageCatalog(store: Provider, index: Descriptor | undefined, manifest: Descriptor): Promise<Catalog> {
  const attached = index ? await attachedSbom(store, index, manifest) : undefined;
  return attached && 'catalog' in attached ? attached.catalog : catalogImage(store, manifest);
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
  const manifestDigest = image.manifestDescriptor.digest;
  const attached = image.indexDescriptor && !options.fromLayers ? await attachedSbom(store, image.indexDescriptor, image.manifestDescriptor) : undefined;
  if (attached && 'doc' in attached) {
    const created = ((attached.doc.creationInfo ?? {}) as { created?: unknown }).created;
    const meta: SbomMeta = { name: image.name, created: typeof created === 'string' ? created : sbomCreated(), toolVersion: VERSION };
    const document = options.format === 'spdx-json' ? attached.doc : sbomDocument(attached.catalog, options.format, meta);
    return { document, catalog: attached.catalog, source: 'attestation', manifestDigest, attestation: attached.layer };
  }
  const catalog = await catalogImage(store, image.manifestDescriptor);
  const meta: SbomMeta = { name: image.name, created: sbomCreated(), toolVersion: VERSION };
  return { document: sbomDocument(catalog, options.format, meta), catalog, source: 'catalogued', manifestDigest, ...(attached ? { note: attached.note } : {}) };
}
