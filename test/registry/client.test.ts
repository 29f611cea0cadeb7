/** The distribution client against a real docker-registry over plain HTTP: manifests, blobs, uploads, mounts, tags. */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KilnError } from '../../src/errors.js';
import { digestOf } from '../../src/oci/digest.js';
import { ContentStore } from '../../src/oci/store.js';
import { MediaType } from '../../src/oci/types.js';
import { apiHost, RegistryClient } from '../../src/registry/client.js';
import { tempDir } from '../helpers.js';
import { seedImage, skipUnlessRegistry, startRegistry, type Registry } from './harness.js';

async function registry(t: TestContext): Promise<Registry | undefined> {
  if (skipUnlessRegistry(t)) return undefined;
  const reg = await startRegistry();
  t.after(() => reg.stop());
  return reg;
}

function client(t: TestContext, opts: ConstructorParameters<typeof RegistryClient>[0] = {}): RegistryClient {
  const c = new RegistryClient({ backoffMs: 20, ...opts });
  t.after(() => c.close());
  return c;
}

async function* once(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}

async function drain(s: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of s) out.push(c);
  return Buffer.concat(out);
}

const kiln = (code: string, pattern: RegExp) => (e: unknown) => {
  assert.ok(e instanceof KilnError, `not a KilnError: ${String(e)}`);
  assert.equal(e.code, code, e.message);
  assert.match(e.message, pattern);
  return true;
};

test('docker.io is spoken to at registry-1.docker.io; other hosts as named', () => {
  assert.equal(apiHost('docker.io'), 'registry-1.docker.io');
  assert.equal(apiHost('index.docker.io'), 'registry-1.docker.io');
  assert.equal(apiHost('127.0.0.1:5000'), '127.0.0.1:5000');
  assert.equal(apiHost('ghcr.io'), 'ghcr.io');
});

test('a pushed image reads back: manifest by tag and digest, HEAD, tags, blobs streamed and fetched into a store', async (t) => {
  const reg = await registry(t);
  if (!reg) return;
  const c = client(t);
  await c.ping(reg.host);
  const repo = c.repository(`${reg.host}/team/app`);
  assert.equal(repo.host, reg.host);
  assert.equal(repo.name, 'team/app');
  const layer = randomBytes(100_000);
  const img = await seedImage(repo, 'v1', [layer]);
  assert.equal(img.digest, digestOf(img.manifest));

  const byTag = await repo.getManifest('v1');
  assert.deepEqual(byTag.descriptor, { mediaType: MediaType.ociManifest, digest: img.digest, size: img.manifest.length });
  assert.ok(byTag.bytes.equals(img.manifest));
  assert.deepEqual((await repo.getManifest(img.digest)).descriptor, byTag.descriptor);
  assert.deepEqual(await repo.headManifest('v1'), byTag.descriptor);
  assert.equal(await repo.headManifest('nope'), undefined);
  assert.deepEqual(await repo.listTags(), ['v1']);

  assert.equal(await repo.statBlob(digestOf(layer)), layer.length);
  assert.equal(await repo.statBlob(digestOf('absent')), undefined);
  let seen = 0;
  const streamed = await drain(repo.openBlob({ digest: digestOf(layer), size: layer.length }, { onProgress: (n) => (seen = n) }));
  assert.ok(streamed.equals(layer));
  assert.equal(seen, layer.length);

  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const store = await ContentStore.open(dir);
  await repo.fetchBlob({ digest: digestOf(layer), size: layer.length }, store);
  assert.ok((await store.readBlob(digestOf(layer))).equals(layer));
});

test('missing things are not-found errors naming the reference', async (t) => {
  const reg = await registry(t);
  if (!reg) return;
  const c = client(t);
  const repo = c.repository(`${reg.host}/team/app`);
  await assert.rejects(repo.getManifest('v9'), kiln('not-found', new RegExp(`manifest ${reg.host}/team/app:v9 not found`)));
  const absent = digestOf('absent');
  await assert.rejects(drain(repo.openBlob({ digest: absent, size: 6 })), kiln('not-found', new RegExp(`blob ${absent}`)));
  await assert.rejects(repo.listTags(), kiln('not-found', new RegExp(`repository ${reg.host}/team/app not found$`)));
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const store = await ContentStore.open(dir);
  await assert.rejects(repo.fetchBlob({ digest: absent, size: 6 }, store), kiln('not-found', /is missing from/));
  assert.equal(await store.hasBlob(absent), false);
});

