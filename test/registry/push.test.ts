/**
 * kiln push against a real docker-registry: what goes up (gzipped plain layers, manifests
 * last), what a second push and a push to another repository do, chunked uploads, and that a
 * push that fails or is interrupted leaves no tag. Peers read the result (skopeo).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { promises as fs } from 'node:fs';
import { KilnError } from '../../src/errors.js';
import { ContentStore } from '../../src/oci/store.js';
import { MediaType, type ImageIndex, type ImageManifest } from '../../src/oci/types.js';
import { writeIndex } from '../../src/oci/walk.js';
import { hostPlatform } from '../../src/oci/platform.js';
import { RegistryClient } from '../../src/registry/client.js';
import { pushImage } from '../../src/registry/push.js';
import { repoDigests } from '../../src/registry/sources.js';
import { haveTool, kilnBin, rootWithBusybox, runCommand, runKiln, tempDir } from '../helpers.js';
import { spawn } from 'node:child_process';
import { skipUnlessRegistry, startRegistry, type Registry } from './harness.js';
import { startProxy, type FaultProxy } from './proxy.js';
import { makeImage, randomData, registryTags, textData } from './push-fixtures.js';

let reg: Registry | undefined;
let ws: { root: string; cleanup: () => Promise<void> } | undefined;
const cleanups: Array<() => Promise<void>> = [];

before(async () => {
  if (process.env.KILN_SKIP_REGISTRY) return;
  ws = await rootWithBusybox();
});
after(async () => {
  for (const c of cleanups.reverse()) await c();
  await reg?.stop();
  await ws?.cleanup();
});

async function registry(): Promise<Registry> {
  reg ??= await startRegistry();
  return reg;
}

/** A client closed when the suite ends. */
function client(options: ConstructorParameters<typeof RegistryClient>[0] = {}): RegistryClient {
  const c = new RegistryClient(options);
  cleanups.push(async () => c.close());
  return c;
}

/** The suite's registry behind a fault proxy of its own (a host name no blob is recorded for). */
async function proxied(): Promise<{ r: Registry; proxy: FaultProxy }> {
  const r = await registry();
  const proxy = await startProxy(r.host);
  cleanups.push(() => proxy.stop());
  return { r, proxy };
}

async function freshRoot(): Promise<string> {
  const t = await tempDir('kiln-push-root-');
  cleanups.push(t.cleanup);
  return t.dir;
}

function skopeo(args: string[]) {
  return runCommand('skopeo', args, { timeoutMs: 120_000 });
}

