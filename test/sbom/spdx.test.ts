import { test } from 'node:test';
import assert from 'node:assert/strict';
import { catalogImage } from '../../src/sbom/catalog.js';
import { catalogFromSpdx, spdxDocument } from '../../src/sbom/spdx.js';
import { KilnError } from '../../src/errors.js';
import type { Catalog } from '../../src/sbom/types.js';
import { craftImage, dpkgStanza, schemaValidator, tempDir } from './util.js';

const META = { name: 'crafted:1', created: '2024-01-02T03:04:05Z', toolVersion: '0.1.0' };

async function sample(t: { after: (fn: () => void) => void }): Promise<Catalog> {
  const { store, manifest } = await craftImage(tempDir(t), [
    {
      '/etc/os-release': 'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
      '/var/lib/dpkg/status': [dpkgStanza('bash', '5.2.15-2+b2'), dpkgStanza('libc6', '2.36-9', 'Source: glibc\n'), dpkgStanza('odd', '1:0.1')].join('\n'),
      '/usr/share/doc/bash/copyright': 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-3+\n\nFiles: x\nLicense: public-domain\n\nFiles: y\nLicense: BSD-3-clause and/or GPL-3+\n',
    },
    {
      '/app/node_modules/@scope/x/package.json': JSON.stringify({ name: '@scope/x', version: '1.0.0', license: '(MIT OR Apache-2.0)' }),
      '/app/node_modules/y/package.json': JSON.stringify({ name: 'y', version: '2.0.0', license: 'SEE LICENSE IN LICENSE' }),
    },
  ]);
  return catalogImage(store, manifest);
}

test('the SPDX document validates against the SPDX 2.3 schema, with valid licence expressions and LicenseRefs for the rest', async (t) => {
  const catalog = await sample(t);
  const doc = spdxDocument(catalog, META);
  assert.deepEqual(schemaValidator('spdx')(doc), []);
  assert.equal(doc.spdxVersion, 'SPDX-2.3');
  assert.deepEqual((doc.creationInfo as { creators: string[] }).creators, ['Tool: kiln-0.1.0']);
  assert.match(doc.documentNamespace as string, new RegExp(`${catalog.manifestDigest.slice(7)}$`));
  assert.deepEqual(spdxDocument(catalog, { ...META, created: '2030-01-01T00:00:00Z' }).documentNamespace, doc.documentNamespace, 'the namespace depends on the image alone');
  const pkgs = doc.packages as Array<Record<string, unknown>>;
  const byName = new Map(pkgs.map((p) => [p.name, p]));
  assert.equal(byName.get('crafted:1')?.primaryPackagePurpose, 'CONTAINER');
  assert.equal(byName.get('debian')?.primaryPackagePurpose, 'OPERATING_SYSTEM');
  const bash = byName.get('bash')!;
  const refs = new Map(((doc.hasExtractedLicensingInfos ?? []) as Array<{ licenseId: string; extractedText: string }>).map((e) => [e.licenseId, e.extractedText]));
  const ids = (bash.licenseDeclared as string).match(/LicenseRef-[A-Za-z0-9.-]+/g) ?? [];
  assert.ok(ids.length >= 2, `public-domain and the and/or line are LicenseRefs: ${bash.licenseDeclared}`);
  for (const id of ids) assert.ok(refs.has(id), `${id} is in hasExtractedLicensingInfos`);
  assert.ok((bash.licenseDeclared as string).includes('GPL-3.0-or-later'));
  assert.deepEqual(bash.externalRefs, [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: 'pkg:deb/debian/bash@5.2.15-2+b2?arch=amd64&distro=debian-12' }]);
  assert.match(bash.sourceInfo as string, new RegExp(`layer 0 \\(${catalog.diffIds[0]}\\) at /var/lib/dpkg/status`));
  assert.equal(byName.get('@scope/x')?.licenseDeclared, '(MIT OR Apache-2.0)');
  assert.equal(byName.get('y')?.licenseDeclared, 'LicenseRef-SEE-LICENSE-IN-LICENSE');
  const rels = doc.relationships as Array<{ spdxElementId: string; relationshipType: string; relatedSpdxElement: string }>;
  assert.deepEqual(rels[0], { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: 'SPDXRef-Image' });
  const contained = new Set(rels.filter((r) => r.relationshipType === 'CONTAINS').map((r) => r.relatedSpdxElement));
  for (const p of pkgs) if (p.SPDXID !== 'SPDXRef-Image') assert.ok(contained.has(p.SPDXID as string), `${p.SPDXID} is contained in the image`);
  assert.equal(new Set(pkgs.map((p) => p.SPDXID)).size, pkgs.length, 'SPDX ids are unique');
  assert.equal(JSON.stringify(spdxDocument(catalog, META)), JSON.stringify(doc), 'deterministic');
});

test('catalogFromSpdx restores the catalogue exactly, also through JSON; a document kiln did not write is refused clearly', async (t) => {
  const catalog = await sample(t);
  assert.deepEqual(catalogFromSpdx(JSON.parse(JSON.stringify(spdxDocument(catalog, META)))), catalog);
  const foreign = { spdxVersion: 'SPDX-2.3', packages: [{ SPDXID: 'SPDXRef-x', name: 'x' }] };
  assert.throws(() => catalogFromSpdx(foreign), (e: unknown) => e instanceof KilnError && /not written by kiln/.test(e.message));
  assert.throws(() => catalogFromSpdx({ hello: 1 }), (e: unknown) => e instanceof KilnError && /not an SPDX 2.3/.test(e.message));
});
