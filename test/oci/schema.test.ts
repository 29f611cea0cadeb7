import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { validateOCI } from '../../src/oci/schema.js';
import { ContentStore } from '../../src/oci/store.js';
import { loadImage, writeImage, imageSize } from '../../src/oci/image.js';
import { writeLayer } from '../../src/oci/layer.js';
import { hostPlatform } from '../../src/oci/platform.js';
import { MediaType, type ImageConfig, type ImageIndex } from '../../src/oci/types.js';
import { KilnError } from '../../src/errors.js';
import { tempDir } from './util.js';

const D = 'sha256:' + 'b'.repeat(64);

test('the schemas reject what the spec forbids', () => {
  assert.deepEqual(validateOCI('layout', { imageLayoutVersion: '1.0.0' }), []);
  assert.notDeepEqual(validateOCI('layout', {}), []);
  assert.notDeepEqual(validateOCI('manifest', { schemaVersion: 2, layers: [] }), [], 'config is required');
  assert.notDeepEqual(validateOCI('manifest', { schemaVersion: 1, config: { mediaType: MediaType.ociConfig, digest: D, size: 1 }, layers: [] }), []);
  assert.notDeepEqual(validateOCI('manifest', { schemaVersion: 2, config: { mediaType: 'not a media type', digest: D, size: 1 }, layers: [] }), []);
  assert.notDeepEqual(validateOCI('manifest', { schemaVersion: 2, config: { mediaType: MediaType.ociConfig, digest: 'nodigest', size: 1 }, layers: [] }), []);
  assert.notDeepEqual(validateOCI('config', { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, created: 'yesterday' }), []);
  assert.notDeepEqual(validateOCI('config', { architecture: 'amd64', os: 'linux', rootfs: { type: 'nope', diff_ids: [] } }), []);
  assert.notDeepEqual(validateOCI('index', { schemaVersion: 2, manifests: [{ mediaType: MediaType.ociManifest, digest: D }] }), [], 'size is required');
  assert.deepEqual(validateOCI('index', { schemaVersion: 2, manifests: [{ mediaType: MediaType.ociManifest, digest: D, size: 3, platform: { architecture: 'arm64', os: 'linux' } }] }), []);
});

test('everything writeImage writes validates, and loadImage reads it back', async (t) => {
  const root = tempDir(t);
  const store = await ContentStore.open(root);
  const layer = await writeLayer(store, [{ path: 'hello', type: 'file', mode: 0o644, uid: 0, gid: 0, content: Buffer.from('hi') }]);
  const config: ImageConfig = {
    created: '2024-01-02T03:04:05Z',
    ...hostPlatform(),
    config: { Env: ['PATH=/bin'], Cmd: ['sh'], ExposedPorts: { '80/tcp': {} }, Labels: { a: 'b' } },
    rootfs: { type: 'layers', diff_ids: [layer.diffId] },
    history: [{ created: '2024-01-02T03:04:05Z', created_by: 'test' }],
  };
  const written = await writeImage(store, { config, layers: [layer.descriptor], annotations: { 'org.opencontainers.image.title': 't' } }, ['img:1', 'img:2']);
  const manifest = await store.readJSON(written.manifestDescriptor.digest);
  assert.deepEqual(validateOCI('manifest', manifest), []);
  assert.deepEqual(validateOCI('config', await store.readJSON(written.configDescriptor.digest)), []);
  assert.deepEqual(validateOCI('index', JSON.parse(readFileSync(path.join(root, 'index.json'), 'utf8'))), []);
  assert.deepEqual(validateOCI('layout', JSON.parse(readFileSync(path.join(root, 'oci-layout'), 'utf8'))), []);
  const img = await loadImage(store, 'img:2');
  assert.deepEqual(img.config, config);
  assert.equal(img.manifestDescriptor.digest, written.manifestDescriptor.digest);
  assert.equal(img.name, 'img:2');
  assert.equal(await imageSize(store, written.manifestDescriptor), written.manifestDescriptor.size + written.configDescriptor.size + layer.descriptor.size);
  await assert.rejects(loadImage(store, 'img:3'), (e: unknown) => e instanceof KilnError && e.message === 'image img:3 not found in the store; build it, or kiln load/import it');
  await assert.rejects(loadImage(store, 'app'), /image app:latest not found/);

  // an index ref resolves to the manifest of the requested platform
  const other = { ...written.manifestDescriptor, platform: { architecture: 'riscv64', os: 'linux' } };
  const mine = { ...written.manifestDescriptor, platform: hostPlatform() };
  const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [other, mine] };
  const indexDesc = await store.writeJSON(index, MediaType.ociIndex);
  assert.deepEqual(validateOCI('index', index), []);
  await store.setRef('multi', indexDesc);
  const fromIndex = await loadImage(store, 'multi');
  assert.equal(fromIndex.manifestDescriptor.digest, written.manifestDescriptor.digest);
  assert.equal(fromIndex.indexDescriptor?.digest, indexDesc.digest);
  await assert.rejects(loadImage(store, 'multi', { architecture: 's390x', os: 'linux' }), /no manifest for linux\/s390x \(it has: linux\/riscv64, linux\/(amd64|arm64)/);
});
