/** Port of BuildKit's frontend/dockerfile/dockerfile_platform_test.go (see test/buildkit/README.md). */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ImageIndex } from '../../src/oci/types.js';
import { runCommand } from '../helpers.js';
import { port, readImageFile, useHarness } from './harness.js';

const h = useHarness();

port('testPlatformArgsImplicit', async () => {
  const img = await h.differential({
    dockerfile: 'FROM scratch AS build-linux\nCOPY foo bar\nFROM build-${TARGETOS}\nCOPY foo2 bar2\n',
    files: { foo: { content: 'd0', mode: 0o600 }, foo2: { content: 'd1', mode: 0o600 } },
  });
  assert.equal(readImageFile(img, 'bar'), 'd0');
  assert.equal(readImageFile(img, 'bar2'), 'd1');
});

port('testPlatformArgsExplicit', async () => {
  // nothing runs on the target platform: only the build platform's busybox runs
  const img = await h.kiln({
    dockerfile: 'FROM --platform=$BUILDPLATFORM busybox AS build\nARG TARGETPLATFORM\nARG TARGETOS\nRUN mkdir /out && echo -n $TARGETPLATFORM > /out/platform && echo -n $TARGETOS > /out/os\nFROM scratch\nCOPY --from=build out .\n',
    kilnArgs: ['--platform', 'darwin/ppc64le'],
    buildArgs: { TARGETOS: 'freebsd' },
  });
  assert.equal(readImageFile(img, 'platform'), 'darwin/ppc64le');
  assert.equal(readImageFile(img, 'os'), 'freebsd');
});

// A two-platform build of FROM scratch alone, exported as an OCI archive (kiln: the stored index,
// `kiln save --format oci`): index.json holds one entry, the image index, which lists both
// platforms' manifests.
port('testMultiNilRefsOCIExporter', async () => {
  const built = await h.kilnBuild({ dockerfile: 'FROM scratch', kilnArgs: ['--platform', 'linux/arm64,linux/amd64'] });
  assert.equal(built.code, 0, built.stderr);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-bk-multinil-'));
  try {
    const saved = await h.kilnCommand(['save', '--format', 'oci', '-o', path.join(dir, 'out.tar'), built.tag]);
    assert.equal(saved.code, 0, saved.stderr);
    const x = await runCommand('tar', ['-xf', path.join(dir, 'out.tar'), '-C', dir]);
    assert.equal(x.code, 0, x.stderr);
    const read = async (rel: string) => JSON.parse(await fs.readFile(path.join(dir, rel), 'utf8')) as ImageIndex;
    const top = await read('index.json');
    assert.equal(top.manifests.length, 1);
    const list = await read(`blobs/sha256/${top.manifests[0]!.digest.slice('sha256:'.length)}`);
    assert.equal(list.manifests.length, 2);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
