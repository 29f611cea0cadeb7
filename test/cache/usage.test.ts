import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cacheUsage, pruneCache } from '../../src/cache/gc.js';
import { CacheRecords } from '../../src/cache/records.js';
import { digestOf } from '../../src/oci/digest.js';
import { writeImage } from '../../src/oci/image.js';
import { writeLayer } from '../../src/oci/layer.js';
import { ContentStore } from '../../src/oci/store.js';
import { writeIndex } from '../../src/oci/walk.js';

test('cache layers that an image reaches through an index are in use; the rest are pruned', async (t) => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'kiln-cache-usage-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const store = await ContentStore.open(root);
  const records = new CacheRecords(root);
  const layer = async (seed: string) => writeLayer(store, [{ path: seed, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, content: Buffer.from(seed) }]);
  const kept = await layer('kept');
  const loose = await layer('loose');
  for (const [key, l] of [
    ['k1', kept],
    ['k2', loose],
  ] as const) {
    await records.put({ key: digestOf(key), description: `RUN ${key}`, layer: { descriptor: l.descriptor, diffId: l.diffId }, createdAt: new Date(0).toISOString() });
  }
  const image = await writeImage(store, { config: { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [kept.diffId] } }, layers: [kept.descriptor] }, []);
  // named only through a multi-platform index
  await store.setRef('multi:1', await writeIndex(store, [{ ...image.manifestDescriptor, platform: { os: 'linux', architecture: 'amd64' } }]));

  const usage = await cacheUsage(root);
  const byId = new Map(usage.items.filter((i) => i.kind === 'layer').map((i) => [i.id, i]));
  assert.equal(byId.get(kept.descriptor.digest.slice(7, 19))?.inUse, true);
  assert.equal(byId.get(loose.descriptor.digest.slice(7, 19))?.inUse, false);

  const pruned = await pruneCache(root, { all: true });
  assert.equal(pruned.records, 2, '--all drops every record');
  assert.ok(await store.hasBlob(kept.descriptor.digest), 'the image keeps its layer');
});
