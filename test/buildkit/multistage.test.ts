/** Port of BuildKit's frontend/dockerfile/dockerfile_multistage_test.go (see test/buildkit/README.md). */
import assert from 'node:assert/strict';
import { port, readImageFile, useHarness } from './harness.js';

const h = useHarness();

port('testMultiStageImplicitFrom', async () => {
  let img = await h.differential({ dockerfile: 'FROM scratch\nCOPY --from=busybox /etc/passwd test\n' });
  assert.match(readImageFile(img, 'test'), /root/);
  // a stage named like an image wins over the image
  img = await h.differential({ dockerfile: 'FROM busybox AS golang\nRUN mkdir -p /usr/bin && echo -n foo > /usr/bin/go\nFROM scratch\nCOPY --from=golang /usr/bin/go go\n' });
  assert.equal(readImageFile(img, 'go'), 'foo');
});

port('testMultiStageCaseInsensitive', async () => {
  const img = await h.differential({
    dockerfile: 'FROM scratch AS STAge0\nCOPY foo bar\nFROM scratch AS staGE1\nCOPY --from=staGE0 bar baz\nFROM scratch\nCOPY --from=stage1 baz bax\n',
    files: { foo: { content: 'foo-contents', mode: 0o600 } },
    target: 'Stage1',
  });
  assert.equal(readImageFile(img, 'baz'), 'foo-contents');
});

port('testOutOfOrderStage', async () => {
  for (const src of ['/', '/d2']) {
    // kiln only: docker 20.10's BuildKit still builds this (later BuildKit refuses it)
    const r = await h.kilnFails({ dockerfile: `FROM busybox AS target\nCOPY --from=build ${src} /out\nFROM busybox AS build\nCOPY /Dockerfile /d2\nFROM target\n` });
    assert.match(r.stderr, /cannot copy from stage/);
    assert.match(r.stderr, /needs to be defined before current stage/);
  }
});

port('testEmptyStages', async () => {
  // kiln only: docker 20.10's frontend panics on a Dockerfile without stages, and the panic
  // takes the whole dockerd down (index out of range in lastTarget)
  const r = await h.kilnFails({ dockerfile: 'ARG foo=bar\n' });
  assert.match(r.stderr, /dockerfile contains no stages to build/);
});
