/**
 * docker's credentials: config.json (auths, base64 auth, identity tokens, docker's older key
 * forms), writing it (0600, atomic, every other key kept), DOCKER_CONFIG, and credential helpers
 * (credsStore, credHelpers) through a fake docker-credential-test on PATH that records its calls.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { KilnError } from '../../src/errors.js';
import { DockerCredentials, configKey, dockerConfigDir, dockerCredentials, registryHostname } from '../../src/registry/credentials.js';
import { haveTool, runCommand, runKiln, tempDir } from '../helpers.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

let tmp: { dir: string; cleanup: () => Promise<void> };
let bin: string;
const savedPath = process.env.PATH;
let n = 0;

/**
 * A docker-credential-<name> written in node: it keeps what it is given in <state>/store.json,
 * appends {action, input} to <state>/calls.jsonl, and fails (exit 3, saying what it was given)
 * while <state>/fail exists.
 */
async function fakeHelper(name: string): Promise<{ state: string; calls: () => Promise<{ action: string; input: string }[]>; stored: () => Promise<Record<string, { Username: string; Secret: string }>> }> {
  const state = path.join(tmp.dir, `state-${name}`);
  await fs.mkdir(state, { recursive: true });
  const script = `#!${process.execPath}
const fs = require('fs');
const path = require('path');
const state = ${JSON.stringify(state)};
const action = process.argv[2];
const input = fs.readFileSync(0, 'utf8');
fs.appendFileSync(path.join(state, 'calls.jsonl'), JSON.stringify({ action, input }) + '\\n');
if (fs.existsSync(path.join(state, 'fail'))) { process.stdout.write('keychain is locked; was given ' + input); process.exit(3); }
const file = path.join(state, 'store.json');
const db = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : {};
if (action === 'get') {
  const e = db[input.trim()];
  if (!e) { process.stdout.write('credentials not found in native keychain\\n'); process.exit(1); }
  process.stdout.write(JSON.stringify({ ServerURL: input.trim(), Username: e.Username, Secret: e.Secret }));
} else if (action === 'store') {
  const c = JSON.parse(input);
  db[c.ServerURL] = { Username: c.Username, Secret: c.Secret };
  fs.writeFileSync(file, JSON.stringify(db));
} else if (action === 'erase') {
  if (!db[input.trim()]) { process.stdout.write('credentials not found in native keychain\\n'); process.exit(1); }
  delete db[input.trim()];
  fs.writeFileSync(file, JSON.stringify(db));
} else { process.stderr.write('unknown action ' + action); process.exit(2); }
`;
  const file = path.join(bin, `docker-credential-${name}`);
  await fs.writeFile(file, script, { mode: 0o755 });
  const readJson = async <T>(f: string, empty: T): Promise<T> => {
    const text = await fs.readFile(path.join(state, f), 'utf8').catch(() => '');
    return text ? (JSON.parse(text) as T) : empty;
  };
  return {
    state,
    calls: async () => {
      const text = await fs.readFile(path.join(state, 'calls.jsonl'), 'utf8').catch(() => '');
      return text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { action: string; input: string });
    },
    stored: () => readJson(path.join('store.json'), {}),
  };
}

/** A fresh docker config dir holding `config` (undefined: no config.json). */
async function configDir(config?: unknown): Promise<string> {
  const dir = path.join(tmp.dir, `docker-${++n}`);
  await fs.mkdir(dir, { recursive: true });
  if (config !== undefined) await fs.writeFile(path.join(dir, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config), { mode: 0o600 });
  return dir;
}

const readConfig = async (dir: string) => JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown> & { auths?: Record<string, Record<string, string>> };

before(async () => {
  tmp = await tempDir('kiln-creds-');
  bin = path.join(tmp.dir, 'bin');
  await fs.mkdir(bin);
  process.env.PATH = `${bin}:${savedPath}`;
});
after(async () => {
  process.env.PATH = savedPath;
  await tmp.cleanup();
});

