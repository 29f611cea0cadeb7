/**
 * The shared docker oracle itself: a base imported, a build, the saved tree and a listing
 * inside the image, a daemon-side failure told apart, and nothing left in docker after cleanup.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { busyboxRootfsTar, dockerCli, tempDir } from '../helpers.js';
import { dockerOracle, ownName } from './docker.js';
import { formatWithLinkCounts, listingArgv, parseListing } from './listing.js';
import { describeTree } from './tree.js';

test('the docker oracle builds from an imported base, reads the result back, and removes what it made', async (t) => {
  const docker = await dockerOracle({ prefix: 'kiln-oracletest' });
  if (docker.available !== true) return t.skip(docker.available);
  const ctx = await tempDir('kiln-oracle-ctx-');
  const base = `${ownName('kiln-oracletest', 'base')}:1`;
  let tag = '';
  try {
    await docker.importRootfs(await busyboxRootfsTar(), base);
    assert.equal(await docker.ready(), true);
    await fs.writeFile(path.join(ctx.dir, 'Dockerfile'), `FROM ${base}\nCOPY f /out/f\nRUN ln -s f /out/l && chmod 600 /out/f\n`);
    await fs.writeFile(path.join(ctx.dir, 'f'), 'from the context\n');
    const b = await docker.build(ctx.dir, { args: ['--progress', 'plain'] });
    assert.equal(b.code, 0, b.stderr);
    assert.equal(b.daemonGone, false);
    tag = b.tag;
    assert.match(tag, new RegExp(`^kiln-oracletest-${process.pid}-\\d+:latest$`));
    const img = await docker.image(tag);
    assert.deepEqual(
      describeTree(img.fs, (p) => p.startsWith('/out')).map((l) => l.replace(/ [0-9a-f]{16}$/, '')),
      ['/out dir 0755 0:0', '/out/f file 0600 0:0 17', '/out/l symlink 0777 0:0 -> f'],
    );
    assert.equal(img.layers, 3);
    const listed = await docker.run(tag, listingArgv(['/out']));
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(formatWithLinkCounts(parseListing(listed.stdout)), /^\/out\/f\|regular file\|600\|0:0\|1\|[0-9a-f]{32}$/m);
    // a failing build is a failure of the case, not a daemon gone
    await fs.writeFile(path.join(ctx.dir, 'Dockerfile'), `FROM ${base}\nRUN exit 3\n`);
    const bad = await docker.build(ctx.dir);
    assert.notEqual(bad.code, 0);
    assert.equal(bad.daemonGone, false);
  } finally {
    await docker.cleanup();
    await ctx.cleanup();
  }
  for (const image of [tag, base]) {
    assert.notEqual(spawnSync(dockerCli, ['image', 'inspect', image], { stdio: 'ignore' }).status, 0, `${image} is still in docker`);
  }
});
