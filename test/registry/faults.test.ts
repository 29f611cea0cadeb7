/**
 * The client through a fault-injecting proxy in front of a real registry: dropped connections,
 * 5xx and 429 answers, stalls and a flipped byte. It retries (and resumes) or fails with a
 * clear error, and nothing unverified enters the store.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { KilnError } from '../../src/errors.js';
import { digestOf } from '../../src/oci/digest.js';
import { ContentStore } from '../../src/oci/store.js';
import { RegistryClient } from '../../src/registry/client.js';
import type { ClientOptions, RemoteRepository } from '../../src/registry/types.js';
import { tempDir } from '../helpers.js';
import { pushBuffer, seedImage, skipUnlessRegistry, startRegistry, type SeededImage } from './harness.js';
import { startProxy, type FaultProxy } from './proxy.js';

interface Setup {
  proxy: FaultProxy;
  repo: RemoteRepository;
  img: SeededImage;
  layer: Buffer;
  store: ContentStore;
  storeDir: string;
}

async function setup(t: TestContext, opts: ClientOptions = {}): Promise<Setup | undefined> {
  if (skipUnlessRegistry(t)) return undefined;
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const proxy = await startProxy(reg.host);
  t.after(() => proxy.stop());
  const c = new RegistryClient({ backoffMs: 10, stallTimeoutMs: 1000, ...opts });
  t.after(() => c.close());
  const repo = c.repository(`${proxy.host}/team/app`);
  const layer = randomBytes(1 << 20);
  const img = await seedImage(repo, 'v1', [layer]);
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const store = await ContentStore.open(dir);
  proxy.requests.length = 0;
  return { proxy, repo, img, layer, store, storeDir: dir };
}

async function drain(s: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of s) out.push(c);
  return Buffer.concat(out);
}

const blobGets = (p: FaultProxy) => p.requests.filter((r) => r.method === 'GET' && r.path.includes('/blobs/'));

/** The blobs and temp files the store holds. */
async function storeContents(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await fs.readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, e.name);
      // procs/ registers this process with the store; it is no content
      if (e.isDirectory() && e.name !== 'procs') await walk(p);
      else if (e.isDirectory()) continue;
      else if (!['oci-layout', 'index.json'].includes(e.name)) out.push(path.relative(dir, p));
    }
  };
  await walk(dir);
  return out;
}

test('a connection dropped mid-blob is resumed with Range from where it broke', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const desc = { digest: digestOf(s.layer), size: s.layer.length };
  s.proxy.dropBlobAfter(300_000);
  assert.ok((await drain(s.repo.openBlob(desc))).equals(s.layer));
  const gets = blobGets(s.proxy);
  assert.equal(gets.length, 2);
  assert.equal(gets[0].range, undefined);
  assert.match(gets[1].range ?? '', /^bytes=\d+-$/);
  assert.ok(Number(/=(\d+)-/.exec(gets[1].range!)![1]) > 0);
  assert.equal(gets[1].status, 206);

  // into the store, dropped twice
  s.proxy.requests.length = 0;
  s.proxy.dropBlobAfter(200_000, 2);
  await s.repo.fetchBlob(desc, s.store);
  assert.ok((await s.store.readBlob(desc.digest)).equals(s.layer));
  assert.equal(blobGets(s.proxy).length, 3);
});

test('a registry that ignores Range is read again from the start, and the bytes already seen skipped', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const desc = { digest: digestOf(s.layer), size: s.layer.length };
  s.proxy.ignoreRange(true);
  s.proxy.dropBlobAfter(400_000);
  let last = 0;
  await s.repo.fetchBlob(desc, s.store, { onProgress: (n) => (last = n) });
  assert.ok((await s.store.readBlob(desc.digest)).equals(s.layer));
  const gets = blobGets(s.proxy);
  assert.equal(gets.length, 2);
  assert.equal(gets[1].status, 200);
  assert.equal(last, s.layer.length);
});

