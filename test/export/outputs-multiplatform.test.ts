/**
 * Every output given an index of two platforms: a real linux/amd64 busybox and a real
 * linux/arm64 one (Debian's busybox-static:arm64, scripts/make-base-image.sh --arch arm64),
 * combined by an OCI image index written into the store with oci/walk.ts (what a
 * multi-platform build stores). local and tar give one tree per platform (linux_amd64/,
 * linux_arm64/), each with its own architecture's binaries; oci keeps the index, with
 * per-platform and index annotations, read by skopeo and valid against the schemas; a
 * registry gets the whole index; docker archives and a docker 20.10 engine (no containerd
 * image store) refuse it clearly. Needs root (overlay mounts).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fsp } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ContentStore } from '../../src/oci/store.js';
import { writeIndex } from '../../src/oci/walk.js';
import { loadImage } from '../../src/oci/image.js';
import { validateOCI } from '../../src/oci/schema.js';
import { digestOf } from '../../src/oci/digest.js';
import { MediaType, type Descriptor, type ImageIndex, type ImageManifest } from '../../src/oci/types.js';
import { Snapshotter } from '../../src/snapshot/snapshotter.js';
import { sharedFilesystem } from '../../src/export/filesystem.js';
import { parseOutput } from '../../src/export/output-spec.js';
import { outputExporters } from '../../src/export/outputs.js';
import { dockerEngineExporter } from '../../src/export/docker-engine.js';
import { registryExporter } from '../../src/export/registry.js';
import type { Exporter, ExportResult } from '../../src/export/types.js';
import { registryClient } from '../../src/registry/settings.js';
import { isKilnError } from '../../src/errors.js';
import { dockerCli, isRoot, multiPlatformBusybox, repoRoot, runCommand, runKiln, tempDir, workspace, type Workspace } from '../helpers.js';
import { haveRegistry, startRegistry } from '../registry/harness.js';

const skip = isRoot() ? false : 'overlay mounts need root';
const dockerReady = isRoot() && existsSync(dockerCli) && spawnSync(dockerCli, ['info'], { stdio: 'ignore', timeout: 20_000 }).status === 0;

/** The ELF machine of a binary: 62 is x86-64, 183 is aarch64. */
async function elfMachine(file: string): Promise<number> {
  const b = await fsp.readFile(file);
  assert.equal(b.subarray(0, 4).toString('latin1'), '\x7fELF');
  return b.readUInt16LE(18);
}

