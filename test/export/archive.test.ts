import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync, copyFileSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { ContentStore } from '../../src/oci/store.js';
import { importRootfs } from '../../src/oci/import.js';
import { loadArchive } from '../../src/oci/archive.js';
import { saveImages } from '../../src/export/save.js';
import { loadImage } from '../../src/oci/image.js';
import { readLayer } from '../../src/oci/layer.js';
import { validateOCI } from '../../src/oci/schema.js';
import { digestOf } from '../../src/oci/digest.js';
import { hostPlatform } from '../../src/oci/platform.js';
import { KilnError } from '../../src/errors.js';
import { have, mustRun, run, tempDir } from '../oci/util.js';

const BUSYBOX = '/bin/busybox';

/** A rootfs tarball made by GNU tar: bin/busybox, bin/sh -> busybox, etc/passwd. */
function makeRootfsTar(t: { after: (fn: () => void) => void; skip: (m: string) => void }, gzip: boolean): string | undefined {
  if (!existsSync(BUSYBOX)) {
    t.skip('busybox-static not installed (/bin/busybox)');
    return undefined;
  }
  const dir = tempDir(t);
  const rootfs = path.join(dir, 'rootfs');
  mkdirSync(path.join(rootfs, 'bin'), { recursive: true });
  mkdirSync(path.join(rootfs, 'etc'));
  copyFileSync(BUSYBOX, path.join(rootfs, 'bin', 'busybox'));
  symlinkSync('busybox', path.join(rootfs, 'bin', 'sh'));
  writeFileSync(path.join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  const out = path.join(dir, gzip ? 'rootfs.tar.gz' : 'rootfs.tar');
  mustRun('tar', ['--numeric-owner', gzip ? '-czf' : '-cf', out, '-C', rootfs, '.']);
  return out;
}

async function entriesOf(store: ContentStore, name: string): Promise<Map<string, { type: string; size: number }>> {
  const img = await loadImage(store, name);
  const out = new Map<string, { type: string; size: number }>();
  for (const l of img.manifest.layers) {
    for await (const { header } of readLayer(store, l)) out.set(header.name, { type: String(header.type), size: header.size ?? 0 });
  }
  return out;
}

test('import: a busybox rootfs tarball becomes a valid one-layer image for this platform', async (t) => {
  const tarFile = makeRootfsTar(t, true);
  if (!tarFile) return;
  const root = tempDir(t);
  const store = await ContentStore.open(root);
  const desc = await importRootfs(store, tarFile, 'bb:1', { changes: ['CMD ["sh"]', 'ENV PATH=/bin', 'WORKDIR /tmp', 'EXPOSE 80 53/udp', 'LABEL a=b "c d"=e', 'USER 1000'] });
  const img = await loadImage(store, 'bb:1');
  assert.equal(img.manifestDescriptor.digest, desc.digest);
  assert.equal(img.config.architecture, hostPlatform().architecture);
  assert.equal(img.config.os, 'linux');
  assert.deepEqual(img.config.config, {
    Cmd: ['sh'],
    Env: ['PATH=/bin'],
    WorkingDir: '/tmp',
    ExposedPorts: { '80/tcp': {}, '53/udp': {} },
    Labels: { a: 'b', 'c d': 'e' },
    User: '1000',
  });
  assert.equal(img.config.history?.[0].created_by, 'kiln import');
  assert.equal(img.manifest.layers.length, 1);
  assert.equal(img.config.rootfs.diff_ids.length, 1);
  for (const [kind, doc] of [['manifest', img.manifest], ['config', img.config]] as const) assert.deepEqual(validateOCI(kind, doc), []);
  const entries = await entriesOf(store, 'bb:1');
  assert.equal(entries.get('bin/busybox')?.size, statSync(BUSYBOX).size);
  assert.equal(entries.get('bin/sh')?.type, 'symlink');
  assert.equal(entries.get('bin/')?.type, 'directory');
  assert.ok(![...entries.keys()].some((k) => k.startsWith('./') || k.startsWith('/')), 'paths are normalised');

  // deterministic given an epoch: importing twice gives the same image
  const d1 = await importRootfs(store, tarFile, 'same:1', { sourceDateEpoch: 0 });
  const d2 = await importRootfs(store, tarFile, 'same:2', { sourceDateEpoch: 0 });
  assert.equal(d1.digest, d2.digest);
  const plain = makeRootfsTar(t, false)!;
  const d3 = await importRootfs(store, plain, 'same:3', { sourceDateEpoch: 0 });
  assert.equal((await loadImage(store, 'same:3')).config.rootfs.diff_ids[0], (await loadImage(store, 'same:1')).config.rootfs.diff_ids[0]);
  assert.ok(d3.digest);

  await assert.rejects(importRootfs(store, path.join(root, 'missing.tar'), 'x'), (e: unknown) => e instanceof KilnError && /cannot import/.test(e.message));
  await assert.rejects(importRootfs(store, tarFile, 'Bad:Name'), KilnError);
  await assert.rejects(importRootfs(store, tarFile, 'x', { changes: ['RUN echo'] }), /RUN cannot be applied/);
});

test('peers read the store: skopeo inspect oci:<root>:<name> and umoci unpack', async (t) => {
  const tarFile = makeRootfsTar(t, true);
  if (!tarFile) return;
  const root = tempDir(t);
  const store = await ContentStore.open(root);
  const desc = await importRootfs(store, tarFile, 'localhost:5000/team/bb:1', { changes: ['ENV A=1'] });
  await t.test('skopeo', (t2) => {
    if (!have('skopeo')) return t2.skip('skopeo not installed');
    const info = JSON.parse(mustRun('skopeo', ['inspect', `oci:${root}:localhost:5000/team/bb:1`]));
    assert.equal(info.Digest, desc.digest);
    assert.equal(info.Architecture, hostPlatform().architecture);
    assert.deepEqual(info.Env, ['A=1']);
  });
  await t.test('umoci', (t2) => {
    if (!have('umoci')) return t2.skip('umoci not installed');
    const out = path.join(tempDir(t2), 'bundle');
    mustRun('umoci', ['unpack', '--image', `${root}:localhost:5000/team/bb:1`, out]);
    const busybox = path.join(out, 'rootfs', 'bin', 'busybox');
    assert.equal(statSync(busybox).size, statSync(BUSYBOX).size);
    assert.equal(statSync(busybox).mode & 0o111, 0o111);
    assert.equal(readFileSync(path.join(out, 'rootfs', 'etc', 'passwd'), 'utf8'), 'root:x:0:0:root:/root:/bin/sh\n');
    const spec = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'));
    assert.ok(spec.process.env.includes('A=1'));
  });
});

test('docker archive: the layout docker load expects, skopeo reads it, and it loads back identically', async (t) => {
  const tarFile = makeRootfsTar(t, true);
  if (!tarFile) return;
  const root = tempDir(t);
  const store = await ContentStore.open(root);
  const desc = await importRootfs(store, tarFile, 'bb:1', { changes: ['CMD ["sh"]'] });
  await store.setRef('localhost:5000/bb:2', desc);
  const work = tempDir(t);
  const archive = path.join(work, 'bb.tar');
  await saveImages(store, ['bb:1', 'localhost:5000/bb:2'], archive, 'docker');
  const img = await loadImage(store, 'bb:1');

  // docker's format: manifest.json with Config/RepoTags/Layers, <config>.json verbatim, uncompressed layer.tar per diff_id
  const x = path.join(work, 'x');
  mkdirSync(x);
  mustRun('tar', ['-xf', archive, '-C', x]);
  const manifest = JSON.parse(readFileSync(path.join(x, 'manifest.json'), 'utf8'));
  assert.equal(manifest.length, 1);
  assert.deepEqual(manifest[0].RepoTags, ['bb:1', 'localhost:5000/bb:2']);
  assert.equal(manifest[0].Config, `${img.configDescriptor.digest.slice(7)}.json`);
  assert.equal(digestOf(readFileSync(path.join(x, manifest[0].Config))), img.configDescriptor.digest);
  assert.equal(manifest[0].Layers.length, 1);
  assert.equal(digestOf(readFileSync(path.join(x, manifest[0].Layers[0]))), img.config.rootfs.diff_ids[0]);
  const repositories = JSON.parse(readFileSync(path.join(x, 'repositories'), 'utf8'));
  assert.deepEqual(Object.keys(repositories).sort(), ['bb', 'localhost:5000/bb']);

  await t.test('skopeo inspect docker-archive', (t2) => {
    if (!have('skopeo')) return t2.skip('skopeo not installed');
    const info = JSON.parse(mustRun('skopeo', ['inspect', `docker-archive:${archive}:bb:1`]));
    assert.equal(info.Architecture, hostPlatform().architecture);
    assert.equal(info.Layers.length, 1);
    assert.equal(info.Layers[0], img.config.rootfs.diff_ids[0]);
  });

  const root2 = tempDir(t);
  const store2 = await ContentStore.open(root2);
  assert.deepEqual(await loadArchive(store2, archive), ['bb:1', 'localhost:5000/bb:2']);
  const back = await loadImage(store2, 'localhost:5000/bb:2');
  assert.equal(back.configDescriptor.digest, img.configDescriptor.digest, 'the config keeps its bytes');
  assert.deepEqual(back.config.rootfs.diff_ids, img.config.rootfs.diff_ids);
  assert.equal(back.manifestDescriptor.digest, img.manifestDescriptor.digest, 'recompressed at the same level: same digest');
  assert.deepEqual(validateOCI('manifest', back.manifest), []);

  // a gzip-compressed archive loads too
  const gz = path.join(work, 'bb.tar.gz');
  writeFileSync(gz, zlib.gzipSync(readFileSync(archive)));
  const root3 = tempDir(t);
  assert.deepEqual(await loadArchive(await ContentStore.open(root3), gz), ['bb:1', 'localhost:5000/bb:2']);
});

test('OCI archive: skopeo reads it and it loads back with its names', async (t) => {
  const tarFile = makeRootfsTar(t, true);
  if (!tarFile) return;
  const root = tempDir(t);
  const store = await ContentStore.open(root);
  const desc = await importRootfs(store, tarFile, 'bb:1');
  const index = await store.writeJSON(
    { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ ...desc, platform: hostPlatform() }] },
    'application/vnd.oci.image.index.v1+json',
  );
  await store.setRef('multi:1', index);
  const work = tempDir(t);
  const archive = path.join(work, 'bb-oci.tar');
  await saveImages(store, ['bb:1', 'multi:1'], archive, 'oci');
  const x = path.join(work, 'x');
  mkdirSync(x);
  mustRun('tar', ['-xf', archive, '-C', x]);
  const layoutIndex = JSON.parse(readFileSync(path.join(x, 'index.json'), 'utf8'));
  assert.deepEqual(validateOCI('index', layoutIndex), []);
  assert.deepEqual(validateOCI('layout', JSON.parse(readFileSync(path.join(x, 'oci-layout'), 'utf8'))), []);
  assert.deepEqual(layoutIndex.manifests.map((m: { annotations: Record<string, string> }) => m.annotations['org.opencontainers.image.ref.name']), ['bb:1', 'multi:1']);

  await t.test('skopeo inspect oci-archive', (t2) => {
    if (!have('skopeo')) return t2.skip('skopeo not installed');
    const info = JSON.parse(mustRun('skopeo', ['inspect', `oci-archive:${archive}:bb:1`]));
    assert.equal(info.Digest, desc.digest);
    const multi = JSON.parse(mustRun('skopeo', ['inspect', `oci-archive:${archive}:multi:1`]));
    assert.equal(multi.Digest, index.digest);
    assert.equal(multi.Architecture, hostPlatform().architecture, 'skopeo picks the host manifest from the index');
  });

  const root2 = tempDir(t);
  const store2 = await ContentStore.open(root2);
  assert.deepEqual(await loadArchive(store2, archive), ['bb:1', 'multi:1']);
  assert.equal((await store2.resolve('bb:1'))?.digest, desc.digest);
  assert.equal((await store2.resolve('multi:1'))?.digest, index.digest);
  assert.equal((await loadImage(store2, 'multi:1')).manifestDescriptor.digest, desc.digest);
});

