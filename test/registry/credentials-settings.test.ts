/** Registry settings: insecure registries from --insecure-registry, KILN_INSECURE_REGISTRIES and <root>/config.json, validated. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { KilnError } from '../../src/errors.js';
import { checkRegistryHost, clientOptions, insecureRegistries, isRegistryHost } from '../../src/registry/settings.js';
import { DockerCredentials, fixedCredentials } from '../../src/registry/credentials.js';
import { tempDir } from '../helpers.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let n = 0;
const savedEnv = process.env.KILN_INSECURE_REGISTRIES;

async function rootWith(config?: string): Promise<string> {
  const root = path.join(tmp.dir, `root-${++n}`);
  await fs.mkdir(root, { recursive: true });
  if (config !== undefined) await fs.writeFile(path.join(root, 'config.json'), config);
  return root;
}

before(async () => {
  tmp = await tempDir('kiln-settings-');
  delete process.env.KILN_INSECURE_REGISTRIES;
});
after(async () => {
  if (savedEnv === undefined) delete process.env.KILN_INSECURE_REGISTRIES;
  else process.env.KILN_INSECURE_REGISTRIES = savedEnv;
  await tmp.cleanup();
});

test('host[:port] forms: names, IPv4, [IPv6], ports 1-65535', () => {
  for (const ok of ['localhost', 'localhost:5000', 'registry.example.com', 'REG-1.example.com:443', '10.0.0.7', '10.0.0.7:5000', '[::1]', '[::1]:5000', '[fe80::1]:443']) assert.ok(isRegistryHost(ok), ok);
  for (const bad of ['', 'http://reg:5000', 'reg:5000/v2/', 'reg:0', 'reg:65536', 'reg:port', '-reg', 'reg-', 're g', '::1', 'a..b', 'reg:5000:1']) assert.ok(!isRegistryHost(bad), bad);
  assert.equal(checkRegistryHost(' Reg.Example.com:5000 ', 'x'), 'reg.example.com:5000');
});

test('the flags, the environment and the root config.json are added together', async () => {
  const root = await rootWith(JSON.stringify({ cacheMaxSize: '20GB', insecureRegistries: ['cfg.example.com:5000', 'shared.example.com'] }));
  process.env.KILN_INSECURE_REGISTRIES = 'env1.example.com, env2.example.com:80,,';
  try {
    assert.deepEqual(insecureRegistries({ root, insecureRegistries: ['flag.example.com', 'Shared.example.com'] }), [
      'flag.example.com',
      'shared.example.com',
      'env1.example.com',
      'env2.example.com:80',
      'cfg.example.com:5000',
    ]);
  } finally {
    delete process.env.KILN_INSECURE_REGISTRIES;
  }
  assert.deepEqual(insecureRegistries({ root: await rootWith(JSON.stringify({ 'insecure-registries': ['daemon.example.com'] })) }), ['daemon.example.com']);
  assert.deepEqual(insecureRegistries({ root: await rootWith() }), []);
  assert.deepEqual(insecureRegistries({ root: await rootWith('{"cacheMaxSize": "1GB"}') }), []);
});

test('a bad entry is a clear error that says what is wrong and where it came from', async () => {
  const expectInvalid = (fn: () => unknown, message: RegExp, hint?: RegExp) =>
    assert.throws(fn, (e: KilnError) => {
      assert.ok(e instanceof KilnError);
      assert.equal(e.code, 'invalid');
      assert.match(e.message, message);
      if (hint) assert.match(e.hint ?? '', hint);
      return true;
    });
  const root = await rootWith();
  expectInvalid(() => insecureRegistries({ root, insecureRegistries: ['http://reg.local:5000'] }), /registry "http:\/\/reg\.local:5000" \(--insecure-registry\) has a scheme/, /here "reg\.local:5000"/);
  expectInvalid(() => insecureRegistries({ root, insecureRegistries: ['reg.local:5000/v2/'] }), /\(--insecure-registry\) has a path/);
  expectInvalid(() => insecureRegistries({ root, insecureRegistries: ['reg.local:99999'] }), /is not a host or host:port/, /registry\.local:5000/);
  process.env.KILN_INSECURE_REGISTRIES = 'ok.example.com,bad host';
  try {
    expectInvalid(() => insecureRegistries({ root }), /registry "bad host" \(KILN_INSECURE_REGISTRIES\) is not a host/);
  } finally {
    delete process.env.KILN_INSECURE_REGISTRIES;
  }
  const cfgRoot = await rootWith(JSON.stringify({ insecureRegistries: ['https://x.example.com'] }));
  expectInvalid(() => insecureRegistries({ root: cfgRoot }), new RegExp(`\\(insecureRegistries in ${path.join(cfgRoot, 'config.json').replace(/[.]/g, '\\.')}\\) has a scheme`));
  const notList = await rootWith('{"insecureRegistries": "x.example.com"}');
  expectInvalid(() => insecureRegistries({ root: notList }), /insecureRegistries in .*config\.json must be a list of host\[:port\] strings/);
  const numbers = await rootWith('{"insecureRegistries": [5000]}');
  expectInvalid(() => insecureRegistries({ root: numbers }), /must be a list/);
  const broken = await rootWith('{not json');
  expectInvalid(() => insecureRegistries({ root: broken }), /config\.json is not valid JSON/);
});

test('clientOptions: docker credentials by default, the given store when one is passed', async () => {
  const root = await rootWith();
  assert.ok(clientOptions({ root }).credentials instanceof DockerCredentials);
  const fixed = fixedCredentials('localhost:5000', { username: 'u', password: 'p' });
  const opts = clientOptions({ root, credentials: fixed, insecureRegistries: ['reg.local'] });
  assert.equal(opts.credentials, fixed);
  assert.deepEqual(opts.insecureRegistries, ['reg.local']);
  assert.deepEqual(await fixed.get('http://LOCALHOST:5000'), { username: 'u', password: 'p' });
  assert.equal(await fixed.get('localhost:5001'), undefined, 'credentials go to their own host only');
});
