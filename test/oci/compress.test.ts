import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { KilnError } from '../../src/errors.js';
import { COMPRESS_BLOCK, gzipBlocks, zstdBlocks } from '../../src/oci/compress.js';
import { digestOf } from '../../src/oci/digest.js';
import { writeImage } from '../../src/oci/image.js';
import { layerVariant, storeTarAsLayer, writeLayer, type LayerEntry } from '../../src/oci/layer.js';
import { ContentStore } from '../../src/oci/store.js';
import { decompress } from '../../src/oci/tar.js';
import { MediaType } from '../../src/oci/types.js';
import { have, mustRun, run, tempDir } from './util.js';
import { chunked, collect } from './compress-util.js';

/**
 * `size` bytes that are the same everywhere: runs of text (compressible) and of sha256 output
 * (not), as a layer of binaries and files would mix them.
 */
function mixedData(size: number, seed = 'kiln'): Buffer {
  const out = Buffer.alloc(size);
  let off = 0;
  let n = 0;
  while (off < size) {
    const h = createHash('sha256').update(`${seed}:${n++}`).digest();
    if (h[0] < 160) {
      const line = Buffer.from(`line ${n} of ${seed}: the quick brown fox jumps over the lazy dog ${h[1]}\n`);
      for (let i = 0; i < 40 && off < size; i++) off += line.copy(out, off);
    } else {
      for (let i = 0; i < 32 && off < size; i++) off += h.copy(out, off, 0, Math.min(32, size - off));
    }
  }
  return out;
}



const DATA_SIZE = 2 * COMPRESS_BLOCK + 123_457;

test('gzip: fixed input gives fixed bytes, whatever the chunking, as several members GNU gzip and pigz read whole', async (t) => {
  const data = mixedData(DATA_SIZE);
  const a = await collect(gzipBlocks(chunked(data, 65536)));
  const b = await collect(gzipBlocks(chunked(data, 3 * COMPRESS_BLOCK)));
  const c = await collect(gzipBlocks(chunked(data, 1000)));
  assert.ok(a.equals(b) && a.equals(c), 'the bytes depend on the input only, not on how it arrives');
  // the known answer: a change here changes every gzip layer kiln writes (and every pushed digest)
  assert.equal(digestOf(a), KNOWN.gzip6);
  assert.ok(a.length < data.length * 0.7, `compressed ${a.length} of ${data.length}`);
  // one member per block: each starts with the gzip magic, mtime 0, OS 3 (Unix)
  const dir = tempDir(t);
  const file = path.join(dir, 'data.gz');
  writeFileSync(file, a);
  assert.equal(a[9], 3);
  assert.equal(a.readUInt32LE(4), 0);
  // the format: one member per COMPRESS_BLOCK of input, each an independent gzip of its block
  const members: Buffer[] = [];
  for (let i = 0; i < data.length; i += COMPRESS_BLOCK) {
    const m = zlib.gzipSync(data.subarray(i, i + COMPRESS_BLOCK), { level: 6 });
    m[9] = 3;
    members.push(m);
  }
  assert.equal(members.length, 3);
  assert.ok(Buffer.concat(members).equals(a), 'three independent members');
  assert.equal(mustRun('sh', ['-c', `gzip -dc < ${file} | sha256sum`]).split(' ')[0], digestOf(data).slice(7));
  if (have('pigz')) assert.equal(mustRun('sh', ['-c', `pigz -dc < ${file} | sha256sum`]).split(' ')[0], digestOf(data).slice(7));
  // kiln's own reader
  assert.ok((await collect(decompress(chunked(a, 7777)))).equals(data));
  // levels: 1 is bigger than 9, 0 is stored (bigger than the input), all read back
  const l1 = await collect(gzipBlocks(chunked(data, 65536), 1));
  const l9 = await collect(gzipBlocks(chunked(data, 65536), 9));
  const l0 = await collect(gzipBlocks(chunked(data, 65536), 0));
  assert.ok(l1.length > l9.length, `level 1 ${l1.length} > level 9 ${l9.length}`);
  assert.ok(l0.length > data.length);
  for (const x of [l0, l1, l9]) assert.ok((await collect(decompress(chunked(x, 65536)))).equals(data));
  assert.equal(digestOf(l9), KNOWN.gzip9);
  // empty input: one valid empty member
  const empty = await collect(gzipBlocks(chunked(Buffer.alloc(0), 1)));
  assert.equal((await collect(decompress(chunked(empty, 10)))).length, 0);
  assert.ok(empty.length > 0);
});