test('archives written by skopeo load', async (t) => {
  if (!have('skopeo')) return t.skip('skopeo not installed');
  const tarFile = makeRootfsTar(t, true);
  if (!tarFile) return;
  const root = tempDir(t);
  const store = await ContentStore.open(root);
  await importRootfs(store, tarFile, 'bb:1');
  const img = await loadImage(store, 'bb:1');
  const work = tempDir(t);
  const dockerTar = path.join(work, 'skopeo-docker.tar');
  const ociTar = path.join(work, 'skopeo-oci.tar');
  mustRun('skopeo', ['copy', '-q', `oci:${root}:bb:1`, `docker-archive:${dockerTar}:copied/bb:2`]);
  mustRun('skopeo', ['copy', '-q', `oci:${root}:bb:1`, `oci-archive:${ociTar}:copied/bb:3`]);
  const store2 = await ContentStore.open(tempDir(t));
  // skopeo writes docker's fully qualified form; like docker load, kiln names it the familiar way
  assert.deepEqual(await loadArchive(store2, dockerTar), ['copied/bb:2']);
  assert.deepEqual((await loadImage(store2, 'copied/bb:2')).config.rootfs.diff_ids, img.config.rootfs.diff_ids);
  assert.deepEqual(await loadArchive(store2, ociTar), ['copied/bb:3']);
  assert.deepEqual((await loadImage(store2, 'copied/bb:3')).config.rootfs.diff_ids, img.config.rootfs.diff_ids);
});