test('a manifest or tag list cut off mid-body is fetched again', async (t) => {
  const s = await setup(t);
  if (!s) return;
  s.proxy.dropBlobAfter(50, 1, (m, p) => m === 'GET' && p.includes('/manifests/'));
  assert.ok((await s.repo.getManifest('v1')).bytes.equals(s.img.manifest));
  s.proxy.dropBlobAfter(5, 1, (m, p) => p.includes('/tags/list'));
  assert.deepEqual(await s.repo.listTags(), ['v1']);
  assert.equal(s.proxy.requests.filter((r) => r.path.includes('/manifests/')).length, 2);
});

test('500s for a while are retried; 500s for longer than the attempts are an unavailable error naming the host', async (t) => {
  const s = await setup(t, { attempts: 4 });
  if (!s) return;
  s.proxy.failNext(3);
  assert.ok((await s.repo.getManifest('v1')).bytes.equals(s.img.manifest));
  s.proxy.failNext(3, 503);
  assert.ok((await drain(s.repo.openBlob({ digest: digestOf(s.layer), size: s.layer.length }))).equals(s.layer));
  s.proxy.failNext(10);
  await assert.rejects(s.repo.getManifest('v1'), (e: unknown) => {
    assert.ok(e instanceof KilnError);
    assert.equal(e.code, 'unavailable');
    assert.match(e.message, new RegExp(`${s.proxy.host} failed \\(500\\)`));
    return true;
  });
});

test('429 with Retry-After is waited out and retried', async (t) => {
  const s = await setup(t);
  if (!s) return;
  s.proxy.failNext(2, 429, { 'retry-after': '1' });
  assert.ok((await s.repo.getManifest('v1')).bytes.equals(s.img.manifest));
  assert.deepEqual(s.proxy.requests.slice(0, 3).map((r) => r.status), [429, 429, 200]);
  // a rate limit that outlasts the attempts is resource-exhausted, saying when to come back
  s.proxy.failNext(10, 429, { 'retry-after': '0' });
  await assert.rejects(s.repo.getManifest('v1'), (e: unknown) => {
    assert.ok(e instanceof KilnError);
    assert.equal(e.code, 'resource-exhausted');
    assert.equal(e.retryAfterMs, 0);
    assert.match(e.message, /rate-limiting/);
    return true;
  });
});

test('a stalled transfer times out and is resumed; one that always stalls fails saying so', async (t) => {
  const s = await setup(t, { stallTimeoutMs: 300, attempts: 3 });
  if (!s) return;
  const desc = { digest: digestOf(s.layer), size: s.layer.length };
  s.proxy.stallBlobAfter(100_000);
  await s.repo.fetchBlob(desc, s.store);
  assert.ok((await s.store.readBlob(desc.digest)).equals(s.layer));
  assert.match(blobGets(s.proxy)[1].range ?? '', /^bytes=\d+-$/);

  s.proxy.stallBlobAfter(0, 10);
  const other = desc.digest;
  await fs.rm(s.storeDir, { recursive: true });
  const store2 = await ContentStore.open(s.storeDir);
  await assert.rejects(s.repo.fetchBlob(desc, store2), (e: unknown) => {
    assert.ok(e instanceof KilnError);
    assert.equal(e.code, 'unavailable');
    assert.match(e.message, /sent nothing for/);
    return true;
  });
  assert.equal(await store2.hasBlob(other), false);
  assert.deepEqual(await storeContents(s.storeDir), []);
});

test('a flipped byte is an error naming the digest, and nothing enters the store', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const desc = { digest: digestOf(s.layer), size: s.layer.length };
  const corrupt = (e: unknown) => {
    assert.ok(e instanceof KilnError, String(e));
    assert.equal(e.code, 'invalid');
    assert.ok(e.message.includes(desc.digest), e.message);
    assert.match(e.message, /corrupt/);
    return true;
  };
  s.proxy.flipBlobByte(12_345);
  await assert.rejects(s.repo.fetchBlob(desc, s.store), corrupt);
  assert.equal(await s.store.hasBlob(desc.digest), false);
  assert.deepEqual(await storeContents(s.storeDir), []);
  s.proxy.flipBlobByte(0);
  await assert.rejects(drain(s.repo.openBlob(desc)), corrupt);
  // the same through writeBlobFromStream: the store's own check refuses it too
  s.proxy.flipBlobByte(500_000);
  await assert.rejects(s.store.writeBlobFromStream(s.repo.openBlob(desc), desc.digest), corrupt);
  assert.deepEqual(await storeContents(s.storeDir), []);
  // and a clean read afterwards works
  await s.repo.fetchBlob(desc, s.store);
  assert.ok((await s.store.readBlob(desc.digest)).equals(s.layer));
});