test('host names and config keys follow docker: Docker Hub is https://index.docker.io/v1/, others host[:port]', () => {
  for (const h of ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'https://index.docker.io/v1/', 'Docker.IO']) {
    assert.equal(registryHostname(h), 'docker.io', h);
    assert.equal(configKey(h), 'https://index.docker.io/v1/', h);
  }
  assert.equal(registryHostname('http://LocalHost:5000/v2/'), 'localhost:5000');
  assert.equal(registryHostname('registry.example.com/v1/'), 'registry.example.com');
  assert.equal(configKey('localhost:5000'), 'localhost:5000');
  assert.equal(configKey('https://ghcr.io'), 'ghcr.io');
});

test('auths: base64 auth, identity tokens, username/password fields, and the older key forms docker wrote', async () => {
  const dir = await configDir({
    auths: {
      'https://index.docker.io/v1/': { auth: b64('hubuser:hub:pass:with:colons') },
      'localhost:5000': { auth: b64('alice:s3cret') },
      'https://old.example.com': { auth: b64('bob:pw1') },
      'http://plain.example.com:8080': { auth: b64('carol:pw2') },
      'legacy.example.com/v1/': { auth: b64('dave:pw3') },
      'token.example.com': { auth: b64('erin:'), identitytoken: 'refresh-123' },
      'onlytoken.example.com': { identitytoken: 'refresh-456' },
      'fields.example.com': { username: 'frank', password: 'pw4' },
      'empty.example.com': {},
    },
  });
  const store = new DockerCredentials(dir);
  assert.deepEqual(await store.get('docker.io'), { username: 'hubuser', password: 'hub:pass:with:colons' });
  assert.deepEqual(await store.get('index.docker.io'), { username: 'hubuser', password: 'hub:pass:with:colons' });
  assert.deepEqual(await store.get('localhost:5000'), { username: 'alice', password: 's3cret' });
  assert.equal(await store.get('localhost:5001'), undefined, 'the port is part of the host');
  assert.equal(await store.get('localhost'), undefined);
  assert.deepEqual(await store.get('old.example.com'), { username: 'bob', password: 'pw1' });
  assert.deepEqual(await store.get('plain.example.com:8080'), { username: 'carol', password: 'pw2' });
  assert.deepEqual(await store.get('legacy.example.com'), { username: 'dave', password: 'pw3' });
  assert.deepEqual(await store.get('token.example.com'), { username: 'erin', password: '', identityToken: 'refresh-123' });
  assert.deepEqual(await store.get('onlytoken.example.com'), { identityToken: 'refresh-456' });
  assert.deepEqual(await store.get('fields.example.com'), { username: 'frank', password: 'pw4' });
  assert.equal(await store.get('empty.example.com'), undefined, 'an empty entry (credentials in a helper) is no credentials');
  assert.equal(await store.get('elsewhere.example.com'), undefined);
});

test('no config.json, an empty one, or one without auths: no credentials; a broken one is a clear error', async () => {
  assert.equal(await new DockerCredentials(await configDir()).get('localhost:5000'), undefined);
  assert.equal(await new DockerCredentials(await configDir('')).get('localhost:5000'), undefined);
  assert.equal(await new DockerCredentials(await configDir({ psFormat: 'table' })).get('localhost:5000'), undefined);
  const broken = await configDir('{"auths": {');
  await assert.rejects(new DockerCredentials(broken).get('localhost:5000'), (e: KilnError) => {
    assert.equal(e.code, 'invalid');
    assert.match(e.message, /config\.json is not valid JSON/);
    assert.ok(e.message.includes(broken), e.message);
    return true;
  });
  const badAuth = await configDir({ auths: { 'localhost:5000': { auth: b64('no-colon-here') } } });
  await assert.rejects(new DockerCredentials(badAuth).get('localhost:5000'), (e: KilnError) => {
    assert.equal(e.code, 'invalid');
    assert.match(e.message, /"auth" of localhost:5000 .* is not base64 of "user:password"/);
    assert.ok(!e.message.includes('no-colon-here'));
    return true;
  });
});

test('DOCKER_CONFIG is honoured, else ~/.docker', async () => {
  const saved = process.env.DOCKER_CONFIG;
  try {
    const dir = await configDir({ auths: { 'localhost:5000': { auth: b64('viaenv:pw') } } });
    process.env.DOCKER_CONFIG = dir;
    assert.equal(dockerConfigDir(), dir);
    assert.deepEqual(await dockerCredentials().get('localhost:5000'), { username: 'viaenv', password: 'pw' });
    delete process.env.DOCKER_CONFIG;
    assert.equal(dockerConfigDir(), path.join(process.env.HOME ?? '', '.docker'));
  } finally {
    if (saved === undefined) delete process.env.DOCKER_CONFIG;
    else process.env.DOCKER_CONFIG = saved;
  }
});

