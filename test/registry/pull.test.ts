/**
 * kiln pull, FROM pulling on first use, build --pull and kiln inspect docker://, against a
 * real docker-registry on 127.0.0.1 that skopeo filled from archives kiln saved.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { haveTool, isRoot, kilnBin, runCommand, runKiln, tempDir, workspace, type Workspace } from '../helpers.js';
import { startRegistry, type Registry } from './harness.js';
import { kilnPaths } from '../../src/paths.js';
import { blobSources, repoDigests } from '../../src/registry/sources.js';
import { startProxy, type FaultProxy } from './proxy.js';
import { mustKiln, pushTwoPlatforms, pushWithSkopeo, remoteDigest } from './pull-images.js';

const missing = ['docker-registry', 'skopeo'].filter((t) => !haveTool(t));
const skip = missing.length > 0 ? `${missing.join(', ')} not installed` : false;

let ws: Workspace;
let reg: Registry;
let proxy: FaultProxy;
/** The registry as kiln reaches it: through a proxy that counts requests (skopeo goes direct). */
let host: string;
/** The registry itself, for skopeo. */
let direct: string;
const cleanups: Array<() => Promise<void>> = [];

/** `s` matched literally in a RegExp. */
function esc(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A fresh, empty kiln root (removed after the suite). */
async function freshRoot(): Promise<string> {
  const t = await tempDir('kiln-pull-root-');
  cleanups.push(t.cleanup);
  return t.dir;
}

/** GET requests for blobs (layers and configs) of `repo` the registry has answered so far. */
function blobGets(repo: string): string[] {
  return proxy.requests.filter((r) => r.method === 'GET' && r.path.startsWith(`/v2/${repo}/blobs/`)).map((r) => r.path.slice(`/v2/${repo}/blobs/`.length));
}

/** Every request the registry has answered so far. */
function requestCount(): number {
  return proxy.requests.length;
}

before(async () => {
  if (skip) return;
  ws = await workspace();
  reg = await startRegistry();
  proxy = await startProxy(reg.host);
  host = proxy.host;
  direct = reg.host;
  // busybox as it is; the same in docker's formats; and v1/v2 of a tag that moves (the same
  // layer, a different config)
  await pushWithSkopeo(ws.root, 'busybox:latest', `${direct}/bb:1`);
  await pushWithSkopeo(ws.root, 'busybox:latest', `${direct}/bb:docker`, 'docker');
  const v2 = await ws.context({ Dockerfile: 'FROM busybox\nLABEL version=2\n' });
  await mustKiln(ws.root, ['build', '-q', '-t', 'bb:v2', v2]);
  if (isRoot()) {
    const layered = await ws.context({ Dockerfile: 'FROM busybox\nRUN echo one > /one\nRUN echo two > /two\nRUN echo three > /three\n' });
    await mustKiln(ws.root, ['build', '-q', '-t', 'layers:1', layered]);
    await pushWithSkopeo(ws.root, 'layers:1', `${direct}/layers:1`);
  }
});

after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await proxy?.stop();
  await reg?.stop();
  await ws?.cleanup();
});

