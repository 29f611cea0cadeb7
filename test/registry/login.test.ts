/**
 * kiln login and logout against a real registry (docker-registry with htpasswd auth): the
 * credentials are checked before anything is stored, stored 0600 (or through a credential
 * helper), and the password never shows in any output.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { haveTool, kilnBin, runCommand, runKiln, tempDir, type CliResult } from '../helpers.js';
import { KilnError } from '../../src/errors.js';
import { registryClient } from '../../src/registry/settings.js';
import { freePort, seedImage, skipUnlessRegistry, startRegistry, type Registry } from './harness.js';

const USER = 'alice';
const PASSWORD = 'Corr3ct-horse-battery';
const b64 = (s: string) => Buffer.from(s).toString('base64');

let tmp: { dir: string; cleanup: () => Promise<void> };
let registry: Registry;
let started: Promise<Registry> | undefined;
let root: string;
let n = 0;
const outputs: CliResult[] = [];

async function dockerDir(config?: unknown): Promise<string> {
  const dir = path.join(tmp.dir, `docker-${++n}`);
  await fs.mkdir(dir, { recursive: true });
  if (config !== undefined) await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(config), { mode: 0o600 });
  return dir;
}

/** kiln with DOCKER_CONFIG=dir; every output is checked for the password. */
async function kiln(args: string[], dir: string, input = '', env: Record<string, string> = {}): Promise<CliResult> {
  const r = await runKiln(args, { root, input, env: { DOCKER_CONFIG: dir, ...env } });
  outputs.push(r);
  assert.ok(!(r.stdout + r.stderr).includes(PASSWORD), `the password shows in the output of kiln ${args.join(' ')}`);
  return r;
}

const readConfig = async (dir: string) => JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8')) as { auths?: Record<string, Record<string, string>> } & Record<string, unknown>;

before(async () => {
  tmp = await tempDir('kiln-login-');
  root = path.join(tmp.dir, 'root');
  await fs.mkdir(root);
});

/** The htpasswd registry the tests share (started by the first), undefined when the test is skipped. */
async function htpasswdRegistry(t: TestContext): Promise<Registry | undefined> {
  if (skipUnlessRegistry(t, { auth: 'htpasswd' })) return undefined;
  started ??= startRegistry({ auth: 'htpasswd', users: { [USER]: PASSWORD } });
  registry = await started;
  return registry;
}
after(async () => {
  if (started) await (await started).stop();
  await tmp.cleanup();
  for (const r of outputs) assert.ok(!(r.stdout + r.stderr).includes(PASSWORD));
});

test('kiln login --password-stdin checks the credentials, stores them 0600 and says Login Succeeded; logout removes them', async (t) => {
  if (!(await htpasswdRegistry(t))) return;
  const dir = await dockerDir({ psFormat: 'kept' });
  const r = await kiln(['login', '-u', USER, '--password-stdin', registry.host], dir, `${PASSWORD}\n`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Login Succeeded\n');
  assert.match(r.stderr, /WARNING! Your password is stored unencrypted in .*config\.json/);
  const st = await fs.stat(path.join(dir, 'config.json'));
  assert.equal(st.mode & 0o777, 0o600);
  const cfg = await readConfig(dir);
  assert.deepEqual(cfg.auths, { [registry.host]: { auth: b64(`${USER}:${PASSWORD}`) } }, 'the trailing newline is not part of the password');
  assert.equal(cfg.psFormat, 'kept');

  // stored credentials that work are a login (as docker login with no -u)
  const again = await kiln(['login', registry.host], dir);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /Authenticating with existing credentials/);
  assert.equal(again.stdout, 'Login Succeeded\n');

  const out = await kiln(['logout', registry.host], dir);
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stdout, `Removing login credentials for ${registry.host}\n`);
  assert.deepEqual((await readConfig(dir)).auths, {});
  const twice = await kiln(['logout', registry.host], dir);
  assert.equal(twice.stdout, `Not logged in to ${registry.host}\n`);
});

