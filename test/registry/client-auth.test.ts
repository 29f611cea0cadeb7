/** The client's authentication against real registries: htpasswd basic auth and token auth (a token issuer in the test). */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { KilnError } from '../../src/errors.js';
import { digestOf } from '../../src/oci/digest.js';
import { parseChallenges } from '../../src/registry/auth.js';
import { RegistryClient } from '../../src/registry/client.js';
import type { CredentialStore, Credentials } from '../../src/registry/types.js';
import { seedImage, skipUnlessRegistry, startRegistry, type Registry, type RegistryOptions } from './harness.js';

const PASSWORD = 'pa55-w0rd-not-in-output';

async function registry(t: TestContext, opts: RegistryOptions): Promise<Registry | undefined> {
  if (skipUnlessRegistry(t, opts)) return undefined;
  const reg = await startRegistry({ users: { alice: PASSWORD }, ...opts });
  t.after(() => reg.stop());
  return reg;
}

/** Credentials kept in memory: what a docker config would hold for one host. */
function memoryCredentials(entries: Record<string, Credentials>): CredentialStore {
  return {
    get: async (host) => entries[host],
    store: async (host, c) => {
      entries[host] = c;
    },
    erase: async (host) => delete entries[host],
  };
}

function client(t: TestContext, creds?: Record<string, Credentials>): RegistryClient {
  const c = new RegistryClient({ backoffMs: 20, credentials: creds ? memoryCredentials(creds) : undefined });
  t.after(() => c.close());
  return c;
}

