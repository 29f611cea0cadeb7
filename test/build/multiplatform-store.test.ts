/**
 * A multi-platform image in the store and out of it: kiln images lists it once with its
 * platforms, kiln run / inspect / save pick one platform (save --format oci keeps the index),
 * --push sends the index to a real registry (read back by skopeo), and --explain, --cache-to
 * and --cache-from work with several platforms. Real runc over real overlayfs; arm64 under
 * qemu-user-static.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fs } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { dockerCli, haveTool, isRoot, multiPlatformBusybox, runCommand, runKiln, tempDir, workspace, type Workspace } from '../helpers.js';
import { build, parseCacheFrom, parseCacheTo } from '../../src/build.js';
import { ContentStore } from '../../src/oci/store.js';
import { validateOCI } from '../../src/oci/schema.js';
import { MediaType, type ImageIndex } from '../../src/oci/types.js';
import { writeIndex } from '../../src/oci/walk.js';
import { startRegistry, haveRegistry } from '../registry/harness.js';
import { arm64Problem, inspectJSON } from './multiplatform-helpers.js';

const skip = isRoot() ? false : 'RUN and overlayfs need root';
const AMD64 = { os: 'linux', architecture: 'amd64' };
const ARM64 = { os: 'linux', architecture: 'arm64' };

const dockerfile = ['FROM busybox', 'ARG TARGETARCH', 'RUN uname -m > /arch && echo "$TARGETARCH" > /targetarch', 'CMD ["cat", "/arch"]', ''].join('\n');

describe('a multi-platform image in the store', { skip }, () => {
  let ws: Workspace;
  let emulation: string | undefined;
  let ctx: string;
  let indexDigest: string;

  before(async () => {
    ws = await workspace();
    emulation = await arm64Problem();
    if (emulation) return;
    await multiPlatformBusybox(ws.root);
    ctx = await ws.context({ Dockerfile: dockerfile });
    const r = await runKiln(['build', '-q', '--platform', 'linux/amd64,linux/arm64', '-t', 'mps:1', ctx], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
    indexDigest = r.stdout.trim();
  });
  after(() => ws.cleanup());

  it('kiln images lists it once, with its platforms, under the index digest', async (t) => {
    if (emulation) return t.skip(emulation);
    const r = await runKiln(['images', '--format', 'json', 'mps'], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { Tag: string; FullID: string; Digest: string; Platforms: string });
    assert.equal(rows.length, 1);
    assert.equal(rows[0].Digest, indexDigest);
    assert.equal(rows[0].FullID, indexDigest, 'the id of a multi-platform image is its index digest, as kiln build -q printed');
    assert.equal(rows[0].Platforms, 'linux/amd64,linux/arm64');
    const table = await runKiln(['images'], { root: ws.root });
    assert.match(table.stdout.split('\n')[0], /PLATFORMS$/);
    assert.match(table.stdout, /mps\s+1\s+[0-9a-f]{12}\s.*linux\/amd64,linux\/arm64/);
    // the id (a prefix of it) names the image, as docker's image ids do
    const byId = await inspectJSON(ws.root, [indexDigest.slice(7, 19), '--platform', 'linux/arm64']);
    assert.equal(byId.config.architecture, 'arm64');
  });

  it('kiln run --platform runs each platform (arm64 under emulation); the default is this machine\'s', async (t) => {
    if (emulation) return t.skip(emulation);
    const host = await runKiln(['run', 'mps:1'], { root: ws.root });
    assert.equal(host.code, 0, host.stderr);
    assert.equal(host.stdout.trim(), 'x86_64');
    const arm = await runKiln(['run', '--platform', 'linux/arm64', 'mps:1', 'sh', '-c', 'cat /arch /targetarch; uname -m'], { root: ws.root });
    assert.equal(arm.code, 0, arm.stderr);
    assert.deepEqual(arm.stdout.trim().split('\n'), ['aarch64', 'arm64', 'aarch64']);
    const none = await runKiln(['run', '--platform', 'linux/s390x', 'mps:1'], { root: ws.root });
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /has no manifest for linux\/s390x \(it has: linux\/amd64, linux\/arm64\)/);
    assert.doesNotMatch(none.stderr, /\n\s+at /, 'no stack trace');
  });

  it('kiln save --format oci keeps the index; --platform keeps one manifest; skopeo reads both', async (t) => {
    if (emulation) return t.skip(emulation);
    if (!haveTool('skopeo')) return t.skip('skopeo not installed');
    const out = await ws.context({});
    const all = path.join(out, 'all.tar');
    const one = path.join(out, 'arm64.tar');
    assert.equal((await runKiln(['save', '--format', 'oci', '-o', all, 'mps:1'], { root: ws.root })).code, 0);
    assert.equal((await runKiln(['save', '--format', 'oci', '--platform', 'linux/arm64', '-o', one, 'mps:1'], { root: ws.root })).code, 0);
    const raw = await runCommand('skopeo', ['inspect', '--raw', `oci-archive:${all}`]);
    assert.equal(raw.code, 0, raw.stderr);
    const index = JSON.parse(raw.stdout) as ImageIndex;
    assert.equal(index.mediaType, MediaType.ociIndex);
    assert.deepEqual(validateOCI('index', index), []);
    assert.deepEqual(index.manifests.map((m) => m.platform?.architecture), ['amd64', 'arm64']);
    const armInfo = await runCommand('skopeo', ['inspect', '--override-arch', 'arm64', `oci-archive:${all}`]);
    assert.equal(armInfo.code, 0, armInfo.stderr);
    assert.equal((JSON.parse(armInfo.stdout) as { Architecture: string }).Architecture, 'arm64');
    const oneRaw = await runCommand('skopeo', ['inspect', '--raw', `oci-archive:${one}`]);
    assert.equal(oneRaw.code, 0, oneRaw.stderr);
    const manifest = JSON.parse(oneRaw.stdout) as { mediaType: string };
    assert.equal(manifest.mediaType, MediaType.ociManifest);
    assert.equal(`sha256:${(await import('node:crypto')).createHash('sha256').update(oneRaw.stdout).digest('hex')}`, index.manifests[1].digest);
  });

  it('kiln save (docker) takes this machine\'s platform or --platform; docker load reads the arm64 one', async (t) => {
    if (emulation) return t.skip(emulation);
    const out = await ws.context({});
    const arm = path.join(out, 'arm64-docker.tar');
    const r = await runKiln(['save', '--platform', 'linux/arm64', '-o', arm, 'mps:1'], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
    const host = await runKiln(['save', '-o', path.join(out, 'host.tar'), 'mps:1'], { root: ws.root });
    assert.equal(host.code, 0, host.stderr);
    if (!existsSync(dockerCli) || spawnSync(dockerCli, ['info'], { stdio: 'ignore', timeout: 20_000 }).status !== 0) return t.skip('no docker engine');
    const name = `kiln-test-mp-${process.pid}:arm64`;
    assert.equal((await runKiln(['tag', 'mps:1', name.replace(':arm64', ':src')], { root: ws.root })).code, 0);
    const tagged = path.join(out, 'named.tar');
    assert.equal((await runKiln(['save', '--platform', 'linux/arm64', '-o', tagged, name.replace(':arm64', ':src')], { root: ws.root })).code, 0);
    try {
      const loaded = await runCommand(dockerCli, ['load', '-i', tagged]);
      assert.equal(loaded.code, 0, loaded.stderr);
      const arch = await runCommand(dockerCli, ['image', 'inspect', '--format', '{{.Architecture}}/{{.Os}}', name.replace(':arm64', ':src')]);
      assert.equal(arch.stdout.trim(), 'arm64/linux');
    } finally {
      await runCommand(dockerCli, ['rmi', '-f', name.replace(':arm64', ':src')]);
    }
  });

  it('kiln save (docker) of an index without this machine\'s platform says how to choose', async (t) => {
    if (emulation) return t.skip(emulation);
    // an index of arm64 alone (as a pulled arm64-only image): the arm64 entry of mps:1's index
    const store = await ContentStore.open(ws.root);
    const index = await store.readJSON<ImageIndex>(indexDigest);
    await store.setRef('mps:foreign', await writeIndex(store, index.manifests.filter((m) => m.platform?.architecture === 'arm64')));
    const out = await ws.context({});
    const r = await runKiln(['save', '-o', path.join(out, 'x.tar'), 'mps:foreign'], { root: ws.root });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /has no manifest for linux\/amd64 \(it has: linux\/arm64\)/);
    assert.match(r.stderr, /--platform|--format oci/);
    assert.equal(existsSync(path.join(out, 'x.tar')), false, 'nothing half-written');
    const ok = await runKiln(['save', '--format', 'oci', '-o', path.join(out, 'x.tar'), 'mps:foreign'], { root: ws.root });
    assert.equal(ok.code, 0, ok.stderr);
  });

  it('--push sends the index and both manifests; skopeo inspect --raw reads an index of both platforms', async (t) => {
    if (emulation) return t.skip(emulation);
    if (!haveRegistry() || !haveTool('skopeo')) return t.skip('needs docker-registry and skopeo');
    const reg = await startRegistry();
    try {
      const ref = `${reg.host}/team/mp:1`;
      const r = await runKiln(['build', '--progress', 'plain', '--platform', 'linux/amd64,linux/arm64', '-t', ref, '--push', ctx], { root: ws.root });
      assert.equal(r.code, 0, r.stderr);
      const raw = await runCommand('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${ref}`]);
      assert.equal(raw.code, 0, raw.stderr);
      const index = JSON.parse(raw.stdout) as ImageIndex;
      assert.deepEqual(validateOCI('index', index), []);
      assert.deepEqual(index.manifests.map((m) => m.platform), [AMD64, ARM64]);
      for (const arch of ['amd64', 'arm64']) {
        const info = await runCommand('skopeo', ['inspect', '--tls-verify=false', '--override-arch', arch, `docker://${ref}`]);
        assert.equal(info.code, 0, info.stderr);
        assert.equal((JSON.parse(info.stdout) as { Architecture: string }).Architecture, arch);
      }
    } finally {
      await reg.stop();
    }
  });

  it('--explain with several platforms: a rebuild says every step came from the cache', async (t) => {
    if (emulation) return t.skip(emulation);
    const own = await ws.context({ Dockerfile: dockerfile });
    const args = ['build', '--explain', '--progress', 'quiet', '--platform', 'linux/amd64,linux/arm64', '-t', 'mps:explain', own];
    const first = await runKiln(args, { root: ws.root });
    assert.equal(first.code, 0, first.stderr);
    const again = await runKiln(args, { root: ws.root });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /every step came from the cache/);
    await fs.writeFile(path.join(own, 'Dockerfile'), dockerfile.replace('> /targetarch', '> /targetarch && echo 2 > /two'));
    const third = await runKiln(args, { root: ws.root });
    assert.equal(third.code, 0, third.stderr);
    // each platform's RUN ran, and each says why, compared with that platform's previous step
    for (const p of ['amd64', 'arm64']) {
      const m = new RegExp(`\\[linux/${p} stage-0 3/4\\] RUN [^\\n]*\\n((?:    - [^\\n]*\\n)+)`).exec(third.stderr);
      assert.ok(m, `${p}'s RUN is explained: ${third.stderr}`);
      assert.doesNotMatch(m[1], /no earlier build/);
    }
  });

  it('--cache-to with several platforms exports one cache; a fresh root builds every platform from it', async (t) => {
    if (emulation) return t.skip(emulation);
    const cacheDir = path.join(await ws.context({}), 'cache');
    const platforms = [AMD64, ARM64];
    const first = await build({ root: ws.root, contextDir: ctx, tags: ['mps:cached'], platforms, cacheTo: [parseCacheTo(`type=local,dest=${cacheDir},mode=max`)] });
    assert.equal(first.cacheExports?.[0]?.error, undefined);
    const fresh = await tempDir('kiln-mp-fresh-');
    try {
      // the same base (an imported base's config has its import time): moved over as an OCI archive
      const base = path.join(fresh.dir, 'busybox.tar');
      assert.equal((await runKiln(['save', '--format', 'oci', '-o', base, 'busybox:latest'], { root: ws.root })).code, 0);
      const freshRoot = path.join(fresh.dir, 'root');
      const loaded = await runKiln(['load', '-i', base], { root: freshRoot });
      assert.equal(loaded.code, 0, loaded.stderr);
      const second = await build({ root: freshRoot, contextDir: ctx, tags: ['mps:cached'], platforms, cacheFrom: [parseCacheFrom(`type=local,src=${cacheDir}`)] });
      const runs = second.steps.filter((s) => s.kind === 'exec');
      assert.equal(runs.length, 2);
      assert.ok(runs.every((s) => s.cached), `every platform's RUN came from the cache: ${runs.map((s) => `${s.name} ${s.cached}`).join('; ')}`);
      // the same layers for each platform (the configs differ by their created time)
      assert.deepEqual(
        second.platforms?.map((p) => p.config.rootfs.diff_ids),
        first.platforms?.map((p) => p.config.rootfs.diff_ids),
      );
      const store = await ContentStore.open(freshRoot);
      const index = await store.readJSON<ImageIndex>(second.manifestDescriptor.digest);
      assert.equal(index.manifests.length, 2);
      await fs.access(cacheDir);
    } finally {
      await fresh.cleanup();
    }
  });
});

describe('multi-platform bases from a registry', { skip }, () => {
  it('a fresh root pulls each platform of the base from its index, and builds both', async (t) => {
    if (!haveRegistry()) return t.skip('needs docker-registry');
    const emulation = await arm64Problem();
    if (emulation) return t.skip(emulation);
    const ws = await workspace();
    const reg = await startRegistry();
    const fresh = await tempDir('kiln-mp-pull-');
    try {
      await multiPlatformBusybox(ws.root);
      const base = `${reg.host}/lib/busybox:latest`;
      assert.equal((await runKiln(['tag', 'busybox:latest', base], { root: ws.root })).code, 0);
      const pushed = await runKiln(['push', base], { root: ws.root });
      assert.equal(pushed.code, 0, pushed.stderr);
      const ctx = await ws.context({ Dockerfile: `FROM ${base}\nRUN uname -m > /arch\n` });
      const root = path.join(fresh.dir, 'root');
      const env = { SOURCE_DATE_EPOCH: '1700000000' };
      const r = await runKiln(['build', '-q', '--platform', 'linux/amd64,linux/arm64', '-t', 'pulled:1', ctx], { root, env });
      assert.equal(r.code, 0, r.stderr);
      for (const [p, arch] of [['linux/amd64', 'x86_64'], ['linux/arm64', 'aarch64']]) {
        const run = await runKiln(['run', '--platform', p, 'pulled:1', 'cat', '/arch'], { root });
        assert.equal(run.code, 0, run.stderr);
        assert.equal(run.stdout.trim(), arch);
      }
      // built again from the store: each platform's base is there (base-images.ts tells a tag
      // pulled for another platform), so nothing is pulled and the index is the same
      await reg.stop();
      const again = await runKiln(['build', '-q', '--platform', 'linux/amd64,linux/arm64', '-t', 'pulled:2', ctx], { root, env });
      assert.equal(again.code, 0, again.stderr);
      assert.equal(again.stdout.trim(), r.stdout.trim(), again.stderr);
    } finally {
      await fresh.cleanup();
      await reg.stop();
      await ws.cleanup();
    }
  });
});
