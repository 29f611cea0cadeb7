/** Blob redirects (as S3-backed registries send): followed, and credentials never go to the other host. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { digestOf } from '../../src/oci/digest.js';
import { RegistryClient } from '../../src/registry/client.js';
import { pushBuffer, seedImage, skipUnlessRegistry, startRegistry } from './harness.js';
import { startProxy } from './proxy.js';

test('a blob GET redirected to another host is followed without the Authorization header', async (t) => {
  if (skipUnlessRegistry(t, { auth: 'htpasswd' })) return;
  const reg = await startRegistry({ auth: 'htpasswd', users: { alice: 'redirect-secret' } });
  t.after(() => reg.stop());
  const proxy = await startProxy(reg.host);
  t.after(() => proxy.stop());

  // the "storage backend": serves blobs it was given and records what it was sent
  const blobs = new Map<string, Buffer>();
  const seen: http.IncomingHttpHeaders[] = [];
  const storage = http.createServer((req, res) => {
    seen.push(req.headers);
    const digest = (req.url ?? '').split('/').pop() ?? '';
    const b = blobs.get(digest);
    if (!b) {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, { 'content-length': String(b.length), 'content-type': 'application/octet-stream' });
    res.end(b);
  });
  await new Promise<void>((r) => storage.listen(0, '127.0.0.1', r));
  t.after(() => {
    storage.closeAllConnections();
    storage.close();
  });

  const c = new RegistryClient({ backoffMs: 10, credentials: { get: async () => ({ username: 'alice', password: 'redirect-secret' }), store: async () => undefined, erase: async () => false } });
  t.after(() => c.close());
  const repo = c.repository(`${proxy.host}/team/app`);
  const layer = randomBytes(50_000);
  await seedImage(repo, 'v1', [layer]);
  blobs.set(digestOf(layer), layer);

  proxy.redirectBlobs(`http://127.0.0.1:${(storage.address() as AddressInfo).port}/storage`);
  proxy.requests.length = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of repo.openBlob({ digest: digestOf(layer), size: layer.length })) chunks.push(chunk as Buffer);
  assert.ok(Buffer.concat(chunks).equals(layer));
  // the registry got the credentials, the storage host did not
  assert.equal(proxy.requests.filter((r) => r.path.includes('/blobs/')).every((r) => r.authorization), true);
  assert.equal(seen.length, 1);
  assert.equal(seen[0].authorization, undefined);
  assert.ok(!JSON.stringify(seen).includes(Buffer.from('alice:redirect-secret').toString('base64')));
});

test('an upload whose Location is on another host gets no Authorization there', async (t) => {
  if (skipUnlessRegistry(t, { auth: 'htpasswd' })) return;
  const reg = await startRegistry({ auth: 'htpasswd', users: { alice: 'upload-secret' } });
  t.after(() => reg.stop());
  const basic = `Basic ${Buffer.from('alice:upload-secret').toString('base64')}`;
  // "another host" that authorizes the upload URLs itself (as pre-signed storage URLs are)
  const other = await startProxy(reg.host, { authorization: basic });
  t.after(() => other.stop());
  const front = await startProxy(reg.host, { locationHost: other.host });
  t.after(() => front.stop());
  const c = new RegistryClient({ backoffMs: 10, credentials: { get: async () => ({ username: 'alice', password: 'upload-secret' }), store: async () => undefined, erase: async () => false } });
  t.after(() => c.close());
  const repo = c.repository(`${front.host}/team/app`);
  const small = randomBytes(10_000);
  const big = randomBytes(100_000);
  assert.equal(await pushBuffer(repo, small), 'uploaded');
  assert.equal(await pushBuffer(repo, big, { chunkSize: 40_000 }), 'uploaded');
  assert.equal(await repo.statBlob(digestOf(big)), big.length);
  assert.ok(front.requests.filter((r) => r.method === 'POST').every((r) => r.authorization));
  const elsewhere = other.requests.filter((r) => r.method === 'PUT' || r.method === 'PATCH');
  assert.equal(elsewhere.length, 5);
  assert.ok(elsewhere.every((r) => !r.authorization));
});