test('store writes config.json atomically, mode 0600, keeping every other key; a second store replaces the entry', async () => {
  const original = {
    auths: { 'other.example.com': { auth: b64('x:y') }, 'http://localhost:5000': { auth: b64('old:oldpw') } },
    credHelpers: { 'gcr.io': 'gcloud' },
    psFormat: 'table {{.ID}}',
    proxies: { default: { httpProxy: 'http://proxy:3128' } },
    experimental: 'enabled',
    currentContext: 'default',
  };
  const dir = await configDir(original);
  await fs.chmod(path.join(dir, 'config.json'), 0o644);
  const store = new DockerCredentials(dir);
  await store.store('localhost:5000', { username: 'alice', password: 'pw-one' });
  const st = await fs.stat(path.join(dir, 'config.json'));
  assert.equal(st.mode & 0o777, 0o600);
  const cfg = await readConfig(dir);
  assert.deepEqual(cfg.auths, { 'other.example.com': { auth: b64('x:y') }, 'localhost:5000': { auth: b64('alice:pw-one') } }, 'the old http:// entry of the host is replaced');
  for (const k of ['credHelpers', 'psFormat', 'proxies', 'experimental', 'currentContext'] as const) assert.deepEqual(cfg[k], original[k], k);
  assert.deepEqual(await store.get('localhost:5000'), { username: 'alice', password: 'pw-one' }, 'a store is seen by the same store');
  await store.store('localhost:5000', { username: 'alice', password: 'pw-two' });
  assert.deepEqual(await new DockerCredentials(dir).get('localhost:5000'), { username: 'alice', password: 'pw-two' });
  assert.deepEqual(await fs.readdir(dir), ['config.json'], 'no temp file is left beside it');
  await store.store('docker.io', { identityToken: 'refresh-789' });
  assert.deepEqual((await readConfig(dir)).auths?.['https://index.docker.io/v1/'], { identitytoken: 'refresh-789' });
  assert.deepEqual(await new DockerCredentials(dir).get('registry-1.docker.io'), { identityToken: 'refresh-789' });
});

test('store creates the config directory (0700) and file when missing, and writes through a symlinked config.json', async () => {
  const dir = path.join(tmp.dir, `fresh-${++n}`, '.docker');
  await new DockerCredentials(dir).store('localhost:5000', { username: 'u', password: 'p' });
  assert.equal((await fs.stat(dir)).mode & 0o777, 0o700);
  assert.equal((await fs.stat(path.join(dir, 'config.json'))).mode & 0o777, 0o600);
  assert.deepEqual((await readConfig(dir)).auths, { 'localhost:5000': { auth: b64('u:p') } });

  const real = await configDir({ psFormat: 'x' });
  const linked = await configDir();
  await fs.symlink(path.join(real, 'config.json'), path.join(linked, 'config.json'));
  await new DockerCredentials(linked).store('localhost:5000', { username: 'u', password: 'p' });
  assert.ok((await fs.lstat(path.join(linked, 'config.json'))).isSymbolicLink(), 'the link stays a link');
  assert.deepEqual(await readConfig(real), { psFormat: 'x', auths: { 'localhost:5000': { auth: b64('u:p') } } });
});

test('store refuses to overwrite a config.json that is not JSON', async () => {
  const dir = await configDir('not json at all');
  await assert.rejects(new DockerCredentials(dir).store('localhost:5000', { username: 'u', password: 'p' }), /not valid JSON/);
  assert.equal(await fs.readFile(path.join(dir, 'config.json'), 'utf8'), 'not json at all');
});