test('kiln push sends busybox; skopeo inspects and copies it; a second push finds every layer there', async (t) => {
  if (skipUnlessRegistry(t)) return;
  const r = await registry();
  const push = await runKiln(['push', 'busybox:latest', `${r.host}/bb:1`], { root: ws!.root });
  assert.equal(push.code, 0, push.stderr);
  const m = /^(\S+):1@(sha256:[a-f0-9]{64})\n$/.exec(push.stdout);
  assert.ok(m, `stdout: ${push.stdout}`);
  assert.equal(m[1], `${r.host}/bb`);
  const digest = m[2];
  assert.match(push.stderr, new RegExp(`The push refers to repository \\[${r.host}/bb\\]`));
  assert.match(push.stderr, /^[a-f0-9]{12}: Pushed$/m);
  assert.match(push.stderr, new RegExp(`^1: digest: ${digest} size: \\d+$`, 'm'));
  assert.deepEqual(await registryTags(r.url, 'bb'), ['1']);

  if (haveTool('skopeo')) {
    const inspect = await skopeo(['inspect', '--tls-verify=false', `docker://${r.host}/bb:1`]);
    assert.equal(inspect.code, 0, inspect.stderr);
    const info = JSON.parse(inspect.stdout) as { Digest: string; Layers: string[]; Os: string };
    assert.equal(info.Digest, digest);
    assert.equal(info.Os, 'linux');
    const out = await freshRoot();
    const copy = await skopeo(['copy', '--src-tls-verify=false', `docker://${r.host}/bb:1`, `oci:${path.join(out, 'layout')}:bb`]);
    assert.equal(copy.code, 0, copy.stderr);
    const index = JSON.parse(await fs.readFile(path.join(out, 'layout', 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    assert.equal(index.manifests[0].digest, digest, 'skopeo stores the manifest kiln pushed, byte for byte');
  }

  const again = await runKiln(['push', '-q', 'busybox:latest', `${r.host}/bb:1`], { root: ws!.root });
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout, `${r.host}/bb:1@${digest}\n`);
  assert.equal(again.stderr, '', '-q prints only the reference');
  const loud = await runKiln(['push', 'busybox:latest', `${r.host}/bb:1`], { root: ws!.root });
  assert.match(loud.stderr, /: Layer already exists$/m);
  assert.doesNotMatch(loud.stderr, /: Pushed$/m);
});

test('plain layers are pushed gzipped, deterministically, compressed once; the local image records the repo digest', async (t) => {
  if (skipUnlessRegistry(t)) return;
  const r = await registry();
  const files = [randomData(3 << 20), textData(2 << 20), textData(300 << 10, 'small')];
  const rootA = await freshRoot();
  const local = await makeImage(rootA, 'app:1', files);
  const storeA = await ContentStore.open(rootA);
  const reg0 = client();
  const first = await pushImage({ root: rootA, store: storeA, client: reg0, source: 'app:1', ref: `${r.host}/team/app:1` });
  assert.notEqual(first.digest, local.manifest.digest, 'the pushed manifest names gzip layers');
  assert.equal(first.reference, `${r.host}/team/app:1@${first.digest}`);
  const layers = first.blobs.filter((b) => b.kind === 'layer');
  assert.equal(layers.length, 3);
  for (const [i, b] of layers.entries()) {
    assert.equal(b.result, 'uploaded');
    assert.equal(b.compressed, true);
    assert.equal(b.localDigest, local.layers[i].digest);
  }
  // the registry's manifest: gzip layers, the same config
  const remote = reg0.repository(`${r.host}/team/app`);
  const got = await remote.getManifest('1');
  assert.equal(got.descriptor.digest, first.digest);
  const manifest = JSON.parse(got.bytes.toString('utf8')) as ImageManifest;
  assert.deepEqual(manifest.layers.map((l) => l.mediaType), [MediaType.ociLayerGzip, MediaType.ociLayerGzip, MediaType.ociLayerGzip]);
  const localManifest = await storeA.readJSON<ImageManifest>(local.manifest.digest);
  assert.equal(manifest.config.digest, localManifest.config.digest, 'the config (the image ID) is unchanged');
  assert.ok(await storeA.hasBlob(first.digest), 'the pushed manifest is stored locally too');
  assert.deepEqual((await storeA.resolve('app:1'))?.digest, local.manifest.digest, 'the local name keeps the local manifest');
  assert.deepEqual(await repoDigests(rootA, local.manifest.digest), [`${r.host}/team/app@${first.digest}`]);

  // a second push: every blob there, nothing compressed
  const second = await pushImage({ root: rootA, store: storeA, client: reg0, source: 'app:1', ref: `${r.host}/team/app:1` });
  assert.equal(second.digest, first.digest);
  assert.deepEqual(second.blobs.map((b) => b.result), second.blobs.map(() => 'exists'));
  assert.ok(second.blobs.every((b) => !b.compressed), 'the gzip variants are remembered');

  // the same image made in a fresh root pushes the same manifest
  const rootB = await freshRoot();
  await makeImage(rootB, 'other:2', files);
  const fromB = await pushImage({ root: rootB, store: await ContentStore.open(rootB), client: reg0, source: 'other:2', ref: `${r.host}/elsewhere:2` });
  assert.equal(fromB.digest, first.digest, 'the push is deterministic');
  assert.ok(fromB.blobs.filter((b) => b.kind === 'layer').every((b) => b.compressed && b.result === 'uploaded'));
});

test('a push to another repository on the same host mounts the blobs; the CLI says from where', async (t) => {
  if (skipUnlessRegistry(t)) return;
  const r = await registry();
  const root = await freshRoot();
  await makeImage(root, 'mnt:1', [textData(1 << 20, 'mount')]);
  const store = await ContentStore.open(root);
  const c = client();
  const a = await pushImage({ root, store, client: c, source: 'mnt:1', ref: `${r.host}/src/mnt:1` });
  assert.ok(a.blobs.every((b) => b.result === 'uploaded'));
  const b = await pushImage({ root, store, client: c, source: 'mnt:1', ref: `${r.host}/dst/mnt:1` });
  assert.equal(b.digest, a.digest);
  for (const blob of b.blobs) {
    assert.equal(blob.result, 'mounted', `${blob.kind} ${blob.digest}`);
    assert.deepEqual(blob.mountFrom, ['src/mnt']);
  }
  // the registry links the blob into the new repository without an upload
  const hex = b.blobs[0].digest.slice(7);
  await fs.access(path.join(r.dataDir, 'docker/registry/v2/repositories/dst/mnt/_layers/sha256', hex, 'link'));
  const cli = await runKiln(['push', 'mnt:1', `${r.host}/third:1`], { root });
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stderr, /^[a-f0-9]{12}: Mounted from (src\/mnt|dst\/mnt)/m);
});

test('a layer larger than the chunk size is uploaded in chunks (PATCH), and reads back whole', async (t) => {
  if (skipUnlessRegistry(t)) return;
  const { r, proxy } = await proxied();
  const root = await freshRoot();
  await makeImage(root, 'chunk:1', [randomData(1 << 20)]);
  const store = await ContentStore.open(root);
  const chunkSize = 256 << 10;
  const result = await pushImage({ root, store, client: client(), source: 'chunk:1', ref: `${proxy.host}/chunk:1`, chunkSize });
  const layer = result.blobs.find((b) => b.kind === 'layer')!;
  assert.ok(layer.size > 3 * chunkSize);
  const patches = proxy.requests.filter((q) => q.method === 'PATCH' && q.path.startsWith('/v2/chunk/blobs/uploads/'));
  assert.ok(patches.length >= Math.ceil(layer.size / chunkSize) - 1, `${patches.length} PATCH requests for ${layer.size} bytes`);
  // read back through the registry directly: verified against its digest
  const back = await client().repository(`${r.host}/chunk`).provider().readBlob(layer.digest);
  assert.equal(back.length, layer.size);
});

test('an interrupted push stops its uploads and puts no manifest: the registry has no such tag', async (t) => {
  if (skipUnlessRegistry(t)) return;
  const r = await registry();
  const root = await freshRoot();
  await makeImage(root, 'int:1', [randomData(8 << 20), randomData(8 << 20)]);
  const store = await ContentStore.open(root);
  const stop = new AbortController();
  let moved = 0;
  await assert.rejects(
    pushImage({
      root,
      store,
      client: client({ signal: stop.signal }),
      source: 'int:1',
      ref: `${r.host}/int:1`,
      chunkSize: 1 << 20,
      signal: stop.signal,
      progress: (e) => {
        if (e.type === 'transfer-progress' && e.current > 0) {
          moved = e.current;
          stop.abort();
        }
      },
    }),
    (e: unknown) => e instanceof KilnError && e.code === 'cancelled' && /no tag points at it/.test(e.message),
  );
  assert.ok(moved > 0);
  assert.deepEqual(await registryTags(r.url, 'int'), []);
  assert.deepEqual(await repoDigests(root, (await store.resolve('int:1'))!.digest), []);
});

test('a registry that stops answering mid-push fails it with no tag left', async (t) => {
  if (skipUnlessRegistry(t)) return;
  const { r, proxy } = await proxied();
  const root = await freshRoot();
  await makeImage(root, 'gone:1', [randomData(4 << 20), randomData(4 << 20)]);
  const store = await ContentStore.open(root);
  // the upload of the first chunk goes through; from then on every upload request fails
  let chunks = 0;
  await assert.rejects(
    pushImage({
      root,
      store,
      client: client({ attempts: 2, backoffMs: 20 }),
      source: 'gone:1',
      ref: `${proxy.host}/gone:1`,
      chunkSize: 1 << 20,
      progress: (e) => {
        if (e.type === 'transfer-progress' && e.current > 0 && chunks++ === 0) {
          proxy.failNext(10_000, 500, {}, (method, p) => (method === 'PATCH' || method === 'PUT' || method === 'POST') && p.includes('/blobs/uploads/'));
        }
      },
    }),
    (e: unknown) => e instanceof KilnError && e.code !== 'cancelled',
  );
  assert.ok(chunks > 0);
  assert.ok(!proxy.requests.some((q) => q.method === 'PUT' && q.path.startsWith('/v2/gone/manifests/')), 'no manifest put');
  assert.deepEqual(await registryTags(r.url, 'gone'), []);
});

test('kiln images --digests shows the digest each repository has, docker-style', async (t) => {
  if (skipUnlessRegistry(t)) return;
  const r = await registry();
  const root = await freshRoot();
  await makeImage(root, 'dig:1', [textData(64 << 10, 'digests')]);
  const tagged = await runKiln(['tag', 'dig:1', `${r.host}/dig:1`], { root });
  assert.equal(tagged.code, 0, tagged.stderr);
  const push = await runKiln(['push', '-q', `${r.host}/dig:1`], { root });
  assert.equal(push.code, 0, push.stderr);
  const digest = push.stdout.trim().split('@')[1];
  const other = await runKiln(['push', '-q', 'dig:1', `${r.host}/mirror/dig:7`], { root });
  assert.equal(other.code, 0, other.stderr);
  const list = await runKiln(['images', '--digests'], { root });
  assert.equal(list.code, 0, list.stderr);
  const rows = list.stdout.trim().split('\n').map((l) => l.split(/\s{2,}/));
  assert.deepEqual(rows[0].slice(0, 4), ['REPOSITORY', 'TAG', 'DIGEST', 'IMAGE ID']);
  const find = (repo: string, tag: string) => rows.find((x) => x[0] === repo && x[1] === tag);
  assert.equal(find(`${r.host}/dig`, '1')?.[2], digest);
  assert.equal(find('dig', '1')?.[2], '<none>', 'no digest recorded in repository dig');
  assert.equal(find(`${r.host}/mirror/dig`, '<none>')?.[2], digest, 'a repository pushed to under no local name gets a <none> row');
  const json = await runKiln(['images', '--format', 'json'], { root });
  const row = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as { Repository: string; RepoDigests: string[] }).find((x) => x.Repository === 'dig');
  assert.deepEqual(new Set(row?.RepoDigests), new Set([`${r.host}/dig@${digest}`, `${r.host}/mirror/dig@${digest}`]));
  const plain = await runKiln(['images'], { root });
  assert.doesNotMatch(plain.stdout, /DIGEST/);
});

