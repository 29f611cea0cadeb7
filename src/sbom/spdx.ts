/**
 * SPDX 2.3 JSON documents from a catalogue, and back.
 *
 * The document: a root package for the image (primaryPackagePurpose CONTAINER, purl pkg:oci),
 * the OS as an OPERATING_SYSTEM package, then one package per catalogued package with its
 * purl as a PACKAGE-MANAGER external reference and licenseDeclared as an SPDX expression
 * (names that are not SPDX ids become LicenseRef-… with their text in
 * hasExtractedLicensingInfos). Relationships: the document DESCRIBES the image, the image
 * CONTAINS each package. documentNamespace is derived from the manifest digest alone, so the
 * same image gives the same namespace.
 *
 * Where kiln records what SPDX has no field for (chosen so catalogFromSpdx restores the
 * Catalog exactly): each package's `sourceInfo` says in words which layer and path it came
 * from, and an annotation (annotationType OTHER, annotator "Tool: kiln-VERSION") whose comment
 * is `kiln:package ` + JSON {ecosystem, licenses, locations, sourceName?, sourceVersion?, arch?,
 * goVersion?, groupId?}; the root package carries `kiln:catalog ` + JSON {manifestDigest,
 * platform?, diffIds, os?}.
 */
import { createHash } from 'node:crypto';
import { KilnError } from '../errors.js';
import { formatPlatform } from '../oci/platform.js';
import { isSpdxExpression } from './licenses.js';
import type { Catalog, CatalogPackage, Ecosystem, OsRelease, PackageLocation } from './types.js';

export interface SbomMeta {
  /** Image reference or digest. */
  name: string;
  /** RFC 3339; SOURCE_DATE_EPOCH-clamped when set. */
  created: string;
  toolVersion: string;
}

const CATALOG_NOTE = 'kiln:catalog ';
const PACKAGE_NOTE = 'kiln:package ';
const NOASSERTION = 'NOASSERTION';

const sha8 = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 12);
/** An SPDX id's idstring: letters, digits, '.', '-'. */
const idPart = (s: string): string => s.replace(/[^A-Za-z0-9.-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 60) || 'x';

/** The image's own purl (pkg:oci/NAME@DIGEST?arch=…), from the reference's last path component. */
function imagePurl(catalog: Catalog, name: string): string {
  const repo = name.replace(/@sha256:[0-9a-f]{64}$/, '').replace(/:[^/:]+$/, '');
  const last = (repo.split('/').pop() ?? '').toLowerCase();
  const base = `pkg:oci/${encodeURIComponent(/^[a-z0-9._-]+$/.test(last) && !last.startsWith('sha256') ? last : 'image')}@${encodeURIComponent(catalog.manifestDigest)}`;
  return catalog.platform ? `${base}?arch=${encodeURIComponent(catalog.platform.architecture)}` : base;
}

/** Licences → one SPDX expression, LicenseRefs registered in `extracted` for what is not SPDX. */
function declared(licenses: string[], extracted: Map<string, string>): string {
  if (licenses.length === 0) return NOASSERTION;
  const parts = licenses.map((l) => {
    if (isSpdxExpression(l)) return /\s/.test(l) ? `(${l})` : l;
    let id = `LicenseRef-${idPart(l)}`;
    if (id.length > 50 || (extracted.has(id) && extracted.get(id) !== l)) id = `LicenseRef-kiln-${sha8(l)}`;
    extracted.set(id, l);
    return id;
  });
  return parts.length === 1 ? parts[0].replace(/^\((.*)\)$/, '$1') : parts.join(' AND ');
}

function sourceInfo(p: CatalogPackage): string {
  return p.locations.map((l) => `found by kiln in layer ${l.layer} (${l.diffId}) at ${l.path}`).join('; ');
}

function packageId(p: CatalogPackage): string {
  return `SPDXRef-Package-${p.ecosystem}-${idPart(p.name)}-${sha8(p.purl)}`;
}

/** The catalogue as an SPDX 2.3 JSON document (a plain object: JSON.stringify it). */
export function spdxDocument(catalog: Catalog, meta: SbomMeta): Record<string, unknown> {
  const tool = `Tool: kiln-${meta.toolVersion}`;
  const note = (comment: string): Record<string, unknown> => ({ annotationDate: meta.created, annotationType: 'OTHER', annotator: tool, comment });
  const extracted = new Map<string, string>();
  const rootId = 'SPDXRef-Image';
  const imageNote: Record<string, unknown> = { manifestDigest: catalog.manifestDigest, diffIds: catalog.diffIds };
  if (catalog.platform) imageNote.platform = catalog.platform;
  if (catalog.os) imageNote.os = catalog.os;
  const root: Record<string, unknown> = {
    SPDXID: rootId,
    name: meta.name,
    versionInfo: catalog.manifestDigest,
    downloadLocation: NOASSERTION,
    filesAnalyzed: false,
    primaryPackagePurpose: 'CONTAINER',
    checksums: [{ algorithm: 'SHA256', checksumValue: catalog.manifestDigest.replace(/^sha256:/, '') }],
    externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: imagePurl(catalog, meta.name) }],
    licenseConcluded: NOASSERTION,
    licenseDeclared: NOASSERTION,
    copyrightText: NOASSERTION,
    ...(catalog.platform ? { comment: `platform ${formatPlatform(catalog.platform)}` } : {}),
    annotations: [note(CATALOG_NOTE + JSON.stringify(imageNote))],
  };
  const packages: Array<Record<string, unknown>> = [root];
  const relationships: Array<Record<string, unknown>> = [{ spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: rootId }];
  if (catalog.os) {
    packages.push({
      SPDXID: 'SPDXRef-OperatingSystem',
      name: catalog.os.id,
      ...(catalog.os.versionId ? { versionInfo: catalog.os.versionId } : {}),
      downloadLocation: NOASSERTION,
      filesAnalyzed: false,
      primaryPackagePurpose: 'OPERATING_SYSTEM',
      ...(catalog.os.prettyName ? { description: catalog.os.prettyName } : {}),
      licenseConcluded: NOASSERTION,
      licenseDeclared: NOASSERTION,
      copyrightText: NOASSERTION,
    });
    relationships.push({ spdxElementId: rootId, relationshipType: 'CONTAINS', relatedSpdxElement: 'SPDXRef-OperatingSystem' });
  }
  const seen = new Set<string>();
  for (const p of catalog.packages) {
    let id = packageId(p);
    for (let n = 2; seen.has(id); n++) id = `${packageId(p)}-${n}`;
    seen.add(id);
    const kiln: Record<string, unknown> = { ecosystem: p.ecosystem, licenses: p.licenses, locations: p.locations };
    for (const k of ['sourceName', 'sourceVersion', 'arch', 'goVersion', 'groupId'] as const) if (p[k] !== undefined) kiln[k] = p[k];
    packages.push({
      SPDXID: id,
      name: p.name,
      versionInfo: p.version,
      downloadLocation: NOASSERTION,
      filesAnalyzed: false,
      primaryPackagePurpose: 'LIBRARY',
      ...(p.sourceName ? { sourceInfo: `${sourceInfo(p)}; built from source package ${p.sourceName} ${p.sourceVersion ?? ''}`.trimEnd() } : { sourceInfo: sourceInfo(p) }),
      externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: p.purl }],
      licenseConcluded: NOASSERTION,
      licenseDeclared: declared(p.licenses, extracted),
      copyrightText: NOASSERTION,
      annotations: [note(PACKAGE_NOTE + JSON.stringify(kiln))],
    });
    relationships.push({ spdxElementId: rootId, relationshipType: 'CONTAINS', relatedSpdxElement: id });
  }
  const doc: Record<string, unknown> = {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: meta.name,
    documentNamespace: `https://kiln.invalid/spdx/image/${catalog.manifestDigest.replace(':', '-')}`,
    creationInfo: { created: meta.created, creators: [tool] },
    packages,
    relationships,
  };
  if (extracted.size > 0) {
    doc.hasExtractedLicensingInfos = [...extracted].sort(([a], [b]) => (a < b ? -1 : 1)).map(([licenseId, text]) => ({ licenseId, name: text.slice(0, 120), extractedText: text }));
  }
  return doc;
}

