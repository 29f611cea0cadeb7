import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KilnError } from '../../src/errors.js';
import { Snapshotter } from '../../src/snapshot/index.js';
import { chunked, diffIdOf, makeTar, type TarSpec } from './tarutil.js';

const isRoot = process.getuid?.() === 0;
const hasZstd = spawnSync('sh', ['-c', 'command -v zstd'], { stdio: 'ignore' }).status === 0;
const skip = !isRoot ? 'needs root (unpacking sets owners)' : !hasZstd ? 'zstd not installed' : false;

const layer: TarSpec[] = [
  { name: 'etc/', type: 'directory', mtime: 1600000000 },
  { name: 'etc/motd', content: 'zstd layer\n', mode: 0o640, uid: 7, gid: 8, mtime: 1600000001 },
  { name: 'etc/big', content: 'z'.repeat(200_000) },
  { name: 'etc/sh', type: 'symlink', linkname: 'motd' },
  { name: '.wh.gone', content: '' },
];

/** The zstd command (the oracle's compressor, not kiln's) compresses the tar. */
function zstd(data: Buffer): Buffer {
  const r = spawnSync('zstd', ['-c', '-q', '-19'], { input: data, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`zstd failed: ${r.stderr.toString()}`);
  return r.stdout;
}

test('a zstd-compressed layer unpacks like its tar, and its diff id is checked on the uncompressed bytes', { skip }, async (t) => {
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'kiln-snap-zstd-'));
  t.after(() => fsp.rm(root, { recursive: true, force: true }));
  const snap = new Snapshotter(root);
  const tar = await makeTar(layer);
  const diffId = diffIdOf(tar);
  const blob = zstd(tar);
  assert.equal(blob.readUInt32LE(0), 0xfd2fb528);
  const dir = await snap.unpackLayer(diffId, chunked(blob, 1000));
  assert.equal(await fsp.readFile(path.join(dir, 'etc/motd'), 'utf8'), 'zstd layer\n');
  const motd = await fsp.lstat(path.join(dir, 'etc/motd'));
  assert.equal(motd.mode & 0o7777, 0o640);
  assert.equal(motd.uid, 7);
  assert.equal(motd.gid, 8);
  assert.equal((await fsp.stat(path.join(dir, 'etc/big'))).size, 200_000);
  assert.equal(await fsp.readlink(path.join(dir, 'etc/sh')), 'motd');
  const wh = await fsp.lstat(path.join(dir, 'gone'));
  assert.ok(wh.isCharacterDevice() && wh.rdev === 0, 'the whiteout in overlay form');

  // the wrong diff id: refused, and nothing is left behind
  const other = await makeTar([{ name: 'x', content: 'x' }]);
  await assert.rejects(
    snap.unpackLayer(diffIdOf(tar.subarray(0, 512)), chunked(zstd(other))),
    (e: unknown) => e instanceof KilnError && /uncompressed content has digest/.test(e.message),
  );
  // a truncated zstd stream is a clear error
  await assert.rejects(
    snap.unpackLayer(diffIdOf(other), chunked(blob.subarray(0, blob.length >> 1))),
    (e: unknown) => e instanceof KilnError && /cannot read the layer tarball/.test(e.message),
  );
  assert.deepEqual((await fsp.readdir(snap.layersRoot)).filter((n) => n.startsWith('.tmp')), []);
});
