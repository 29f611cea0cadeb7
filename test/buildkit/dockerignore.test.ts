/** Port of BuildKit's frontend/dockerfile/dockerfile_dockerignore_test.go (see test/buildkit/README.md). */
import assert from 'node:assert/strict';
import { hasEntry, port, readImageFile, useHarness } from './harness.js';

const h = useHarness();

port('testDockerignore', async () => {
  const img = await h.differential({
    dockerfile: 'FROM scratch\nCOPY . .\n',
    files: {
      foo: 'foo-contents',
      bar: 'bar-contents',
      baz: 'baz-contents',
      bay: 'bay-contents',
      '.dockerignore': '\nba*\nDockerfile\n!bay\n.dockerignore\n',
    },
  });
  assert.equal(readImageFile(img, 'foo'), 'foo-contents');
  assert.equal(readImageFile(img, 'bay'), 'bay-contents');
  for (const gone of ['.dockerignore', 'Dockerfile', 'bar', 'baz']) assert.ok(!hasEntry(img, gone), `${gone} is ignored`);
});

port('testDockerignoreInvalid', async () => {
  const r = await h.kilnFails({ dockerfile: 'FROM scratch\nCOPY . .\n', files: { '.dockerignore': '!\n' } });
  assert.match(r.stderr, /dockerignore/i);
});

port('testDockerignoreOverride', async () => {
  const files = {
    'Dockerfile.dockerignore': '\nbar\n',
    Dockerfile2: 'FROM busybox\nCOPY . .\nRUN [ ! -f foo ] && [ -f bar ]\n',
    'Dockerfile2.dockerignore': '\nfoo\n',
    foo: 'contents0',
    bar: 'contents0',
  };
  // docker 20.10 predates per-Dockerfile ignore files: assertion only (the RUNs check it)
  await h.kiln({ dockerfile: 'FROM busybox\nCOPY . .\nRUN [ -f foo ] && [ ! -f bar ]\n', files });
  await h.kiln({ dockerfileName: 'Dockerfile2', files });
});
