/**
 * examples/node-app built for real: npm ci from the npm registry in runc on node:18-bookworm,
 * with npm's cache on a cache mount, and a slim runtime stage running as node. kiln's image is
 * run (`kiln run`), rebuilt after a source change and after a dependency change, and compared
 * with what docker 20.10's BuildKit builds from the same Dockerfile on the same bases.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { repoRoot, runKiln } from '../helpers.js';
import { kilnImageTree } from '../oracle/docker.js';
import { kilnStepCount, ranSteps, skipExamples, useExample } from './examples.js';

const fixtures = path.join(repoRoot, 'test', 'examples', 'fixtures');

describe('examples/node-app', { skip: skipExamples }, () => {
  const ex = useExample('node-app', ['node:18-bookworm', 'node:18-bookworm-slim']);
  const build = (tag: string, extra?: string[]) => ex.build(tag, extra);

  it('builds with npm ci on the cache mount and runs as node in the slim stage', async () => {
    const r = await build('node-app:1');
    assert.ok(ranSteps(r.stderr).some((s) => /npm ci/.test(s)), 'npm ci ran');
    const page = await runKiln(['run', 'node-app:1', 'node', 'server.js', '--once'], { root: ex.root });
    assert.equal(page.code, 0, page.stderr);
    assert.match(page.stdout, /<h1>Hello, &lt;kiln&gt;, from a kiln-built image<\/h1>/);
    assert.match(page.stdout, /node v18\./);
    const who = await runKiln(['run', 'node-app:1', 'sh', '-c', 'id -un; id -u; ls -ld /app/node_modules/debug | cut -d" " -f3,4; [ ! -e /usr/bin/npm ] && echo no-npm; ls /app/node_modules'], { root: ex.root });
    assert.equal(who.code, 0, who.stderr);
    assert.deepEqual(who.stdout.trim().split('\n'), ['node', '1000', 'node node', 'no-npm', 'debug', 'escape-html', 'ms']);
    const img = await kilnImageTree(ex.root, 'node-app:1');
    assert.equal(img.config.config?.User, 'node');
    assert.deepEqual(img.config.config?.Cmd, ['node', 'server.js']);
    const env = (img.config.config?.Env ?? []) as string[];
    assert.ok(env.includes('NODE_ENV=production'));
    assert.ok(env.some((e) => /^NODE_VERSION=18\./.test(e)));
    // the npm cache stayed on the mount: not in either stage's layers
    assert.ok(![...img.fs.keys()].some((p) => p.startsWith('/root/.npm/_cacache')));
  });

  it('a source change rebuilds without running npm ci', async () => {
    await fs.writeFile(path.join(ex.dir, 'src', 'greeting.js'), "'use strict';\nexports.greeting = (name) => `Hi again, ${name}`;\n");
    const r = await build('node-app:2');
    const ran = ranSteps(r.stderr);
    assert.ok(!ran.some((s) => /npm ci/.test(s)), `npm ci ran again: ${ran.join('; ')}`);
    assert.ok(ran.some((s) => /COPY \. \./.test(s)));
    assert.ok(kilnStepCount(r.stderr).cached >= 3);
    const page = await runKiln(['run', 'node-app:2', 'node', 'server.js', '--once'], { root: ex.root });
    assert.match(page.stdout, /<h1>Hi again, &lt;kiln&gt;<\/h1>/);
  });

  it('a dependency change runs npm ci again with the npm cache mount warm', async () => {
    // the warm cache alone can install the old set: npm ci --offline fetches nothing
    const offline = path.join(ex.dir, 'Dockerfile.offline');
    const df = await fs.readFile(path.join(ex.dir, 'Dockerfile'), 'utf8');
    await fs.writeFile(offline, df.replace('npm ci --omit=dev', 'echo offline && npm ci --offline --omit=dev'));
    const r1 = await build('node-app:offline', ['-f', offline]);
    assert.ok(ranSteps(r1.stderr).some((s) => /npm ci --offline/.test(s)));
    // a new dependency (bytes): npm ci runs, the new package comes from the registry
    for (const f of ['package.json', 'package-lock.json']) await fs.copyFile(path.join(fixtures, 'node-app-dep', f), path.join(ex.dir, f));
    const r2 = await build('node-app:3');
    assert.ok(ranSteps(r2.stderr).some((s) => /npm ci/.test(s)));
    const mods = await runKiln(['run', 'node-app:3', 'node', '-p', "require('bytes')(1536) + ' ' + require('escape-html')('<a>')"], { root: ex.root });
    assert.equal(mods.code, 0, mods.stderr);
    assert.equal(mods.stdout.trim(), '1.5KB &lt;a&gt;');
    // and the cache mount now holds all four packages: the offline install of the new set works
    const r3 = await build('node-app:offline2', ['-f', offline]);
    assert.ok(ranSteps(r3.stderr).some((s) => /npm ci --offline/.test(s)));
  });

  it('docker 20.10 BuildKit builds the same /app and config from the same bases', async (t) => {
    const d = await ex.compareWithDocker(t, 'node-app:3', { only: ['/app'], layers: true, history: true });
    if (!d) return;
    const run = await d.oracle.run(d.tag, ['node', '-p', "require('bytes')(1536)"]);
    assert.equal(run.stdout.trim(), '1.5KB', run.stderr);
  });
});