test('a wrong password (or user) is a clear unauthorized error naming the host, and nothing is stored', async (t) => {
  if (!(await htpasswdRegistry(t))) return;
  const empty = await dockerDir();
  for (const [user, pw] of [[USER, `${PASSWORD}-wrong`], ['mallory', PASSWORD]]) {
    const r = await kiln(['login', '-u', user, '--password-stdin', registry.host], empty, pw);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`^error: unauthorized: incorrect username or password for ${registry.host.replace(/[.]/g, '\\.')}\\n`));
    assert.match(r.stderr, /hint: .*nothing was stored/);
    assert.ok(!r.stderr.includes(pw));
    assert.deepEqual(await fs.readdir(empty), [], 'no config.json is written');
  }
  // an earlier login stays as it was
  const prior = { auths: { [registry.host]: { auth: b64(`${USER}:${PASSWORD}`) } }, psFormat: 'x' };
  const dir = await dockerDir(prior);
  const r = await kiln(['login', '-u', USER, '--password-stdin', registry.host], dir, 'not-it');
  assert.equal(r.code, 1);
  assert.deepEqual(await readConfig(dir), prior);
});

test('-p works but warns as docker does; the password is not shown', async (t) => {
  if (!(await htpasswdRegistry(t))) return;
  const dir = await dockerDir();
  const r = await kiln(['login', '-u', USER, '-p', PASSWORD, registry.host], dir);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /WARNING! Using --password via the CLI is insecure\. Use --password-stdin\./);
  assert.equal(r.stdout, 'Login Succeeded\n');
});

test('with a credsStore, login stores through the helper and config.json keeps no secret', async (t) => {
  if (!(await htpasswdRegistry(t))) return;
  const bin = path.join(tmp.dir, 'bin');
  await fs.mkdir(bin, { recursive: true });
  const state = path.join(tmp.dir, 'helper-state.json');
  await fs.writeFile(
    path.join(bin, 'docker-credential-test'),
    `#!${process.execPath}
const fs = require('fs');
const input = fs.readFileSync(0, 'utf8');
const db = fs.existsSync(${JSON.stringify(state)}) ? JSON.parse(fs.readFileSync(${JSON.stringify(state)}, 'utf8')) : {};
const a = process.argv[2];
if (a === 'store') { const c = JSON.parse(input); db[c.ServerURL] = c; }
else if (a === 'get') { if (!db[input]) { console.log('credentials not found in native keychain'); process.exit(1); } process.stdout.write(JSON.stringify(db[input])); process.exit(0); }
else if (a === 'erase') { if (!db[input]) { console.log('credentials not found in native keychain'); process.exit(1); } delete db[input]; }
fs.writeFileSync(${JSON.stringify(state)}, JSON.stringify(db));
`,
    { mode: 0o755 },
  );
  const env = { PATH: `${bin}:${process.env.PATH}` };
  const dir = await dockerDir({ credsStore: 'test' });
  const r = await kiln(['login', '-u', USER, '--password-stdin', registry.host], dir, PASSWORD, env);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Login Succeeded\n');
  assert.doesNotMatch(r.stderr, /unencrypted/);
  assert.deepEqual(JSON.parse(await fs.readFile(state, 'utf8')), { [registry.host]: { ServerURL: registry.host, Username: USER, Secret: PASSWORD } });
  assert.deepEqual(await readConfig(dir), { credsStore: 'test', auths: { [registry.host]: {} } });
  const again = await kiln(['login', registry.host], dir, '', env);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /Authenticating with existing credentials/);
  const out = await kiln(['logout', registry.host], dir, '', env);
  assert.equal(out.stdout, `Removing login credentials for ${registry.host}\n`);
  assert.deepEqual(JSON.parse(await fs.readFile(state, 'utf8')), {});
});

test('an unreachable registry is a clear error and nothing is stored', async () => {
  const port = await freePort();
  const dir = await dockerDir();
  const r = await kiln(['login', '-u', USER, '--password-stdin', `127.0.0.1:${port}`], dir, PASSWORD);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`error: cannot reach registry 127\\.0\\.0\\.1:${port}`));
  assert.deepEqual(await fs.readdir(dir), []);
});