test('pushBlob: HEAD skips what exists, small blobs go up in one PUT, large ones in PATCH chunks', async (t) => {
  const reg = await registry(t);
  if (!reg) return;
  const c = client(t);
  const repo = c.repository(`${reg.host}/team/app`);
  const small = randomBytes(1000);
  const big = randomBytes(300_000);
  const progress: number[] = [];
  assert.equal(await repo.pushBlob({ digest: digestOf(small), size: small.length }, () => once(small), { chunkSize: 4096 }), 'uploaded');
  // the big one comes in odd-sized pieces and leaves in 64 KiB chunks
  const pieces = async function* () {
    for (let i = 0; i < big.length; i += 10_007) yield big.subarray(i, i + 10_007);
  };
  assert.equal(await repo.pushBlob({ digest: digestOf(big), size: big.length }, pieces, { chunkSize: 65_536, onProgress: (n) => progress.push(n) }), 'uploaded');
  assert.equal(progress.at(-1), big.length);
  assert.ok(progress.every((n, i) => i === 0 || n >= progress[i - 1]), 'progress only grows');
  assert.equal(await repo.pushBlob({ digest: digestOf(big), size: big.length }, pieces), 'exists');
  assert.ok((await drain(repo.openBlob({ digest: digestOf(big), size: big.length }))).equals(big));
  assert.ok((await drain(repo.openBlob({ digest: digestOf(small), size: small.length }))).equals(small));
  // a source that is shorter or longer than its descriptor says is an error, and nothing is stored
  const odd = randomBytes(150_000);
  const claim = { digest: digestOf(odd), size: odd.length };
  await assert.rejects(repo.pushBlob(claim, () => once(odd.subarray(0, 100_000)), { chunkSize: 65_536 }), kiln('invalid', /shorter than its descriptor/));
  await assert.rejects(repo.pushBlob(claim, () => once(Buffer.concat([odd, odd])), { chunkSize: 65_536 }), kiln('invalid', /more than the 150000 bytes/));
  assert.equal(await repo.statBlob(claim.digest), undefined);
});

test('pushBlob mounts from another repository on the host, and uploads when the mount source lacks the blob', async (t) => {
  const reg = await registry(t);
  if (!reg) return;
  const c = client(t);
  const a = c.repository(`${reg.host}/team/a`);
  const b = c.repository(`${reg.host}/team/b`);
  const blob = randomBytes(5000);
  const other = randomBytes(5000);
  await a.pushBlob({ digest: digestOf(blob), size: blob.length }, () => once(blob));
  assert.equal(await b.pushBlob({ digest: digestOf(blob), size: blob.length }, () => once(blob), { mountFrom: ['team/a'] }), 'mounted');
  assert.equal(await b.statBlob(digestOf(blob)), blob.length);
  // team/a does not have `other`: the registry answers 202 and the upload goes on
  assert.equal(await b.pushBlob({ digest: digestOf(other), size: other.length }, () => once(other), { mountFrom: ['team/nothing', 'team/a'] }), 'uploaded');
  assert.ok((await drain(b.openBlob({ digest: digestOf(other), size: other.length }))).equals(other));
});

test('pushing wrong bytes for a digest is refused by the registry and reported', async (t) => {
  const reg = await registry(t);
  if (!reg) return;
  const c = client(t);
  const repo = c.repository(`${reg.host}/team/app`);
  const claimed = digestOf('the real content');
  await assert.rejects(repo.pushBlob({ digest: claimed, size: 5 }, () => once(Buffer.from('other'))), kiln('invalid', new RegExp(`do not match ${claimed}`)));
  assert.equal(await repo.statBlob(claimed), undefined);
});

