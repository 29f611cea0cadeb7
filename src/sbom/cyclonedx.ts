/**
 * CycloneDX 1.6 JSON from a catalogue, modelled and serialised by OWASP's
 * @cyclonedx/cyclonedx-library. The image is the metadata component (type container), the OS
 * an operating-system component, each package a library component with its purl and licences
 * (one SPDX expression when they all are SPDX; else each licence by id or by name, as the
 * schema allows one or the other). Where a package was found: properties `kiln:layer:diffID`,
 * `kiln:layer` (its index) and `kiln:path` for the layer that brought it in, and
 * `kiln:location:N:diffID` / `kiln:location:N:path` for each further place (N from 1). The
 * serial number is derived from the manifest digest, so the same image gives the same one.
 */
import { createHash } from 'node:crypto';
import * as Enums from '@cyclonedx/cyclonedx-library/Enums';
import * as Models from '@cyclonedx/cyclonedx-library/Models';
import * as Serialize from '@cyclonedx/cyclonedx-library/Serialize';
import * as Spec from '@cyclonedx/cyclonedx-library/Spec';
import { isSpdxExpression, spdxId } from './licenses.js';
import type { SbomMeta } from './spdx.js';
import type { Catalog, CatalogPackage } from './types.js';

/** A UUID (version 4 layout) made from a digest: stable for the same image. */
function serialNumber(digest: string): string {
  const b = createHash('sha256').update(`kiln-cyclonedx:${digest}`).digest();
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = b.subarray(0, 16).toString('hex');
  return `urn:uuid:${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

function licenses(list: string[]): Models.LicenseRepository {
  const repo = new Models.LicenseRepository();
  if (list.length === 0) return repo;
  if (list.every(isSpdxExpression)) {
    if (list.length === 1 && spdxId(list[0]) === list[0]) repo.add(new Models.SpdxLicense(list[0]));
    else repo.add(new Models.LicenseExpression(list.length === 1 ? list[0] : list.map((l) => (/\s/.test(l) ? `(${l})` : l)).join(' AND ')));
    return repo;
  }
  for (const l of list) repo.add(spdxId(l) === l ? new Models.SpdxLicense(l) : new Models.NamedLicense(l));
  return repo;
}

function properties(p: CatalogPackage): Models.PropertyRepository {
  const props = new Models.PropertyRepository();
  const add = (name: string, value: string | undefined): void => {
    if (value !== undefined && value !== '') props.add(new Models.Property(name, value));
  };
  const [first, ...more] = p.locations;
  if (first) {
    add('kiln:layer:diffID', first.diffId);
    add('kiln:layer', String(first.layer));
    add('kiln:path', first.path);
  }
  more.forEach((l, i) => {
    add(`kiln:location:${i + 1}:diffID`, l.diffId);
    add(`kiln:location:${i + 1}:path`, l.path);
  });
  add('kiln:ecosystem', p.ecosystem);
  add('kiln:source:name', p.sourceName);
  add('kiln:source:version', p.sourceVersion);
  add('kiln:arch', p.arch);
  add('kiln:go:version', p.goVersion);
  return props;
}

/** Group and name as CycloneDX splits them: an npm scope or a Maven group id is the group. */
function groupAndName(p: CatalogPackage): { group?: string; name: string } {
  if (p.ecosystem === 'maven' && p.groupId && p.name.startsWith(`${p.groupId}:`)) return { group: p.groupId, name: p.name.slice(p.groupId.length + 1) };
  if (p.ecosystem === 'npm' && p.name.startsWith('@') && p.name.includes('/')) {
    const slash = p.name.indexOf('/');
    return { group: p.name.slice(0, slash), name: p.name.slice(slash + 1) };
  }
  return { name: p.name };
}

/** The catalogue as a CycloneDX 1.6 JSON document (a plain object: JSON.stringify it). */
export function cyclonedxDocument(catalog: Catalog, meta: SbomMeta): Record<string, unknown> {
  const bom = new Models.Bom({ serialNumber: serialNumber(catalog.manifestDigest) });
  bom.metadata.timestamp = new Date(meta.created);
  bom.metadata.tools.components.add(new Models.Component(Enums.ComponentType.Application, 'kiln', { version: meta.toolVersion, bomRef: 'kiln-tool' }));
  const image = new Models.Component(Enums.ComponentType.Container, meta.name, { version: catalog.manifestDigest, bomRef: `image:${catalog.manifestDigest}` });
  image.hashes.set(Enums.HashAlgorithm['SHA-256'], catalog.manifestDigest.replace(/^sha256:/, ''));
  if (catalog.platform) {
    image.properties.add(new Models.Property('kiln:platform:os', catalog.platform.os));
    image.properties.add(new Models.Property('kiln:platform:architecture', catalog.platform.architecture));
    if (catalog.platform.variant) image.properties.add(new Models.Property('kiln:platform:variant', catalog.platform.variant));
  }
  catalog.diffIds.forEach((d, i) => image.properties.add(new Models.Property(`kiln:layer:${i}:diffID`, d)));
  bom.metadata.component = image;
  if (catalog.os) {
    const os = new Models.Component(Enums.ComponentType.OperatingSystem, catalog.os.id, {
      bomRef: `os:${catalog.os.id}`,
      ...(catalog.os.versionId ? { version: catalog.os.versionId } : {}),
      ...(catalog.os.prettyName ? { description: catalog.os.prettyName } : {}),
    });
    if (catalog.os.versionCodename) os.properties.add(new Models.Property('kiln:os:codename', catalog.os.versionCodename));
    bom.components.add(os);
  }
  const refs = new Set<string>();
  for (const p of catalog.packages) {
    let ref = p.purl;
    for (let n = 2; refs.has(ref); n++) ref = `${p.purl}#${n}`;
    refs.add(ref);
    const { group, name } = groupAndName(p);
    bom.components.add(
      new Models.Component(Enums.ComponentType.Library, name, {
        bomRef: ref,
        version: p.version,
        purl: p.purl,
        ...(group ? { group } : {}),
        licenses: licenses(p.licenses),
        properties: properties(p),
      }),
    );
  }
  const serializer = new Serialize.JsonSerializer(new Serialize.JSON.Normalize.Factory(Spec.Spec1dot6));
  return JSON.parse(serializer.serialize(bom, { sortLists: true })) as Record<string, unknown>;
}