test('erase removes every form of the host, keeps the rest, and says whether anything was there', async () => {
  const dir = await configDir({
    auths: { 'localhost:5000': { auth: b64('a:b') }, 'https://localhost:5000': { auth: b64('c:d') }, 'keep.example.com': { auth: b64('e:f') } },
    psFormat: 'keep me',
  });
  const store = new DockerCredentials(dir);
  assert.ok(await store.get('localhost:5000'));
  assert.equal(await store.erase('localhost:5000'), true);
  assert.equal(await store.get('localhost:5000'), undefined, 'the cached lookup is forgotten');
  const cfg = await readConfig(dir);
  assert.deepEqual(cfg.auths, { 'keep.example.com': { auth: b64('e:f') } });
  assert.equal(cfg.psFormat, 'keep me');
  assert.equal((await fs.stat(path.join(dir, 'config.json'))).mode & 0o777, 0o600);
  assert.equal(await store.erase('localhost:5000'), false);
  assert.equal(await new DockerCredentials(await configDir()).erase('localhost:5000'), false);
});

test('credsStore: every host goes through docker-credential-<name> with the protocol docker speaks', async () => {
  const helper = await fakeHelper('test');
  const dir = await configDir({ credsStore: 'test', auths: { 'localhost:5000': { auth: b64('plain:text-pw') } }, psFormat: 'kept' });
  const store = new DockerCredentials(dir);
  assert.deepEqual(await store.location('localhost:5000'), { helper: 'test', file: path.join(dir, 'config.json') });
  assert.equal(await store.get('localhost:5000'), undefined, '"credentials not found" is no credentials, and the file is not consulted');

  await store.store('localhost:5000', { username: 'alice', password: 'helper-pw' });
  await store.store('docker.io', { identityToken: 'refresh-tok' });
  assert.deepEqual(await helper.stored(), {
    'localhost:5000': { Username: 'alice', Secret: 'helper-pw' },
    'https://index.docker.io/v1/': { Username: '<token>', Secret: 'refresh-tok' },
  });
  const cfg = await readConfig(dir);
  assert.deepEqual(cfg.auths, { 'localhost:5000': {}, 'https://index.docker.io/v1/': {} }, 'the file keeps empty entries and no secret, as docker does');
  assert.equal(cfg.psFormat, 'kept');
  assert.equal(cfg.credsStore, 'test');
  assert.ok(!JSON.stringify(cfg).includes('helper-pw') && !JSON.stringify(cfg).includes('text-pw'));

  const fresh = new DockerCredentials(dir);
  assert.deepEqual(await fresh.get('localhost:5000'), { username: 'alice', password: 'helper-pw' });
  assert.deepEqual(await fresh.get('docker.io'), { identityToken: 'refresh-tok' }, 'Username <token>: the secret is an identity token');
  await fresh.get('localhost:5000');
  await fresh.get('LOCALHOST:5000');

  const calls = await helper.calls();
  const gets = calls.filter((c) => c.action === 'get');
  assert.deepEqual(
    gets.map((c) => c.input),
    ['localhost:5000', 'localhost:5000', 'https://index.docker.io/v1/'],
    'get reads the server URL on stdin; one lookup per host per store',
  );
  const stores = calls.filter((c) => c.action === 'store').map((c) => JSON.parse(c.input) as Record<string, string>);
  assert.deepEqual(stores[0], { ServerURL: 'localhost:5000', Username: 'alice', Secret: 'helper-pw' });

  assert.equal(await fresh.erase('localhost:5000'), true);
  assert.deepEqual(calls.length + 1, (await helper.calls()).length);
  assert.deepEqual((await helper.calls()).at(-1), { action: 'erase', input: 'localhost:5000' });
  assert.equal(await fresh.get('localhost:5000'), undefined);
  assert.deepEqual((await readConfig(dir)).auths, { 'https://index.docker.io/v1/': {} });
  assert.equal(await fresh.erase('localhost:5000'), false, 'the helper had nothing: not logged in');
});

