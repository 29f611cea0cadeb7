/**
 * examples/apt built for real: apt-get update and install from Debian's archive in runc on
 * debian:bookworm, with /var/lib/apt and /var/cache/apt on cache mounts (sharing=locked), as
 * BuildKit's documentation shows. kiln's image is run, the mounts are shown to keep the lists
 * and .debs between builds and out of the image, and the image is compared with what docker
 * 20.10's BuildKit builds from the same Dockerfile on the same base.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { runKiln } from '../helpers.js';
import { kilnImageTree } from '../oracle/docker.js';
import { ranSteps, skipExamples, useExample } from './examples.js';

/**
 * What an apt-get install writes differently on every run, left out of the comparison: dpkg's
 * and apt's logs (timestamps) and ldconfig's aux cache (inode and time stamps of the libraries).
 */
const VOLATILE = ['/var/log', '/var/cache/ldconfig'];

describe('examples/apt', { skip: skipExamples }, () => {
  const ex = useExample('apt', ['debian:bookworm']);
  const build = (tag: string, extra?: string[]) => ex.build(tag, extra);

  it('installs jq with apt-get and runs it', async () => {
    await build('apt-example:1');
    const r = await runKiln(['run', 'apt-example:1'], { root: ex.root });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'kiln: 4 steps\nbuildkit: 4 steps\n');
    const img = await kilnImageTree(ex.root, 'apt-example:1');
    // the lists and the .debs stayed on the cache mounts
    const inImage = [...img.fs.keys()];
    assert.ok(!inImage.some((p) => /^\/var\/lib\/apt\/lists\/.*Packages/.test(p)), 'package lists in the image');
    assert.ok(!inImage.some((p) => /^\/var\/cache\/apt\/archives\/.*\.deb$/.test(p)), '.debs in the image');
    assert.ok(img.fs.has('/usr/bin/jq'));
    assert.ok(!img.fs.has('/etc/apt/apt.conf.d/docker-clean'));
  });

  it('the cache mounts keep the lists and the downloaded .debs for the next build', async () => {
    // a second Dockerfile reads the same mounts: apt-get installs jq again without the network
    const df = [
      'FROM debian:bookworm',
      "RUN rm -f /etc/apt/apt.conf.d/docker-clean && echo 'Binary::apt::APT::Keep-Downloaded-Packages \"true\";' > /etc/apt/apt.conf.d/keep-cache",
      'RUN --mount=type=cache,target=/var/cache/apt,sharing=locked --mount=type=cache,target=/var/lib/apt,sharing=locked \\',
      '    ls /var/cache/apt/archives > /debs.txt && ls /var/lib/apt/lists > /lists.txt \\',
      ' && apt-get install -y --no-install-recommends --no-download jq && jq --version > /jq.txt',
      '',
    ].join('\n');
    const file = path.join(ex.dir, 'Dockerfile.reuse');
    await fs.writeFile(file, df);
    const r = await build('apt-example:reuse', ['-f', file]);
    assert.ok(ranSteps(r.stderr).some((s) => /--no-download jq/.test(s)));
    const out = await runKiln(['run', 'apt-example:reuse', 'cat', '/debs.txt', '/lists.txt', '/jq.txt'], { root: ex.root });
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /^jq_.*\.deb$/m);
    assert.match(out.stdout, /^libjq1_.*\.deb$/m);
    assert.match(out.stdout, /_dists_bookworm_.*Packages/);
    assert.match(out.stdout, /^jq-1\./m);
  });

  it('docker 20.10 BuildKit builds the same image from the same base', async (t) => {
    const d = await ex.compareWithDocker(t, 'apt-example:1', { ignore: VOLATILE, layers: true, history: true });
    if (!d) return;
    const run = await d.oracle.run(d.tag, []);
    assert.equal(run.stdout, 'kiln: 4 steps\nbuildkit: 4 steps\n', run.stderr);
  });
});