test('broken archives are KilnErrors and leave no names or temp files behind', async (t) => {
  const work = tempDir(t);
  const store = await ContentStore.open(tempDir(t));
  // a layer that does not match the config's diff_id
  const d = path.join(work, 'bad');
  mkdirSync(path.join(d, 'l'), { recursive: true });
  writeFileSync(path.join(work, 'f'), 'data');
  mustRun('tar', ['-cf', path.join(d, 'l', 'layer.tar'), '-C', work, 'f']);
  writeFileSync(path.join(d, 'c.json'), JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [digestOf('something else')] } }));
  writeFileSync(path.join(d, 'manifest.json'), JSON.stringify([{ Config: 'c.json', RepoTags: ['bad:1'], Layers: ['l/layer.tar'] }]));
  const badTar = path.join(work, 'bad.tar');
  mustRun('tar', ['-cf', badTar, '-C', d, '.']);
  await assert.rejects(loadArchive(store, badTar), (e: unknown) => e instanceof KilnError && /diff_id/.test(e.message));
  assert.equal(await store.resolve('bad:1'), undefined);
  // a blob whose content does not match its name in an OCI layout
  const o = path.join(work, 'oci');
  mkdirSync(path.join(o, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(path.join(o, 'blobs', 'sha256', digestOf('x').slice(7)), 'not x');
  writeFileSync(path.join(o, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [] }));
  const ociTar = path.join(work, 'oci.tar');
  mustRun('tar', ['-cf', ociTar, '-C', o, '.']);
  await assert.rejects(loadArchive(store, ociTar), /digest mismatch/);
  // not an archive at all
  const junk = path.join(work, 'junk.tar');
  writeFileSync(junk, 'this is not a tar file'.repeat(50));
  await assert.rejects(loadArchive(store, junk), KilnError);
  const emptyDir = path.join(work, 'empty');
  mkdirSync(emptyDir);
  writeFileSync(path.join(emptyDir, 'readme'), 'hi');
  const other = path.join(work, 'other.tar');
  mustRun('tar', ['-cf', other, '-C', emptyDir, '.']);
  await assert.rejects(loadArchive(store, other), /neither a docker archive/);
  await assert.rejects(loadArchive(store, path.join(work, 'missing.tar')), /cannot read/);
  await assert.rejects(saveImages(store, ['nope:1'], path.join(work, 'out.tar')), /image nope:1 not found/);
  assert.ok(!existsSync(path.join(work, 'out.tar')));
  const { readdirSync } = await import('node:fs');
  assert.deepEqual(readdirSync(store.tmpDir()), []);
  assert.equal(run('true', []).status, 0);
});

