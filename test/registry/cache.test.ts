/**
 * The shared cache through a real registry (Debian's docker-registry, started here): the CI
 * pipeline (root A exports, a fresh root B imports and runs nothing, making the same image),
 * inline caches read from an image's config, two runners exporting to one ref at once, and
 * unreachable or missing caches as warnings.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseCacheFrom, parseCacheTo } from '../../src/cache/spec.js';
import { CACHE_CONFIG_KEY } from '../../src/cache/format.js';
import { ociArchiveExporter } from '../../src/export/oci-archive.js';
import { RegistryClient } from '../../src/registry/client.js';
import { isRoot, runCommand, runKiln } from '../helpers.js';
import { blobsOf, cacheFixture, type CacheConfig, type CacheFixture, type CacheManifest } from '../cache/remote-fixtures.js';
import { freePort, haveRegistry, startRegistry, type Registry } from './harness.js';

const skip = !isRoot() ? 'RUN and overlayfs need root' : !haveRegistry() ? 'needs /usr/bin/docker-registry' : false;

const dockerfile = {
  Dockerfile: [
    'FROM busybox:latest AS build',
    'RUN echo compiled > /artifact && echo junk > /build-only',
    'FROM busybox:latest',
    'RUN echo base > /base',
    'COPY --from=build /artifact /artifact',
    'COPY app.txt /app.txt',
    '',
  ].join('\n'),
  'app.txt': 'v1\n',
};

/** The manifest digest an OCI archive's index names: the image as it is pushed (gzip layers). */
function archivedManifest(file: string): string {
  const r = spawnSync('tar', ['-xOf', file, 'index.json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as { manifests: Array<{ digest: string }> }).manifests[0].digest;
}

describe('shared cache: type=registry', { skip }, () => {
  let fx: CacheFixture;
  let reg: Registry;
  let client: RegistryClient;

  before(async () => {
    fx = await cacheFixture();
    reg = await startRegistry();
    client = new RegistryClient({});
  });
  after(async () => {
    client?.close();
    await reg?.stop();
    await fx?.cleanup();
  });

  async function remoteCache(ref: string): Promise<{ manifest: CacheManifest; config: CacheConfig }> {
    const repo = client.repository(ref);
    const m = await repo.getManifest(ref.slice(ref.lastIndexOf(':') + 1));
    const manifest = JSON.parse(m.bytes.toString('utf8')) as CacheManifest;
    const config = JSON.parse((await repo.provider().readBlob(manifest.config.digest)).toString('utf8')) as CacheConfig;
    return { manifest, config };
  }

  it('CI pipeline: a fresh runner importing the registry cache runs no step and makes the same image', async () => {
    const ref = `${reg.host}/app/cache:main`;
    const ctxA = await fx.context(dockerfile);
    const archiveA = path.join(fx.work, 'a.oci.tar');
    const a = await fx.run(fx.rootA, ctxA, { registry: client, cacheTo: [parseCacheTo(`type=registry,ref=${ref},mode=max`)], exporters: [ociArchiveExporter({ dest: archiveA })] });
    assert.deepEqual(a.warnings, []);
    assert.ok(a.steps.every((s) => !s.cached));

    // what the registry holds is a plain OCI image whose blobs are all there
    const { manifest, config } = await remoteCache(ref);
    assert.equal(config.rootfs.diff_ids.length, manifest.layers.length);
    const repo = client.repository(ref);
    for (const l of [...manifest.layers, manifest.config]) assert.ok((await repo.statBlob(l.digest)) !== undefined, `${l.digest} is in the registry`);
    assert.equal(config[CACHE_CONFIG_KEY].steps.length, a.steps.length);

    // runner B: a fresh root, the context elsewhere, the CLI as CI runs it
    const rootB = await fx.freshRoot();
    const ctxB = await fx.context(dockerfile);
    const b = await runKiln(['build', '--progress', 'plain', '--cache-from', ref, '--cache-to', `type=registry,ref=${ref},mode=max,ignore-error=false`, '-t', 'app:b', ctxB], { root: rootB, env: { SOURCE_DATE_EPOCH: '1700000000' } });
    assert.equal(b.code, 0, b.stderr);
    // the final stage is found by definition: the build stage is not even looked at
    assert.equal((b.stderr.match(/#\d+ CACHED/g) ?? []).length, a.steps.filter((s) => s.stage !== 'build').length, b.stderr);
    assert.doesNotMatch(b.stderr, /#\d+ DONE/);
    const inspect = await runKiln(['inspect', 'app:b'], { root: rootB });
    const bConfig = (JSON.parse(inspect.stdout) as { manifest: { config: { digest: string } } }).manifest.config.digest;
    assert.equal(bConfig, a.configDescriptor.digest, 'same image config (and id)');
    // B exported the cache again: the same records, every blob still there (the build stage's
    // layer, which B never fetched, was found in the registry and not uploaded)
    const again = await remoteCache(ref);
    assert.deepEqual(new Set(again.config[CACHE_CONFIG_KEY].steps.map((s) => s.key)), new Set(config[CACHE_CONFIG_KEY].steps.map((s) => s.key)));
    for (const l of [...again.manifest.layers, again.manifest.config]) assert.ok((await repo.statBlob(l.digest)) !== undefined, `${l.digest} is in the registry`);
    const buildKey = a.steps.find((s) => s.stage === 'build')!.key;
    const buildLayer = manifest.layers[config[CACHE_CONFIG_KEY].steps.find((s) => s.key === buildKey)!.layer!].digest;
    assert.ok(!(await blobsOf(rootB)).has(buildLayer), 'B never fetched the build stage layer');

    // the image as it is pushed (gzip layers) has the same manifest digest on both runners
    const rootC = await fx.freshRoot();
    const archiveC = path.join(fx.work, 'c.oci.tar');
    const c = await fx.run(rootC, await fx.context(dockerfile), { registry: client, cacheFrom: [parseCacheFrom(ref)], exporters: [ociArchiveExporter({ dest: archiveC })] });
    assert.ok(c.steps.every((s) => s.cached));
    assert.equal(archivedManifest(archiveC), archivedManifest(archiveA));
    // and C downloaded only the final image's layers, not the build stage's
    assert.ok(!c.cacheFetched?.includes(buildLayer));
    assert.equal(c.cacheFetched?.length, a.config.rootfs.diff_ids.length - 1);
  });

  it('CI pipeline with --push: a fresh runner runs no step and pushes the same manifest digest', async () => {
    const cache = `${reg.host}/app/cache:push`;
    const env = { SOURCE_DATE_EPOCH: '1700000000' };
    const push = async (root: string, tag: string): Promise<{ digest: string; stderr: string }> => {
      const meta = path.join(fx.work, `${tag.replace(/\W/g, '-')}.json`);
      const ctx = await fx.context({ ...dockerfile, 'app.txt': 'pushed\n' });
      const r = await runKiln(['build', '--progress', 'plain', '--cache-from', cache, '--cache-to', `type=registry,ref=${cache},mode=max,ignore-error=false`, '--push', '-t', `${reg.host}/app/web:${tag}`, '--metadata-file', meta, ctx], { root, env });
      assert.equal(r.code, 0, r.stderr);
      const digest = (JSON.parse(await readFile(meta, 'utf8')) as Record<string, string>)['containerimage.digest'];
      // what the metadata file names is what the registry serves under the tag
      const served = await client.repository(`${reg.host}/app/web`).headManifest(tag);
      assert.equal(served?.digest, digest);
      return { digest, stderr: r.stderr };
    };
    // runner A: nothing to import yet (a warning), every step runs, image and cache pushed
    const a = await push(fx.rootA, 'a');
    assert.match(a.stderr, /#\d+ DONE/);
    // runner B: a fresh root
    const b = await push(await fx.freshRoot(), 'b');
    assert.doesNotMatch(b.stderr, /#\d+ DONE/, 'B executed no step');
    assert.match(b.stderr, /#\d+ CACHED/);
    assert.equal(b.digest, a.digest, 'B pushed the manifest A pushed');
  });

  it('type=inline: the records ride in the image config; --cache-from the pushed image finds them', { skip: existsSync('/usr/bin/skopeo') ? false : 'needs skopeo' }, async () => {
    const ctx = await fx.context({ ...dockerfile, 'app.txt': 'inline\n' });
    const archive = path.join(fx.work, 'inline.oci.tar');
    const a = await fx.run(fx.rootA, ctx, { cacheTo: [parseCacheTo('type=inline')], exporters: [ociArchiveExporter({ dest: archive })] });
    const records = (a.config as unknown as CacheConfig)[CACHE_CONFIG_KEY];
    // mode=min: the final stage's steps, each naming one of the image's own layers
    assert.deepEqual(records.steps.map((s) => s.key).sort(), a.steps.filter((s) => s.stage !== 'build').map((s) => s.key).sort());
    for (const s of records.steps) assert.ok(s.layer! < a.config.rootfs.diff_ids.length);
    // the image goes to the registry by a peer (skopeo), as a pushed image would
    const image = `${reg.host}/app/web:inline`;
    const cp = await runCommand('skopeo', ['copy', '--dest-tls-verify=false', `oci-archive:${archive}`, `docker://${image}`]);
    assert.equal(cp.code, 0, cp.stderr);

    const rootB = await fx.freshRoot();
    const b = await fx.run(rootB, await fx.context({ ...dockerfile, 'app.txt': 'inline\n' }), { registry: client, cacheTo: [parseCacheTo('type=inline')], cacheFrom: [parseCacheFrom(`type=registry,ref=${image}`)] });
    assert.deepEqual(b.warnings, []);
    // the build stage is not in an inline cache, but the final stage is found by definition
    // (each record names its layer chain in the image): nothing runs, the build stage is not solved
    assert.deepEqual(b.steps.filter((s) => !s.cached).map((s) => s.stage), []);
    assert.ok(!b.steps.some((s) => s.stage === 'build'));
    assert.equal(b.imageId, a.imageId);
  });

  it('two runners exporting to one ref at once leave a valid cache', async () => {
    const ref = `${reg.host}/app/cache:race`;
    const [r1, r2] = [fx.rootA, await fx.freshRoot()];
    const files = (v: string) => ({ Dockerfile: `FROM busybox:latest\nRUN echo ${v} > /v && head -c 300000 /dev/urandom > /noise\nRUN echo done-${v} > /done\n` });
    const [x, y] = await Promise.all([
      fx.run(r1, await fx.context(files('one')), { registry: client, cacheTo: [parseCacheTo(`type=registry,ref=${ref},mode=max,ignore-error=false`)] }),
      fx.run(r2, await fx.context(files('two')), { registry: client, cacheTo: [parseCacheTo(`type=registry,ref=${ref},mode=max,ignore-error=false`)] }),
    ]);
    const { manifest, config } = await remoteCache(ref);
    const repo = client.repository(ref);
    for (const d of [manifest.config, ...manifest.layers]) assert.ok((await repo.statBlob(d.digest)) !== undefined, `${d.digest} is in the registry`);
    // the last one wins: the cache is wholly one of the two builds'
    const keys = new Set(config[CACHE_CONFIG_KEY].steps.map((s) => s.key));
    const winner = [x, y].find((r) => r.steps.every((s) => keys.has(s.key)));
    assert.ok(winner, 'the cache holds one build\'s steps');
    const rootB = await fx.freshRoot();
    const which = winner === x ? 'one' : 'two';
    const b = await fx.run(rootB, await fx.context(files(which)), { registry: client, cacheFrom: [parseCacheFrom(ref)] });
    assert.ok(b.steps.every((s) => s.cached));
  });

  it('blobs another repository on the registry has are mounted, not uploaded', async () => {
    const ctx = await fx.context({ Dockerfile: 'FROM busybox:latest\nRUN echo mount-me > /m && head -c 100000 /dev/urandom > /r\n' });
    const first = await fx.run(fx.rootA, ctx, { registry: client, cacheTo: [parseCacheTo(`type=registry,ref=${reg.host}/team/one:cache,mode=max,ignore-error=false`)] });
    // the step's layer and the config are new; the base image's layer (in the cache for the
    // step's layer chain) is mounted from the caches the tests before exported
    assert.deepEqual(first.cacheExports?.[0].blobs, { exists: 0, mounted: 1, uploaded: 2 });
    const second = await fx.run(fx.rootA, ctx, { registry: client, cacheTo: [parseCacheTo(`type=registry,ref=${reg.host}/team/two:cache,mode=max,ignore-error=false`)] });
    assert.deepEqual(second.cacheExports?.[0].blobs, { exists: 0, mounted: 3, uploaded: 0 });
    const { manifest } = await remoteCache(`${reg.host}/team/two:cache`);
    const repo = client.repository(`${reg.host}/team/two:cache`);
    for (const d of [manifest.config, ...manifest.layers]) assert.ok((await repo.statBlob(d.digest)) !== undefined);
  });

  it('a cache on a registry that refuses us is a warning naming the host, the password never shown', async () => {
    const locked = await startRegistry({ auth: 'htpasswd' });
    const anonymous = new RegistryClient({ attempts: 1 });
    try {
      const rootB = await fx.freshRoot();
      const r = await fx.run(rootB, await fx.context({ Dockerfile: 'FROM busybox:latest\nRUN echo locked-out > /l\n' }), {
        registry: anonymous,
        cacheFrom: [parseCacheFrom(`${locked.host}/private/cache:main`)],
      });
      assert.equal(r.steps[0].cached, false);
      const w = r.warnings.join('\n');
      assert.match(w, new RegExp(`cache import from type=registry,ref=${locked.host.replace(/\./g, '\\.')}/private/cache:main failed, building without it: .*${locked.host.replace(/\./g, '\\.')}`));
      for (const pw of Object.values(locked.users)) assert.ok(!w.includes(pw));
    } finally {
      anonymous.close();
      await locked.stop();
    }
  });

  it('an unreachable or missing cache is a warning: the build runs uncached, the export is skipped', async () => {
    const port = await freePort();
    const quick = new RegistryClient({ attempts: 1 });
    try {
      const rootB = await fx.freshRoot();
      const ctx = await fx.context({ Dockerfile: 'FROM busybox:latest\nRUN echo lonely > /l\n' });
      const r = await fx.run(rootB, ctx, {
        registry: quick,
        cacheFrom: [parseCacheFrom(`127.0.0.1:${port}/nobody/cache:x`), parseCacheFrom(`${reg.host}/app/cache:no-such-tag`)],
        cacheTo: [parseCacheTo(`type=registry,ref=127.0.0.1:${port}/nobody/cache:x`)],
      });
      assert.equal(r.steps[0].cached, false);
      const w = r.warnings.join('\n');
      assert.match(w, new RegExp(`cache import from type=registry,ref=127\\.0\\.0\\.1:${port}/nobody/cache:x failed, building without it: .*127\\.0\\.0\\.1:${port}`));
      assert.match(w, /cache import from type=registry,ref=.*no-such-tag failed, building without it: /);
      assert.match(w, new RegExp(`cache export to type=registry,ref=127\\.0\\.0\\.1:${port}/nobody/cache:x failed \\(the image is built\\)`));
    } finally {
      quick.close();
    }
  });
});
