/** TLS and scheme choice: a registry with a test CA, certs.d CAs and client certificates, --insecure-registry, plain HTTP only where allowed. */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { KilnError } from '../../src/errors.js';
import { RegistryClient } from '../../src/registry/client.js';
import { isLoopback } from '../../src/registry/tls.js';
import type { ClientOptions } from '../../src/registry/types.js';
import { tempDir } from '../helpers.js';
import { certsDirFor, seedImage, skipUnlessRegistry, startRegistry, type Registry, type RegistryOptions } from './harness.js';
import { startProxy } from './proxy.js';

async function registry(t: TestContext, opts: RegistryOptions): Promise<Registry | undefined> {
  if (skipUnlessRegistry(t, opts)) return undefined;
  const reg = await startRegistry(opts);
  t.after(() => reg.stop());
  return reg;
}

async function emptyCertsDir(t: TestContext): Promise<string> {
  const { dir, cleanup } = await tempDir('kiln-certs-');
  t.after(cleanup);
  return dir;
}

function client(t: TestContext, opts: ClientOptions): RegistryClient {
  const c = new RegistryClient({ backoffMs: 10, attempts: 2, ...opts });
  t.after(() => c.close());
  return c;
}

const failsWith = (pattern: RegExp, hint: RegExp) => (e: unknown) => {
  assert.ok(e instanceof KilnError, String(e));
  assert.match(e.message, pattern);
  assert.match(e.hint ?? '', hint);
  return true;
};

test('loopback hosts are localhost, 127.0.0.0/8 and ::1, with or without a port', () => {
  for (const h of ['localhost', 'localhost:5000', '127.0.0.1', '127.1.2.3:443', '[::1]:5000', '::1']) assert.equal(isLoopback(h), true, h);
  for (const h of ['example.com', '192.0.2.2:5000', '10.0.0.1', 'localhost.example.com', '[fd00::2]:5000']) assert.equal(isLoopback(h), false, h);
});

test('TLS: an unknown CA is an error that says which host and where to put ca.crt; with it in certs.d, push and pull work', async (t) => {
  const reg = await registry(t, { tls: true });
  if (!reg) return;
  const empty = await emptyCertsDir(t);
  const bare = client(t, { certsDir: empty });
  await assert.rejects(
    bare.repository(`${reg.host}/team/app`).getManifest('v1'),
    failsWith(new RegExp(`TLS: cannot verify the certificate of ${reg.host.replace(/\./g, '\\.')}`), new RegExp(`${path.join(empty, reg.host)}/ca\\.crt.*--insecure-registry ${reg.host}`)),
  );
  const certs = await certsDirFor(reg, await emptyCertsDir(t));
  const c = client(t, { certsDir: certs });
  const repo = c.repository(`${reg.host}/team/app`);
  const img = await seedImage(repo, 'v1');
  assert.ok((await repo.getManifest('v1')).bytes.equals(img.manifest));
  assert.equal(new URL((await c.endpoint(reg.host)).base).protocol, 'https:');
});

test('TLS: a CA in the system bundle ($SSL_CERT_FILE here) is trusted without certs.d', async (t) => {
  const reg = await registry(t, { tls: true });
  if (!reg) return;
  const saved = process.env.SSL_CERT_FILE;
  process.env.SSL_CERT_FILE = reg.caFile;
  t.after(() => {
    if (saved === undefined) delete process.env.SSL_CERT_FILE;
    else process.env.SSL_CERT_FILE = saved;
  });
  const c = client(t, { certsDir: await emptyCertsDir(t) });
  const repo = c.repository(`${reg.host}/team/app`);
  const img = await seedImage(repo, 'v1');
  assert.ok((await repo.getManifest('v1')).bytes.equals(img.manifest));
});

test('TLS: --insecure-registry skips verification of that host only', async (t) => {
  const reg = await registry(t, { tls: true });
  if (!reg) return;
  const c = client(t, { certsDir: await emptyCertsDir(t), insecureRegistries: [reg.host] });
  const repo = c.repository(`${reg.host}/team/app`);
  const img = await seedImage(repo, 'v1');
  assert.ok((await repo.getManifest(img.digest)).bytes.equals(img.manifest));
  const other = client(t, { certsDir: await emptyCertsDir(t), insecureRegistries: ['127.0.0.1:1'] });
  await assert.rejects(other.repository(`${reg.host}/team/app`).getManifest('v1'), failsWith(/cannot verify the certificate/, /ca\.crt/));
});

test('TLS: a registry that wants a client certificate gets client.cert/client.key from certs.d', async (t) => {
  const reg = await registry(t, { tls: true, clientCerts: true });
  if (!reg) return;
  const caOnly = client(t, { certsDir: await certsDirFor(reg, await emptyCertsDir(t)) });
  await assert.rejects(caOnly.repository(`${reg.host}/team/app`).getManifest('v1'), failsWith(new RegExp(`TLS with ${reg.host.replace(/\./g, '\\.')} failed`), /client\.cert and client\.key/));
  const c = client(t, { certsDir: await certsDirFor(reg, await emptyCertsDir(t), { client: true }) });
  const repo = c.repository(`${reg.host}/team/app`);
  const img = await seedImage(repo, 'v1');
  assert.ok((await repo.getManifest('v1')).bytes.equals(img.manifest));
});

/** A non-loopback address of this machine, if it has one. */
function outsideAddress(): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

test('plain HTTP: refused for a host that is not loopback unless it is listed as insecure', async (t) => {
  const address = outsideAddress();
  if (!address) return t.skip('no non-loopback IPv4 address on this machine');
  const reg = await registry(t, {});
  if (!reg) return;
  // the same plain-HTTP registry, reached at a non-loopback address
  const proxy = await startProxy(reg.host, { listenHost: address });
  t.after(() => proxy.stop());
  const strict = client(t, { certsDir: await emptyCertsDir(t) });
  await assert.rejects(strict.repository(`${proxy.host}/team/app`).getManifest('v1'), failsWith(new RegExp(`${proxy.host} does not speak HTTPS`), new RegExp(`--insecure-registry ${proxy.host}`)));
  const c = client(t, { certsDir: await emptyCertsDir(t), insecureRegistries: [proxy.host] });
  const repo = c.repository(`${proxy.host}/team/app`);
  const img = await seedImage(repo, 'v1');
  assert.ok((await repo.getManifest('v1')).bytes.equals(img.manifest));
  assert.equal((await c.endpoint(proxy.host)).base.protocol, 'http:');
});