test('OCI archive: an index keeps the platforms the store lacks, listed but not carried; a missing layer is a KilnError', async (t) => {
  const tarFile = makeRootfsTar(t, true);
  if (!tarFile) return;
  const root = tempDir(t);
  const store = await ContentStore.open(root);
  const desc = await importRootfs(store, tarFile, 'bb:1');
  const absent = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'ab'.repeat(32)}`, size: 123, platform: { os: 'linux', architecture: 's390x' } };
  const index = await store.writeJSON(
    { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ ...desc, platform: hostPlatform() }, absent] },
    'application/vnd.oci.image.index.v1+json',
  );
  await store.setRef('multi:1', index);
  const work = tempDir(t);
  const archive = path.join(work, 'multi.tar');
  await saveImages(store, ['multi:1'], archive, 'oci');
  const x = path.join(work, 'x');
  mkdirSync(x);
  mustRun('tar', ['-xf', archive, '-C', x]);
  const layoutIndex = JSON.parse(readFileSync(path.join(x, 'index.json'), 'utf8'));
  assert.equal(layoutIndex.manifests[0].digest, index.digest, 'the index is carried as it is (its layers are gzip already)');
  assert.deepEqual(JSON.parse(readFileSync(path.join(x, 'blobs', 'sha256', index.digest.slice(7)), 'utf8')).manifests[1], absent);
  assert.ok(!existsSync(path.join(x, 'blobs', 'sha256', 'ab'.repeat(32))));
  assert.ok(existsSync(path.join(x, 'blobs', 'sha256', desc.digest.slice(7))));

  // a layer the manifest needs is gone: no archive, a clear error
  const { manifest } = await loadImage(store, 'bb:1');
  rmSync(path.join(root, 'blobs', 'sha256', manifest.layers[0].digest.slice(7)));
  const broken = path.join(work, 'broken.tar');
  await assert.rejects(saveImages(store, ['multi:1'], broken, 'oci'), (e: unknown) => e instanceof KilnError && /is missing from the store/.test(e.message));
  assert.ok(!existsSync(broken));
});
