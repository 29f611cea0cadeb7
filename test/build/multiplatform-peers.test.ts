/**
 * Issue #12's "done means", end to end with the real peers: a two-platform image (linux/amd64 and
 * linux/arm64, a RUN on each) pushed to a real registry is an index with both platforms for skopeo;
 * each platform's image, pulled into a fresh root, runs (arm64 under QEMU user emulation); docker
 * 20.10 loads the type=docker output and runs it; umoci unpacks the type=oci output; every index,
 * manifest and config written validates against the OCI schemas.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { arm64Workspace, dockerCli, ensureEmulation, haveTool, isRoot, runCommand, runKiln, tempDir, type Workspace } from '../helpers.js';
import { haveRegistry, startRegistry, type Registry } from '../registry/harness.js';
import { validateOCI } from '../../src/oci/schema.js';
import { MediaType, type ImageIndex, type ImageManifest } from '../../src/oci/types.js';

const missing = !isRoot()
  ? 'RUN, overlayfs and binfmt_misc need root'
  : !haveRegistry()
    ? 'docker-registry is not installed'
    : ['skopeo', 'umoci'].find((t) => !haveTool(t));
const skip = missing ? (missing.includes(' ') ? missing : `${missing} is not installed`) : false;

const dockerfile = [
  'FROM busybox:latest',
  'ARG TARGETPLATFORM',
  'RUN uname -m > /arch && echo "$TARGETPLATFORM" > /target && mkdir -p /data && echo made > /data/file',
  'CMD ["cat", "/arch"]',
  '',
].join('\n');

const HOST_ARCH = process.arch === 'x64' ? 'x86_64' : process.arch;

function schemaErrors(kind: 'index' | 'manifest' | 'config', doc: unknown): string[] {
  return validateOCI(kind, doc).map((e) => `${kind}: ${JSON.stringify(e)}`);
}

/** Every JSON document of an OCI layout directory (index.json down), validated. */
async function validateLayout(dir: string): Promise<{ index: ImageIndex; manifests: ImageManifest[] }> {
  const read = async (digest: string) => JSON.parse(await fs.readFile(path.join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length)), 'utf8')) as unknown;
  const top = JSON.parse(await fs.readFile(path.join(dir, 'index.json'), 'utf8')) as ImageIndex;
  assert.deepEqual(schemaErrors('index', top), []);
  const manifests: ImageManifest[] = [];
  const visit = async (mediaType: string, digest: string): Promise<void> => {
    const doc = await read(digest);
    if (mediaType === MediaType.ociIndex) {
      assert.deepEqual(schemaErrors('index', doc), []);
      for (const m of (doc as ImageIndex).manifests) await visit(m.mediaType, m.digest);
    } else {
      assert.deepEqual(schemaErrors('manifest', doc), []);
      const m = doc as ImageManifest;
      assert.deepEqual(schemaErrors('config', await read(m.config.digest)), []);
      manifests.push(m);
    }
  };
  for (const m of top.manifests) await visit(m.mediaType, m.digest);
  return { index: top, manifests };
}

