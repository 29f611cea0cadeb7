/** Port of BuildKit's frontend/dockerfile/dockerfile_platform_test.go (see test/buildkit/README.md). */
import assert from 'node:assert/strict';
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
