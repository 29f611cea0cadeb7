/** The port's harness reads images the way a runtime would: layers in order, whiteouts, hard links. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeTree, flattenArchive, makeTar, readImageFile, resolveEntry } from './harness.js';

test('harness: a docker archive flattens with whiteouts, opaque directories and hard links', async () => {
  const layer1 = await makeTar([
    { name: 'a/', type: 'directory', mode: 0o750, uid: 7, gid: 8 },
    { name: 'a/x', content: 'x' },
    { name: 'a/y', content: 'y' },
    { name: 'b', content: 'b' },
    { name: 'c', type: 'symlink', linkname: 'a/x' },
    { name: 'e/', type: 'directory' },
    { name: 'e/f', content: 'f' },
  ]);
  const layer2 = await makeTar([
    { name: 'a/', type: 'directory', mode: 0o755 },
    { name: 'a/.wh..wh..opq', content: '' },
    { name: 'a/z', content: 'zz', mode: 0o600 },
    { name: 'd', type: 'link', linkname: 'a/z' },
    { name: '.wh.b', content: '' },
    { name: 'e', content: 'now a file' },
  ]);
  const config = JSON.stringify({ config: { Env: ['A=1'] }, history: [{ created_by: 'one' }, { created_by: 'two' }] });
  const archive = await makeTar([
    { name: 'manifest.json', content: JSON.stringify([{ Config: 'config.json', Layers: ['l1/layer.tar', 'l2/layer.tar'] }]) },
    { name: 'config.json', content: config },
    { name: 'l1/layer.tar', content: layer1 },
    { name: 'l2/layer.tar', content: layer2 },
  ]);
  const img = await flattenArchive(archive);
  assert.equal(img.layers, 2);
  assert.deepEqual(img.config.config?.Env, ['A=1']);
  const lines = describeTree(img.fs).map((l) => l.replace(/ [0-9a-f]{16}/, ''));
  assert.deepEqual(lines, [
    '/a dir 0755 0:0',
    '/a/z file 0600 0:0 2 links=/a/z,/d',
    '/c symlink 0644 0:0 -> a/x',
    '/d file 0600 0:0 2 links=/a/z,/d',
    '/e file 0644 0:0 10',
  ]);
  assert.equal(readImageFile(img, 'd'), 'zz');
  assert.throws(() => resolveEntry(img, 'c', true), /no such entry/, 'the link points at a file the opaque directory hid');
});