test('kiln push: a missing image, and --all-tags with a tag, are clear errors', async (t) => {
  if (skipUnlessRegistry(t)) return;
  const r = await registry();
  const missing = await runKiln(['push', 'nosuch:1', `${r.host}/nosuch:1`], { root: ws!.root });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^error: image nosuch:1 not found in the store/);
  const chunk = await runKiln(['push', '--chunk-size', '0', 'busybox:latest', `${r.host}/bb:1`], { root: ws!.root });
  assert.equal(chunk.code, 1);
  assert.match(chunk.stderr, /--chunk-size must be a positive number of bytes, got "0"/);
  const tagged = await runKiln(['push', '--all-tags', 'busybox:latest'], { root: ws!.root });
  assert.equal(tagged.code, 1);
  assert.match(tagged.stderr, /--all-tags pushes a repository/);
});

test('kiln push --all-tags pushes every stored tag of the repository', async (t) => {
  if (skipUnlessRegistry(t)) return;
  const r = await registry();
  const root = await freshRoot();
  await makeImage(root, `${r.host}/many:a`, [textData(10 << 10, 'a')]);
  await makeImage(root, `${r.host}/many:b`, [textData(10 << 10, 'b')]);
  const push = await runKiln(['push', '-q', '--all-tags', `${r.host}/many`], { root });
  assert.equal(push.code, 0, push.stderr);
  assert.equal(push.stdout.trim().split('\n').length, 2);
  assert.deepEqual((await registryTags(r.url, 'many')).sort(), ['a', 'b']);
});