test('kiln pull stores the image as written, by the digest the registry serves; a second pull downloads nothing', { skip }, async () => {
  const root = await freshRoot();
  const digest = await remoteDigest(`${direct}/bb:1`);
  const out = await mustKiln(root, ['pull', `${host}/bb:1`]);
  const lines = out.trim().split('\n');
  assert.equal(lines[0], '1: Pulling from bb');
  assert.match(out, /^[a-f0-9]{12}: Pull complete /m);
  assert.ok(lines.includes(`Digest: ${digest}`), out);
  assert.ok(lines.includes(`Status: Downloaded newer image for ${host}/bb:1`), out);
  assert.equal(lines.at(-1), `${host}/bb:1`);
  assert.match(await mustKiln(root, ['images']), new RegExp(`^${esc(host)}/bb +1 `, 'm'));
  const inspected = JSON.parse(await mustKiln(root, ['inspect', `${host}/bb:1`])) as { digest: string };
  assert.equal(inspected.digest, digest);

  // remembered for kiln images --digests and for cross-repository mounts on push
  assert.deepEqual(await repoDigests(root, digest), [`${host}/bb@${digest}`]);
  const layer = (JSON.parse(await mustKiln(root, ['inspect', `${host}/bb:1`])) as { manifest: { layers: Array<{ digest: string }> } }).manifest.layers[0].digest;
  assert.deepEqual(await blobSources(root, host, layer), ['bb']);

  const gets = blobGets('bb').length;
  const again = await mustKiln(root, ['pull', `${host}/bb:1`]);
  assert.match(again, /^[a-f0-9]{12}: Already exists$/m);
  assert.match(again, new RegExp(`^Status: Image is up to date for ${esc(host)}/bb:1$`, 'm'));
  assert.equal(blobGets('bb').length, gets, 'a second pull fetched blobs');
});

test('an image of several layers downloads each once, a few at a time, and runs with all of them', { skip: skip || (!isRoot() && 'needs root for runc') }, async () => {
  const root = await freshRoot();
  const manifest = JSON.parse((await runCommand('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${direct}/layers:1`])).stdout) as { config: { digest: string }; layers: Array<{ digest: string }> };
  assert.equal(manifest.layers.length, 4);
  const gets = blobGets('layers').length;
  const out = await mustKiln(root, ['pull', `${host}/layers:1`]);
  assert.equal(out.match(/^[a-f0-9]{12}: Pull complete /gm)?.length, 4, out);
  assert.deepEqual(blobGets('layers').slice(gets).sort(), [manifest.config.digest, ...manifest.layers.map((l) => l.digest)].sort());
  const r = await runKiln(['run', `${host}/layers:1`, 'cat', '/one', '/two', '/three'], { root });
  assert.equal(r.stdout, 'one\ntwo\nthree\n', r.stderr);
});

test('an image skopeo pushed from a docker archive pulls and runs', { skip: skip || (!isRoot() && 'needs root for runc') }, async () => {
  const root = await freshRoot();
  assert.equal(await mustKiln(root, ['pull', '-q', `${host}/bb:docker`]), `${host}/bb:docker\n`);
  const r = await runKiln(['run', `${host}/bb:docker`, 'echo', 'hello from a pulled image'], { root });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'hello from a pulled image\n');
});

test('FROM a registry image pulls it on first use; a second build touches no network', { skip: skip || (!isRoot() && 'needs root for runc') }, async () => {
  const root = await freshRoot();
  const digest = await remoteDigest(`${direct}/bb:1`);
  const ctx = await ws.context({ Dockerfile: `FROM ${host}/bb:1\nRUN busybox ls /bin/busybox > /seen && cat /seen\n` });
  const first = await runKiln(['build', '--progress', 'plain', '-t', 'app:1', ctx], { root });
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, new RegExp(`#1 \\[internal\\] pull ${esc(host)}/bb:1\n`));
  assert.match(first.stderr, /^#2 .*RUN busybox ls/m);
  assert.match(first.stderr, /\/bin\/busybox/);
  // the pulled image is named as written and the build's FROM is its digest
  assert.equal((JSON.parse(await mustKiln(root, ['inspect', `${host}/bb:1`])) as { digest: string }).digest, digest);
  const ran = await runKiln(['run', 'app:1', 'cat', '/seen'], { root });
  assert.equal(ran.stdout, '/bin/busybox\n');

  const before = requestCount();
  const second = await runKiln(['build', '--progress', 'plain', '-t', 'app:1', ctx], { root });
  assert.equal(second.code, 0, second.stderr);
  assert.doesNotMatch(second.stderr, /pull/);
  assert.match(second.stderr, /CACHED/);
  assert.equal(requestCount(), before, 'the second build spoke to the registry');

  // the same image under a name whose host does not resolve: used from the store, no lookup made
  await mustKiln(root, ['tag', `${host}/bb:1`, 'registry.invalid:5000/bb:1']);
  const offline = await ws.context({ Dockerfile: 'FROM registry.invalid:5000/bb:1\nRUN echo offline\n' });
  const r = await runKiln(['build', '--progress', 'plain', offline], { root });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /offline/);
  // --pull asks the registry, whatever the store has: the failure says so, and the way out
  const pulled = await runKiln(['build', '--pull', offline], { root });
  assert.equal(pulled.code, 1);
  assert.match(pulled.stderr, /^error: .*Dockerfile:1:6: cannot pull registry\.invalid:5000\/bb:1 \(--pull\): cannot resolve the registry host registry\.invalid:5000/m);
  assert.match(pulled.stderr, /^hint: .*build without --pull to use the copy in the store$/m);
});

test('COPY --from a registry image pulls it too', { skip }, async () => {
  const root = await freshRoot();
  const ctx = await ws.context({ Dockerfile: `FROM scratch\nCOPY --from=${host}/bb:1 /bin/busybox /busybox\n` });
  const r = await runKiln(['build', '--progress', 'plain', '-t', 'copied:1', ctx], { root });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`\\[internal\\] pull ${esc(host)}/bb:1`));
  const img = JSON.parse(await mustKiln(root, ['inspect', 'copied:1'])) as { manifest: { layers: unknown[] } };
  assert.equal(img.manifest.layers.length, 1);
  // a misspelt stage name is still said to be neither a stage nor an image
  const typo = await ws.context({ Dockerfile: 'FROM scratch AS build\nFROM scratch\nCOPY --from=biuld /a /a\n' });
  const t = await runKiln(['build', typo], { root });
  assert.equal(t.code, 1);
  assert.match(t.stderr, /"biuld" is neither an earlier build stage nor an image in the store/);
  assert.match(t.stderr, /did you mean the stage "build"\?/);
});

