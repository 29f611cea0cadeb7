/**
 * What kiln builds, checked by real peers: docker loads and runs it and prints what
 * kiln run prints; skopeo and umoci read the store; every JSON document validates
 * against the OCI schemas.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { dockerCli, ensureDockerd, haveTool, isRoot, repoRoot, rootWithBusybox, runCommand, runKiln, tempDir } from '../helpers.js';
import { validateOCI } from '../../src/oci/schema.js';

const skip = isRoot() ? false : 'RUN and overlayfs need root';

describe('peers read what kiln builds', { skip }, () => {
  let root: string;
  let cleanupRoot: () => Promise<void>;
  let work: string;
  let cleanupWork: () => Promise<void>;
  let expected: string;

  before(async () => {
    ({ root, cleanup: cleanupRoot } = await rootWithBusybox());
    ({ dir: work, cleanup: cleanupWork } = await tempDir('kiln-peers-'));
    const b = await runKiln(['build', '-t', 'kiln-hello:peer', path.join(repoRoot, 'examples', 'hello')], { root });
    assert.equal(b.code, 0, b.stderr);
    const r = await runKiln(['run', '--rm', 'kiln-hello:peer'], { root });
    assert.equal(r.code, 0, r.stderr);
    expected = r.stdout;
  });
  after(async () => {
    await cleanupWork();
    await cleanupRoot();
  });

  it('every manifest, index, config and oci-layout in the store validates against the OCI schemas', async () => {
    const layout = JSON.parse(await fs.readFile(path.join(root, 'oci-layout'), 'utf8'));
    assert.deepEqual(validateOCI('layout', layout), []);
    const index = JSON.parse(await fs.readFile(path.join(root, 'index.json'), 'utf8'));
    assert.deepEqual(validateOCI('index', index), []);
    for (const m of index.manifests) {
      const manifest = JSON.parse(await fs.readFile(path.join(root, 'blobs', 'sha256', m.digest.slice(7)), 'utf8'));
      assert.deepEqual(validateOCI('manifest', manifest), [], m.digest);
      const config = JSON.parse(await fs.readFile(path.join(root, 'blobs', 'sha256', manifest.config.digest.slice(7)), 'utf8'));
      assert.deepEqual(validateOCI('config', config), [], manifest.config.digest);
    }
  });

  it('docker load + docker run prints what kiln run prints', async (t) => {
    if (!(await ensureDockerd())) return t.skip('dockerd (Debian docker.io) not available');
    const tar = path.join(work, 'hello.tar');
    const s = await runKiln(['save', '-o', tar, 'kiln-hello:peer'], { root });
    assert.equal(s.code, 0, s.stderr);
    await runCommand(dockerCli, ['rmi', '-f', 'kiln-hello:peer']);
    const load = await runCommand(dockerCli, ['load', '-i', tar]);
    assert.equal(load.code, 0, load.stderr);
    assert.match(load.stdout, /kiln-hello:peer/);
    const run = await runCommand(dockerCli, ['run', '--rm', '--network', 'host', 'kiln-hello:peer']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, expected);
    const user = await runCommand(dockerCli, ['image', 'inspect', '-f', '{{.Config.User}} {{json .Config.Entrypoint}}', 'kiln-hello:peer']);
    assert.equal(user.stdout.trim(), '1000:1000 ["/bin/cat","/srv/hello/greeting.txt"]');
    await runCommand(dockerCli, ['rmi', '-f', 'kiln-hello:peer']);
  });

  it('skopeo inspects the store and umoci unpacks it', async (t) => {
    if (!haveTool('skopeo') || !haveTool('umoci')) return t.skip('skopeo or umoci not installed');
    const ins = await runCommand('skopeo', ['inspect', `oci:${root}:kiln-hello:peer`]);
    assert.equal(ins.code, 0, ins.stderr);
    const info = JSON.parse(ins.stdout);
    assert.equal(info.Architecture.length > 0, true);
    assert.equal(info.Layers.length > 0, true);
    const bundle = path.join(work, 'bundle');
    const un = await runCommand('umoci', ['unpack', '--image', `${root}:kiln-hello:peer`, bundle]);
    assert.equal(un.code, 0, un.stderr);
    const greeting = await fs.readFile(path.join(bundle, 'rootfs', 'srv', 'hello', 'greeting.txt'), 'utf8');
    assert.equal(greeting, expected);
    const cfg = JSON.parse(await fs.readFile(path.join(bundle, 'config.json'), 'utf8'));
    assert.deepEqual(cfg.process.args, ['/bin/cat', '/srv/hello/greeting.txt']);
  });
});