/** The error is an unauthorized KilnError naming the host, and no password appears in it. */
const unauthorized = (host: string, pattern: RegExp) => (e: unknown) => {
  assert.ok(e instanceof KilnError, String(e));
  assert.equal(e.code, 'unauthorized');
  assert.match(e.message, pattern);
  assert.ok(e.message.includes(host), e.message);
  const shown = `${e.format()} ${JSON.stringify(e)} ${String(e.stack)}`;
  assert.ok(!shown.includes(PASSWORD), 'the password appears in the error');
  assert.ok(!shown.includes(Buffer.from(`alice:${PASSWORD}`).toString('base64')), 'the basic credentials appear in the error');
  assert.ok(!/authorization["']?\s*[:=]/i.test(shown) && !/(Basic|Bearer) [A-Za-z0-9+/=._-]{8,}/.test(shown), 'an Authorization header appears in the error');
  return true;
};

test('WWW-Authenticate challenges are parsed: Bearer with quoted params, Basic, several in one header', () => {
  assert.deepEqual(parseChallenges('Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push"'), [
    { scheme: 'bearer', params: { realm: 'https://auth.example.com/token', service: 'registry.example.com', scope: 'repository:a/b:pull,push' } },
  ]);
  assert.deepEqual(parseChallenges('Basic realm="x, y", Bearer realm=http://t/token,error=insufficient_scope'), [
    { scheme: 'basic', params: { realm: 'x, y' } },
    { scheme: 'bearer', params: { realm: 'http://t/token', error: 'insufficient_scope' } },
  ]);
  assert.deepEqual(parseChallenges(['Basic', 'Bearer realm="a\\"b"']), [
    { scheme: 'basic', params: {} },
    { scheme: 'bearer', params: { realm: 'a"b' } },
  ]);
  assert.deepEqual(parseChallenges(undefined), []);
});

test('htpasswd: the right credentials push and pull; none, or a wrong password, is unauthorized for that host only', async (t) => {
  const reg = await registry(t, { auth: 'htpasswd' });
  if (!reg) return;
  const good = client(t, { [reg.host]: { username: 'alice', password: PASSWORD } });
  await good.ping(reg.host);
  const repo = good.repository(`${reg.host}/team/app`);
  const img = await seedImage(repo, 'v1');
  assert.ok((await repo.getManifest('v1')).bytes.equals(img.manifest));

  const anon = client(t);
  await assert.rejects(anon.repository(`${reg.host}/team/app`).getManifest('v1'), unauthorized(reg.host, /authentication required/));
  await assert.rejects(anon.ping(reg.host), unauthorized(reg.host, /authentication required/));
  const wrong = client(t, { [reg.host]: { username: 'alice', password: 'wrong' } });
  await assert.rejects(wrong.repository(`${reg.host}/team/app`).getManifest('v1'), unauthorized(reg.host, /refused the stored credentials/));
  await assert.rejects(wrong.ping(reg.host), unauthorized(reg.host, /refused/));
  // credentials for another host are not sent here
  const elsewhere = client(t, { 'other.example.com': { username: 'alice', password: PASSWORD } });
  await assert.rejects(elsewhere.repository(`${reg.host}/team/app`).getManifest('v1'), unauthorized(reg.host, /authentication required/));
});

test('token auth: anonymous pulls, pushes need a login, tokens are cached per scope', async (t) => {
  const reg = await registry(t, { auth: 'token' });
  if (!reg) return;
  const issuer = reg.tokenIssuer!;
  const c = client(t, { [reg.host]: { username: 'alice', password: PASSWORD } });
  await c.ping(reg.host);
  const repo = c.repository(`${reg.host}/team/app`);
  const before = issuer.requests.length;
  const img = await seedImage(repo, 'v1', [Buffer.from('one'), Buffer.from('two')]);
  // one token for the whole push (pull,push on team/app), fetched with alice's credentials
  const pushTokens = issuer.requests.slice(before);
  assert.deepEqual(pushTokens.map((r) => [r.method, r.user, r.scopes.join(' ')]), [['GET', 'alice', 'repository:team/app:pull,push']]);
  await repo.getManifest('v1');
  await repo.getManifest(img.digest);
  await repo.statBlob(digestOf(img.layers[0]));
  assert.deepEqual(issuer.requests.slice(before + 1).map((r) => r.scopes.join(' ')), ['repository:team/app:pull']);

  const anon = client(t);
  const anonRepo = anon.repository(`${reg.host}/team/app`);
  assert.ok((await anonRepo.getManifest('v1')).bytes.equals(img.manifest));
  assert.equal(issuer.requests.at(-1)?.user, undefined);
  assert.equal(issuer.requests.at(-1)?.authorization, false);
  await assert.rejects(seedImage(anonRepo, 'v2'), unauthorized(reg.host, /authentication required to access .*\/team\/app \(or it does not exist\)/));
  assert.equal(await anonRepo.headManifest('v2'), undefined);

  const wrong = client(t, { [reg.host]: { username: 'alice', password: 'wrong' } });
  await assert.rejects(wrong.repository(`${reg.host}/team/app`).getManifest('v1'), unauthorized(reg.host, /refused the stored credentials/));
  await assert.rejects(wrong.ping(reg.host), unauthorized(reg.host, /refused/));
});

test('token auth: a token the registry refuses is fetched again once (refresh on 401)', async (t) => {
  const reg = await registry(t, { auth: 'token' });
  if (!reg) return;
  const issuer = reg.tokenIssuer!;
  const c = client(t, { [reg.host]: { username: 'alice', password: PASSWORD } });
  const repo = c.repository(`${reg.host}/team/app`);
  await seedImage(repo, 'v1');
  const before = issuer.requests.length;
  // the next token is expired: the registry answers 401, the client asks the issuer again
  issuer.expireNext(1);
  const other = c.repository(`${reg.host}/team/other`);
  assert.equal(await other.headManifest('v1'), undefined);
  assert.equal(issuer.requests.length - before, 2);
  // a registry that keeps refusing fresh tokens is unauthorized, not a loop
  issuer.expireNext(10);
  await assert.rejects(c.repository(`${reg.host}/team/third`).getManifest('v1'), unauthorized(reg.host, /refused/));
  issuer.expireNext(0);
});

test('token auth: an identity token is exchanged at the realm with a POST (refresh_token grant)', async (t) => {
  const reg = await registry(t, { auth: 'token' });
  if (!reg) return;
  const issuer = reg.tokenIssuer!;
  issuer.refreshTokens.set('rt-alice', 'alice');
  const c = client(t, { [reg.host]: { identityToken: 'rt-alice' } });
  const repo = c.repository(`${reg.host}/team/app`);
  await seedImage(repo, 'v1');
  assert.ok(issuer.requests.length > 0);
  for (const r of issuer.requests) assert.deepEqual([r.method, r.grantType, r.user, r.authorization], ['POST', 'refresh_token', 'alice', false]);
  const bad = client(t, { [reg.host]: { identityToken: 'revoked' } });
  await assert.rejects(bad.repository(`${reg.host}/team/app`).getManifest('v1'), unauthorized(reg.host, /refused/));
});

test('token auth: an account without push rights is denied (insufficient_scope), not "unauthorized"', async (t) => {
  const reg = await registry(t, { auth: 'token', users: { alice: PASSWORD, bob: PASSWORD }, pullOnly: ['bob'] });
  if (!reg) return;
  const alice = client(t, { [reg.host]: { username: 'alice', password: PASSWORD } });
  const img = await seedImage(alice.repository(`${reg.host}/team/app`), 'v1');
  const bob = client(t, { [reg.host]: { username: 'bob', password: PASSWORD } });
  const repo = bob.repository(`${reg.host}/team/app`);
  assert.ok((await repo.getManifest('v1')).bytes.equals(img.manifest));
  await assert.rejects(seedImage(repo, 'v2', [Buffer.from('bob was here')]), (e: unknown) => {
    assert.ok(e instanceof KilnError, String(e));
    assert.equal(e.code, 'denied');
    assert.match(e.message, new RegExp(`may not push to ${reg.host.replace(/\./g, '\\.')}/team/app`));
    assert.ok(!e.format().includes(PASSWORD));
    return true;
  });
});