test('uploads survive faults: a chunked upload resumes where the registry stopped, a monolithic one restarts, a failed manifest PUT is retried', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const big = randomBytes(200_000);
  // the third chunk fails: the client asks the session where it stands and goes on from there
  s.proxy.failNext(1, 500, {}, (m, p) => m === 'PATCH' && s.proxy.requests.filter((r) => r.method === 'PATCH').length === 3 && p.includes('/uploads/'));
  assert.equal(await pushBuffer(s.repo, big, { chunkSize: 50_000 }), 'uploaded');
  assert.ok((await drain(s.repo.openBlob({ digest: digestOf(big), size: big.length }))).equals(big));
  const seen = s.proxy.requests.filter((r) => r.path.includes('/uploads/')).map((r) => [r.method, r.contentRange, r.status].filter(Boolean).join(' '));
  assert.deepEqual(seen, ['POST 202', 'PATCH 0-49999 202', 'PATCH 50000-99999 202', 'PATCH 100000-149999 500', 'GET 204', 'PATCH 100000-149999 202', 'PATCH 150000-199999 202', 'PUT 201']);

  // a one-PUT upload that fails starts a new session
  s.proxy.requests.length = 0;
  const small = randomBytes(20_000);
  s.proxy.failNext(1, 500, {}, (m, p) => m === 'PUT' && p.includes('/uploads/'));
  assert.equal(await pushBuffer(s.repo, small), 'uploaded');
  assert.equal(s.proxy.requests.filter((r) => r.method === 'POST').length, 2);
  assert.equal(await s.repo.statBlob(digestOf(small)), small.length);

  s.proxy.failNext(2, 502, {}, (m, p) => m === 'PUT' && p.includes('/manifests/'));
  await s.repo.putManifest('v2', { mediaType: 'application/vnd.oci.image.manifest.v1+json', bytes: s.img.manifest });
  assert.equal((await s.repo.headManifest('v2'))?.digest, s.img.digest);
});

test('an aborted signal stops a transfer with a cancelled error', async (t) => {
  const ac = new AbortController();
  const s = await setup(t, { signal: ac.signal, stallTimeoutMs: 60_000 });
  if (!s) return;
  s.proxy.stallBlobAfter(1000);
  const p = s.repo.fetchBlob({ digest: digestOf(s.layer), size: s.layer.length }, s.store, {
    onProgress: () => setImmediate(() => ac.abort()),
  });
  await assert.rejects(p, (e: unknown) => e instanceof KilnError && e.code === 'cancelled');
  assert.deepEqual(await storeContents(s.storeDir), []);
});

test('connection refused and unknown hosts say which host and what to check', async (t) => {
  const c = new RegistryClient({ backoffMs: 5, attempts: 2 });
  t.after(() => c.close());
  const { freePort } = await import('./harness.js');
  const port = await freePort();
  await assert.rejects(c.repository(`127.0.0.1:${port}/x`).getManifest('v1'), (e: unknown) => {
    assert.ok(e instanceof KilnError);
    assert.equal(e.code, 'unavailable');
    assert.match(e.message, new RegExp(`cannot connect to 127\\.0\\.0\\.1:${port}: connection refused`));
    assert.match(e.hint ?? '', /check that a registry runs at/);
    return true;
  });
  await assert.rejects(c.repository('no-such-host.invalid/x').getManifest('v1'), (e: unknown) => {
    assert.ok(e instanceof KilnError);
    assert.match(e.message, /cannot resolve the registry host no-such-host\.invalid/);
    return true;
  });
});