test('an index is pushed with its manifests first (each rewritten to gzip layers), the index under the tag; one missing a platform pushes this machine\'s', async (t) => {
  if (skipUnlessRegistry(t)) return;
  const r = await registry();
  const root = await freshRoot();
  const amd = await makeImage(root, undefined, [textData(200 << 10, 'amd64')], 'amd64');
  const arm = await makeImage(root, undefined, [textData(200 << 10, 'arm64')], 'arm64');
  const store = await ContentStore.open(root);
  const index = await writeIndex(store, [
    { ...amd.manifest, platform: { os: 'linux', architecture: 'amd64' } },
    { ...arm.manifest, platform: { os: 'linux', architecture: 'arm64' } },
  ]);
  await store.setRef('multi:1', index);
  const { proxy } = await proxied();
  const c = client();
  const result = await pushImage({ root, store, client: c, source: 'multi:1', ref: `${proxy.host}/multi:1` });
  assert.equal(result.descriptor.mediaType, MediaType.ociIndex);
  assert.equal(result.manifests.length, 3);
  const puts = proxy.requests.filter((q) => q.method === 'PUT' && q.path.includes('/manifests/')).map((q) => q.path.split('/manifests/')[1]);
  assert.deepEqual(puts, [result.manifests[0].digest, result.manifests[1].digest, '1'], 'manifests by digest, then the index by tag');
  const remote = c.repository(`${r.host}/multi`);
  const pushed = JSON.parse((await remote.getManifest('1')).bytes.toString('utf8')) as ImageIndex;
  assert.deepEqual(pushed.manifests.map((m) => m.platform?.architecture), ['amd64', 'arm64']);
  for (const m of pushed.manifests) {
    const doc = JSON.parse((await remote.getManifest(m.digest)).bytes.toString('utf8')) as ImageManifest;
    assert.ok(doc.layers.every((l) => l.mediaType === MediaType.ociLayerGzip));
  }
  assert.deepEqual(await repoDigests(root, index.digest), [`${proxy.host}/multi@${result.digest}`]);

  // an index whose arm64 manifest is not in the store: this machine's platform goes alone
  const partialRoot = await freshRoot();
  const only = await makeImage(partialRoot, undefined, [textData(100 << 10, 'partial')], hostPlatform().architecture);
  const partialStore = await ContentStore.open(partialRoot);
  const partial = await writeIndex(partialStore, [
    { ...only.manifest, platform: hostPlatform() },
    { ...arm.manifest, platform: { os: 'linux', architecture: 'other' } },
  ]);
  await partialStore.setRef('partial:1', partial);
  const warnings: string[] = [];
  const one = await pushImage({ root: partialRoot, store: partialStore, client: c, source: 'partial:1', ref: `${r.host}/partial:1`, warn: (m) => warnings.push(m) });
  assert.equal(one.descriptor.mediaType, MediaType.ociManifest);
  assert.match(warnings.join('\n'), /1 platform\(s\) not in the store: pushing only its linux\//);
  assert.deepEqual(await registryTags(r.url, 'partial'), ['1']);
});

test('a corrupt blob in the store is refused by the registry: a clear error naming it, and no tag', async (t) => {
  if (skipUnlessRegistry(t)) return;
  const r = await registry();
  const root = await freshRoot();
  await makeImage(root, 'bad:1', [randomData(300 << 10)]);
  const store = await ContentStore.open(root);
  const c = client({ attempts: 1 });
  const good = await pushImage({ root, store, client: c, source: 'bad:1', ref: `${r.host}/bad-ok:1` });
  const layer = good.blobs.find((b) => b.kind === 'layer')!;
  // flip one byte of the stored gzip variant (the blob the push sends)
  const file = store.blobPath(layer.digest);
  const bytes = await fs.readFile(file);
  bytes[bytes.length >> 1] ^= 0xff;
  await fs.chmod(file, 0o644);
  await fs.writeFile(file, bytes);
  // through another host name, so that no mount from bad-ok is tried
  const { proxy } = await proxied();
  await assert.rejects(
    pushImage({ root, store, client: c, source: 'bad:1', ref: `${proxy.host}/bad:1` }),
    (e: unknown) => e instanceof KilnError && e.code === 'invalid' && e.message.includes(layer.digest) && /do not match/.test(e.message),
  );
  assert.deepEqual(await registryTags(r.url, 'bad'), []);
});

test('kiln push interrupted by SIGINT exits 130, puts no manifest and leaves no temp files', async (t) => {
  if (skipUnlessRegistry(t)) return;
  const { r, proxy } = await proxied();
  const root = await freshRoot();
  await makeImage(root, 'sig:1', [randomData(12 << 20), randomData(12 << 20)]);
  // tiny chunks: thousands of requests, so the signal lands while blobs are moving
  const child = spawn(process.execPath, [kilnBin, '--root', root, 'push', '--chunk-size', '16384', 'sig:1', `${proxy.host}/sig:1`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c) => (stderr += String(c)));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  for (let i = 0; i < 600 && !proxy.requests.some((q) => q.method === 'PATCH'); i++) await new Promise((res) => setTimeout(res, 50));
  assert.ok(proxy.requests.some((q) => q.method === 'PATCH'), 'the upload started');
  child.kill('SIGINT');
  assert.equal(await exited, 130, stderr);
  assert.match(stderr, /interrupted \(SIGINT\)/);
  assert.ok(!proxy.requests.some((q) => q.method === 'PUT' && q.path.includes('/manifests/')), 'no manifest put');
  assert.deepEqual(await registryTags(r.url, 'sig'), []);
  const left = await fs.readdir(path.join(root, 'tmp')).catch(() => []);
  assert.deepEqual(left, [], 'no temp files left');
});
