import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp, readFileSync, writeFileSync } from 'node:fs';
import { KilnError } from '../../src/errors.js';
import { digestOf } from '../../src/oci/digest.js';
import { layerFrom, writeImage } from '../../src/oci/image.js';
import { layerVariant, writeLayer, type LayerEntry } from '../../src/oci/layer.js';
import { ContentStore } from '../../src/oci/store.js';
import { MediaType, type ImageConfig } from '../../src/oci/types.js';
import { have, mustRun, tempDir } from './util.js';

const entries = (seed: string): LayerEntry[] => [
  { path: 'etc', type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: 1 },
  { path: 'etc/seed', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 1, content: Buffer.from(seed.repeat(5000)) },
  { path: 'etc/link', type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: 1, linkname: 'seed' },
];

const config = (diffIds: string[]): ImageConfig => ({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds } });

async function backdateAll(store: ContentStore): Promise<void> {
  const old = new Date(Date.now() - 3600_000);
  for (const name of await fsp.readdir(store.paths.blobs)) await fsp.utimes(`${store.paths.blobs}/${name}`, old, old);
}

test('a compression variant is made once, recorded, and reused by every later request', async (t) => {
  const store = await ContentStore.open(tempDir(t));
  const layer = await writeLayer(store, entries('a'), { compression: 'none' });
  assert.equal(layer.descriptor.mediaType, MediaType.ociLayerTar);

  const gz = await layerVariant(store, layer, 'gzip');
  assert.equal(gz.reused, false);
  assert.equal(gz.descriptor.mediaType, MediaType.ociLayerGzip);
  // the oracle: GNU gzip reads it back to the very tar
  assert.equal(`sha256:${mustRun('sh', ['-c', `gzip -dc < ${store.blobPath(gz.descriptor.digest)} | sha256sum`]).split(' ')[0]}`, layer.diffId);
  const again = await layerVariant(store, layer, 'gzip');
  assert.deepEqual(again, { descriptor: gz.descriptor, reused: true });

  const none = await layerVariant(store, { descriptor: gz.descriptor, diffId: layer.diffId }, 'none');
  assert.deepEqual(none, { descriptor: layer.descriptor, reused: true });

  const record = await store.variants.get(layer.diffId);
  assert.equal(record.variants.none?.digest, layer.descriptor.digest);
  assert.equal(record.variants.gzip?.digest, gz.descriptor.digest);
  assert.equal(record.variants.zstd, undefined);
});

test('a zstd variant is real zstd: the zstd command reads it back to the layer tar', { skip: !have('zstd') && 'zstd not installed' }, async (t) => {
  const store = await ContentStore.open(tempDir(t));
  const layer = await writeLayer(store, entries('z'), { compression: 'gzip' });
  const zst = await layerVariant(store, layer, 'zstd');
  assert.equal(zst.reused, false);
  assert.equal(zst.descriptor.mediaType, MediaType.ociLayerZstd);
  const blob = readFileSync(store.blobPath(zst.descriptor.digest));
  assert.equal(blob.readUInt32LE(0), 0xfd2fb528);
  assert.equal(`sha256:${mustRun('sh', ['-c', `zstd -dcq < ${store.blobPath(zst.descriptor.digest)} | sha256sum`]).split(' ')[0]}`, layer.diffId);
  assert.equal((await layerVariant(store, layer, 'zstd')).reused, true);
  // a zstd blob altered in the store: reading it back fails with a KilnError, not a raw exit status
  const altered = Buffer.from(blob);
  altered[altered.length - 1] ^= 0xff;
  const copy = await ContentStore.open(tempDir(t));
  writeFileSync(copy.blobPath(zst.descriptor.digest), altered);
  await assert.rejects(
    (async () => {
      for await (const chunk of layerFrom(copy, zst.descriptor, layer.diffId).uncompressed()) void chunk;
    })(),
    (e: unknown) => e instanceof KilnError && /corrupt|zstd/.test(e.message),
  );
  // from the zstd form back to plain: recorded as well
  const plain = await layerVariant(store, { descriptor: zst.descriptor, diffId: layer.diffId }, 'none');
  assert.equal(plain.descriptor.digest, layer.diffId);
});

test('GC keeps every form of a layer while one is reachable, then drops blobs and record', async (t) => {
  const store = await ContentStore.open(tempDir(t));
  const layer = await writeLayer(store, entries('g'), { compression: 'none' });
  const gz = await layerVariant(store, layer, 'gzip');
  await writeImage(store, { config: config([layer.diffId]), layers: [layer.descriptor] }, ['app:1']);
  await backdateAll(store);
  await store.gc();
  assert.ok(await store.hasBlob(gz.descriptor.digest), 'the gzip form of a named layer stays');
  assert.ok(await store.hasBlob(layer.descriptor.digest));

  await store.deleteRef('app:1');
  await store.gc();
  assert.equal(await store.hasBlob(gz.descriptor.digest), false);
  assert.equal(await store.hasBlob(layer.descriptor.digest), false);
  assert.deepEqual(await store.variants.list(), []);
});

test('a recorded variant whose blob is gone is made again; a layer that is not its diff id is refused', async (t) => {
  const store = await ContentStore.open(tempDir(t));
  const layer = await writeLayer(store, entries('r'), { compression: 'none' });
  const gz = await layerVariant(store, layer, 'gzip');
  await fsp.rm(store.blobPath(gz.descriptor.digest));
  const remade = await layerVariant(store, layer, 'gzip');
  assert.equal(remade.reused, false);
  assert.equal(remade.descriptor.digest, gz.descriptor.digest, 'the same layer gzips to the same bytes');

  const other = await writeLayer(store, entries('other'), { compression: 'none' });
  await assert.rejects(
    layerVariant(store, { descriptor: other.descriptor, diffId: digestOf('not what the blob holds') }, 'gzip'),
    (e: unknown) => e instanceof KilnError && /uncompressed content hashes to/.test(e.message),
  );
  assert.equal((await store.variants.list()).length, 1, 'nothing recorded for the refused layer');
  assert.deepEqual(await fsp.readdir(store.tmpDir()), []);
});
