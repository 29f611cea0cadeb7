import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { CacheRecords } from '../src/cache/records.js';
import { ContentStore } from '../src/oci/store.js';
import { kilnPaths } from '../src/paths.js';
import { Snapshotter } from '../src/snapshot/index.js';
import { tempDir } from './oci/util.js';

test('kilnPaths names where the store, the snapshotter and the cache put things', async (t) => {
  const root = tempDir(t);
  const p = kilnPaths(path.relative(process.cwd(), root));
  assert.equal(p.root, root, 'absolute');
  const store = await ContentStore.open(root);
  assert.equal(store.tmpDir(), p.tmp);
  assert.equal(path.dirname(store.blobPath(`sha256:${'a'.repeat(64)}`)), p.blobs);
  assert.equal(store.paths.index, p.index);
  const snap = new Snapshotter(root);
  assert.equal(snap.root, p.snapshots);
  assert.equal(snap.layersRoot, p.snapshotLayers);
  assert.equal(snap.activeRoot, p.snapshotActive);
  assert.equal(new CacheRecords(root).dir, p.cacheRecords);
  // every path is under the root, and no two roles share one
  const all = Object.entries(p).filter(([k]) => k !== 'root');
  for (const [k, v] of all) assert.ok(v.startsWith(`${root}/`), `${k} under the root`);
  assert.equal(new Set(all.map(([, v]) => v)).size, all.length);
});
