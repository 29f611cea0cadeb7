/** kiln login's arguments, checked before any registry is asked: each mistake is a clear error and nothing is stored. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { runKiln, tempDir } from '../helpers.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let root: string;
let dockerConfig: string;

before(async () => {
  tmp = await tempDir('kiln-login-args-');
  root = path.join(tmp.dir, 'root');
  dockerConfig = path.join(tmp.dir, 'docker');
  await fs.mkdir(root);
  await fs.mkdir(dockerConfig);
});
after(() => tmp.cleanup());

const PASSWORD = 'pw-never-shown-42';

async function login(args: string[], input = '') {
  const r = await runKiln(['login', ...args], { root, input, env: { DOCKER_CONFIG: dockerConfig } });
  assert.ok(!(r.stdout + r.stderr).includes(PASSWORD), `the password shows in:\n${r.stdout}${r.stderr}`);
  assert.deepEqual(await fs.readdir(dockerConfig), [], 'nothing is stored');
  return r;
}

test('--password and --password-stdin together are refused', async () => {
  const r = await login(['-u', 'alice', '-p', PASSWORD, '--password-stdin', 'localhost:5000'], `${PASSWORD}\n`);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error: --password and --password-stdin cannot be used together/);
});

test('--password-stdin needs a username, and a non-empty password', async () => {
  const r = await login(['--password-stdin', 'localhost:5000'], `${PASSWORD}\n`);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error: --password-stdin needs a username: add -u USER/);
  const empty = await login(['-u', 'alice', '--password-stdin', 'localhost:5000'], '\n');
  assert.equal(empty.code, 1);
  assert.match(empty.stderr, /error: --password-stdin read an empty password/);
});

test('without a terminal, kiln login cannot prompt: it says how to pass the credentials', async () => {
  for (const args of [['localhost:5000'], ['-u', 'alice', 'localhost:5000']]) {
    const r = await login(args);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error: cannot ask for a username and password: stdin is not a terminal/);
    assert.match(r.stderr, /hint: .*kiln login -u USER --password-stdin localhost:5000/);
  }
});

test('a server that is not a host[:port] is refused; a URL names its host', async () => {
  const r = await login(['-u', 'alice', '--password-stdin', 'bad host!'], PASSWORD);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error: registry "bad host!" .* is not a host or host:port/);
  // a URL is reduced to its host (as docker login does): the error is about that host, not the URL
  const url = await login(['https://LocalHost:5000/v2/'], '');
  assert.match(url.stderr, /kiln login -u USER --password-stdin localhost:5000/);
});

test('no server is Docker Hub, as docker login', async () => {
  const r = await login([]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--password-stdin docker\.io/);
});

test('kiln --help lists login and logout once each', async () => {
  const r = await runKiln(['--help'], { root });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.match(/^ {2}login /gm)?.length, 1, r.stdout);
  assert.equal(r.stdout.match(/^ {2}logout /gm)?.length, 1, r.stdout);
});