function notOurs(why: string): KilnError {
  return new KilnError(`the SPDX document was not written by kiln (${why}), so the catalogue cannot be restored from it`, {
    code: 'invalid',
    hint: 'let kiln catalogue the image instead (kiln sbom without an attached SBOM), or attach one kiln wrote (kiln build --sbom=true)',
  });
}

function annotation(pkg: Record<string, unknown>, prefix: string): unknown {
  const notes = Array.isArray(pkg.annotations) ? (pkg.annotations as Array<{ comment?: unknown }>) : [];
  const n = notes.find((a) => typeof a.comment === 'string' && a.comment.startsWith(prefix));
  if (!n) return undefined;
  try {
    return JSON.parse((n.comment as string).slice(prefix.length));
  } catch {
    return undefined;
  }
}

/** Reads a kiln-written SPDX document back into the catalogue it was written from. */
export function catalogFromSpdx(doc: unknown): Catalog {
  if (!doc || typeof doc !== 'object' || (doc as { spdxVersion?: unknown }).spdxVersion !== 'SPDX-2.3' || !Array.isArray((doc as { packages?: unknown }).packages)) {
    throw notOurs('not an SPDX 2.3 JSON document');
  }
  const pkgs = (doc as { packages: Array<Record<string, unknown>> }).packages;
  let image: { manifestDigest?: unknown; diffIds?: unknown; platform?: Catalog['platform']; os?: OsRelease } | undefined;
  for (const p of pkgs) image ??= annotation(p, CATALOG_NOTE) as typeof image;
  if (!image || typeof image.manifestDigest !== 'string' || !Array.isArray(image.diffIds)) throw notOurs(`no "${CATALOG_NOTE.trim()}" annotation`);
  const catalog: Catalog = { manifestDigest: image.manifestDigest, diffIds: image.diffIds as string[], packages: [] };
  if (image.platform) catalog.platform = image.platform;
  if (image.os) catalog.os = image.os;
  for (const p of pkgs) {
    const kiln = annotation(p, PACKAGE_NOTE) as
      | ({ ecosystem: Ecosystem; licenses: string[]; locations: PackageLocation[] } & Partial<Pick<CatalogPackage, 'sourceName' | 'sourceVersion' | 'arch' | 'goVersion' | 'groupId'>>)
      | undefined;
    if (!kiln) continue;
    const ref = (Array.isArray(p.externalRefs) ? (p.externalRefs as Array<Record<string, unknown>>) : []).find((r) => r.referenceType === 'purl');
    if (typeof p.name !== 'string' || typeof p.versionInfo !== 'string' || typeof ref?.referenceLocator !== 'string') throw notOurs(`package ${String(p.SPDXID)} has no name, version or purl`);
    const pkg: CatalogPackage = { name: p.name, version: p.versionInfo, ecosystem: kiln.ecosystem, purl: ref.referenceLocator, licenses: kiln.licenses ?? [], locations: kiln.locations ?? [] };
    for (const k of ['sourceName', 'sourceVersion', 'arch', 'goVersion', 'groupId'] as const) if (kiln[k] !== undefined) pkg[k] = kiln[k];
    catalog.packages.push(pkg);
  }
  return catalog;
}
