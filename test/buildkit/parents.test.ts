/**
 * Port of BuildKit's frontend/dockerfile/dockerfile_parents_test.go (see test/buildkit/README.md).
 * COPY --parents needs Dockerfile 1.7 (not docker 20.10): assertion tests; the checks are
 * the Go test's own RUN steps (alpine replaced by busybox).
 */
import assert from 'node:assert/strict';
import { port, readImageFile, useHarness } from './harness.js';

const h = useHarness();

const run = (...checks: string[]) => ['RUN <<eot', '\tset -ex', ...checks.map((c) => `\t${c}`), 'eot'];

/** Builds each target; a failing target is reported with the others, not on its own. */
async function buildTargets(dockerfile: string, targets: Array<[string, RegExp | null]>): Promise<void> {
  const problems: string[] = [];
  for (const [target, error] of targets) {
    const r = await h.kilnBuild({ dockerfile, target });
    if (error === null && r.code !== 0) problems.push(`${target}: failed:\n${r.stderr.split('\n').slice(-8).join('\n')}`);
    if (error !== null && r.code === 0) problems.push(`${target}: built, BuildKit fails it`);
    if (error !== null && r.code !== 0 && !error.test(r.stderr)) problems.push(`${target}: error does not match ${error}:\n${r.stderr}`);
  }
  assert.deepEqual(problems, []);
}

port('testCopyParents', async () => {
  const img = await h.kiln({
    dockerfile: 'FROM scratch\nCOPY --parents foo1/foo2/bar /\nWORKDIR /test\nCOPY --parents foo1/foo2/ba* .\n',
    files: {
      foo1: { dir: true, mode: 0o700 },
      'foo1/foo2': { dir: true, mode: 0o700 },
      'foo1/foo2/bar': { content: 'testing', mode: 0o600 },
      'foo1/foo2/baz': { content: 'testing2', mode: 0o600 },
    },
  });
  assert.equal(readImageFile(img, 'foo1/foo2/bar'), 'testing');
  assert.equal(readImageFile(img, 'test/foo1/foo2/bar'), 'testing');
  assert.equal(readImageFile(img, 'test/foo1/foo2/baz'), 'testing2');
});

port('testCopyRelativeParents', async () => {
  const dockerfile = [
    'FROM busybox AS base',
    'WORKDIR /test',
    ...run(
      'mkdir -p a/b/c/d/e',
      'mkdir -p a/b2/c/d/e',
      'mkdir -p a/b/c2/d/e',
      'mkdir -p a/b/c2/d/e2',
      'touch a/b/c/d/foo',
      'touch a/b/c/d/e/bay',
      'touch a/b2/c/d/e/bar',
      'touch a/b/c2/d/e/baz',
      'touch a/b/c2/d/e2/baz',
    ),
    'FROM busybox AS middle',
    'COPY --from=base --parents /test/a/b/./c/d /out/',
    ...run('[ -d /out/c/d/e ]', '[ -f /out/c/d/foo ]', '[ ! -d /out/a ]', '[ ! -d /out/e ]'),
    'FROM busybox AS end',
    'COPY --from=base --parents /test/a/b/c/d/. /out/',
    ...run('[ -d /out/test/a/b/c/d/e ]', '[ -f /out/test/a/b/c/d/foo ]'),
    'FROM busybox AS start',
    'COPY --from=base --parents ./test/a/b/c/d /out/',
    ...run('[ -d /out/test/a/b/c/d/e ]', '[ -f /out/test/a/b/c/d/foo ]'),
    'FROM busybox AS double',
    'COPY --from=base --parents /test/a/./b/./c /out/',
    ...run('[ -d /out/b/c/d/e ]', '[ -f /out/b/c/d/foo ]'),
    'FROM busybox AS wildcard',
    'COPY --from=base --parents /test/a/./*/c /out/',
    ...run('[ -d /out/b/c/d/e ]', '[ -f /out/b2/c/d/e/bar ]'),
    'FROM busybox AS doublewildcard',
    'COPY --from=base --parents /test/a/b*/./c/**/e /out/',
    ...run('[ -d /out/c/d/e ]', '[ -f /out/c/d/e/bay ]', '[ -f /out/c/d/e/bar ]'),
    'FROM busybox AS doubleinputs',
    'COPY --from=base --parents /test/a/b/c*/./d/**/baz /test/a/b*/./c/**/bar /out/',
    ...run('[ -f /out/d/e/baz ]', '[ ! -f /out/d/e/bay ]', '[ -f /out/d/e2/baz ]', '[ -f /out/c/d/e/bar ]'),
    '',
  ].join('\n');
  await buildTargets(dockerfile, ['middle', 'end', 'start', 'double', 'wildcard', 'doublewildcard', 'doubleinputs'].map((t) => [t, null]));
});

port('testCopyParentsMissingDirectory', async () => {
  const dockerfile = [
    'FROM busybox AS base',
    'WORKDIR /test',
    ...run('mkdir -p a/b/c/d/e', 'touch a/b/c/d/foo', 'touch a/b/c/d/e/bay'),
    'FROM busybox AS normal',
    'COPY --from=base --parents /test/a/b/c/d /out/',
    ...run('[ -d /out/test/a/b/c/d/e ]', '[ -f /out/test/a/b/c/d/e/bay ]', '[ ! -d /out/e ]', '[ ! -d /out/a ]'),
    'FROM busybox AS withpivot',
    'COPY --from=base --parents /test/a/b/./c/d /out/',
    ...run('[ -d /out/c/d/e ]', '[ -f /out/c/d/foo ]', '[ ! -d /out/a ]', '[ ! -d /out/e ]'),
    'FROM busybox AS nonexistentfile',
    'COPY --from=base --parents /test/nonexistent-file /out/',
    'FROM busybox AS wildcard-nonexistent',
    'COPY --from=base --parents /test/a/b2*/c /out/',
    ...run('[ -d /out ]', '[ ! -d /out/a ]'),
    'FROM busybox AS wildcard-afterpivot',
    'COPY --from=base --parents /test/a/b/./c2* /out/',
    ...run('[ -d /out ]', '[ ! -d /out/a ]', '[ ! -d /out/c* ]'),
    '',
  ].join('\n');
  await buildTargets(dockerfile, [
    ['normal', null],
    ['withpivot', null],
    ['nonexistentfile', /nonexistent-file.*not found|not found.*nonexistent-file/],
    ['wildcard-nonexistent', null],
    ['wildcard-afterpivot', null],
  ]);
});