test('credHelpers: a per-host helper wins over credsStore; other hosts use credsStore', async () => {
  const own = await fakeHelper('own');
  const all = await fakeHelper('all');
  const dir = await configDir({ credsStore: 'all', credHelpers: { 'localhost:5000': 'own', 'https://index.docker.io/v1/': 'own' } });
  const store = new DockerCredentials(dir);
  await store.store('localhost:5000', { username: 'u1', password: 'p1' });
  await store.store('other.example.com:443', { username: 'u2', password: 'p2' });
  await store.store('docker.io', { username: 'u3', password: 'p3' });
  assert.deepEqual(Object.keys(await own.stored()).sort(), ['https://index.docker.io/v1/', 'localhost:5000']);
  assert.deepEqual(Object.keys(await all.stored()), ['other.example.com:443']);
  const fresh = new DockerCredentials(dir);
  assert.deepEqual(await fresh.get('localhost:5000'), { username: 'u1', password: 'p1' });
  assert.deepEqual(await fresh.get('other.example.com:443'), { username: 'u2', password: 'p2' });
  assert.deepEqual(await fresh.get('index.docker.io'), { username: 'u3', password: 'p3' });
  assert.deepEqual(await fresh.location('localhost:5000'), { helper: 'own', file: path.join(dir, 'config.json') });

  // credHelpers alone: the listed host uses its helper, the others the file
  const onlyPerHost = await configDir({ credHelpers: { 'localhost:5000': 'own' }, auths: { 'b.example.com': { auth: b64('fileuser:filepw') } } });
  const s2 = new DockerCredentials(onlyPerHost);
  assert.deepEqual(await s2.get('localhost:5000'), { username: 'u1', password: 'p1' });
  assert.deepEqual(await s2.get('b.example.com'), { username: 'fileuser', password: 'filepw' });
  assert.deepEqual(await s2.location('b.example.com'), { helper: undefined, file: path.join(onlyPerHost, 'config.json') });
});

test('a missing helper is a clear error naming the helper and the host', async () => {
  const dir = await configDir({ credHelpers: { 'localhost:5000': 'nosuch' } });
  const store = new DockerCredentials(dir);
  for (const op of [() => store.get('localhost:5000'), () => store.store('localhost:5000', { username: 'u', password: 'topsecret-1' }), () => store.erase('localhost:5000')]) {
    await assert.rejects(op(), (e: KilnError) => {
      assert.ok(e instanceof KilnError);
      assert.equal(e.code, 'not-found');
      assert.match(e.message, /docker-credential-nosuch \(for localhost:5000\) is not installed/);
      assert.match(e.hint ?? '', /install docker-credential-nosuch/);
      assert.ok(!e.message.includes('topsecret-1'));
      return true;
    });
  }
  assert.deepEqual(await readConfig(dir), { credHelpers: { 'localhost:5000': 'nosuch' } }, 'a failed store writes nothing');
});

test('a failing helper is a clear error naming the helper and the host, its words shown without the secret', async () => {
  const helper = await fakeHelper('flaky');
  const dir = await configDir({ credsStore: 'flaky' });
  const store = new DockerCredentials(dir);
  await fs.writeFile(path.join(helper.state, 'fail'), '');
  const check = (action: string) => (e: KilnError) => {
    assert.equal(e.code, 'failed');
    assert.match(e.message, new RegExp(`docker-credential-flaky failed to ${action} credentials for registry\\.example\\.com \\(exit status 3\\): keychain is locked`));
    assert.ok(!e.message.includes('very-secret-pw') && !(e.hint ?? '').includes('very-secret-pw'), e.message);
    return true;
  };
  await assert.rejects(store.get('registry.example.com'), check('get'));
  // the fake helper repeats its input (the secret) in its error: it is blanked out
  await assert.rejects(store.store('registry.example.com', { username: 'u', password: 'very-secret-pw' }), (e: KilnError) => {
    check('store')(e);
    assert.match(e.message, /\*\*\*/);
    return true;
  });
  await assert.rejects(store.erase('registry.example.com'), check('erase'));
  assert.deepEqual(await readConfig(dir), { credsStore: 'flaky' }, 'a failed store writes nothing');
  // a failed lookup is not remembered
  await fs.rm(path.join(helper.state, 'fail'));
  assert.equal(await store.get('registry.example.com'), undefined);
});

test('a helper that answers get with something other than JSON: an error that does not repeat its output', async () => {
  const file = path.join(bin, 'docker-credential-garbled');
  await fs.writeFile(file, `#!/bin/sh\necho 'raw-secret-output'\n`, { mode: 0o755 });
  const store = new DockerCredentials(await configDir({ credsStore: 'garbled' }));
  await assert.rejects(store.get('localhost:5000'), (e: KilnError) => {
    assert.equal(e.code, 'failed');
    assert.match(e.message, /docker-credential-garbled answered "get" for localhost:5000 with something that is not JSON/);
    assert.ok(!e.message.includes('raw-secret-output'));
    return true;
  });
});

