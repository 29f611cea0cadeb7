import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { KilnError } from '../../src/errors.js';
import { digestOf } from '../../src/oci/digest.js';
import { validateOCI } from '../../src/oci/schema.js';
import { ContentStore } from '../../src/oci/store.js';
import { MediaType, type Descriptor } from '../../src/oci/types.js';
import { buildIndex, childrenOf, reachable, walk, writeIndex, type WalkNode } from '../../src/oci/walk.js';
import { tempDir } from './util.js';

async function image(store: ContentStore, seed: string, arch: string): Promise<{ manifest: Descriptor; config: Descriptor; layers: Descriptor[] }> {
  const layers = [
    { mediaType: MediaType.ociLayerGzip, ...(await store.writeBlob(`base layer`)) },
    { mediaType: MediaType.ociLayerGzip, ...(await store.writeBlob(`layer ${seed}`)) },
  ];
  const config = await store.writeJSON({ architecture: arch, os: 'linux', rootfs: { type: 'layers', diff_ids: [digestOf('a'), digestOf(seed)] } }, MediaType.ociConfig);
  const manifest = await store.writeJSON({ schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers }, MediaType.ociManifest);
  return { manifest: { ...manifest, platform: { os: 'linux', architecture: arch } }, config, layers };
}

const digests = (nodes: WalkNode[]): string[] => nodes.map((n) => n.descriptor.digest);

test('walk visits index, manifests, configs and layers once each, depth first in listed order', async (t) => {
  const store = await ContentStore.open(tempDir(t));
  const amd = await image(store, 'amd', 'amd64');
  const arm = await image(store, 'arm', 'arm64');
  const index = await writeIndex(store, [amd.manifest, arm.manifest]);
  const nodes = await reachable(store, [index, amd.manifest]);
  assert.deepEqual(digests(nodes), [
    index.digest,
    amd.manifest.digest,
    amd.config.digest,
    amd.layers[0].digest,
    amd.layers[1].digest,
    arm.manifest.digest,
    arm.config.digest,
    // the shared base layer was already visited under amd64
    arm.layers[1].digest,
  ]);
  assert.deepEqual(
    nodes.map((n) => n.kind),
    ['index', 'manifest', 'config', 'layer', 'layer', 'manifest', 'config', 'layer'],
  );
  assert.equal(nodes[1].parent?.descriptor.digest, index.digest);
  assert.equal(nodes[1].manifest?.layers.length, 2);
  assert.equal(nodes[0].index?.manifests.length, 2);
});

test('the filter chooses index entries (a platform filter), and a visitor returning false prunes', async (t) => {
  const store = await ContentStore.open(tempDir(t));
  const amd = await image(store, 'amd', 'amd64');
  const arm = await image(store, 'arm', 'arm64');
  const index = await writeIndex(store, [amd.manifest, arm.manifest]);
  const armOnly = await reachable(store, [index], { filter: (d) => d.platform?.architecture === 'arm64' });
  assert.deepEqual(digests(armOnly), [index.digest, arm.manifest.digest, arm.config.digest, arm.layers[0].digest, arm.layers[1].digest]);

  const seen: string[] = [];
  const left: string[] = [];
  await walk(
    store,
    [index],
    (n) => {
      seen.push(n.descriptor.digest);
      return n.kind !== 'manifest';
    },
    { leave: (n) => void left.push(n.descriptor.digest) },
  );
  assert.deepEqual(seen, [index.digest, amd.manifest.digest, arm.manifest.digest]);
  // post-order, and not for the pruned manifests
  assert.deepEqual(left, [index.digest]);
  const order: string[] = [];
  await walk(store, [amd.manifest], () => undefined, { leave: (n) => void order.push(n.kind) });
  assert.deepEqual(order, ['config', 'layer', 'layer', 'manifest']);
});

test('a missing manifest is an error naming it, or skipped by policy; configs and layers are not read', async (t) => {
  const store = await ContentStore.open(tempDir(t));
  const amd = await image(store, 'amd', 'amd64');
  const arm = await image(store, 'arm', 'arm64');
  const index = await writeIndex(store, [amd.manifest, arm.manifest]);
  rmSync(store.blobPath(arm.manifest.digest));
  rmSync(store.blobPath(amd.layers[1].digest));
  await assert.rejects(
    reachable(store, [index]),
    (e: unknown) => e instanceof KilnError && e.message.includes(arm.manifest.digest) && e.message.includes('missing') && e.message.includes(index.digest),
  );
  const skipped = await reachable(store, [index], { missing: 'skip' });
  assert.deepEqual(digests(skipped), [index.digest, amd.manifest.digest, amd.config.digest, amd.layers[0].digest, amd.layers[1].digest]);
  // per node: an index may list platforms never fetched, a root must be there
  const policy = (n: WalkNode): 'skip' | 'error' => (n.parent ? 'skip' : 'error');
  assert.equal((await reachable(store, [index], { missing: policy })).length, 5);
  await assert.rejects(reachable(store, [arm.manifest], { missing: policy }), /missing/);
});

