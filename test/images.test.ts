/** The library's image listing and removal (src/images.ts), called directly on a kiln root. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { listImages, removeImages } from '../src/images.js';
import { ContentStore } from '../src/oci/store.js';
import { KilnError } from '../src/errors.js';
import { rootWithBusybox } from './helpers.js';

let ws: { root: string; cleanup: () => Promise<void> };
before(async () => {
  ws = await rootWithBusybox();
});
after(async () => {
  await ws?.cleanup();
});

test('listImages gives each stored name with its ID, digest, creation time and size', async () => {
  const store = await ContentStore.open(ws.root);
  const busybox = await store.resolve('busybox:latest');
  assert.ok(busybox);
  await store.setRef('localhost:5000/team/bb:2', busybox);
  const images = await listImages(ws.root);
  assert.deepEqual(images.map((i) => i.name).sort(), ['busybox:latest', 'localhost:5000/team/bb:2']);
  const bb = images.find((i) => i.name === 'localhost:5000/team/bb:2');
  assert.ok(bb);
  assert.equal(bb.repository, 'localhost:5000/team/bb');
  assert.equal(bb.tag, '2');
  assert.equal(bb.digest, busybox.digest);
  assert.match(bb.id, /^sha256:[a-f0-9]{64}$/);
  assert.notEqual(bb.id, bb.digest, 'the ID is the config digest, not the manifest digest');
  assert.ok(bb.created && !Number.isNaN(Date.parse(bb.created)), `created: ${bb.created}`);
  assert.ok(bb.size !== undefined && bb.size > busybox.size, `size ${bb.size}`);

  assert.deepEqual((await listImages(ws.root, 'localhost:5000/team/bb')).map((i) => i.name), ['localhost:5000/team/bb:2']);
  assert.deepEqual((await listImages(ws.root, 'busybox:latest')).map((i) => i.name), ['busybox:latest']);
  assert.deepEqual(await listImages(ws.root, 'busybox:other'), []);
  await assert.rejects(listImages(ws.root, 'Bad:Name'), (e: unknown) => e instanceof KilnError && /invalid image name/.test(e.message));
});

test('removeImages removes a name, or every name of an ID, and reports what matched nothing', async () => {
  const store = await ContentStore.open(ws.root);
  const busybox = await store.resolve('busybox:latest');
  assert.ok(busybox);
  await store.setRef('one:1', busybox);
  await store.setRef('two:1', busybox);
  assert.deepEqual(await removeImages(ws.root, ['one:1', 'nothere']), { removed: ['one:1'], missing: ['nothere'] });
  assert.equal(await store.resolve('one:1'), undefined);
  // by image ID (the config digest, as kiln images shows it): every name pointing at it goes
  const [{ id }] = await listImages(ws.root, 'two:1');
  const { removed, missing } = await removeImages(ws.root, [id.slice('sha256:'.length, 'sha256:'.length + 12)]);
  assert.deepEqual(missing, []);
  assert.ok(removed.includes('two:1') && removed.includes('busybox:latest'), removed.join(', '));
  assert.equal(await store.resolve('busybox:latest'), undefined);
  // the blobs stay until a prune: the image can be named again
  await store.setRef('busybox:latest', busybox);
  assert.ok(await store.resolve('busybox:latest'));
});
