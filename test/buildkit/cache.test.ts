/** Port of BuildKit's frontend/dockerfile/dockerfile_cache_test.go (see test/buildkit/README.md). */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { CACHE_CONFIG_KEY } from '../../src/cache/format.js';
import { MediaType } from '../../src/oci/types.js';
import { tempDir } from '../helpers.js';
import { kilnImageTree } from '../oracle/docker.js';
import { newRegistry, port, readImageFile, useHarness, type BuildResult, type BuildSpec, type ImageResult } from './harness.js';

const h = useHarness();

/**
 * A build that must succeed with its cache export and import working: kiln turns a failed
 * export or import into a warning (BuildKit fails the solve), so such a warning fails here.
 */
async function cacheBuild(spec: BuildSpec): Promise<BuildResult & { image: ImageResult }> {
  const r = await h.kilnBuild(spec);
  assert.equal(r.code, 0, `kiln build failed:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /cache (import from|export to) .* failed/, 'the cache export or import failed');
  return { ...r, image: await kilnImageTree(spec.root ?? h.root, r.tag) };
}

/** A manifest or config blob as skopeo (a peer, not kiln's client) reads it from the registry. */
function skopeoRaw(ref: string, config = false): Record<string, unknown> {
  const r = spawnSync('skopeo', ['inspect', '--raw', ...(config ? ['--config'] : []), '--tls-verify=false', `docker://${ref}`], { encoding: 'utf8' });
  assert.equal(r.status, 0, `skopeo inspect ${ref}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

const importExportCase: BuildSpec = {
  dockerfile: [
    'FROM busybox AS base',
    'COPY foo const',
    '#RUN echo -n foobar > const',
    'RUN cat /dev/urandom | head -c 100 | sha256sum > unique',
    'FROM scratch',
    'COPY --from=base const /',
    'COPY --from=base unique /',
    '',
  ].join('\n'),
  files: { foo: { content: 'foobar', mode: 0o600 } },
};

/**
 * testCacheImportExport and testImageManifestCacheImportExport: build exporting the cache
 * to a registry, then build on a fresh root importing it: the RUN's random output is the
 * cached one.
 */
async function registryRoundTrip(t: TestContext, cacheTo: (ref: string) => string, checkCache?: (ref: string) => void): Promise<void> {
  const reg = await newRegistry(t);
  if (!reg) return;
  const target = `${reg.host}/buildkit/testexportdf:latest`;
  const first = await cacheBuild({ ...importExportCase, kilnArgs: ['--cache-to', cacheTo(target)] });
  assert.equal(readImageFile(first.image, 'const'), 'foobar');
  const unique = readImageFile(first.image, 'unique');
  checkCache?.(target);

  const second = await cacheBuild({ ...importExportCase, root: await h.freshRoot(t), kilnArgs: ['--cache-from', target] });
  assert.equal(readImageFile(second.image, 'const'), 'foobar');
  assert.equal(readImageFile(second.image, 'unique'), unique, 'the RUN comes from the imported cache');
}

port('testReproducibleIDs', async () => {
  const spec = { dockerfile: 'FROM busybox\nENV foo=bar\nCOPY foo /\nRUN echo bar > bar\n', files: { foo: { content: 'foo-contents', mode: 0o600 } }, kilnArgs: ['-q'] };
  const a = await h.kilnBuild(spec);
  const b = await h.kilnBuild(spec);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  assert.equal(a.stdout.trim(), b.stdout.trim());
});

port('testNoCache', async () => {
  const dockerfile = [
    'FROM busybox AS s0',
    'RUN cat /dev/urandom | head -c 100 | sha256sum | tee unique',
    'FROM busybox AS s1',
    'RUN cat /dev/urandom | head -c 100 | sha256sum | tee unique2',
    'FROM scratch',
    'COPY --from=s0 unique /',
    'COPY --from=s1 unique2 /',
    '',
  ].join('\n');
  const read = async (kilnArgs: string[]) => {
    const img = await h.kiln({ dockerfile, kilnArgs });
    return [readImageFile(img, 'unique'), readImageFile(img, 'unique2')];
  };
  const [u1, u2] = await read([]);
  const [u1b, u2b] = await read(['--no-cache']);
  assert.notEqual(u1b, u1);
  assert.notEqual(u2b, u2);
  const [u1c, u2c] = await read(['--no-cache-filter', 's1']);
  assert.equal(u1c, u1b, 'stage s0 is taken from the cache');
  assert.notEqual(u2c, u2b, 'stage s1 runs again');
});

port('testCacheMountModeNoCache', async () => {
  const dockerfile = 'FROM busybox AS base\nARG FOO=abc\nRUN --mount=type=cache,target=/cache,mode=0773 touch /cache/$FOO && ls -l /cache | wc -l > /out\nFROM scratch\nCOPY --from=base /out /\n';
  let img = await h.kiln({ dockerfile });
  assert.equal(readImageFile(img, 'out'), '2\n');
  // --no-cache starts the cache mount afresh too
  img = await h.kiln({ dockerfile, buildArgs: { FOO: 'def' }, noCache: true });
  assert.equal(readImageFile(img, 'out'), '2\n');
  img = await h.kiln({ dockerfile, buildArgs: { FOO: 'ghi' } });
  assert.equal(readImageFile(img, 'out'), '3\n');
});

port('testWildcardRenameCache', async () => {
  const spec = { dockerfile: 'FROM busybox\nCOPY file* /files/\nRUN ls /files/file1\n', files: { file1: { content: 'foo', mode: 0o600 } } };
  const ctx = await h.context(spec);
  const first = await h.kilnBuild(spec, ctx);
  assert.equal(first.code, 0, first.stderr);
  await fs.rename(path.join(ctx.dir, 'file1'), path.join(ctx.dir, 'file2'));
  const second = await h.kilnBuild(spec, ctx);
  assert.notEqual(second.code, 0, 'the rename invalidates the COPY, and the RUN fails');
});

port('testExportCacheLoop', async (t) => {
  const spec: BuildSpec = {
    dockerfile: [
      'FROM busybox as base',
      'RUN echo aa > /foo',
      'WORKDIR /bar',
      '',
      'FROM base as base1',
      'COPY hello.txt .',
      '',
      'FROM base as base2',
      'COPY --from=base1 /bar/hello.txt .',
      'RUN true',
      '',
      'FROM scratch',
      'COPY --from=base2 /foo /f',
      '',
    ].join('\n'),
    files: { 'hello.txt': { content: 'hello', mode: 0o600 } },
  };
  const dir = await tempDir('kiln-bkport-cache-');
  t.after(dir.cleanup);
  const cache = path.join(dir.dir, 'cache');
  // ignore-error=false: a failed export fails the build, as in BuildKit
  const exportTo = `type=local,dest=${cache},ignore-error=false`;
  await cacheBuild({ ...spec, kilnArgs: ['--cache-to', exportTo] });
  // after a prune, export to the directory the cache is imported from
  const again = await cacheBuild({ ...spec, root: await h.freshRoot(t), kilnArgs: ['--cache-to', exportTo, '--cache-from', `type=local,src=${cache}`] });
  assert.equal(readImageFile(again.image, 'f'), 'aa\n');
  await fs.access(path.join(cache, 'index.json'));
});

port('testImageManifestCacheImportExport', async (t) => {
  await registryRoundTrip(
    t,
    (ref) => `type=registry,ref=${ref},oci-mediatypes=true`,
    (ref) => {
      const manifest = skopeoRaw(ref) as { mediaType?: string; config?: { mediaType?: string } };
      assert.equal(manifest.mediaType, MediaType.ociManifest);
      // BuildKit's config is application/vnd.buildkit.cacheconfig.v0; kiln's is an OCI image
      // config carrying its records under kiln.cache.v1 (README: Sharing the build cache)
      assert.equal(manifest.config?.mediaType, MediaType.ociConfig);
      assert.ok(CACHE_CONFIG_KEY in skopeoRaw(ref, true), `the cache config holds ${CACHE_CONFIG_KEY}`);
    },
  );
});

port('testCacheImportExport', async (t) => {
  await registryRoundTrip(t, (ref) => `type=registry,ref=${ref}`);
});

port('testImportExportReproducibleIDs', async (t) => {
  const reg = await newRegistry(t);
  if (!reg) return;
  const spec: BuildSpec = { dockerfile: 'FROM busybox\nENV foo=bar\nCOPY foo /\nRUN echo bar > bar\n', files: { foo: { content: 'foobar', mode: 0o600 } } };
  const cacheTarget = `${reg.host}/test/dockerfileexpids:cache`;
  const first = await cacheBuild({ ...spec, kilnArgs: ['-q', '--cache-to', `type=registry,ref=${cacheTarget}`] });
  // the image is gone and the cache pruned: a fresh root, importing the cache
  const second = await cacheBuild({ ...spec, root: await h.freshRoot(t), kilnArgs: ['-q', '--cache-to', `type=registry,ref=${cacheTarget}`, '--cache-from', cacheTarget] });
  assert.match(first.stdout.trim(), /^sha256:[0-9a-f]{64}$/);
  assert.equal(second.stdout.trim(), first.stdout.trim(), 'the same image id');
});
