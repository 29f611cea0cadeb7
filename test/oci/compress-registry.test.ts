/**
 * Pulled layers keep their compressed form: a base whose layers another tool compressed (a
 * one-member GNU gzip -9, a streamed zstd frame) or kiln (zstd frames) is pulled, pushed again and built upon, and
 * against a real docker-registry behind a recording proxy no byte of its layers is uploaded
 * again: the pushed manifest is the very one pulled, and a build on it uploads only its own
 * layer and config.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { digestOf } from '../../src/oci/digest.js';
import { loadImage, writeImage } from '../../src/oci/image.js';
import { zstdBlocks } from '../../src/oci/compress.js';
import { writeLayer } from '../../src/oci/layer.js';
import { ContentStore } from '../../src/oci/store.js';
import { MediaType, type ImageManifest } from '../../src/oci/types.js';
import { haveTool, isRoot, rootWithBusybox, runKiln, tempDir } from '../helpers.js';
import { skipUnlessRegistry, startRegistry } from '../registry/harness.js';
import { startProxy } from '../registry/proxy.js';
import { textData } from '../registry/push-fixtures.js';
import { chunked, collect } from './compress-util.js';

/** `foreign:1` in `root`: busybox with a one-member gzip -9 layer and a streamed zstd layer over it. */
async function foreignBase(root: string, work: string): Promise<{ gzip: string; zstd: string; kiln: string }> {
  const store = await ContentStore.open(root);
  const tars: Buffer[] = [];
  for (const [i, seed] of ['gzip', 'zstd', 'kiln'].entries()) {
    const content = textData(3 << 20, seed);
    const plain = await writeLayer(store, [{ path: `data/${seed}.txt`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000 + i, content, size: content.length }], { compression: 'none' });
    tars.push(await fs.readFile(store.blobPath(plain.descriptor.digest)));
  }
  const tarFile = path.join(work, 'layer.tar');
  await fs.writeFile(tarFile, tars[0]);
  const gz = execFileSync('gzip', ['-9', '-n', '-c', tarFile], { maxBuffer: 1 << 26 });
  await fs.writeFile(tarFile, tars[1]);
  // through a pipe: one frame, no content size (what a streaming compressor writes)
  const zst = execFileSync('sh', ['-c', `cat ${tarFile} | zstd -q -c -9`], { maxBuffer: 1 << 26 });
  const busybox = await loadImage(store, 'busybox:latest');
  const layers = [...busybox.manifest.layers];
  const diffIds = [...busybox.config.rootfs.diff_ids];
  // and kiln's own zstd (frames with their sizes: read by the native binding in parallel)
  const ours = await collect(zstdBlocks(chunked(tars[2], 65536)));
  for (const [blob, mediaType, tar] of [[gz, MediaType.ociLayerGzip, tars[0]], [zst, MediaType.ociLayerZstd, tars[1]], [ours, MediaType.ociLayerZstd, tars[2]]] as const) {
    const { digest, size } = await store.writeBlob(blob);
    layers.push({ mediaType, digest, size });
    diffIds.push(digestOf(tar));
  }
  await writeImage(store, { config: { ...busybox.config, rootfs: { type: 'layers', diff_ids: diffIds } }, layers }, ['foreign:1']);
  return { gzip: digestOf(gz), zstd: digestOf(zst), kiln: digestOf(ours) };
}

test('a pulled base keeps its compressed layers: pushing it again or building on it uploads none of them', { skip: !haveTool('zstd') && 'zstd not installed' }, async (t) => {
  if (skipUnlessRegistry(t)) return;
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const proxy = await startProxy(reg.host);
  t.after(() => proxy.stop());
  const a = await rootWithBusybox();
  t.after(() => a.cleanup());
  const b = await tempDir('kiln-compress-b-');
  t.after(() => b.cleanup());
  const work = await tempDir('kiln-compress-work-');
  t.after(() => work.cleanup());

  const foreign = await foreignBase(a.root, work.dir);
  const up = await runKiln(['push', 'foreign:1', `${reg.host}/base:1`], { root: a.root });
  assert.equal(up.code, 0, up.stderr);
  const baseDigest = /@(sha256:[a-f0-9]{64})/.exec(up.stdout)?.[1];
  assert.ok(baseDigest, up.stdout);
  const pushed = (await (await fetch(`${reg.url}/v2/base/manifests/1`, { headers: { accept: MediaType.ociManifest } })).json()) as ImageManifest;
  assert.deepEqual(pushed.layers.slice(-3).map((l) => l.digest), [foreign.gzip, foreign.zstd, foreign.kiln], 'already-compressed layers go up byte for byte');

  // root b: pull through the proxy, then push the base to another repository
  const pull = await runKiln(['pull', `${proxy.host}/base:1`], { root: b.dir });
  assert.equal(pull.code, 0, pull.stderr);
  const store = await ContentStore.open(b.dir);
  for (const d of [foreign.gzip, foreign.zstd, foreign.kiln]) assert.ok(await store.hasBlob(d), `the pulled layer ${d} is stored as it came`);

  const uploads = (): string[] => proxy.requests.filter((r) => (r.method === 'PATCH' || r.method === 'PUT') && r.path.includes('/blobs/uploads/')).map((r) => `${r.method} ${r.path}`);
  const before = proxy.requests.length;
  const again = await runKiln(['push', `${proxy.host}/base:1`, `${proxy.host}/copy:1`], { root: b.dir });
  assert.equal(again.code, 0, again.stderr);
  assert.equal(/@(sha256:[a-f0-9]{64})/.exec(again.stdout)?.[1], baseDigest, 'the pushed manifest is the one pulled');
  assert.deepEqual(uploads(), [], `no blob uploaded: ${proxy.requests.slice(before).map((r) => `${r.method} ${r.path}`).join(', ')}`);

  // a build on the pulled base: its layers are reused (unpacked from gzip and zstd to COPY over them)
  const ctx = path.join(work.dir, 'ctx');
  await fs.mkdir(ctx);
  await fs.writeFile(path.join(ctx, 'Dockerfile'), `FROM ${proxy.host}/base:1\nCOPY app.txt /app.txt\n`);
  await fs.writeFile(path.join(ctx, 'app.txt'), 'app\n');
  const build = await runKiln(['build', '-t', `${proxy.host}/app:1`, ctx], { root: b.dir });
  assert.equal(build.code, 0, build.stderr);
  const mark = proxy.requests.length;
  const push = await runKiln(['push', `${proxy.host}/app:1`], { root: b.dir });
  assert.equal(push.code, 0, push.stderr);
  const app = (await (await fetch(`${reg.url}/v2/app/manifests/1`, { headers: { accept: MediaType.ociManifest } })).json()) as ImageManifest;
  assert.deepEqual(app.layers.slice(0, -1).map((l) => l.digest), pushed.layers.map((l) => l.digest), "the base's layers, unchanged");
  const put = proxy.requests.slice(mark).filter((r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/'));
  // the new layer and the config, nothing of the base
  assert.equal(put.length, 2, proxy.requests.slice(mark).map((r) => `${r.method} ${r.path}`).join('\n'));
  if (!isRoot() || !haveTool('runc')) return t.skip('running the image needs root and runc');
  const run = await runKiln(['run', '--rm', `${proxy.host}/app:1`, 'sh', '-c', 'cat /app.txt; wc -c < /data/zstd.txt; wc -c < /data/gzip.txt; wc -c < /data/kiln.txt'], { root: b.dir });
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout.replace(/\s+/g, ' ').trim(), `app ${3 << 20} ${3 << 20} ${3 << 20}`);
});
