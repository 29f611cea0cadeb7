import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sbomImage } from '../../src/sbom/index.js';
import { writeIndex } from '../../src/oci/walk.js';
import { KilnError } from '../../src/errors.js';
import { craftImage, tempDir } from './util.js';

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