describe('outputs of a two-platform index', { skip }, () => {
  let ws: Workspace;
  let work: { dir: string; cleanup: () => Promise<void> };
  let store: ContentStore;
  let index: Descriptor;
  const name = 'docker.io/library/multi:1';

  before(async () => {
    ws = await workspace();
    work = await tempDir('kiln-out-mp-');
    // the arm64 busybox, imported into a root of its own and moved over under another name
    const armRoot = path.join(work.dir, 'arm-root');
    const made = await runCommand('bash', [path.join(repoRoot, 'scripts', 'make-base-image.sh'), 'busybox:latest', '--arch', 'arm64', '--root', armRoot], { timeoutMs: 300_000 });
    assert.equal(made.code, 0, made.stderr);
    assert.equal((await runKiln(['tag', 'busybox:latest', 'busybox-arm:1'], { root: armRoot })).code, 0);
    const archive = path.join(work.dir, 'arm.tar');
    const saved = await runKiln(['save', '--format', 'oci', '-o', archive, 'busybox-arm:1'], { root: armRoot });
    assert.equal(saved.code, 0, saved.stderr);
    const loaded = await runKiln(['load', '-i', archive], { root: ws.root });
    assert.equal(loaded.code, 0, loaded.stderr);
    store = await ContentStore.open(ws.root);
    const amd = await loadImage(store, 'busybox:latest');
    const arm = await loadImage(store, 'busybox-arm:1', { os: 'linux', architecture: 'arm64' });
    assert.equal(arm.config.architecture, 'arm64');
    index = await writeIndex(store, [
      { ...amd.manifestDescriptor, platform: { os: 'linux', architecture: 'amd64' } },
      { ...arm.manifestDescriptor, platform: { os: 'linux', architecture: 'arm64' } },
    ]);
    await store.setRef(name, index);
  });
  after(async () => {
    await work?.cleanup();
    await ws?.cleanup();
  });

  async function run(exporter: Exporter): Promise<ExportResult> {
    const fs = sharedFilesystem(store, new Snapshotter(ws.root), index);
    try {
      return await exporter.export({ images: [{ descriptor: index, names: [name] }], store, filesystem: fs.filesystem });
    } finally {
      await fs.release();
    }
  }
  const outputs = (spec: string) => outputExporters([parseOutput(spec)], { tags: [name], registry: () => assert.fail('no registry here') });

  it('type=local: one directory per platform, each with its own architecture', async () => {
    const dest = path.join(work.dir, 'local');
    await run(outputs(`type=local,dest=${dest}`)[0]);
    assert.deepEqual((await fsp.readdir(dest)).sort(), ['linux_amd64', 'linux_arm64']);
    assert.equal(await elfMachine(path.join(dest, 'linux_amd64', 'bin', 'busybox')), 62);
    assert.equal(await elfMachine(path.join(dest, 'linux_arm64', 'bin', 'busybox')), 183);
  });

  it('type=tar: each platform under its directory in one tar', async () => {
    const file = path.join(work.dir, 'fs.tar');
    await run(outputs(`type=tar,dest=${file}`)[0]);
    const into = path.join(work.dir, 'fs');
    await fsp.mkdir(into);
    const x = await runCommand('tar', ['-xf', file, '-C', into]);
    assert.equal(x.code, 0, x.stderr);
    assert.deepEqual((await fsp.readdir(into)).sort(), ['linux_amd64', 'linux_arm64']);
    assert.equal(await elfMachine(path.join(into, 'linux_amd64', 'bin', 'busybox')), 62);
    assert.equal(await elfMachine(path.join(into, 'linux_arm64', 'bin', 'busybox')), 183);
  });

  it('type=oci keeps the index, annotated per platform, for the index and in index.json', async () => {
    const file = path.join(work.dir, 'mp.tar');
    const spec = `type=oci,dest=${file},annotation-index.org.example.i=idx,annotation[linux/arm64].org.example.arch=arm,annotation-manifest-descriptor.org.example.md=md,annotation-index-descriptor.org.example.d=top`;
    await run(outputs(spec)[0]);
    const raw = await runCommand('skopeo', ['inspect', '--raw', `oci-archive:${file}`]);
    assert.equal(raw.code, 0, raw.stderr);
    const top = JSON.parse(raw.stdout) as ImageIndex;
    assert.deepEqual(validateOCI('index', top), []);
    assert.equal(top.mediaType, MediaType.ociIndex);
    assert.equal(top.annotations?.['org.example.i'], 'idx');
    assert.deepEqual(top.manifests.map((m) => `${m.platform?.os}/${m.platform?.architecture}`), ['linux/amd64', 'linux/arm64']);
    for (const m of top.manifests) assert.equal(m.annotations?.['org.example.md'], 'md');
    const dir = path.join(work.dir, 'mp');
    await fsp.mkdir(dir);
    assert.equal((await runCommand('tar', ['-xf', file, '-C', dir])).code, 0);
    const layout = JSON.parse(await fsp.readFile(path.join(dir, 'index.json'), 'utf8')) as ImageIndex;
    assert.equal(layout.manifests[0].annotations?.['org.example.d'], 'top');
    assert.equal(layout.manifests[0].digest, digestOf(Buffer.from(raw.stdout)));
    const read = async (d: Descriptor) => JSON.parse(await fsp.readFile(path.join(dir, 'blobs', 'sha256', d.digest.slice(7)), 'utf8')) as ImageManifest;
    const [amd, arm] = [await read(top.manifests[0]), await read(top.manifests[1])];
    for (const m of [amd, arm]) assert.deepEqual(validateOCI('manifest', m), []);
    assert.equal(arm.annotations?.['org.example.arch'], 'arm');
    assert.equal(amd.annotations?.['org.example.arch'], undefined);
    for (const arch of ['amd64', 'arm64']) {
      const one = await runCommand('skopeo', ['--override-arch', arch, 'inspect', `oci-archive:${file}`]);
      assert.equal(one.code, 0, one.stderr);
      assert.equal((JSON.parse(one.stdout) as { Architecture: string }).Architecture, arch);
    }
  });

  it('type=docker and a docker 20.10 engine refuse several platforms, writing nothing', async () => {
    const file = path.join(work.dir, 'docker.tar');
    await assert.rejects(run(outputs(`type=docker,dest=${file}`)[0]), (e: unknown) => {
      assert.ok(isKilnError(e));
      assert.match(e.message, /type=docker writes one platform per image, and this build made 2 \(linux\/amd64, linux\/arm64\)/);
      return true;
    });
    assert.equal(existsSync(file), false);
    if (!dockerReady) return;
    await assert.rejects(run(dockerEngineExporter()), (e: unknown) => {
      assert.ok(isKilnError(e));
      assert.equal(e.code, 'unsupported');
      assert.match(e.message, /keeps one platform per image, and this build made 2/);
      return true;
    });
  });

  it('type=registry pushes the whole index, annotated', { skip: haveRegistry() ? false : 'no docker-registry' }, async () => {
    const reg = await startRegistry();
    try {
      const ref = `${reg.host}/out/multi:1`;
      const client = registryClient({ root: ws.root, insecureRegistries: [reg.host] });
      const [exporter] = outputExporters([parseOutput(`type=registry,name=${ref},annotation-index.org.example.i=pushed`)], { tags: [], registry: (names) => registryExporter({ client, names }) });
      const result = await run(exporter);
      const raw = await runCommand('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
      assert.equal(raw.code, 0, raw.stderr);
      const pushed = JSON.parse(raw.stdout) as ImageIndex;
      assert.equal(digestOf(Buffer.from(raw.stdout)), result.descriptor?.digest);
      assert.deepEqual(validateOCI('index', pushed), []);
      assert.equal(pushed.annotations?.['org.example.i'], 'pushed');
      assert.deepEqual(pushed.manifests.map((m) => m.platform?.architecture), ['amd64', 'arm64']);
      for (const m of pushed.manifests) {
        const one = await runCommand('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/out/multi@${m.digest}`]);
        assert.equal(one.code, 0, one.stderr);
        const manifest = JSON.parse(one.stdout) as ImageManifest;
        for (const l of manifest.layers) assert.equal(l.mediaType, MediaType.ociLayerGzip);
      }
    } finally {
      await reg.stop();
    }
  });
});

describe('kiln build --platform linux/amd64,linux/arm64 -o …', { skip }, () => {
  let ws: Workspace;
  let work: { dir: string; cleanup: () => Promise<void> };
  let ctx: string;

  before(async () => {
    ws = await workspace();
    work = await tempDir('kiln-out-mpcli-');
    await multiPlatformBusybox(ws.root);
    // no RUN: the arm64 side needs no emulation to be built, only to be copied
    ctx = await ws.context({ Dockerfile: 'FROM busybox:latest\nARG TARGETARCH\nCOPY f /f\nLABEL arch=$TARGETARCH\n', f: 'both platforms\n' });
  });
  after(async () => {
    await work?.cleanup();
    await ws?.cleanup();
  });

  it('writes per-platform trees and an OCI index; --load of it is refused by docker 20.10', async () => {
    const dest = path.join(work.dir, 'trees');
    const file = path.join(work.dir, 'mp.tar');
    const r = await runKiln(['build', '--platform', 'linux/amd64,linux/arm64', '-t', 'mp-out:1', '-o', `type=local,dest=${dest}`, '-o', `type=oci,dest=${file},annotation-index.org.example.i=cli`, ctx], { root: ws.root, timeoutMs: 180_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((await fsp.readdir(dest)).sort(), ['linux_amd64', 'linux_arm64']);
    for (const d of ['linux_amd64', 'linux_arm64']) assert.equal(await fsp.readFile(path.join(dest, d, 'f'), 'utf8'), 'both platforms\n');
    assert.equal(await elfMachine(path.join(dest, 'linux_arm64', 'bin', 'busybox')), 183);
    const raw = await runCommand('skopeo', ['inspect', '--raw', `oci-archive:${file}`]);
    assert.equal(raw.code, 0, raw.stderr);
    const top = JSON.parse(raw.stdout) as ImageIndex;
    assert.deepEqual(validateOCI('index', top), []);
    assert.equal(top.annotations?.['org.example.i'], 'cli');
    assert.deepEqual(top.manifests.map((m) => m.platform?.architecture), ['amd64', 'arm64']);
    if (!dockerReady) return;
    const load = await runKiln(['build', '--platform', 'linux/amd64,linux/arm64', '--load', '-t', `kiln-out-mp-${process.pid}:1`, ctx], { root: ws.root, timeoutMs: 180_000 });
    assert.equal(load.code, 1);
    assert.match(load.stderr, /keeps one platform per image, and this build made 2 \(linux\/amd64, linux\/arm64\)/);
    assert.doesNotMatch((await runCommand(dockerCli, ['images', '-q', `kiln-out-mp-${process.pid}`])).stdout, /\S/);
  });
});
