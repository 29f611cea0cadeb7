/**
 * Unpacked layers are a cache written without fsync: one from an earlier boot is thrown
 * away and unpacked again; a step's upper dir becomes its layer's unpacked form.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Snapshotter } from '../../src/snapshot/index.js';
import { chunked, diffIdOf, makeTar } from './tarutil.js';

const skip = process.getuid?.() === 0 ? false : 'needs root (overlayfs)';

test('a layer unpacked in an earlier boot is unpacked again', { skip }, async () => {
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'kiln-snap-boot-'));
  try {
    const tar = await makeTar([{ name: 'hello.txt', content: 'hello\n' }]);
    const diffId = diffIdOf(tar);
    const snap = new Snapshotter(root);
    const dir = await snap.unpackLayer(diffId, chunked(tar));
    await fsp.writeFile(path.join(dir, 'marker'), 'this boot');
    assert.equal(await snap.unpackLayer(diffId, chunked(tar)), dir);
    assert.equal(await fsp.readFile(path.join(dir, 'marker'), 'utf8'), 'this boot', 'same boot: reused');
    await fsp.writeFile(path.join(path.dirname(dir), 'boot'), 'some-earlier-boot-id');
    // a reboot means a new process: a fresh snapshotter, which checks the marker on disk
    const again = await new Snapshotter(root).unpackLayer(diffId, chunked(tar));
    assert.equal(again, dir);
    await assert.rejects(fsp.access(path.join(again, 'marker')), 'earlier boot: unpacked afresh');
    assert.equal(await fsp.readFile(path.join(again, 'hello.txt'), 'utf8'), 'hello\n');
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});

test('release can keep the upper dir as the unpacked form of the layer it became', { skip }, async () => {
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'kiln-snap-adopt-'));
  try {
    const snap = new Snapshotter(root);
    const m = await snap.mount([]);
    await fsp.writeFile(path.join(m.merged, 'made'), 'in a step');
    const fakeDiffId = `sha256:${'ab'.repeat(32)}`;
    await m.release({ keepUpperAs: fakeDiffId });
    assert.equal(await snap.hasLayer(fakeDiffId), true);
    assert.equal(await fsp.readFile(path.join(snap.layerDir(fakeDiffId), 'made'), 'utf8'), 'in a step');
    assert.deepEqual(await fsp.readdir(path.join(root, 'snapshots', 'active')), []);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});