test('a manifest naming a missing blob is refused; an index and Docker types go through', async (t) => {
  const reg = await registry(t);
  if (!reg) return;
  const c = client(t);
  const repo = c.repository(`${reg.host}/team/app`);
  const missing = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: MediaType.ociConfig, digest: digestOf('nope'), size: 4 }, layers: [] }),
  );
  await assert.rejects(repo.putManifest('bad', { mediaType: MediaType.ociManifest, bytes: missing }), kiln('invalid', /names a blob the repository does not have/));
  const img = await seedImage(repo, 'v1');
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.dockerManifestList,
      manifests: [{ mediaType: MediaType.ociManifest, digest: img.digest, size: img.manifest.length, platform: { architecture: 'amd64', os: 'linux' } }],
    }),
  );
  const d = await repo.putManifest('multi', { mediaType: MediaType.dockerManifestList, bytes: index });
  assert.equal(d.digest, digestOf(index));
  const got = await repo.getManifest('multi');
  assert.equal(got.descriptor.mediaType, MediaType.dockerManifestList);
  assert.ok(got.bytes.equals(index));
  assert.deepEqual((await repo.listTags()).sort(), ['multi', 'v1']);
});

test('the provider reads the repository blobs, verified', async (t) => {
  const reg = await registry(t);
  if (!reg) return;
  const c = client(t);
  const repo = c.repository(`${reg.host}/team/app`);
  const img = await seedImage(repo, 'v1');
  const p = repo.provider();
  const cfg = digestOf(img.config);
  assert.equal(await p.hasBlob(cfg), true);
  assert.equal((await p.info(cfg))?.size, img.config.length);
  assert.ok((await p.readBlob(cfg)).equals(img.config));
  assert.equal((await p.readJSON<{ os: string }>(cfg)).os, 'linux');
  assert.ok((await drain(p.openBlob(digestOf(img.layers[0])))).equals(img.layers[0]));
  assert.equal(await p.hasBlob(digestOf('absent')), false);
  assert.equal(await p.info(digestOf('absent')), undefined);
  await assert.rejects(p.readBlob(digestOf('absent')), kiln('not-found', /is missing from/));
});

/** A server that is not a well-behaved registry: it serves what `manifest` says for any manifest request. */
async function oddRegistry(t: TestContext, serve: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<string> {
  const srv = http.createServer((req, res) => {
    if (req.url === '/v2/') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
      return;
    }
    serve(req, res);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => {
    srv.closeAllConnections();
    srv.close();
  });
  return `127.0.0.1:${(srv.address() as AddressInfo).port}`;
}

test('schema 1, unknown media types, oversized manifests and wrong digests are clear errors', async (t) => {
  const schema1 = Buffer.from(JSON.stringify({ schemaVersion: 1, name: 'x', tag: 'old', fsLayers: [] }));
  const odd = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.example.thing+json' }));
  const good = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: {}, layers: [] }));
  const host = await oddRegistry(t, (req, res) => {
    const tag = req.url!.split('/').pop();
    if (tag === 'old') {
      res.writeHead(200, { 'content-type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' });
      res.end(schema1);
    } else if (tag === 'odd') {
      res.writeHead(200, { 'content-type': 'application/vnd.example.thing+json' });
      res.end(odd);
    } else if (tag === 'huge') {
      res.writeHead(200, { 'content-type': MediaType.ociManifest });
      res.end(Buffer.alloc(5 << 20, 32));
    } else if (tag === 'lying') {
      res.writeHead(200, { 'content-type': MediaType.ociManifest, 'docker-content-digest': digestOf('something else') });
      res.end(good);
    } else {
      res.writeHead(200, { 'content-type': MediaType.ociManifest });
      res.end(good);
    }
  });
  const c = client(t);
  const repo = c.repository(`${host}/x`);
  await assert.rejects(repo.getManifest('old'), kiln('unsupported', /schema 1/));
  await assert.rejects(repo.getManifest('odd'), kiln('unsupported', /application\/vnd\.example\.thing\+json/));
  await assert.rejects(repo.getManifest('huge'), kiln('invalid', /over the limit of 4194304/));
  await assert.rejects(repo.getManifest('lying'), kiln('invalid', new RegExp(`does not match its digest ${digestOf('something else')}`)));
  const other = digestOf('other');
  await assert.rejects(repo.getManifest(other), kiln('invalid', new RegExp(`does not match its digest ${other}`)));
  assert.equal((await repo.getManifest(digestOf(good))).descriptor.digest, digestOf(good));
});
