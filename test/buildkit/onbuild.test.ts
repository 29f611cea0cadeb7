/**
 * Port of BuildKit's frontend/dockerfile/dockerfile_onbuild_test.go (see test/buildkit/README.md).
 * The Go tests push parent images to a registry and build FROM them; here the parents are
 * built into kiln's store and named by tag (assertion tests: the docker oracle would need
 * its own copies of every parent under the same names).
 */
import assert from 'node:assert/strict';
import { hasEntry, port, readImageFile, useHarness, type BuildSpec } from './harness.js';

const h = useHarness();

async function parent(spec: BuildSpec): Promise<string> {
  const r = await h.kilnBuild(spec);
  assert.equal(r.code, 0, `parent image: ${r.stderr}`);
  return r.tag;
}

port('testOnBuildCleared', async () => {
  const base = await parent({ dockerfile: 'FROM busybox\nONBUILD RUN mkdir -p /out && echo -n 11 >> /out/foo\n' });
  const child = await parent({ dockerfile: `FROM ${base}\n` });
  const img = await h.kiln({ dockerfile: `FROM ${child} AS base\nFROM scratch\nCOPY --from=base /out /\n` });
  assert.equal(readImageFile(img, 'foo'), '11', 'the trigger ran once, in the child, and was cleared');
});

port('testOnBuildWithChildStage', async () => {
  const base = await parent({ dockerfile: 'FROM busybox\nONBUILD RUN mkdir -p /out && echo -n yes >> /out/didrun\n' });
  const img = await h.kiln({
    dockerfile: [
      `FROM ${base} AS base`,
      'RUN [ -f /out/didrun ] && touch /step1',
      'RUN rm /out/didrun',
      'RUN [ ! -f /out/didrun ] && touch /step2',
      'FROM base AS child',
      'RUN [ ! -f /out/didrun ] && touch /step3',
      'FROM scratch',
      'COPY --from=child /step* /',
      '',
    ].join('\n'),
  });
  for (const f of ['step1', 'step2', 'step3']) assert.ok(hasEntry(img, f), f);
});

port('testOnBuildInheritedStageRun', async () => {
  const img = await h.differential({
    dockerfile: 'FROM busybox AS base\nONBUILD RUN mkdir -p /out && echo -n 11 >> /out/foo\nFROM base AS mid\nRUN cp /out/foo /out/bar\nFROM scratch\nCOPY --from=mid /out/bar /\n',
  });
  assert.equal(readImageFile(img, 'bar'), '11');
});

port('testOnBuildInheritedStageWithFrom', async () => {
  const img = await h.kiln({
    dockerfile: [
      'FROM busybox AS src',
      'RUN mkdir -p /in && echo -n 12 > /in/file',
      'FROM busybox AS base',
      'ONBUILD COPY --from=src /in/file /out/foo',
      'FROM base AS mid',
      'RUN cp /out/foo /out/bar',
      'FROM scratch',
      'COPY --from=mid /out/bar /',
      '',
    ].join('\n'),
  });
  assert.equal(readImageFile(img, 'bar'), '12');
});

port('testOnBuildNewDeps', async () => {
  // alpine's /etc/alpine-release stands in as busybox's /etc/passwd
  const base = await parent({ dockerfile: 'FROM busybox\nONBUILD COPY --from=busybox /etc/passwd /out/release2\n' });
  let img = await h.kiln({ dockerfile: `FROM ${base} AS base\nRUN cat /out/release2 > /out/release3\nFROM scratch\nCOPY --from=base /out /\n` });
  assert.ok(readImageFile(img, 'release3').length > 5);
  const base2 = await parent({
    dockerfile: 'FROM busybox\nONBUILD RUN --mount=type=bind,target=/in,from=inputstage mkdir /out && cat /in/foo > /out/bar && cat /in/out/release2 > /out/bar2\n',
  });
  img = await h.kiln({
    dockerfile: [
      `FROM ${base} AS inputstage`,
      'RUN cat /out/release2 > /out/release4',
      'RUN echo -n foo > /foo',
      `FROM ${base2} AS base`,
      'RUN echo -n bar3 > /out/bar3',
      'FROM scratch',
      'COPY --from=base /out /',
      '',
    ].join('\n'),
  });
  assert.equal(readImageFile(img, 'bar'), 'foo');
  assert.ok(readImageFile(img, 'bar2').length > 5);
  assert.equal(readImageFile(img, 'bar3'), 'bar3');
});

port('testOnBuildWithCacheMount', async () => {
  const base = await parent({ dockerfile: 'FROM busybox\nONBUILD RUN --mount=type=cache,target=/cache echo -n 42 >> /cache/foo && echo -n 11 >> /bar\n' });
  await h.kiln({ dockerfile: `FROM ${base}\nRUN --mount=type=cache,target=/cache [ "$(cat /cache/foo)" = "42" ] && [ "$(cat /bar)" = "11" ]\n` });
});
