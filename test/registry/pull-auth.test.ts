/**
 * Pulling from a registry that wants credentials (htpasswd basic auth): docker's config.json
 * (DOCKER_CONFIG) gives them; without them the pull and a FROM say "unauthorized" for that
 * host, and no output ever contains the password.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { haveTool, runKiln, tempDir, workspace, type Workspace } from '../helpers.js';
import { startRegistry, type Registry } from './harness.js';
import { mustKiln, pushWithSkopeo } from './pull-images.js';

const missing = ['docker-registry', 'skopeo', 'htpasswd'].filter((t) => !haveTool(t));
const skip = missing.length > 0 ? `${missing.join(', ')} not installed` : false;

let ws: Workspace;
let reg: Registry;
let configDir: { dir: string; cleanup: () => Promise<void> };
let emptyConfig: { dir: string; cleanup: () => Promise<void> };
let password: string;

before(async () => {
  if (skip) return;
  ws = await workspace();
  reg = await startRegistry({ auth: 'htpasswd' });
  const [user, pw] = Object.entries(reg.users)[0];
  password = pw;
  configDir = await tempDir('kiln-pull-docker-config-');
  emptyConfig = await tempDir('kiln-pull-docker-config-');
  const authfile = path.join(configDir.dir, 'config.json');
  await fs.writeFile(authfile, JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`${user}:${pw}`).toString('base64') } } }), { mode: 0o600 });
  await pushWithSkopeo(ws.root, 'busybox:latest', `${reg.host}/private/bb:1`, 'oci', authfile);
});

after(async () => {
  await reg?.stop();
  await configDir?.cleanup();
  await emptyConfig?.cleanup();
  await ws?.cleanup();
});

test('the credentials in docker config.json pull the image', { skip }, async () => {
  const t = await tempDir('kiln-pull-auth-root-');
  try {
    const out = await mustKiln(t.dir, ['pull', `${reg.host}/private/bb:1`], { DOCKER_CONFIG: configDir.dir });
    assert.match(out, new RegExp(`^Status: Downloaded newer image for ${reg.host.replace(/\./g, '\\.')}/private/bb:1$`, 'm'));
    assert.ok(!out.includes(password));
    // a build's FROM pulls with them too, on a root that does not have the image
    const fresh = await tempDir('kiln-pull-auth-root-');
    try {
      const ctx = await ws.context({ Dockerfile: `FROM ${reg.host}/private/bb:1\n` });
      const built = await runKiln(['build', '--progress', 'plain', ctx], { root: fresh.dir, env: { DOCKER_CONFIG: configDir.dir } });
      assert.equal(built.code, 0, built.stderr);
      assert.match(built.stderr, /\[internal\] pull /);
      assert.ok(!built.stderr.includes(password));
    } finally {
      await fresh.cleanup();
    }
  } finally {
    await t.cleanup();
  }
});

test('without credentials: unauthorized for that host, from kiln pull and from a FROM, and never the password', { skip }, async () => {
  const t = await tempDir('kiln-pull-auth-root-');
  try {
    const r = await runKiln(['pull', `${reg.host}/private/bb:1`], { root: t.dir, env: { DOCKER_CONFIG: emptyConfig.dir } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^error: .*${reg.host.replace(/\./g, '\\.')}`, 'm'));
    assert.match(r.stderr, /^hint: .*kiln login/m);
    const ctx = await ws.context({ Dockerfile: `FROM ${reg.host}/private/bb:1\n` });
    const b = await runKiln(['build', ctx], { root: t.dir, env: { DOCKER_CONFIG: emptyConfig.dir } });
    assert.equal(b.code, 1);
    assert.match(b.stderr, new RegExp(`image ${reg.host.replace(/\./g, '\\.')}/private/bb:1 not found in the store, and the registry ${reg.host.replace(/\./g, '\\.')} refused it`));
    assert.match(b.stderr, new RegExp(`^hint: kiln login ${reg.host.replace(/\./g, '\\.')}`, 'm'));
    for (const text of [r.stdout, r.stderr, b.stdout, b.stderr]) assert.ok(!text.includes(password));
  } finally {
    await t.cleanup();
  }
});