test('a malformed manifest is an error, or skipped by policy', async (t) => {
  const store = await ContentStore.open(tempDir(t));
  const notManifest = await store.writeJSON({ hello: 'world' }, MediaType.ociManifest);
  const notJSON = { mediaType: MediaType.ociIndex, ...(await store.writeBlob('{nope')) };
  await assert.rejects(reachable(store, [notManifest]), (e: unknown) => e instanceof KilnError && /malformed: no config or layers/.test(e.message));
  await assert.rejects(reachable(store, [notJSON]), (e: unknown) => e instanceof KilnError && /malformed: not JSON/.test(e.message));
  assert.deepEqual(await reachable(store, [notManifest, notJSON], { malformed: 'skip' }), []);
  // a corrupt blob (content no longer matches its digest) counts as malformed
  const amd = await image(store, 'amd', 'amd64');
  writeFileSync(store.blobPath(amd.manifest.digest), '{"changed":true}');
  await assert.rejects(reachable(store, [amd.manifest]), /corrupt/);
  assert.deepEqual(await reachable(store, [amd.manifest], { malformed: 'skip' }), []);
});

test('a bare digest is recognised by its shape when small enough, else a leaf', async (t) => {
  const store = await ContentStore.open(tempDir(t));
  const amd = await image(store, 'amd', 'amd64');
  const bare = { digest: amd.manifest.digest, size: amd.manifest.size };
  const nodes = await reachable(store, [bare]);
  assert.deepEqual(
    nodes.map((n) => n.kind),
    ['manifest', 'config', 'layer', 'layer'],
  );
  // no size: never read (it might be a layer of gigabytes)
  assert.deepEqual(
    (await reachable(store, [{ digest: amd.manifest.digest }])).map((n) => n.kind),
    ['blob'],
  );
  const layer = await reachable(store, [{ digest: amd.layers[0].digest, size: amd.layers[0].size }]);
  assert.deepEqual(
    layer.map((n) => n.kind),
    ['blob'],
  );
  // a bare digest that is not in the store is a leaf too (gc roots may name blobs never written)
  assert.deepEqual(
    (await reachable(store, [{ digest: digestOf('absent'), size: 6 }])).map((n) => n.kind),
    ['blob'],
  );
});

test('childrenOf lists an index entries and a manifest config then layers', async (t) => {
  const store = await ContentStore.open(tempDir(t));
  const amd = await image(store, 'amd', 'amd64');
  const index = await writeIndex(store, [amd.manifest]);
  assert.deepEqual(
    (await childrenOf(store, index)).map((d) => d.digest),
    [amd.manifest.digest],
  );
  assert.deepEqual(
    (await childrenOf(store, amd.manifest)).map((d) => d.digest),
    [amd.config.digest, ...amd.layers.map((l) => l.digest)],
  );
  assert.deepEqual(await childrenOf(store, amd.config), []);
});

test('buildIndex makes a valid OCI index; writeIndex stores it canonically', async (t) => {
  const store = await ContentStore.open(tempDir(t));
  const amd = await image(store, 'amd', 'amd64');
  const entry = { ...amd.manifest, annotations: { 'org.opencontainers.image.ref.name': '1' }, extra: 'dropped' } as Descriptor;
  const index = buildIndex([entry], { annotations: { a: 'b' } });
  assert.deepEqual(validateOCI('index', index), []);
  assert.deepEqual(index.manifests[0], {
    mediaType: MediaType.ociManifest,
    digest: amd.manifest.digest,
    size: amd.manifest.size,
    platform: { os: 'linux', architecture: 'amd64' },
    annotations: { 'org.opencontainers.image.ref.name': '1' },
  });
  assert.equal(index.annotations?.a, 'b');
  const list = buildIndex([], { mediaType: MediaType.dockerManifestList });
  assert.equal(list.mediaType, MediaType.dockerManifestList);
  const written = await writeIndex(store, [amd.manifest]);
  assert.equal(written.mediaType, MediaType.ociIndex);
  assert.deepEqual(await store.readJSON(written.digest), buildIndex([amd.manifest]));
});