/**
 * kiln login on a terminal (a pty made by script(1)): each answer is typed once its prompt has
 * shown. Returns everything the terminal displayed.
 */
function onTerminal(dir: string, answers: [prompt: string, typed: string][]): Promise<{ code: number | null; text: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('script', ['-qfec', `${process.execPath} ${kilnBin} --root ${root} login ${registry.host}`, '/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, DOCKER_CONFIG: dir },
    });
    let text = '';
    let seen = 0;
    let step = 0;
    const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.stdout.setEncoding('utf8').on('data', (c: string) => {
      text += c;
      const next = answers[step];
      const at = next ? text.indexOf(next[0], seen) : -1;
      if (next && at >= 0) {
        seen = at + next[0].length;
        step++;
        p.stdin.write(next[1]);
      }
    });
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, text });
    });
  });
}

test('on a terminal, kiln login asks for the username and the password, and does not echo the password', { skip: !haveTool('script') && 'no script(1) for a pty' }, async (t) => {
  if (!(await htpasswdRegistry(t))) return;
  const dir = await dockerDir();
  // a mistyped character erased with backspace is not part of the password
  const out = await onTerminal(dir, [
    ['Username: ', `${USER}\r`],
    ['Password: ', `${PASSWORD}x\u007f\r`],
  ]);
  assert.equal(out.code, 0, out.text);
  assert.match(out.text, /Login Succeeded/);
  assert.ok(out.text.includes(USER), 'the username is echoed');
  assert.ok(!out.text.includes(PASSWORD), 'the password is not echoed');
  assert.deepEqual((await readConfig(dir)).auths, { [registry.host]: { auth: b64(`${USER}:${PASSWORD}`) } });
});

test('on a terminal, stored credentials that no longer work: the stored username is the default, the password is asked again', { skip: !haveTool('script') && 'no script(1) for a pty' }, async (t) => {
  if (!(await htpasswdRegistry(t))) return;
  const dir = await dockerDir({ auths: { [registry.host]: { auth: b64(`${USER}:stale-password`) } } });
  const out = await onTerminal(dir, [
    [`Username (${USER}): `, '\r'],
    ['Password: ', `${PASSWORD}\r`],
  ]);
  assert.equal(out.code, 0, out.text);
  assert.match(out.text, /Authenticating with existing credentials\.\.\.[\s\S]*Login did not succeed[\s\S]*Login Succeeded/);
  assert.ok(!out.text.includes(PASSWORD) && !out.text.includes('stale-password'));
  assert.deepEqual((await readConfig(dir)).auths, { [registry.host]: { auth: b64(`${USER}:${PASSWORD}`) } });
});

test('docker and kiln share the login: docker login reads what kiln stored, kiln logout removes what docker stored', { skip: !haveTool('docker') && 'no docker' }, async (t) => {
  if (!(await htpasswdRegistry(t))) return;
  const dir = await dockerDir();
  const r = await kiln(['login', '-u', USER, '--password-stdin', registry.host], dir, PASSWORD);
  assert.equal(r.code, 0, r.stderr);
  const d = await runCommand('docker', ['--config', dir, 'login', registry.host]);
  assert.ok(!(d.stdout + d.stderr).includes(PASSWORD));
  assert.equal(d.code, 0, d.stderr);
  assert.match(d.stdout, /Login Succeeded/);

  const dir2 = await dockerDir();
  const dl = await runCommand('docker', ['--config', dir2, 'login', '-u', USER, '--password-stdin', registry.host], { input: PASSWORD });
  assert.equal(dl.code, 0, dl.stderr);
  const again = await kiln(['login', registry.host], dir2);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /Authenticating with existing credentials/);
  const out = await kiln(['logout', registry.host], dir2);
  assert.equal(out.stdout, `Removing login credentials for ${registry.host}\n`);
});

