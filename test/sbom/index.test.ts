import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sbomImage } from '../../src/sbom/index.js';
import { writeIndex } from '../../src/oci/walk.js';
import { KilnError } from '../../src/errors.js';
import { catalogImage } from '../../src/sbom/catalog.js';
import { spdxDocument } from '../../src/sbom/spdx.js';
import { attachAttestations } from '../../src/attest/attach.js';
import { imageSubjects, makeStatement, SPDX_PREDICATE } from '../../src/attest/intoto.js';
import { runKiln } from '../helpers.js';
import { craftImage, schemaValidator, tempDir } from './util.js';

test('sbomImage on an index describes the platform asked (attestation manifests never picked), and says it catalogued', async (t) => {
  const root = tempDir(t);
  const pkg = (v: string): string => JSON.stringify({ name: 'which', version: v });
  const amd = await craftImage(root, [{ '/srv/node_modules/which/package.json': pkg('1.0.0-amd64') }], 'multi:amd64', 'amd64');
  const arm = await craftImage(root, [{ '/srv/node_modules/which/package.json': pkg('1.0.0-arm64') }], 'multi:arm64', 'arm64');
  const index = await writeIndex(amd.store, [
    { ...amd.manifest, platform: { os: 'linux', architecture: 'amd64' } },
    { ...arm.manifest, platform: { os: 'linux', architecture: 'arm64' } },
  ]);
  await amd.store.setRef('multi:1', index);
  const r = await sbomImage(root, 'multi:1', { format: 'cyclonedx-json', platform: { os: 'linux', architecture: 'arm64' } });
  assert.equal(r.source, 'catalogued');
  assert.equal(r.manifestDigest, arm.manifest.digest);
  assert.deepEqual(r.catalog.platform, { os: 'linux', architecture: 'arm64' });
  assert.deepEqual(r.catalog.packages.map((p) => p.version), ['1.0.0-arm64']);
  assert.equal((r.document as { specVersion?: string }).specVersion, '1.6');
  const byId = await sbomImage(root, amd.manifest.digest, { format: 'spdx-json' });
  assert.deepEqual(byId.catalog.packages.map((p) => p.version), ['1.0.0-amd64']);
  await assert.rejects(sbomImage(root, 'multi:1', { format: 'spdx-json', platform: { os: 'linux', architecture: 'riscv64' } }), (e: unknown) => e instanceof KilnError && /no manifest for linux\/riscv64/.test(e.message));
  await assert.rejects(sbomImage(root, 'multi:arm64', { format: 'spdx-json', platform: { os: 'linux', architecture: 'amd64' } }), (e: unknown) => e instanceof KilnError && /is for linux\/arm64, not linux\/amd64/.test(e.message));
});

test('an attached SPDX attestation kiln wrote is read instead of the layers (and --from-layers catalogues anyway); a foreign or mismatched one is not trusted', async (t) => {
  const root = tempDir(t);
  const img = await craftImage(root, [{ '/srv/node_modules/real/package.json': JSON.stringify({ name: 'real', version: '1.0.0' }) }], 'att:plain');
  const catalog = await catalogImage(img.store, img.manifest);
  // the attested catalogue says more than the layers do: what the command prints shows which it read
  const attested = { ...catalog, packages: [...catalog.packages, { ...catalog.packages[0], name: 'only-attested', purl: 'pkg:npm/only-attested@9.9.9', version: '9.9.9' }] };
  const meta = { name: 'att:1', created: '2024-05-06T07:08:09Z', toolVersion: '0.1.0' };
  const attach = async (name: string, predicate: Record<string, unknown>, subjectDigest = img.manifest.digest): Promise<void> => {
    const lease = await img.store.lease();
    try {
      const statement = makeStatement(imageSubjects([name], { os: 'linux', architecture: 'amd64' }, subjectDigest), SPDX_PREDICATE, predicate);
      const index = await attachAttestations(img.store, lease, img.manifest, new Map([[img.manifest.digest, [statement]]]));
      await img.store.setRef(name, index);
    } finally {
      await lease.release();
    }
  };
  const spdx = spdxDocument(attested, meta);
  await attach('att:1', spdx);
  const r = await sbomImage(root, 'att:1', { format: 'spdx-json', platform: { os: 'linux', architecture: 'amd64' } });
  assert.equal(r.source, 'attestation');
  assert.match(r.attestation ?? '', /^sha256:/);
  assert.deepEqual(r.document, spdx, 'the attested document, as it is');
  assert.deepEqual(r.catalog, attested);
  const cdx = await sbomImage(root, 'att:1', { format: 'cyclonedx-json', platform: { os: 'linux', architecture: 'amd64' } });
  assert.equal(cdx.source, 'attestation');
  assert.deepEqual(schemaValidator('cyclonedx')(cdx.document), []);
  assert.ok((cdx.document.components as Array<{ name: string }>).some((c) => c.name === 'only-attested'));
  assert.equal((cdx.document.metadata as { timestamp: string }).timestamp, '2024-05-06T07:08:09.000Z', 'the attested creation time');
  const layers = await sbomImage(root, 'att:1', { format: 'spdx-json', platform: { os: 'linux', architecture: 'amd64' }, fromLayers: true });
  assert.equal(layers.source, 'catalogued');
  assert.deepEqual(layers.catalog, catalog);

  await attach('att:foreign', { spdxVersion: 'SPDX-2.3', SPDXID: 'SPDXRef-DOCUMENT', name: 'x', packages: [{ SPDXID: 'SPDXRef-p', name: 'made-elsewhere' }] });
  const foreign = await sbomImage(root, 'att:foreign', { format: 'spdx-json', platform: { os: 'linux', architecture: 'amd64' } });
  assert.equal(foreign.source, 'catalogued');
  assert.match(foreign.note ?? '', /not written by kiln/);
  assert.deepEqual(foreign.catalog, catalog);

  await attach('att:other', spdx, 'sha256:' + 'e'.repeat(64));
  const other = await sbomImage(root, 'att:other', { format: 'spdx-json', platform: { os: 'linux', architecture: 'amd64' } });
  assert.equal(other.source, 'catalogued');
  assert.match(other.note ?? '', /names another image as its subject/);

  const cli = await runKiln(['sbom', 'att:1', '--platform', 'linux/amd64'], { root });
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stderr, /2 packages, from the SBOM attested for sha256:[0-9a-f]{64} \(sha256:[0-9a-f]{64}\)/);
  assert.deepEqual(JSON.parse(cli.stdout), spdx);
  const cliLayers = await runKiln(['sbom', 'att:foreign', '--platform', 'linux/amd64'], { root });
  assert.equal(cliLayers.code, 0, cliLayers.stderr);
  assert.match(cliLayers.stderr, /note: the SBOM attestation sha256:[0-9a-f]{64} was not written by kiln; catalogued the layers instead\n1 packages, catalogued from the layers/);
  const help = await runKiln(['sbom', '--help'], { root });
  assert.match(help.stdout, /--from-layers/);
  assert.match(help.stdout, /SBOM attestation kiln wrote/);
});