test('a FROM neither in the store nor reachable says both, which host and why, and what to do', { skip }, async () => {
  const root = await freshRoot();
  const ctx = await ws.context({ Dockerfile: 'FROM registry.invalid:5000/team/base:1\n' });
  const r = await runKiln(['build', ctx], { root });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: .*Dockerfile:1:6: image registry\.invalid:5000\/team\/base:1 not found in the store, and the registry registry\.invalid:5000 could not be reached: .*registry\.invalid/m);
  assert.match(r.stderr, /^hint: kiln pull registry\.invalid:5000\/team\/base:1 once registry\.invalid:5000 answers.*kiln load \/ kiln import/m);

  const absent = await ws.context({ Dockerfile: `FROM ${host}/nothing-here:1\n` });
  const r2 = await runKiln(['build', absent], { root });
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, new RegExp(`image ${esc(host)}/nothing-here:1 not found in the store, nor in the registry: ${esc(host)}/nothing-here has no tag "1"`));
  assert.doesNotMatch(r2.stderr, /internal error|at .*\.js:\d+/);
});

test('build --pull re-resolves a moved tag and --explain names the new digest; without it the local copy is used', { skip: skip || (!isRoot() && 'needs root for runc') }, async () => {
  const root = await freshRoot();
  await pushWithSkopeo(ws.root, 'busybox:latest', `${direct}/moving:stable`);
  const v1 = await remoteDigest(`${direct}/moving:stable`);
  const ctx = await ws.context({ Dockerfile: `FROM ${host}/moving:stable\nRUN echo step > /step\n` });
  const meta = path.join(await freshRoot(), 'meta.json');
  const build = async (...flags: string[]): Promise<string> => {
    const r = await runKiln(['build', '--progress', 'plain', '--explain', '--metadata-file', meta, ...flags, ctx], { root });
    assert.equal(r.code, 0, r.stderr);
    return r.stderr;
  };
  await build();
  // the tag moves to an image with the same layer and another config
  await pushWithSkopeo(ws.root, 'bb:v2', `${direct}/moving:stable`);
  const v2 = await remoteDigest(`${direct}/moving:stable`);
  assert.notEqual(v1, v2);

  const layersBefore = blobGets('moving').filter((d) => d !== ''); // configs and layers so far
  const local = await build();
  assert.doesNotMatch(local, /pull/);
  assert.equal((JSON.parse(await mustKiln(root, ['inspect', `${host}/moving:stable`])) as { digest: string }).digest, v1);

  const pulled = await build('--pull');
  assert.match(pulled, /\[internal\] pull /);
  assert.match(pulled, new RegExp(`base image ${esc(host)}/moving:stable now resolves to ${v2}`));
  assert.equal((JSON.parse(await mustKiln(root, ['inspect', `${host}/moving:stable`])) as { digest: string }).digest, v2);
  // only the new config was downloaded: the layer was in the store
  const fetched = blobGets('moving').slice(layersBefore.length);
  const v2Manifest = JSON.parse((await runCommand('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${direct}/moving:stable`])).stdout) as { config: { digest: string }; layers: Array<{ digest: string }> };
  assert.deepEqual(fetched, [v2Manifest.config.digest]);
  // --pull again: the tag did not move, nothing is downloaded
  const gets = blobGets('moving').length;
  await build('--pull');
  assert.equal(blobGets('moving').length, gets);
  // --pull with a base named by a digest the store has: nothing to re-resolve, no request
  const pinned = await ws.context({ Dockerfile: `FROM ${host}/moving:stable@${v1}\nRUN echo pinned\n` });
  const requests = requestCount();
  const r = await runKiln(['build', '--pull', '--progress', 'plain', pinned], { root });
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /\[internal\] pull/);
  assert.equal(requestCount(), requests, 'a build --pull of a base by digest asked the registry');
});

test('an index: the host platform by default, --platform another, a clear error for one it lacks', { skip }, async () => {
  const root = await freshRoot();
  const pushed = await pushTwoPlatforms(ws.root, 'busybox:latest', `${direct}/multi:1`);
  const out = await mustKiln(root, ['pull', `${host}/multi:1`]);
  assert.match(out, new RegExp(`^Digest: ${pushed.index}$`, 'm'));
  const hostImage = JSON.parse(await mustKiln(root, ['inspect', `${host}/multi:1`])) as { digest: string; config: { architecture: string } };
  assert.equal(hostImage.digest, pushed.amd64);

  await mustKiln(root, ['pull', '-q', '--platform', 'linux/arm64', `${host}/multi:1`]);
  const arm = JSON.parse(await mustKiln(root, ['inspect', `${host}/multi:1`])) as { digest: string; config: { architecture: string } };
  assert.equal(arm.digest, pushed.arm64);
  assert.equal(arm.config.architecture, 'arm64');

  // the tag names the arm64 manifest now: a build for this machine takes its own platform's
  // manifest of the same index, which the first pull stored, without asking the registry
  const ctx = await ws.context({ Dockerfile: `FROM ${host}/multi:1\nLABEL built=yes\n` });
  const before = requestCount();
  const built = await runKiln(['build', '--progress', 'plain', ctx], { root });
  assert.equal(built.code, 0, built.stderr);
  assert.doesNotMatch(built.stderr, /\[internal\] pull /);
  assert.doesNotMatch(built.stderr, /InvalidBaseImagePlatform/);
  assert.equal(requestCount(), before);
  // a root that has only the arm64 manifest pulls this machine's platform's, and the tag names it
  const armOnly = await freshRoot();
  await mustKiln(armOnly, ['pull', '-q', '--platform', 'linux/arm64', `${host}/multi:1`]);
  const pulledBuild = await runKiln(['build', '--progress', 'plain', ctx], { root: armOnly });
  assert.equal(pulledBuild.code, 0, pulledBuild.stderr);
  assert.match(pulledBuild.stderr, /\[internal\] pull /);
  assert.equal((JSON.parse(await mustKiln(armOnly, ['inspect', `${host}/multi:1`])) as { digest: string }).digest, pushed.amd64);
  const requests = requestCount();
  const again = await runKiln(['build', '--progress', 'plain', ctx], { root: armOnly });
  assert.equal(again.code, 0, again.stderr);
  assert.equal(requestCount(), requests);

  const r = await runKiln(['pull', '--platform', 'linux/s390x', `${host}/multi:1`], { root });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: .*multi:1.* has no manifest for linux\/s390x \(it has: linux\/amd64, linux\/arm64\)$/m);
  assert.match(r.stderr, /^hint: .*--platform/m);

  // by the index's digest: the name is the index's (its other platforms are not in the store)
  const byIndex = `${host}/multi@${pushed.index}`;
  assert.equal((await mustKiln(root, ['pull', '-q', byIndex])).trim(), byIndex);
  const viaIndex = JSON.parse(await mustKiln(root, ['inspect', byIndex])) as { digest: string; index: { digest: string } };
  assert.deepEqual([viaIndex.index.digest, viaIndex.digest], [pushed.index, pushed.amd64]);
  assert.match(await mustKiln(root, ['images']), new RegExp(`^${esc(host)}/multi +<none> `, 'm'));

  // remote inspect chooses the same way, and reads no layer
  const gets = blobGets('multi').length;
  const remote = JSON.parse(await mustKiln(root, ['inspect', '--platform', 'linux/arm64', `docker://${host}/multi:1`])) as { Digest: string; Architecture: string };
  assert.equal(remote.Digest, pushed.index);
  assert.equal(remote.Architecture, 'arm64');
  const manifest = JSON.parse((await runCommand('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${direct}/multi:1`])).stdout) as { manifests: unknown[] };
  assert.equal(manifest.manifests.length, 2);
  const layer = (JSON.parse(await mustKiln(root, ['inspect', `${host}/multi:1`])) as { manifest: { layers: Array<{ digest: string }> } }).manifest.layers[0].digest;
  assert.ok(!blobGets('multi').slice(gets).includes(layer), 'inspect docker:// downloaded a layer');
});

test('name:tag@digest fetches by digest; a wrong digest fails clearly and stores nothing', { skip }, async () => {
  const root = await freshRoot();
  const digest = await remoteDigest(`${direct}/bb:1`);
  const wrong = `sha256:${'0'.repeat(64)}`;
  const r = await runKiln(['pull', `${host}/bb:1@${wrong}`], { root });
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`^error: ${esc(host)}/bb has no manifest ${wrong}`, 'm'));
  const listed = await mustKiln(root, ['images']);
  assert.doesNotMatch(listed, /bb/);

  // the digest wins over the tag: bb:docker@<bb:1's digest> is bb:1's image, named bb:docker
  const byBoth = await mustKiln(root, ['pull', `${host}/bb:docker@${digest}`]);
  assert.match(byBoth, new RegExp(`^Digest: ${digest}$`, 'm'));
  assert.equal((JSON.parse(await mustKiln(root, ['inspect', `${host}/bb:docker`])) as { digest: string }).digest, digest);
  // a digest alone: named by it
  const byDigest = await mustKiln(root, ['pull', `${host}/bb@${digest}`]);
  assert.equal(byDigest.trim().split('\n').at(-1), `${host}/bb@${digest}`);
  assert.match(await mustKiln(root, ['images']), new RegExp(`${esc(host)}/bb +<none>`));
});

test('kiln inspect docker:// shows what skopeo inspect shows; --raw prints the bytes the registry serves', { skip }, async () => {
  const root = await freshRoot();
  for (const ref of [`${host}/bb:1`, `${host}/bb:docker`]) {
    const ours = JSON.parse(await mustKiln(root, ['inspect', `docker://${ref}`])) as Record<string, unknown>;
    const theirs = JSON.parse((await runCommand('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`])).stdout) as Record<string, unknown>;
    assert.deepEqual({ ...ours, RepoTags: (ours.RepoTags as string[]).sort() }, { ...theirs, RepoTags: (theirs.RepoTags as string[]).sort() });
    const raw = await runKiln(['inspect', '--raw', `docker://${ref}`], { root });
    const skopeoRaw = await runCommand('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
    assert.equal(raw.stdout, skopeoRaw.stdout);
  }
  // nothing was pulled
  assert.doesNotMatch(await mustKiln(root, ['images']), /bb/);
  const bad = await runKiln(['inspect', `docker://${host}/bb:nope`], { root });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /has no tag "nope"/);
  const local = await runKiln(['inspect', '--raw', 'busybox'], { root });
  assert.match(local.stderr, /^error: --raw prints what a registry serves\nhint: write kiln inspect docker:\/\/busybox --raw/m);
});

test('the layers of an image pushed in docker formats are unpacked and used by RUN', { skip: skip || (!isRoot() && 'needs root for runc') }, async () => {
  const root = await freshRoot();
  const ctx = await ws.context({ Dockerfile: `FROM ${host}/bb:docker\nRUN ls /bin/busybox /bin/sh > /listing\nCMD ["cat", "/listing"]\n` });
  await mustKiln(root, ['build', '-q', '-t', 'listing:1', ctx]);
  const r = await runKiln(['run', 'listing:1'], { root });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '/bin/busybox\n/bin/sh\n');
});

test('a registry that serves wrong bytes for a blob: the pull fails naming the digest, and nothing is named or stored', { skip }, async () => {
  const root = await freshRoot();
  const manifest = JSON.parse((await runCommand('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${direct}/bb:1`])).stdout) as { config: { digest: string }; layers: Array<{ digest: string }> };
  const blobs = [manifest.config.digest, ...manifest.layers.map((l) => l.digest)];
  const flipping = await startProxy(direct);
  // every blob GET, retries included, has its first byte flipped
  flipping.flipBlobByte(0, 1000);
  try {
    const r = await runKiln(['pull', `${flipping.host}/bb:1`], { root });
    assert.equal(r.code, 1, r.stdout);
    const named = blobs.filter((d) => r.stderr.includes(d));
    assert.ok(named.length > 0, `the error names no digest of the image:\n${r.stderr}`);
    assert.doesNotMatch(r.stderr, /internal error|at .*\.js:\d+/);
  } finally {
    await flipping.stop();
  }
  assert.doesNotMatch(await mustKiln(root, ['images']), /bb/);
  const stored = await fs.readdir(kilnPaths(root).blobs).catch(() => [] as string[]);
  assert.deepEqual(blobs.filter((d) => stored.includes(d.slice(7))), [], 'a corrupt blob was stored');
  assert.deepEqual(await fs.readdir(kilnPaths(root).tmp).catch(() => [] as string[]), []);
});

test('a pull interrupted mid-blob (SIGINT) stops, names nothing and leaves no temp file', { skip }, async () => {
  const root = await freshRoot();
  const stalling = await startProxy(direct);
  // every blob sends 1000 bytes, then nothing: the pull is mid-download when it is interrupted
  stalling.stallBlobAfter(1000, 1000);
  try {
    const child = spawn(process.execPath, [kilnBin, '--root', root, 'pull', `${stalling.host}/bb:1`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += String(c)));
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    while (!stalling.requests.some((q) => q.method === 'GET' && q.path.includes('/blobs/'))) await new Promise((r) => setTimeout(r, 50));
    // the blob's bytes are being written to the store's temp file now
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGINT');
    assert.equal(await exited, 130, stderr);
    assert.match(stderr, /interrupted \(SIGINT\)/);
  } finally {
    await stalling.stop();
  }
  assert.doesNotMatch(await mustKiln(root, ['images']), /bb/);
  assert.deepEqual(await fs.readdir(kilnPaths(root).tmp).catch(() => [] as string[]), []);
  assert.deepEqual(await fs.readdir(kilnPaths(root).leases).catch(() => [] as string[]), []);
});
