/**
 * The shared cache through a directory (--cache-to type=local / --cache-from type=local):
 * root A builds and exports, a fresh root B (the same base image, the context at another path)
 * imports. Real builds (runc over overlayfs), real stores; the cache directory is read back
 * as an OCI layout.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { BuildOptions } from '../../src/build.js';
import { parseCacheFrom, parseCacheTo } from '../../src/cache/spec.js';
import { CACHE_CONFIG_KEY } from '../../src/cache/format.js';
import { isRoot, runKiln, writeTree } from '../helpers.js';
import { blobsOf, cacheFixture, readLayout, type CacheFixture } from './remote-fixtures.js';

const skip = isRoot() ? false : 'RUN and overlayfs need root';

describe('shared cache: type=local', { skip }, () => {
  let fx: CacheFixture;
  let rootA: string;
  let work: string;
  before(async () => {
    fx = await cacheFixture();
    rootA = fx.rootA;
    work = fx.work;
  });
  after(() => fx.cleanup());
  const freshRoot = () => fx.freshRoot();
  const context = (files: Record<string, string>) => fx.context(files);
  const run = (root: string, contextDir: string, extra: Partial<BuildOptions> = {}) => fx.run(root, contextDir, extra);

  const multiStage = {
    Dockerfile: [
      'FROM busybox:latest AS tools',
      'RUN echo tool > /tool && echo scratch > /tools-only',
      'FROM busybox:latest',
      'RUN echo one > /one',
      'RUN --mount=type=cache,id=pkgs,target=/cache echo warm > /cache/seen && echo two > /two',
      'COPY --from=tools /tool /tool',
      'COPY b.txt /b.txt',
      'RUN cat /b.txt > /c.txt',
      '',
    ].join('\n'),
    'b.txt': 'first\n',
  };

  it('a fresh root importing a mode=max cache runs no step, makes the same image and fetches only its layers', async () => {
    const files = multiStage;
    const ctxA = await context(files);
    const dest = path.join(work, 'cache-max');
    const a = await run(rootA, ctxA, { cacheTo: [parseCacheTo(`type=local,dest=${dest},mode=max`)] });
    assert.ok(a.steps.some((s) => !s.cached), 'A ran its steps');
    assert.deepEqual(a.warnings, []);
    assert.equal(a.cacheExports?.[0].error, undefined);

    // the cache is a valid OCI image: config media type, platform, diff ids matching the layers, every blob there
    const layout = await readLayout(dest);
    assert.equal(layout.config.os, 'linux');
    assert.ok(layout.config.architecture);
    assert.equal(layout.config.rootfs.diff_ids.length, layout.manifest.layers.length);
    for (const l of layout.manifest.layers) {
      assert.equal(l.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
      await fs.access(path.join(dest, 'blobs', 'sha256', l.digest.slice(7)));
    }
    // every step of both stages is in it
    assert.deepEqual(new Set(layout.config[CACHE_CONFIG_KEY].steps.map((s) => s.key)), new Set(a.steps.map((s) => s.key)));

    // the same context at another path, on a fresh root
    const rootB = await freshRoot();
    const ctxB = await context(files);
    const before = await blobsOf(rootB);
    const b = await run(rootB, ctxB, { cacheFrom: [parseCacheFrom(`type=local,src=${dest}`)] });
    assert.deepEqual(
      b.steps.filter((s) => !s.cached).map((s) => s.name),
      [],
      'B executed no step',
    );
    assert.deepEqual(
      b.steps.map((s) => s.name).sort(),
      a.steps.filter((s) => s.stage !== 'tools').map((s) => s.name).sort(),
      'the final stage was found by definition: the tools stage was not solved',
    );
    assert.equal(b.imageId, a.imageId, 'same config (diff ids, history times)');
    assert.deepEqual(b.config.rootfs.diff_ids, a.config.rootfs.diff_ids);

    // B fetched the layers of the final image it lacked, and nothing else: not the tools stage's
    const got = [...(await blobsOf(rootB))].filter((d) => !before.has(d));
    const cacheLayers = new Set(layout.manifest.layers.map((l) => l.digest));
    const fetched = got.filter((d) => cacheLayers.has(d)).sort();
    const baseLayers = 1;
    assert.equal(fetched.length, a.config.rootfs.diff_ids.length - baseLayers, 'one blob per layer the image adds to its base');
    assert.deepEqual([...(b.cacheFetched ?? [])].sort(), fetched);
    const toolsLayer = layout.config[CACHE_CONFIG_KEY].steps.find((s) => a.steps.find((x) => x.key === s.key)?.name.includes('tools 2/2'));
    assert.ok(toolsLayer?.layer !== undefined);
    assert.ok(!got.includes(layout.manifest.layers[toolsLayer.layer].digest), "the tools stage's layer was not fetched");
    // the cached cache-mount step did not run: nothing was seeded
    assert.deepEqual(await fs.readdir(path.join(rootB, 'cache', 'mounts')).catch(() => []), []);

    // B's image runs and holds what A's does
    const out = await runKiln(['run', '--rm', 'cache-test:latest', 'cat', '/c.txt', '/tool', '/two'], { root: rootB });
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, 'first\ntool\ntwo\n');

    // the steps whose layers B fetched are now in B's own cache; the one it never fetched is not
    const again = await run(rootB, ctxB);
    assert.deepEqual(
      again.steps.filter((s) => !s.cached).map((s) => s.name),
      ['[tools 2/2] RUN echo tool > /tool && echo scratch > /tools-only'],
    );
  });

  it('mode=min: a fresh root takes the final stage by definition, never running the stage it copies from (random bytes there)', async () => {
    const files = {
      Dockerfile: [
        'FROM busybox:latest AS build',
        'RUN head -c 100 /dev/urandom > /rand',
        'FROM busybox:latest',
        'COPY --from=build /rand /rand',
        'COPY app.txt /app.txt',
        'RUN cat /app.txt /rand > /both',
        '',
      ].join('\n'),
      'app.txt': 'one\n',
    };
    const dest = path.join(work, 'cache-min-definition');
    const a = await run(rootA, await context(files), { cacheTo: [parseCacheTo(`type=local,dest=${dest}`)] });
    assert.equal(a.cacheExports?.[0].error, undefined);
    const layout = await readLayout(dest);
    const records = layout.config[CACHE_CONFIG_KEY].steps;
    assert.equal(records.length, 3, 'the final stage only');
    assert.ok(records.every((r) => r.definition && r.chain && r.chain.length > 0), 'each with a definition key and its layer chain');

    const rootB = await freshRoot();
    const b = await run(rootB, await context(files), { cacheFrom: [parseCacheFrom(`type=local,src=${dest}`)], cacheTo: [parseCacheTo(`type=local,dest=${dest}-again`)] });
    assert.deepEqual(b.steps.filter((s) => !s.cached).map((s) => s.name), [], 'B executed no step');
    assert.ok(!b.steps.some((s) => s.stage === 'build'), 'the build stage was not even looked at');
    assert.equal(b.imageId, a.imageId);
    // B re-exports what it imported: the same records
    const again = await readLayout(`${dest}-again`);
    assert.deepEqual(again.config[CACHE_CONFIG_KEY], layout.config[CACHE_CONFIG_KEY]);
    const out = await runKiln(['run', '--rm', 'cache-test:latest', 'cat', '/both'], { root: rootB });
    assert.equal(out.code, 0, out.stderr);
    const randA = await runKiln(['run', '--rm', 'cache-test:latest', 'cat', '/rand'], { root: rootA });
    assert.equal(out.stdout, `one\n${randA.stdout}`, "A's random bytes");

    // a changed context file: only the steps from its COPY on run, the build stage still does not
    const c = await run(await freshRoot(), await context({ ...files, 'app.txt': 'two\n' }), { cacheFrom: [parseCacheFrom(`type=local,src=${dest}`)] });
    assert.deepEqual(
      c.steps.filter((s) => !s.cached).map((s) => s.name),
      ['[stage-1 3/4] COPY app.txt /app.txt', '[stage-1 4/4] RUN cat /app.txt /rand > /both'],
    );
    assert.ok(!c.steps.some((s) => s.stage === 'build'));
  });

  it("a bind mount of a cached stage is keyed on its files: a fresh root fetches that stage's layer to sum them", async () => {
    const files = {
      Dockerfile: [
        'FROM busybox:latest AS gen',
        'RUN mkdir /out && echo generated > /out/file && echo unrelated > /elsewhere',
        'FROM busybox:latest',
        'RUN --mount=type=bind,from=gen,source=/out,target=/in cat /in/file > /copied',
        '',
      ].join('\n'),
    };
    const dest = path.join(work, 'cache-bind');
    const a = await run(rootA, await context(files), { cacheTo: [parseCacheTo(`type=local,dest=${dest},mode=max`)] });
    const layout = await readLayout(dest);
    const genKey = a.steps.find((s) => s.stage === 'gen')!.key;
    const genLayer = layout.manifest.layers[layout.config[CACHE_CONFIG_KEY].steps.find((s) => s.key === genKey)!.layer!].digest;
    const rootB = await freshRoot();
    const b = await run(rootB, await context(files), { cacheFrom: [parseCacheFrom(`type=local,src=${dest}`)] });
    assert.ok(b.steps.every((s) => s.cached));
    assert.ok(b.cacheFetched?.includes(genLayer), "the mounted stage's layer was fetched for its checksum");
    assert.equal(b.imageId, a.imageId);
  });

  it('a changed late step runs on the cached ones: only the layers under it are fetched', async () => {
    const ctxA = await context(multiStage);
    const dest = path.join(work, 'cache-late');
    await run(rootA, ctxA, { cacheTo: [parseCacheTo(`type=local,dest=${dest},mode=max`)] });
    const layout = await readLayout(dest);
    const rootB = await freshRoot();
    const ctxB = await context({ ...multiStage, 'b.txt': 'changed\n' });
    const b = await run(rootB, ctxB, { cacheFrom: [parseCacheFrom(`type=local,src=${dest}`)] });
    const ran = b.steps.filter((s) => !s.cached).map((s) => s.name);
    assert.deepEqual(ran.sort(), ['[stage-1 5/6] COPY b.txt /b.txt', '[stage-1 6/6] RUN cat /b.txt > /c.txt'].sort());
    const fetched = new Set(b.cacheFetched);
    const stepLayer = (name: string) => {
      const rec = layout.config[CACHE_CONFIG_KEY].steps.find((s) => s.description.includes(name))!;
      return layout.manifest.layers[rec.layer!].digest;
    };
    // the three cached layers under the changed step, no more
    assert.deepEqual([...fetched].sort(), [stepLayer('RUN echo one'), stepLayer('echo warm'), stepLayer('COPY --from=tools')].sort());
    assert.ok(!fetched.has(stepLayer('tools 2/2')));
    const out = await runKiln(['run', '--rm', 'cache-test:latest', 'cat', '/c.txt'], { root: rootB });
    assert.equal(out.stdout, 'changed\n', out.stderr);
  });

  it('mode=min holds the final stage only: a fresh root takes it by definition, not solving the other stage', async () => {
    const ctxA = await context(multiStage);
    const dest = path.join(work, 'cache-min');
    const a = await run(rootA, ctxA, { cacheTo: [parseCacheTo(`type=local,dest=${dest}`)] });
    const layout = await readLayout(dest);
    const inCache = new Set(layout.config[CACHE_CONFIG_KEY].steps.map((s) => s.key));
    const finalStage = a.steps.filter((s) => s.stage !== 'tools');
    assert.deepEqual(inCache, new Set(finalStage.map((s) => s.key)));
    const rootB = await freshRoot();
    const b = await run(rootB, await context(multiStage), { cacheFrom: [parseCacheFrom(`type=local,src=${dest}`)] });
    assert.deepEqual(b.steps.filter((s) => !s.cached).map((s) => s.name), []);
    assert.deepEqual(new Set(b.steps.map((s) => s.key)), inCache, 'the final stage, by the keys A recorded; the tools stage not even looked at');
    assert.equal(b.imageId, a.imageId);
  });

  it('cache mounts travel: a fresh root running a step with the mount sees what A left in it', async () => {
    const ctxA = await context({ Dockerfile: 'FROM busybox:latest\nRUN --mount=type=cache,id=deps,target=/root/.deps echo downloaded > /root/.deps/pkg && echo a > /a\n' });
    const dest = path.join(work, 'cache-mounts');
    await run(rootA, ctxA, { cacheTo: [parseCacheTo(`type=local,dest=${dest},mode=max,cache-mounts=deps`)] });
    const layout = await readLayout(dest);
    assert.deepEqual(layout.config[CACHE_CONFIG_KEY].mounts?.map((m) => m.id), ['deps']);

    // a changed step (so it runs) that fails unless the cache mount holds A's file
    const needs = { Dockerfile: 'FROM busybox:latest\nRUN --mount=type=cache,id=deps,target=/root/.deps test -f /root/.deps/pkg && cat /root/.deps/pkg > /got\n' };
    const control = await freshRoot();
    await assert.rejects(run(control, await context(needs)), /did not complete successfully/, 'without the cache the mount is empty');

    const rootB = await freshRoot();
    const b = await run(rootB, await context(needs), { cacheFrom: [parseCacheFrom(`type=local,src=${dest}`)] });
    assert.equal(b.steps.filter((s) => !s.cached).length, 1);
    const out = await runKiln(['run', '--rm', 'cache-test:latest', 'cat', '/got'], { root: rootB });
    assert.equal(out.stdout, 'downloaded\n', out.stderr);

    // a runner that ran no step with the mount re-exports what it imported
    const rootC = await freshRoot();
    const dest3 = path.join(work, 'cache-mounts-again');
    const c = await run(rootC, await context({ Dockerfile: 'FROM busybox:latest\nRUN --mount=type=cache,id=deps,target=/root/.deps echo downloaded > /root/.deps/pkg && echo a > /a\n' }), {
      cacheFrom: [parseCacheFrom(`type=local,src=${dest}`)],
      cacheTo: [parseCacheTo(`type=local,dest=${dest3},mode=max,cache-mounts=all`)],
    });
    assert.ok(c.steps.every((s) => s.cached));
    const again = await readLayout(dest3);
    const mountLayer = (l: typeof layout) => l.config.rootfs.diff_ids[l.config[CACHE_CONFIG_KEY].mounts![0].layer];
    assert.equal(mountLayer(again), mountLayer(layout));

    // a mount not named in cache-mounts= stays out of the cache
    const dest2 = path.join(work, 'cache-no-mounts');
    await run(rootA, ctxA, { cacheTo: [parseCacheTo(`type=local,dest=${dest2},mode=max`)] });
    assert.equal((await readLayout(dest2)).config[CACHE_CONFIG_KEY].mounts, undefined);
  });

  it('a local mount with contents of its own is not overwritten by the seed', async () => {
    const dest = path.join(work, 'cache-mounts');
    const rootB = await freshRoot();
    const ctx = await context({ Dockerfile: 'FROM busybox:latest\nRUN --mount=type=cache,id=deps,target=/root/.deps echo mine > /root/.deps/pkg\n' });
    await run(rootB, ctx);
    const needs = await context({ Dockerfile: 'FROM busybox:latest\nRUN --mount=type=cache,id=deps,target=/root/.deps cat /root/.deps/pkg > /got\n' });
    const b = await run(rootB, needs, { cacheFrom: [parseCacheFrom(`type=local,src=${dest}`)] });
    assert.equal(b.steps[0].cached, false);
    const out = await runKiln(['run', '--rm', 'cache-test:latest', 'cat', '/got'], { root: rootB });
    assert.equal(out.stdout, 'mine\n', out.stderr);
  });

  it('rewriting a cache directory: concurrent exports leave a whole cache, and the manifest it replaced keeps its blobs', async () => {
    const dest = path.join(work, 'cache-shared-dir');
    const files = (v: string) => ({ Dockerfile: `FROM busybox:latest\nRUN echo ${v} > /v && head -c 200000 /dev/urandom > /noise\n` });
    await run(rootA, await context(files('zero')), { cacheTo: [parseCacheTo(`type=local,dest=${dest},mode=max,ignore-error=false`)] });
    const first = await readLayout(dest);
    const other = await freshRoot();
    const [x, y] = await Promise.all([
      run(rootA, await context(files('one')), { cacheTo: [parseCacheTo(`type=local,dest=${dest},mode=max,ignore-error=false`)] }),
      run(other, await context(files('two')), { cacheTo: [parseCacheTo(`type=local,dest=${dest},mode=max,ignore-error=false`)] }),
    ]);
    const now = await readLayout(dest);
    for (const l of [...now.manifest.layers, now.manifest.config, ...first.manifest.layers, first.manifest.config]) await fs.access(path.join(dest, 'blobs', 'sha256', l.digest.slice(7)));
    const keys = new Set(now.config[CACHE_CONFIG_KEY].steps.map((s) => s.key));
    assert.ok([x, y].some((r) => r.steps.every((s) => keys.has(s.key))), "the cache is one build's, whole");
    assert.deepEqual((await fs.readdir(dest)).filter((n) => n.endsWith('.tmp')), [], 'no temp file left');
  });

  it('a missing or malformed cache is a warning and the build runs uncached', async () => {
    const rootB = await freshRoot();
    const ctx = await context({ Dockerfile: 'FROM busybox:latest\nRUN echo x > /x\n' });
    const missing = await run(rootB, ctx, { cacheFrom: [parseCacheFrom(`type=local,src=${path.join(work, 'nowhere')}`)] });
    assert.equal(missing.steps[0].cached, false);
    assert.match(missing.warnings.join('\n'), /cache import from type=local,src=.*nowhere failed, building without it: no cache at .*nowhere/);

    const broken = path.join(work, 'broken');
    await writeTree(broken, { 'index.json': '{not json', 'oci-layout': '{}' });
    const rootC = await freshRoot();
    const bad = await run(rootC, ctx, { cacheFrom: [parseCacheFrom(`type=local,src=${broken}`)] });
    assert.equal(bad.steps[0].cached, false);
    assert.match(bad.warnings.join('\n'), /malformed: index\.json is not JSON/);
  });

  it('a corrupt layer blob in the cache is refused with its digest; nothing corrupt enters the store', async () => {
    const ctxA = await context({ Dockerfile: 'FROM busybox:latest\nRUN echo x > /x\nRUN echo y > /y\n' });
    const dest = path.join(work, 'cache-corrupt');
    await run(rootA, ctxA, { cacheTo: [parseCacheTo(`type=local,dest=${dest},mode=max`)] });
    const layout = await readLayout(dest);
    // a step's layer (the base image's is in the cache too, but B has it)
    const victim = layout.manifest.layers[layout.config[CACHE_CONFIG_KEY].steps[0].layer!].digest;
    const file = path.join(dest, 'blobs', 'sha256', victim.slice(7));
    const bytes = await fs.readFile(file);
    bytes[bytes.length - 9] ^= 0xff;
    await fs.writeFile(file, bytes);
    const rootB = await freshRoot();
    await assert.rejects(run(rootB, await context({ Dockerfile: 'FROM busybox:latest\nRUN echo x > /x\nRUN echo y > /y\n' }), { cacheFrom: [parseCacheFrom(`type=local,src=${dest}`)] }), (e: Error) => {
      assert.match(e.message, new RegExp(`could not fetch layer ${victim} from the cache type=local,src=`));
      return true;
    });
    assert.ok(!(await blobsOf(rootB)).has(victim));
  });

  it('a failed export is a warning by default and fails the build with ignore-error=false (CLI)', async () => {
    const ctx = await context({ Dockerfile: 'FROM busybox:latest\nRUN echo z > /z\n' });
    const notADir = path.join(work, 'a-file');
    await fs.writeFile(notADir, 'x');
    const warned = await runKiln(['build', '--progress', 'plain', '--cache-to', `type=local,dest=${notADir}/sub`, ctx], { root: rootA });
    assert.equal(warned.code, 0, warned.stderr);
    assert.match(warned.stderr, /WARNING: cache export to type=local,dest=.*a-file\/sub failed \(the image is built\): /);
    const failed = await runKiln(['build', '--progress', 'plain', '--cache-to', `type=local,dest=${notADir}/sub,ignore-error=false`, ctx], { root: rootA });
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /cache export to type=local,dest=.*a-file\/sub failed: /);
    assert.doesNotMatch(failed.stderr, /\n\s+at /, 'no stack trace');
  });

  it('the CLI reads --cache-from and --cache-to (buildx syntax) and shows every step cached', async () => {
    const ctx = await context({ Dockerfile: 'FROM busybox:latest\nRUN echo cli > /cli\n' });
    const dest = path.join(work, 'cache-cli');
    const a = await runKiln(['build', '--progress', 'plain', '--cache-to', `type=local,dest=${dest},mode=max,compression=uncompressed`, ctx], { root: rootA });
    assert.equal(a.code, 0, a.stderr);
    const layout = await readLayout(dest);
    assert.equal(layout.manifest.layers[0].mediaType, 'application/vnd.oci.image.layer.v1.tar');
    const rootB = await freshRoot();
    const b = await runKiln(['build', '--progress', 'plain', '--cache-from', `type=local,src=${dest}`, await context({ Dockerfile: 'FROM busybox:latest\nRUN echo cli > /cli\n' })], { root: rootB });
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /RUN echo cli > \/cli\n#\d+ CACHED/);
    const bad = await runKiln(['build', '--cache-to', 'type=s3,bucket=x', ctx], { root: rootA });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--cache-to: unknown cache type "s3"/);
  });
});

describe('cache specs (buildx syntax)', () => {
  it('parses every type and option', () => {
    assert.deepEqual(parseCacheTo('type=local,dest=/c,mode=max,compression=uncompressed,ignore-error=false'), { type: 'local', dest: '/c', mode: 'max', compression: 'uncompressed', ignoreError: false });
    assert.deepEqual(parseCacheTo('type=registry,ref=localhost:5000/app:cache,cache-mounts=npm,apt'), { type: 'registry', ref: 'localhost:5000/app:cache', cacheMounts: ['npm', 'apt'] });
    assert.deepEqual(parseCacheTo('type=registry,ref=r/a:c,cache-mounts=all,mode=min'), { type: 'registry', ref: 'r/a:c', cacheMounts: 'all', mode: 'min' });
    assert.deepEqual(parseCacheTo('type=inline'), { type: 'inline' });
    // buildx's OCI-form switches: what kiln's cache always is
    assert.deepEqual(parseCacheTo('type=registry,ref=r/a:c,oci-mediatypes=true,image-manifest=true'), { type: 'registry', ref: 'r/a:c' });
    assert.deepEqual(parseCacheTo('type=local,dest=/c,oci-mediatypes=true'), { type: 'local', dest: '/c' });
    assert.deepEqual(parseCacheFrom('localhost:5000/app:cache'), { type: 'registry', ref: 'localhost:5000/app:cache' });
    assert.deepEqual(parseCacheFrom('type=local,src=/c'), { type: 'local', src: '/c' });
    assert.deepEqual(parseCacheFrom('type=registry,ref=r/a:c'), { type: 'registry', ref: 'r/a:c' });
  });

  it('refuses what it does not know, saying what it takes', () => {
    assert.throws(() => parseCacheTo('type=gha'), /unknown cache type "gha"/);
    assert.throws(() => parseCacheTo('dest=/x'), /has no type=/);
    assert.throws(() => parseCacheTo('type=local'), /type=local needs dest=/);
    assert.throws(() => parseCacheTo('type=local,dest=/x,ref=y'), (e: Error & { hint?: string }) => /unknown option "ref"/.test(e.message) && /dest/.test(e.hint ?? ''));
    assert.throws(() => parseCacheTo('type=local,dest=/x,mode=all'), /mode=all is not min or max/);
    assert.throws(() => parseCacheTo('type=inline,mode=max'), /mode=min only/);
    assert.throws(() => parseCacheTo('type=local,dest=/x,compression=zip'), /compression=zip/);
    assert.throws(() => parseCacheTo('type=local,dest=/x,ignore-error=maybe'), /not true or false/);
    assert.throws(() => parseCacheFrom('type=local,dest=/x'), /unknown option "dest"/);
    assert.throws(() => parseCacheFrom('type=registry'), /needs ref=/);
    assert.throws(() => parseCacheTo('type=local,dest=/x,stray'), /"stray" is not key=value/);
    assert.throws(() => parseCacheTo('type=registry,ref=r/a:c,oci-mediatypes=false'), (e: Error & { code?: string; hint?: string }) => /oci-mediatypes=false is not supported/.test(e.message) && e.code === 'invalid' && /leave oci-mediatypes= out/.test(e.hint ?? ''));
    assert.throws(() => parseCacheTo('type=registry,ref=r/a:c,image-manifest=no'), /image-manifest=no is not true or false/);
    assert.throws(() => parseCacheTo('type=inline,oci-mediatypes=true'), /unknown option "oci-mediatypes"/);
  });
});