describe('a two-platform image and the peers that read it', { skip }, () => {
  let ws: Workspace;
  let registry: Registry;
  let ctx: string;

  before(async () => {
    await ensureEmulation('linux/arm64');
    ws = await arm64Workspace();
    registry = await startRegistry();
    ctx = await ws.context({ Dockerfile: dockerfile });
  });
  after(async () => {
    await registry?.stop();
    await ws?.cleanup();
  });

  it('is pushed as an index skopeo reads, each platform validates, and each runs after a pull into a fresh root', async (t) => {
    const ref = `${registry.host}/peers/app:1`;
    const built = await runKiln(['build', '--platform', 'linux/amd64,linux/arm64', '-t', ref, '--push', '--progress', 'plain', ctx], { root: ws.root, timeoutMs: 600_000 });
    assert.equal(built.code, 0, built.stderr);

    const raw = await runCommand('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
    assert.equal(raw.code, 0, raw.stderr);
    const index = JSON.parse(raw.stdout) as ImageIndex;
    assert.equal(index.mediaType, MediaType.ociIndex);
    assert.deepEqual(schemaErrors('index', index), []);
    const platforms = index.manifests.map((m) => `${m.platform?.os}/${m.platform?.architecture}`).sort();
    assert.deepEqual(platforms, ['linux/amd64', 'linux/arm64']);
    for (const m of index.manifests) {
      const one = await runCommand('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/peers/app@${m.digest}`]);
      assert.equal(one.code, 0, one.stderr);
      assert.deepEqual(schemaErrors('manifest', JSON.parse(one.stdout)), []);
      const config = await runCommand('skopeo', ['inspect', '--config', '--raw', '--tls-verify=false', `docker://${registry.host}/peers/app@${m.digest}`]);
      assert.equal(config.code, 0, config.stderr);
      const cfg = JSON.parse(config.stdout) as { architecture: string; os: string };
      assert.deepEqual(schemaErrors('config', cfg), []);
      assert.equal(`${cfg.os}/${cfg.architecture}`, `${m.platform?.os}/${m.platform?.architecture}`);
    }

    // the pushed index, pulled into a root that never saw the build
    const fresh = await tempDir('kiln-peers-');
    t.after(fresh.cleanup);
    for (const [platform, arch] of [['linux/amd64', HOST_ARCH], ['linux/arm64', 'aarch64']] as const) {
      const pulled = await runKiln(['pull', '--platform', platform, '-q', ref], { root: fresh.dir, timeoutMs: 120_000 });
      assert.equal(pulled.code, 0, pulled.stderr);
      const ran = await runKiln(['run', '--platform', platform, ref], { root: fresh.dir, timeoutMs: 120_000 });
      assert.equal(ran.code, 0, ran.stderr);
      assert.equal(ran.stdout.trim(), arch, `${platform} ran on ${ran.stdout.trim()}`);
      const target = await runKiln(['run', '--platform', platform, ref, 'cat', '/target'], { root: fresh.dir, timeoutMs: 120_000 });
      assert.equal(target.stdout.trim(), platform);
    }
  });

  it('type=oci with two platforms: a layout umoci unpacks per platform, every document valid', async (t) => {
    const out = await tempDir('kiln-peers-oci-');
    t.after(out.cleanup);
    const layout = path.join(out.dir, 'layout');
    const built = await runKiln(['build', '--platform', 'linux/amd64,linux/arm64', '-o', `type=oci,dest=${layout},tar=false,name=peers:oci`, ctx], { root: ws.root, timeoutMs: 600_000 });
    assert.equal(built.code, 0, built.stderr);
    const { index, manifests } = await validateLayout(layout);
    assert.equal(manifests.length, 2, JSON.stringify(index));
    // umoci unpacks an image by a manifest descriptor's ref name: name each platform's manifest
    const top = index.manifests[0];
    const inner = JSON.parse(await fs.readFile(path.join(layout, 'blobs', 'sha256', top.digest.slice(7)), 'utf8')) as ImageIndex;
    assert.equal(inner.manifests.length, 2);
    for (const m of inner.manifests) {
      const tag = m.platform!.architecture;
      const named = await runCommand('umoci', ['tag', '--image', `${layout}@${m.digest}`, tag]).catch(() => undefined);
      let image = `${layout}:${tag}`;
      if (!named || named.code !== 0) {
        // older umoci: write the ref into index.json ourselves
        const idx = JSON.parse(await fs.readFile(path.join(layout, 'index.json'), 'utf8')) as ImageIndex;
        idx.manifests.push({ ...m, annotations: { 'org.opencontainers.image.ref.name': tag } });
        await fs.writeFile(path.join(layout, 'index.json'), JSON.stringify(idx));
        image = `${layout}:${tag}`;
      }
      const bundle = path.join(out.dir, `bundle-${tag}`);
      const unpacked = await runCommand('umoci', ['unpack', '--image', image, bundle]);
      assert.equal(unpacked.code, 0, unpacked.stderr);
      assert.equal((await fs.readFile(path.join(bundle, 'rootfs', 'target'), 'utf8')).trim(), `linux/${tag}`);
      assert.equal((await fs.readFile(path.join(bundle, 'rootfs', 'data', 'file'), 'utf8')).trim(), 'made');
    }
  });

  it('type=docker of the arm64 platform: docker 20.10 loads it and runs it under emulation', async (t) => {
    const daemon = await runCommand(dockerCli, ['version', '--format', '{{.Server.Version}}'], { env: { DOCKER_HOST: '' } });
    if (daemon.code !== 0) return t.skip('no docker engine answers');
    const out = await tempDir('kiln-peers-docker-');
    t.after(out.cleanup);
    const name = `kiln-peers-${process.pid}:arm64`;
    t.after(async () => void (await runCommand(dockerCli, ['rmi', '-f', name])));
    const archive = path.join(out.dir, 'image.tar');
    const built = await runKiln(['build', '--platform', 'linux/arm64', '-o', `type=docker,dest=${archive},name=${name}`, ctx], { root: ws.root, timeoutMs: 600_000 });
    assert.equal(built.code, 0, built.stderr);
    const loaded = await runCommand(dockerCli, ['load', '-i', archive]);
    assert.equal(loaded.code, 0, loaded.stderr);
    const arch = await runCommand(dockerCli, ['image', 'inspect', '--format', '{{.Os}}/{{.Architecture}}', name]);
    assert.equal(arch.stdout.trim(), 'linux/arm64');
    const ran = await runCommand(dockerCli, ['run', '--rm', '--network', 'none', name]);
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(ran.stdout.trim(), 'aarch64');
  });
});