test('kiln logout removes the credentials from $DOCKER_CONFIG/config.json, and says when there were none', async () => {
  const root = path.join(tmp.dir, 'root');
  await fs.mkdir(root, { recursive: true });
  const dir = await configDir({ auths: { 'localhost:5000': { auth: b64('alice:logout-pw') }, 'https://index.docker.io/v1/': { auth: b64('hub:hubpw') } }, psFormat: 'kept' });
  const env = { DOCKER_CONFIG: dir };
  const r1 = await runKiln(['logout', 'localhost:5000'], { root, env });
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(r1.stdout, 'Removing login credentials for localhost:5000\n');
  assert.deepEqual(await readConfig(dir), { auths: { 'https://index.docker.io/v1/': { auth: b64('hub:hubpw') } }, psFormat: 'kept' });
  const r2 = await runKiln(['logout', 'localhost:5000'], { root, env });
  assert.equal(r2.code, 0, r2.stderr);
  assert.equal(r2.stdout, 'Not logged in to localhost:5000\n');
  const r3 = await runKiln(['logout'], { root, env });
  assert.equal(r3.code, 0, r3.stderr);
  assert.equal(r3.stdout, 'Removing login credentials for docker.io\n', 'no server: Docker Hub, as docker logout');
  assert.deepEqual((await readConfig(dir)).auths, {});
  const r4 = await runKiln(['logout', 'https://LocalHost:5000/v2/'], { root, env });
  assert.equal(r4.stdout, 'Not logged in to localhost:5000\n', 'a URL names its host');
  const bad = await runKiln(['logout', 'not a host'], { root, env });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /error: registry "not a host" .* is not a host or host:port/);
  for (const r of [r1, r2, r3, r4, bad]) assert.ok(!(r.stdout + r.stderr).includes('logout-pw'));
});

test('docker reads what kiln writes: docker logout finds and erases kiln-stored credentials, in the file and through the helper', { skip: !haveTool('docker') && 'no docker CLI' }, async () => {
  const dir = await configDir({ psFormat: 'kept' });
  await new DockerCredentials(dir).store('localhost:5000', { username: 'alice', password: 'peer-pw' });
  const r = await runCommand('docker', ['--config', dir, 'logout', 'localhost:5000']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Removing login credentials for localhost:5000/);
  assert.deepEqual(await readConfig(dir), { auths: {}, psFormat: 'kept' });

  const helper = await fakeHelper('peer');
  const hdir = await configDir({ credsStore: 'peer' });
  await new DockerCredentials(hdir).store('localhost:5000', { username: 'alice', password: 'peer-pw' });
  assert.deepEqual(Object.keys(await helper.stored()), ['localhost:5000']);
  const before = (await helper.calls()).length;
  const h = await runCommand('docker', ['--config', hdir, 'logout', 'localhost:5000']);
  assert.equal(h.code, 0, h.stderr);
  assert.match(h.stdout, /Removing login credentials for localhost:5000/);
  const erases = (await helper.calls()).slice(before).filter((c) => c.action === 'erase');
  assert.ok(erases.some((c) => c.input.trim() === 'localhost:5000'), JSON.stringify(erases));
  assert.deepEqual(await helper.stored(), {}, 'docker erased, through the helper, the entry kiln stored');
  for (const out of [r, h]) assert.ok(!(out.stdout + out.stderr).includes('peer-pw'));
});

test('a helper that does not answer is stopped: a clear error naming the helper and the host', async () => {
  // exec: the process kiln kills is the one that hangs, nothing is left behind
  await fs.writeFile(path.join(bin, 'docker-credential-hung'), '#!/bin/sh\nexec sleep 30\n', { mode: 0o755 });
  const store = new DockerCredentials(await configDir({ credsStore: 'hung' }), { helperTimeoutMs: 300 });
  await assert.rejects(store.get('localhost:5000'), (e: KilnError) => {
    assert.equal(e.code, 'unavailable');
    assert.match(e.message, /credential helper docker-credential-hung did not answer "get" for localhost:5000 within 0\.3 s/);
    return true;
  });
});
