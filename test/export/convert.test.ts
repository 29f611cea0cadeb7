/** export/convert.ts on documents written straight into a store: what needs nothing keeps its bytes; media types and annotations change where asked. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { ContentStore } from '../../src/oci/store.js';
import { convertImage } from '../../src/export/convert.js';
import { digestOf } from '../../src/oci/digest.js';
import { MediaType, type ImageIndex, type ImageManifest } from '../../src/oci/types.js';
import { isKilnError } from '../../src/errors.js';
import { tempDir } from '../helpers.js';

test('convertImage: a pulled-style manifest (no mediaType field, gzip layers) keeps its digest; docker types and annotations rewrite it', async () => {
  const t = await tempDir('kiln-convert-');
  try {
    const store = await ContentStore.open(t.dir);
    const tar = Buffer.alloc(1024);
    const gz = gzipSync(tar);
    const layer = await store.writeBlob(gz);
    const config = await store.writeJSON({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [digestOf(tar)] } }, MediaType.ociConfig);
    // not canonical (spaces), and no mediaType: as some registries serve them
    const text = JSON.stringify({ schemaVersion: 2, config, layers: [{ mediaType: MediaType.ociLayerGzip, ...layer }] }, null, 2);
    const written = await store.writeBlob(text);
    const top = { mediaType: MediaType.ociManifest, ...written };
    for (const options of [{}, { compression: { compression: 'gzip' as const } }, { ociMediatypes: true }]) {
      const same = await convertImage(store, top, options);
      assert.equal(same.descriptor.digest, top.digest, JSON.stringify(options));
      assert.equal(same.documents.size, 0);
    }
    const docker = await convertImage(store, top, { ociMediatypes: false, annotations: [{ target: 'manifest', key: 'k', value: 'v' }, { target: 'manifest-descriptor', key: 'd', value: 'w' }] });
    const m = JSON.parse(docker.documents.get(docker.descriptor.digest)!.content.toString()) as ImageManifest;
    assert.equal(docker.descriptor.mediaType, MediaType.dockerManifest);
    assert.equal(m.mediaType, MediaType.dockerManifest);
    assert.equal(m.config.mediaType, MediaType.dockerConfig);
    assert.equal(m.layers[0].mediaType, MediaType.dockerLayerGzip);
    assert.equal(m.layers[0].digest, layer.digest, 'the same blob under docker\'s type');
    assert.deepEqual(m.annotations, { k: 'v' });
    assert.deepEqual(docker.descriptorAnnotations, { d: 'w' });

    const index = await store.writeJSON({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [{ ...top, platform: { os: 'linux', architecture: 'amd64' } }] } satisfies ImageIndex, MediaType.ociIndex);
    const list = await convertImage(store, index, { ociMediatypes: false, annotations: [{ target: 'index', key: 'i', value: '1' }, { target: 'manifest', platform: { os: 'linux', architecture: 'amd64' }, key: 'p', value: '2' }] });
    const doc = JSON.parse(list.documents.get(list.descriptor.digest)!.content.toString()) as ImageIndex;
    assert.equal(doc.mediaType, MediaType.dockerManifestList);
    assert.deepEqual(doc.annotations, { i: '1' });
    assert.equal(doc.manifests[0].mediaType, MediaType.dockerManifest);
    const inner = JSON.parse(list.documents.get(doc.manifests[0].digest)!.content.toString()) as ImageManifest;
    assert.deepEqual(inner.annotations, { p: '2' });
    await assert.rejects(convertImage(store, index, { annotations: [{ target: 'manifest', platform: { os: 'linux', architecture: 'arm64' }, key: 'p', value: '2' }] }), (e: unknown) => {
      assert.ok(isKilnError(e));
      assert.match(e.message, /annotation for linux\/arm64 \(p\), but the image has no such platform/);
      return true;
    });
  } finally {
    await t.cleanup();
  }
});