test('zstd: fixed input gives fixed frames, one per block with its content size, read by the zstd command and by kiln in parallel', async (t) => {
  const data = mixedData(DATA_SIZE, 'zstd');
  const a = await collect(zstdBlocks(chunked(data, 65536)));
  const b = await collect(zstdBlocks(chunked(data, 5000)));
  assert.ok(a.equals(b));
  assert.equal(digestOf(a), KNOWN.zstd3);
  assert.ok(a.length < data.length * 0.7);
  const dir = tempDir(t);
  const file = path.join(dir, 'data.zst');
  writeFileSync(file, a);
  if (have('zstd')) {
    assert.equal(mustRun('sh', ['-c', `zstd -dcq < ${file} | sha256sum`]).split(' ')[0], digestOf(data).slice(7));
    const info = mustRun('zstd', ['-lv', file]);
    assert.match(info, /# Zstandard Frames: 3\b/);
    assert.match(info, /Decompressed Size: /);
  }
  assert.ok((await collect(decompress(chunked(a, 4093)))).equals(data));
  // levels: 19 is smaller than 1
  const l1 = await collect(zstdBlocks(chunked(data, 65536), 1));
  const l19 = await collect(zstdBlocks(chunked(data, 65536), 19));
  assert.ok(l19.length < l1.length, `level 19 ${l19.length} < level 1 ${l1.length}`);
  assert.ok((await collect(decompress(chunked(l19, 65536)))).equals(data));
});

test('zstd from another tool: a streamed frame with no content size, and skippable frames, are read (the zstd command as fallback)', { skip: !have('zstd') && 'zstd not installed' }, async (t) => {
  const data = mixedData(COMPRESS_BLOCK + 999, 'other');
  const dir = tempDir(t);
  const plain = path.join(dir, 'plain');
  writeFileSync(plain, data);
  // through a pipe: zstd cannot know the size, so the frame has none
  const streamed = Buffer.from(mustRunBuffer('sh', ['-c', `cat ${plain} | zstd -3 -q -c`]));
  assert.equal(streamed[4] >> 6, 0, 'no content size in the frame header');
  assert.ok((await collect(decompress(chunked(streamed, 65536)))).equals(data));
  // kiln frames, a skippable frame, then a foreign frame: all in order
  const ours = await collect(zstdBlocks(chunked(data, 65536)));
  const skip = Buffer.alloc(8 + 5);
  skip.writeUInt32LE(0x184d2a5a, 0);
  skip.writeUInt32LE(5, 4);
  const mixed = Buffer.concat([ours, skip, streamed]);
  assert.ok((await collect(decompress(chunked(mixed, 10000)))).equals(Buffer.concat([data, data])));
  // a damaged frame of kiln's (its first block header given the reserved type): a KilnError
  // saying zstd, not a raw error. (Damage inside a block may decode silently: frames carry no
  // checksum; a layer's diff id check catches that.)
  const bad = Buffer.from(ours);
  assert.equal(bad[4], 0x80, 'header: a 4-byte content size, a window descriptor');
  bad[10] |= 0x06;
  await assert.rejects(collect(decompress(chunked(bad, 65536))), (e: unknown) => e instanceof KilnError && /zstd/.test(e.message));
  // cut short
  await assert.rejects(collect(decompress(chunked(ours.subarray(0, ours.length - 100), 65536))), (e: unknown) => e instanceof KilnError && /zstd/.test(e.message));
});

function mustRunBuffer(cmd: string, args: string[]): Buffer {
  return execFileSync(cmd, args, { maxBuffer: 1 << 28 });
}

const layerEntries = (data: Buffer): LayerEntry[] => [
  { path: 'data', type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: 1 },
  { path: 'data/blob', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 1, content: data },
  { path: 'data/small', type: 'file', mode: 0o600, uid: 0, gid: 0, mtime: 1, content: Buffer.from('small\n') },
];

test('layerVariant levels and force: a variant per level is recorded and reused; a stored form is kept unless forced', async (t) => {
  const store = await ContentStore.open(tempDir(t));
  const data = mixedData(COMPRESS_BLOCK + 5000, 'levels');
  const layer = await writeLayer(store, layerEntries(data), { compression: 'none' });

  const g6 = await layerVariant(store, layer, 'gzip');
  const g6again = await layerVariant(store, layer, 'gzip', { level: 6 });
  assert.deepEqual(g6again, { descriptor: g6.descriptor, reused: true }, 'level 6 is the default one');
  const g1 = await layerVariant(store, layer, 'gzip', { level: 1 });
  assert.equal(g1.reused, false);
  assert.notEqual(g1.descriptor.digest, g6.descriptor.digest);
  assert.ok(g1.descriptor.size > g6.descriptor.size);
  assert.deepEqual(await layerVariant(store, layer, 'gzip', { level: 1 }), { descriptor: g1.descriptor, reused: true });
  const z19 = await layerVariant(store, layer, 'zstd', { level: 19 });
  const z3 = await layerVariant(store, layer, 'zstd');
  assert.notEqual(z19.descriptor.digest, z3.descriptor.digest);
  assert.equal(z19.descriptor.mediaType, MediaType.ociLayerZstd);
  const record = await store.variants.get(layer.diffId);
  assert.deepEqual(Object.keys(record.variants).sort(), ['gzip', 'gzip@1', 'none', 'zstd', 'zstd@19']);
  assert.equal(record.variants['gzip@1']?.digest, g1.descriptor.digest);
  assert.deepEqual(readdirSync(path.join(store.variants.dir, layer.diffId.slice(7))).sort(), ['gzip.json', 'gzip@1.json', 'none.json', 'zstd.json', 'zstd@19.json']);

  // a gzip layer from elsewhere (one member, from GNU gzip): kept as it is, whatever the level...
  const tarFile = path.join(tempDir(t), 'layer.tar');
  const tarBytes = await collect(store.openBlob(layer.descriptor.digest));
  writeFileSync(tarFile, tarBytes);
  const foreign = mustRunBuffer('gzip', ['-9', '-n', '-c', tarFile]);
  const pulled = await storeTarAsLayer(store, () => chunked(foreign, 65536));
  assert.equal(pulled.descriptor.digest, digestOf(foreign), 'a gzip tar is stored byte for byte');
  assert.equal(pulled.diffId, layer.diffId);
  assert.deepEqual(await layerVariant(store, pulled, 'gzip', { level: 1 }), { descriptor: pulled.descriptor, reused: true });
  // ...unless forced: then kiln's own gzip at that level, the same bytes as made from the plain form
  const forced = await layerVariant(store, pulled, 'gzip', { force: true });
  assert.equal(forced.descriptor.digest, g6.descriptor.digest);
  const forced1 = await layerVariant(store, pulled, 'gzip', { force: true, level: 1 });
  assert.equal(forced1.descriptor.digest, g1.descriptor.digest);
  // forcing a layer whose recorded gzip form is the pulled blob itself compresses anew
  const store2 = await ContentStore.open(tempDir(t));
  const pulled2 = await storeTarAsLayer(store2, () => chunked(foreign, 65536));
  await layerVariant(store2, pulled2, 'zstd');
  assert.equal((await store2.variants.get(pulled2.diffId)).variants.gzip?.digest, pulled2.descriptor.digest);
  const forced2 = await layerVariant(store2, pulled2, 'gzip', { force: true });
  assert.equal(forced2.reused, false);
  assert.equal(forced2.descriptor.digest, g6.descriptor.digest);
  // an uncompressed layer stays one blob, forced or not
  assert.deepEqual(await layerVariant(store, layer, 'none', { force: true }), { descriptor: layer.descriptor, reused: true });

  // bad levels: a clear KilnError
  for (const [c, level] of [['gzip', 10], ['gzip', -1], ['zstd', 0], ['zstd', 23], ['gzip', 1.5]] as const) {
    await assert.rejects(layerVariant(store, layer, c, { level }), (e: unknown) => e instanceof KilnError && e.code === 'invalid' && new RegExp(`compression-level=${level} is not a ${c} level`).test(e.message) && /whole numbers from/.test(e.hint ?? ''));
  }
  await assert.rejects(layerVariant(store, { descriptor: g6.descriptor, diffId: layer.diffId }, 'none', { level: 3 }), (e: unknown) => e instanceof KilnError && /uncompressed/.test(e.message));

  // a non-gzip tar given to storeTarAsLayer is gzipped as writeLayer does (deterministic members)
  const fromZstd = await storeTarAsLayer(store2, () => chunked(readFileSync(store.blobPath(z3.descriptor.digest)), 65536));
  assert.equal(fromZstd.descriptor.digest, g6.descriptor.digest);
});

test('peers read multi-member gzip and multi-frame zstd layers: umoci unpack, skopeo copy (Go readers)', async (t) => {
  const root = tempDir(t);
  const store = await ContentStore.open(root);
  const data = mixedData(2 * COMPRESS_BLOCK + 77, 'peers');
  const layer = await writeLayer(store, layerEntries(data), { compression: 'none' });
  const gz = await layerVariant(store, layer, 'gzip');
  const zst = await layerVariant(store, layer, 'zstd');
  const config = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers' as const, diff_ids: [layer.diffId] } };
  await writeImage(store, { config, layers: [gz.descriptor] }, ['peers:gzip']);
  await writeImage(store, { config, layers: [zst.descriptor] }, ['peers:zstd']);
  for (const tag of ['gzip', 'zstd']) {
    await t.test(`umoci unpack (${tag})`, (t2) => {
      if (!have('umoci')) return t2.skip('umoci not installed');
      const out = path.join(tempDir(t2), 'bundle');
      const r = run('umoci', ['unpack', '--rootless', '--image', `${root}:peers:${tag}`, out]);
      if (r.status !== 0 && tag === 'zstd' && /zstd|unsupported|media/i.test(r.stderr)) return t2.skip(`this umoci cannot read zstd layers: ${r.stderr.trim().split('\n').pop()}`);
      assert.equal(r.status, 0, r.stderr);
      assert.ok(readFileSync(path.join(out, 'rootfs', 'data', 'blob')).equals(data));
      assert.equal(readFileSync(path.join(out, 'rootfs', 'data', 'small'), 'utf8'), 'small\n');
    });
    await t.test(`skopeo copy --dest-decompress (${tag})`, (t2) => {
      if (!have('skopeo')) return t2.skip('skopeo not installed');
      const out = path.join(tempDir(t2), 'dir');
      mkdirSync(out);
      mustRun('skopeo', ['copy', '--quiet', '--dest-decompress', `oci:${root}:peers:${tag}`, `dir:${out}`]);
      // the decompressed layer file is the layer tar itself: its digest is the diff id
      const names = readdirSync(out).filter((n) => /^[a-f0-9]{64}$/.test(n));
      const digests = names.map((n) => digestOf(readFileSync(path.join(out, n))));
      assert.ok(digests.includes(layer.diffId), `a decompressed blob is the layer tar (${digests.join(', ')})`);
      assert.ok(existsSync(path.join(out, 'manifest.json')));
    });
  }
});

/** Known answers (see the first test): the digest of mixedData(DATA_SIZE[, 'zstd']) compressed. */
const KNOWN = {
  gzip6: 'sha256:04a4e7dfd4b960ecf7fb25f30cb29b24321117e4b062f0377daa2e37d6a21d74',
  gzip9: 'sha256:e2462d953389ed389016f853e4ab654a1141c4ac6bec21f8aa36e6b73f4bef4f',
  zstd3: 'sha256:083fb74bfc90054266d1cc2db648568469a3ff2a704390f45f4d3e9024f2a595',
};

test('docker load reads a docker archive whose layers are kiln multi-member gzip and multi-frame zstd', async (t) => {
  if (!have('docker') || run('docker', ['info']).status !== 0) return t.skip('no docker engine answers');
  const root = tempDir(t);
  const store = await ContentStore.open(root);
  const data = mixedData(2 * COMPRESS_BLOCK + 4321, 'docker');
  const layer = await writeLayer(store, layerEntries(data), { compression: 'none' });
  for (const compression of ['gzip', 'zstd'] as const) {
    const v = await layerVariant(store, layer, compression);
    const name = `kiln-compress-test-${process.pid}:${compression}`;
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [layer.diffId] } }));
    const dir = path.join(tempDir(t), 'archive');
    mkdirSync(dir);
    const configName = `${digestOf(config).slice(7)}.json`;
    writeFileSync(path.join(dir, configName), config);
    writeFileSync(path.join(dir, `layer.${compression}`), readFileSync(store.blobPath(v.descriptor.digest)));
    writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify([{ Config: configName, RepoTags: [name], Layers: [`layer.${compression}`] }]));
    const tarFile = `${dir}.tar`;
    mustRun('tar', ['-cf', tarFile, '-C', dir, '.']);
    try {
      const load = run('docker', ['load', '-i', tarFile]);
      if (compression === 'zstd' && load.status !== 0 && /unsupported|invalid tar header|zstd/i.test(load.stderr)) {
        t.diagnostic(`docker load of a zstd layer: ${load.stderr.trim()}`);
        continue;
      }
      assert.equal(load.status, 0, load.stderr);
      // docker decompressed the whole layer: the diff id it computed is the config's
      const layers = JSON.parse(mustRun('docker', ['image', 'inspect', '--format', '{{json .RootFS.Layers}}', name])) as string[];
      assert.deepEqual(layers, [layer.diffId]);
    } finally {
      run('docker', ['rmi', '-f', name]);
    }
  }
});
