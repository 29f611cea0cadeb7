/**
 * `kiln build -o …`, `--load` and `--annotation` end to end, every output read by its real
 * peer: umoci unpacks the OCI layout directory, skopeo inspects `oci:` and `oci-archive:`,
 * docker 20.10 loads the docker archive and the `--load`ed image and runs them, a real
 * registry takes the docker-media-type push that docker then pulls and runs. Every manifest
 * and index written is validated against the OCI schemas. Skipped without root (RUN) or,
 * for the docker cases, without the running dockerd (never started here).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fsp } from 'node:fs';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { ContentStore } from '../../src/oci/store.js';
import { MediaType, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest } from '../../src/oci/types.js';
import { validateOCI } from '../../src/oci/schema.js';
import { digestOf } from '../../src/oci/digest.js';
import { dockerCli, isRoot, runCommand, runKiln, tempDir, workspace, type Workspace } from '../helpers.js';
import { haveRegistry, startRegistry, type Registry } from '../registry/harness.js';

function dockerReady(): boolean {
  if (!isRoot() || !existsSync(dockerCli)) return false;
  return spawnSync(dockerCli, ['info'], { stdio: 'ignore', timeout: 20_000 }).status === 0;
}
const skip = isRoot() ? false : 'RUN needs root';
const noDocker = !dockerReady() ? 'no running docker daemon' : false;

/** Reads an OCI layout directory: its index.json, and every index and manifest it reaches validated against the schemas. */
async function readLayout(dir: string): Promise<{ index: ImageIndex; blob: (d: Descriptor) => Promise<Buffer>; json: <T>(d: Descriptor) => Promise<T> }> {
  const blob = async (d: Descriptor) => {
    const b = await fsp.readFile(path.join(dir, 'blobs', 'sha256', d.digest.slice('sha256:'.length)));
    assert.equal(digestOf(b), d.digest, `blob ${d.digest} has its digest`);
    assert.equal(b.length, d.size);
    return b;
  };
  const json = async <T>(d: Descriptor) => JSON.parse((await blob(d)).toString('utf8')) as T;
  assert.deepEqual(JSON.parse(await fsp.readFile(path.join(dir, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
  const index = JSON.parse(await fsp.readFile(path.join(dir, 'index.json'), 'utf8')) as ImageIndex;
  assert.deepEqual(validateOCI('index', index), []);
  const visit = async (d: Descriptor): Promise<void> => {
    if (d.mediaType === MediaType.ociIndex || d.mediaType === MediaType.dockerManifestList) {
      const doc = await json<ImageIndex>(d);
      assert.deepEqual(validateOCI('index', doc), [], `index ${d.digest}`);
      for (const m of doc.manifests) await visit(m);
    } else {
      const doc = await json<ImageManifest>(d);
      assert.deepEqual(validateOCI('manifest', doc), [], `manifest ${d.digest}`);
      assert.deepEqual(validateOCI('config', await json<ImageConfig>(doc.config)), []);
      for (const l of doc.layers) await blob(l);
    }
  };
  for (const m of index.manifests) await visit(m);
  return { index, blob, json };
}

async function untar(file: string, into: string): Promise<string> {
  await fsp.mkdir(into, { recursive: true });
  const r = await runCommand('tar', ['-xf', file, '-C', into]);
  assert.equal(r.code, 0, r.stderr);
  return into;
}

describe('kiln build -o', { skip }, () => {
  let ws: Workspace;
  let work: { dir: string; cleanup: () => Promise<void> };
  let ctx: string;
  const tag = `kiln-out-${process.pid}:1`;
  const build = async (args: string[], env?: Record<string, string>) => runKiln(['build', '-t', tag, ...args, ctx], { root: ws.root, env, timeoutMs: 180_000 });

  before(async () => {
    ws = await workspace();
    work = await tempDir('kiln-out-');
    ctx = await ws.context({ Dockerfile: 'FROM busybox:latest\nRUN echo made-by-run > /ran\nCOPY f /f\nCMD ["cat", "/f"]\n', f: 'from the context\n' });
    const r = await build(['--progress', 'plain']);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await work?.cleanup();
    await ws?.cleanup();
  });

  it('type=oci,tar=false writes a layout directory umoci unpacks and skopeo reads, annotated where asked', async () => {
    const dest = path.join(work.dir, 'layout');
    const r = await build(['-o', `type=oci,tar=false,dest=${dest},annotation.org.example.m=on-manifest,annotation-manifest-descriptor.org.example.d=on-descriptor`, '--annotation', 'org.opencontainers.image.title=Title']);
    assert.equal(r.code, 0, r.stderr);
    const { index, json } = await readLayout(dest);
    assert.equal(index.manifests.length, 1);
    const top = index.manifests[0];
    assert.equal(top.annotations?.['org.example.d'], 'on-descriptor');
    const manifest = await json<ImageManifest>(top);
    assert.equal(manifest.annotations?.['org.example.m'], 'on-manifest');
    assert.equal(manifest.annotations?.['org.opencontainers.image.title'], 'Title');
    for (const l of manifest.layers) assert.equal(l.mediaType, MediaType.ociLayerGzip);
    // the store names the --annotation'd image too
    const store = await ContentStore.open(ws.root);
    const stored = await store.readJSON<ImageManifest>((await store.resolve(tag))!.digest);
    assert.equal(stored.annotations?.['org.opencontainers.image.title'], 'Title');

    const inspect = await runCommand('skopeo', ['inspect', '--raw', `oci:${dest}`]);
    assert.equal(inspect.code, 0, inspect.stderr);
    assert.equal(digestOf(Buffer.from(inspect.stdout)), top.digest);
    const refName = top.annotations?.['org.opencontainers.image.ref.name'];
    assert.ok(refName);
    const bundle = path.join(work.dir, 'bundle');
    const u = await runCommand('umoci', ['unpack', '--image', `${dest}:${refName}`, bundle]);
    assert.equal(u.code, 0, u.stderr);
    assert.equal(await fsp.readFile(path.join(bundle, 'rootfs', 'f'), 'utf8'), 'from the context\n');
    assert.equal(await fsp.readFile(path.join(bundle, 'rootfs', 'ran'), 'utf8'), 'made-by-run\n');
  });

  it('type=oci,tar=false again into the layout updates it; a directory of other files is refused; type=image,name= names the annotated image', async () => {
    const dest = path.join(work.dir, 'layout2');
    assert.equal((await build(['-o', `type=oci,tar=false,dest=${dest}`])).code, 0);
    const first = await readLayout(dest);
    const r = await build(['-o', `type=oci,tar=false,dest=${dest},annotation.again=yes`]);
    assert.equal(r.code, 0, r.stderr);
    const second = await readLayout(dest);
    assert.notEqual(second.index.manifests[0].digest, first.index.manifests[0].digest);
    assert.equal((await second.json<ImageManifest>(second.index.manifests[0])).annotations?.again, 'yes');
    assert.deepEqual((await fsp.readdir(work.dir)).filter((n) => n.includes('.kiln-')), [], 'no temp files left beside it');
    const other = path.join(work.dir, 'other');
    await fsp.mkdir(other);
    await fsp.writeFile(path.join(other, 'keep'), 'x');
    const refused = await build(['-o', `type=oci,tar=false,dest=${other}`]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /the directory holds other files/);
    assert.deepEqual(await fsp.readdir(other), ['keep']);
    const named = await build(['-o', 'type=image,name=kiln-out-other:2,annotation.org.example.k=v']);
    assert.equal(named.code, 0, named.stderr);
    const store = await ContentStore.open(ws.root);
    const m = await store.readJSON<ImageManifest>((await store.resolve('kiln-out-other:2'))!.digest);
    assert.equal(m.annotations?.['org.example.k'], 'v');
    for (const l of m.layers.slice(1)) assert.equal(l.mediaType, MediaType.ociLayerTar, 'the store keeps its layers as they are');
  });

  it('type=oci to a file and to stdout: the same archive, read by skopeo as oci-archive', async () => {
    const file = path.join(work.dir, 'img.tar');
    const r = await build(['-o', `type=oci,dest=${file}`]);
    assert.equal(r.code, 0, r.stderr);
    const inspect = await runCommand('skopeo', ['inspect', `oci-archive:${file}`]);
    assert.equal(inspect.code, 0, inspect.stderr);
    assert.deepEqual((JSON.parse(inspect.stdout) as { Architecture: string }).Architecture, 'amd64');
    await readLayout(await untar(file, path.join(work.dir, 'img')));
    const piped = await runCommand('bash', ['-c', `node ${JSON.stringify(path.resolve('bin/kiln.js'))} --root ${ws.root} build -q -t ${tag} -o type=oci,dest=- ${ctx} > ${work.dir}/piped.tar`]);
    assert.equal(piped.code, 0, piped.stderr);
    assert.deepEqual(await fsp.readFile(path.join(work.dir, 'piped.tar')), await fsp.readFile(file));
  });

  it('compression=zstd gives zstd layers that decompress to their diff ids; uncompressed keeps them plain', async () => {
    const file = path.join(work.dir, 'zstd.tar');
    const r = await build(['-o', `type=oci,dest=${file},compression=zstd`]);
    assert.equal(r.code, 0, r.stderr);
    const dir = await untar(file, path.join(work.dir, 'zstd'));
    const { index, json } = await readLayout(dir);
    const manifest = await json<ImageManifest>(index.manifests[0]);
    const config = await json<ImageConfig>(manifest.config);
    // the base (kiln import stored it gzipped) keeps its compression; the build's own layers, stored plain, are zstd'd
    assert.equal(manifest.layers[0].mediaType, MediaType.ociLayerGzip);
    assert.deepEqual(manifest.layers.slice(1).map((l) => l.mediaType), [MediaType.ociLayerZstd, MediaType.ociLayerZstd]);
    const forcedFile = path.join(work.dir, 'zstd-forced.tar');
    assert.equal((await build(['-o', `type=oci,dest=${forcedFile},compression=zstd,force-compression=true`])).code, 0);
    const forced = await readLayout(await untar(forcedFile, path.join(work.dir, 'zstd-forced')));
    const forcedManifest = await forced.json<ImageManifest>(forced.index.manifests[0]);
    for (const [i, l] of forcedManifest.layers.entries()) {
      assert.equal(l.mediaType, MediaType.ociLayerZstd);
      const plain = spawnSync('zstd', ['-dc', path.join(work.dir, 'zstd-forced', 'blobs', 'sha256', l.digest.slice(7))], { maxBuffer: 1 << 28 });
      assert.equal(plain.status, 0);
      assert.equal(digestOf(plain.stdout), config.rootfs.diff_ids[i]);
    }
    assert.equal(forcedManifest.layers[1].digest, manifest.layers[1].digest, 'a zstd form made once is reused');
    const plainFile = path.join(work.dir, 'plain.tar');
    assert.equal((await build(['-o', `type=oci,dest=${plainFile},compression=uncompressed`])).code, 0);
    const p = await readLayout(await untar(plainFile, path.join(work.dir, 'plain')));
    const plainLayers = (await p.json<ImageManifest>(p.index.manifests[0])).layers.map((l) => l.mediaType);
    assert.deepEqual(plainLayers, [MediaType.ociLayerGzip, MediaType.ociLayerTar, MediaType.ociLayerTar]);
  });

  it('oci-mediatypes=false: docker media types for manifest, config and layers', async () => {
    const file = path.join(work.dir, 'docker-types.tar');
    const r = await build(['-o', `type=oci,dest=${file},oci-mediatypes=false`]);
    assert.equal(r.code, 0, r.stderr);
    const { index, json } = await readLayout(await untar(file, path.join(work.dir, 'docker-types')));
    assert.equal(index.manifests[0].mediaType, MediaType.dockerManifest);
    const manifest = await json<ImageManifest>(index.manifests[0]);
    assert.equal(manifest.mediaType, MediaType.dockerManifest);
    assert.equal(manifest.config.mediaType, MediaType.dockerConfig);
    for (const l of manifest.layers) assert.equal(l.mediaType, MediaType.dockerLayerGzip);
    const inspect = await runCommand('skopeo', ['inspect', '--raw', `oci-archive:${file}`]);
    assert.equal(inspect.code, 0, inspect.stderr);
    assert.equal((JSON.parse(inspect.stdout) as ImageManifest).mediaType, MediaType.dockerManifest);
  });

  it('type=local and type=tar write the filesystem; bad outputs are clear errors', async () => {
    const dir = path.join(work.dir, 'fs');
    const tarFile = path.join(work.dir, 'fs.tar');
    const r = await build(['-o', dir, '-o', `type=tar,dest=${tarFile}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await fsp.readFile(path.join(dir, 'ran'), 'utf8'), 'made-by-run\n');
    const list = await runCommand('tar', ['-tf', tarFile]);
    assert.match(list.stdout, /^f$/m);
    const bad = await build(['-o', 'type=oci,dest=x,colour=red']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /type=oci has no option "colour"/);
    assert.doesNotMatch(bad.stderr, /at .*\.js:\d+/);
    // compression-level reaches the compressor: levels 1 and 9 give other gzip bytes of the same
    // layers, each of which still decompresses to its diff id; forced, the base's gzip layer too
    const levels: Record<string, { manifest: ImageManifest; config: ImageConfig; blob: (d: Descriptor) => Promise<Buffer> }> = {};
    for (const [name, extra] of [['l1', ''], ['l9', ''], ['l9f', ',force-compression=true']] as const) {
      const file = path.join(work.dir, `${name}.tar`);
      const level = name === 'l1' ? 1 : 9;
      const r = await build(['-o', `type=oci,dest=${file},compression=gzip,compression-level=${level}${extra}`]);
      assert.equal(r.code, 0, r.stderr);
      const layout = await readLayout(await untar(file, path.join(work.dir, name)));
      const manifest = await layout.json<ImageManifest>(layout.index.manifests[0]);
      levels[name] = { manifest, config: await layout.json<ImageConfig>(manifest.config), blob: layout.blob };
    }
    const { gunzipSync } = await import('node:zlib');
    const last = (n: string) => levels[n].manifest.layers.length - 1;
    assert.notEqual(levels.l1.manifest.layers[last('l1')].digest, levels.l9.manifest.layers[last('l9')].digest, 'level 1 and 9 compress the built layer differently');
    assert.equal(levels.l9.manifest.layers[0].digest, levels.l1.manifest.layers[0].digest, 'the base layer, already gzip, is kept without force');
    assert.notEqual(levels.l9f.manifest.layers[0].digest, levels.l9.manifest.layers[0].digest, 'force-compression compresses the base layer again');
    for (const n of ['l1', 'l9', 'l9f']) {
      for (const [i, l] of levels[n].manifest.layers.entries()) {
        assert.equal(l.mediaType, MediaType.ociLayerGzip);
        assert.equal(digestOf(gunzipSync(await levels[n].blob(l))), levels[n].config.rootfs.diff_ids[i], `${n} layer ${i} decompresses to its diff id`);
      }
    }
    const rewrite = await build(['-o', `type=oci,dest=${path.join(work.dir, 'rw.tar')},rewrite-timestamp=true`]);
    assert.equal(rewrite.code, 0, rewrite.stderr);
    assert.match(rewrite.stderr, /rewrite-timestamp=true has no effect without SOURCE_DATE_EPOCH/);
    const rewriteEpoch = await build(['-o', `type=oci,dest=${path.join(work.dir, 'rw.tar')},rewrite-timestamp=true`], { SOURCE_DATE_EPOCH: '1700000000' });
    assert.equal(rewriteEpoch.code, 0, rewriteEpoch.stderr);
    assert.doesNotMatch(rewriteEpoch.stderr, /rewrite-timestamp/);
    const index = await build(['-o', `type=oci,dest=${path.join(work.dir, 'never.tar')},annotation-index.a=b`]);
    assert.equal(index.code, 1);
    assert.match(index.stderr, /needs an image index/);
    assert.equal(existsSync(path.join(work.dir, 'never.tar')), false);
  });

  it('a context in a git checkout: revision, source (no credentials) and created annotations; BUILDX_GIT_INFO=0 and --annotation win', async () => {
    const repo = await ws.context({ Dockerfile: 'FROM busybox:latest\nCOPY f /f\n', f: 'in git\n' });
    const git = async (...args: string[]) => {
      const r = await runCommand('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args]);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.trim();
    };
    await git('init', '-q');
    await git('add', '.');
    await git('commit', '-qm', 'first');
    await git('remote', 'add', 'origin', 'https://someone:s3cret@example.com/org/app.git');
    const head = await git('rev-parse', 'HEAD');
    const store = await ContentStore.open(ws.root);
    const manifestOf = async (env?: Record<string, string>, extra: string[] = []) => {
      const r = await runKiln(['build', '-t', 'git-annotated:1', ...extra, repo], { root: ws.root, env, timeoutMs: 120_000 });
      assert.equal(r.code, 0, r.stderr);
      return store.readJSON<ImageManifest>((await store.resolve('git-annotated:1'))!.digest);
    };
    const m = await manifestOf();
    const config = await store.readJSON<ImageConfig>(m.config.digest);
    assert.deepEqual(m.annotations, {
      'org.opencontainers.image.created': config.created,
      'org.opencontainers.image.revision': head,
      'org.opencontainers.image.source': 'https://example.com/org/app.git',
    });
    assert.deepEqual(validateOCI('manifest', m), []);
    assert.equal((await manifestOf({ BUILDX_GIT_INFO: '0' })).annotations, undefined);
    const overridden = await manifestOf(undefined, ['--annotation', 'org.opencontainers.image.source=https://example.com/mirror']);
    assert.equal(overridden.annotations?.['org.opencontainers.image.source'], 'https://example.com/mirror');
    assert.equal(overridden.annotations?.['org.opencontainers.image.revision'], head);
  });

  it('type=docker,dest=FILE is loaded by docker load and runs', { skip: noDocker }, async () => {
    const file = path.join(work.dir, 'docker.tar');
    const name = `kiln-out-docker-${process.pid}:1`;
    try {
      const r = await build(['-o', `type=docker,dest=${file},name=${name}`]);
      assert.equal(r.code, 0, r.stderr);
      const loaded = await runCommand(dockerCli, ['load', '-i', file]);
      assert.equal(loaded.code, 0, loaded.stderr);
      const run = await runCommand(dockerCli, ['run', '--rm', name, 'cat', '/ran', '/f']);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, 'made-by-run\nfrom the context\n');
    } finally {
      await runCommand(dockerCli, ['rmi', '-f', name]);
    }
  });

  it('--load hands the image to the running engine, which runs it; no engine is a clear error', { skip: noDocker }, async () => {
    const name = `kiln-out-load-${process.pid}:1`;
    try {
      const r = await runKiln(['build', '--load', '-t', name, ctx], { root: ws.root, timeoutMs: 180_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /loaded .* into the docker engine at unix:\/\/\/var\/run\/docker\.sock/);
      const run = await runCommand(dockerCli, ['run', '--rm', name]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, 'from the context\n');
    } finally {
      await runCommand(dockerCli, ['rmi', '-f', name]);
    }
    // DOCKER_HOST=tcp://: the engine's socket forwarded to a TCP port of this test
    const forward = net.createServer((c) => {
      const u = net.connect('/var/run/docker.sock');
      c.pipe(u).pipe(c);
      c.on('error', () => u.destroy());
      u.on('error', () => c.destroy());
    });
    await new Promise<void>((resolve) => forward.listen(0, '127.0.0.1', resolve));
    const viaTcp = `kiln-out-tcp-${process.pid}:1`;
    try {
      const port = (forward.address() as net.AddressInfo).port;
      const r = await runKiln(['build', '--load', '-t', viaTcp, ctx], { root: ws.root, env: { DOCKER_HOST: `tcp://127.0.0.1:${port}` }, timeoutMs: 180_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`into the docker engine at tcp://127\\.0\\.0\\.1:${port}`));
      const run = await runCommand(dockerCli, ['run', '--rm', viaTcp, 'cat', '/ran']);
      assert.equal(run.stdout, 'made-by-run\n');
    } finally {
      forward.close();
      await runCommand(dockerCli, ['rmi', '-f', viaTcp]);
    }
    const none = await runKiln(['build', '--load', '-t', name, ctx], { root: ws.root, env: { DOCKER_HOST: `unix://${work.dir}/no.sock` } });
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no docker engine answers at unix:\/\/.*no\.sock \(no socket there\)/);
    const tcp = await runKiln(['build', '--load', '-t', name, ctx], { root: ws.root, env: { DOCKER_HOST: 'tcp://127.0.0.1:1' } });
    assert.equal(tcp.code, 1);
    assert.match(tcp.stderr, /no docker engine answers at tcp:\/\/127\.0\.0\.1:1 \(connection refused\)/);
  });

  describe('to a registry', { skip: !haveRegistry() ? 'no docker-registry' : false }, () => {
    let reg: Registry;
    before(async () => {
      reg = await startRegistry();
    });
    after(async () => {
      await reg?.stop();
    });

    it('type=registry,oci-mediatypes=false pushes docker media types that skopeo reads and docker pulls and runs', { skip: noDocker }, async () => {
      const ref = `${reg.host}/out/docker-types:1`;
      try {
        const r = await runKiln(['--insecure-registry', reg.host, 'build', '-o', `type=registry,name=${ref},oci-mediatypes=false`, ctx], { root: ws.root, timeoutMs: 180_000 });
        assert.equal(r.code, 0, r.stderr);
        const raw = await runCommand('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
        assert.equal(raw.code, 0, raw.stderr);
        const manifest = JSON.parse(raw.stdout) as ImageManifest;
        assert.equal(manifest.mediaType, MediaType.dockerManifest);
        assert.equal(manifest.config.mediaType, MediaType.dockerConfig);
        for (const l of manifest.layers) assert.equal(l.mediaType, MediaType.dockerLayerGzip);
        const pulled = await runCommand(dockerCli, ['pull', ref]);
        assert.equal(pulled.code, 0, pulled.stderr);
        const run = await runCommand(dockerCli, ['run', '--rm', ref]);
        assert.equal(run.stdout, 'from the context\n');
      } finally {
        await runCommand(dockerCli, ['rmi', '-f', ref]);
      }
    });
  });
});
