import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { KilnError } from '../../src/errors.js';
import { fallbackProvider } from '../../src/oci/content.js';
import { digestOf } from '../../src/oci/digest.js';
import { imageFrom, imageOf, imageSize, layerFrom, loadImage, writeImage } from '../../src/oci/image.js';
import { writeLayer, type LayerEntry } from '../../src/oci/layer.js';
import { ContentStore } from '../../src/oci/store.js';
import { writeIndex } from '../../src/oci/walk.js';
import { MediaType } from '../../src/oci/types.js';
import { tempDir } from './util.js';

const files = (seed: string): LayerEntry[] => [{ path: `f-${seed}`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, content: Buffer.from(seed) }];

async function drain(s: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of s) out.push(c);
  return Buffer.concat(out);
}

test('an image is read lazily: manifest, config, and layers with digest, diff id, size and both readers', async (t) => {
  const store = await ContentStore.open(tempDir(t));
  const gz = await writeLayer(store, files('one'), { compression: 'gzip' });
  const plain = await writeLayer(store, files('two'), { compression: 'none' });
  const { manifestDescriptor } = await writeImage(
    store,
    { config: { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [gz.diffId, plain.diffId] } }, layers: [gz.descriptor, plain.descriptor] },
    ['lazy:1'],
  );
  const image = imageFrom(store, manifestDescriptor);
  assert.equal(image.digest(), manifestDescriptor.digest);
  assert.equal((await image.config()).rootfs.diff_ids.length, 2);
  const layers = await image.layers();
  assert.deepEqual(
    layers.map((l) => [l.digest(), l.diffId(), l.size(), l.mediaType()]),
    [
      [gz.descriptor.digest, gz.diffId, gz.descriptor.size, MediaType.ociLayerGzip],
      [plain.descriptor.digest, plain.diffId, plain.descriptor.size, MediaType.ociLayerTar],
    ],
  );
  assert.deepEqual(await drain(layers[0].compressed()), await store.readBlob(gz.descriptor.digest));
  for (const l of layers) assert.equal(digestOf(await drain(l.uncompressed())), l.diffId());
  assert.equal(await image.size(), await imageSize(store, manifestDescriptor));
  assert.equal(await image.size(), manifestDescriptor.size + (await image.configDescriptor()).size + gz.descriptor.size + plain.descriptor.size);

  // the form loadImage returns gives the same image without reading again
  const loaded = await loadImage(store, 'lazy:1');
  assert.deepEqual(await imageOf(store, loaded).manifest(), await image.manifest());
});

test('a layer whose content is not its diff id fails at the end of its uncompressed stream', async (t) => {
  const store = await ContentStore.open(tempDir(t));
  const gz = await writeLayer(store, files('x'), { compression: 'gzip' });
  const wrong = layerFrom(store, gz.descriptor, digestOf('not this'));
  await assert.rejects(drain(wrong.uncompressed()), (e: unknown) => e instanceof KilnError && /hashes to .* expected/.test(e.message));
  // a missing blob: both readers fail with the store's error
  const gone = layerFrom(store, { ...gz.descriptor, digest: digestOf('gone') }, gz.diffId);
  await assert.rejects(drain(gone.compressed()), /missing/);
  await assert.rejects(drain(gone.uncompressed()), /missing/);
});

test('a layer can live in either of two stores: fallbackProvider reads from the one that has it', async (t) => {
  const local = await ContentStore.open(tempDir(t));
  const remote = await ContentStore.open(tempDir(t));
  const here = await writeLayer(local, files('here'), { compression: 'gzip' });
  const there = await writeLayer(remote, files('there'), { compression: 'gzip' });
  const both = fallbackProvider(local, remote);
  assert.ok(await both.hasBlob(there.descriptor.digest));
  assert.equal(await both.hasBlob(digestOf('nowhere')), false);
  assert.equal((await both.info(there.descriptor.digest))?.size, there.descriptor.size);
  assert.equal(digestOf(await drain(layerFrom(both, there.descriptor, there.diffId).uncompressed())), there.diffId);
  assert.equal(digestOf(await drain(layerFrom(both, here.descriptor, here.diffId).uncompressed())), here.diffId);
  await assert.rejects(both.readBlob(digestOf('nowhere')), /missing/);
  await assert.rejects(drain(both.openBlob(digestOf('nowhere'))), /missing/);
});

test('imageSize counts an index and the distinct blobs of its manifests once each', async (t) => {
  const store = await ContentStore.open(tempDir(t));
  const shared = await writeLayer(store, files('shared'), { compression: 'gzip' });
  const own = await writeLayer(store, files('own'), { compression: 'gzip' });
  const a = await writeImage(store, { config: { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [shared.diffId] } }, layers: [shared.descriptor] }, []);
  const b = await writeImage(
    store,
    { config: { architecture: 'arm64', os: 'linux', rootfs: { type: 'layers', diff_ids: [shared.diffId, own.diffId] } }, layers: [shared.descriptor, own.descriptor] },
    [],
  );
  const index = await writeIndex(store, [a.manifestDescriptor, b.manifestDescriptor]);
  const expected =
    index.size + a.manifestDescriptor.size + a.configDescriptor.size + shared.descriptor.size + b.manifestDescriptor.size + b.configDescriptor.size + own.descriptor.size;
  assert.equal(await imageSize(store, index), expected);
  writeFileSync(store.blobPath(b.manifestDescriptor.digest), 'not json');
  await assert.rejects(imageSize(store, index), /corrupt/);
});