test('against token auth: the password goes to the token realm; a wrong one is refused there and nothing is stored', async (t) => {
  if (skipUnlessRegistry(t, { auth: 'token' })) return;
  const reg = await startRegistry({ auth: 'token', users: { [USER]: PASSWORD } });
  t.after(() => reg.stop());
  const dir = await dockerDir();
  const bad = await kiln(['login', '-u', USER, '--password-stdin', reg.host], dir, 'wrong-one');
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, new RegExp(`error: unauthorized: incorrect username or password for ${reg.host.replace(/[.]/g, '\\.')}`));
  assert.deepEqual(await fs.readdir(dir), []);
  const good = await kiln(['login', '-u', USER, '--password-stdin', reg.host], dir, PASSWORD);
  assert.equal(good.code, 0, good.stderr);
  assert.equal(good.stdout, 'Login Succeeded\n');
  assert.ok(reg.tokenIssuer!.requests.some((r) => r.user === USER), 'the token issuer saw the user');
  assert.deepEqual((await readConfig(dir)).auths, { [reg.host]: { auth: b64(`${USER}:${PASSWORD}`) } });
});

/** Runs `fn` with DOCKER_CONFIG (and PATH) set in this process, as a command would see them. */
async function withEnv<T>(env: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

test('what kiln login stored is what every command\'s client authenticates with; after logout it is anonymous again', async (t) => {
  if (!(await htpasswdRegistry(t))) return;
  const dir = await dockerDir();
  const r = await kiln(['login', '-u', USER, '--password-stdin', registry.host], dir, PASSWORD);
  assert.equal(r.code, 0, r.stderr);
  await withEnv({ DOCKER_CONFIG: dir }, async () => {
    const client = registryClient({ root });
    t.after(() => client.close());
    const repo = client.repository(`${registry.host}/login/e2e`);
    await seedImage(repo, 'v1');
    assert.deepEqual(await repo.listTags(), ['v1']);
  });
  const out = await kiln(['logout', registry.host], dir);
  assert.equal(out.code, 0, out.stderr);
  await withEnv({ DOCKER_CONFIG: dir }, async () => {
    const client = registryClient({ root });
    t.after(() => client.close());
    await assert.rejects(client.repository(`${registry.host}/login/e2e`).listTags(), (e: KilnError) => {
      assert.equal(e.code, 'unauthorized');
      assert.match(e.hint ?? '', new RegExp(`kiln login ${registry.host.replace(/[.]/g, '\\.')}`));
      return true;
    });
  });
});

test('stored credentials the registry refuses are not a login: kiln login says so and leaves them as they were', async (t) => {
  if (!(await htpasswdRegistry(t))) return;
  const stale = { auths: { [registry.host]: { auth: b64(`${USER}:an-old-password`) } } };
  const dir = await dockerDir(stale);
  const r = await kiln(['login', registry.host], dir);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /Authenticating with existing credentials\.\.\.\n/);
  assert.match(r.stderr, new RegExp(`Login did not succeed with the stored credentials for ${registry.host.replace(/[.]/g, '\\.')}\\n`));
  assert.match(r.stderr, /error: cannot ask for a username and password: stdin is not a terminal/);
  assert.ok(!r.stderr.includes('an-old-password'));
  assert.deepEqual(await readConfig(dir), stale);
});

test('a credential helper that is missing: the credentials are checked, then a clear error names the helper and the host, and the file keeps no secret', async (t) => {
  if (!(await htpasswdRegistry(t))) return;
  const dir = await dockerDir({ credHelpers: { [registry.host]: 'absent' } });
  const r = await kiln(['login', '-u', USER, '--password-stdin', registry.host], dir, PASSWORD);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`error: credential helper docker-credential-absent \\(for ${registry.host.replace(/[.]/g, '\\.')}\\) is not installed`));
  assert.match(r.stderr, /hint: install docker-credential-absent, or remove it from credsStore\/credHelpers/);
  assert.deepEqual(await readConfig(dir), { credHelpers: { [registry.host]: 'absent' } });
});
