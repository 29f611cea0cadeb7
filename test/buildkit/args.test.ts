/** Port of BuildKit's frontend/dockerfile/dockerfile_args_test.go (see test/buildkit/README.md). */
import assert from 'node:assert/strict';
import { port, readImageFile, useHarness } from './harness.js';

const h = useHarness();

port('testGlobalArg', async () => {
  await h.differential({ dockerfile: 'ARG tag=nosuchtag\nFROM busybox:${tag}\n', buildArgs: { tag: 'latest' } });
});

port('testGlobalArgErrors', async () => {
  const dockerfile = 'ARG FOO=${FOO:?"custom error"}\nFROM busybox\n';
  const r = await h.kilnFails({ dockerfile });
  assert.match(r.stderr, /FOO: custom error/);
  await h.differential({ dockerfile, buildArgs: { FOO: 'bar' } });
});

port('testArgDefaultExpansion', async () => {
  const dockerfile = 'FROM scratch\nARG FOO\nARG BAR=${FOO:?"foo missing"}\n';
  const r = await h.kilnFails({ dockerfile });
  assert.match(r.stderr, /FOO: foo missing/);
  await h.kiln({ dockerfile, buildArgs: { FOO: '123' } });
  await h.kiln({ dockerfile, buildArgs: { BAR: '123' } });
});

port('testMultiArgs', async () => {
  const img = await h.differential({
    dockerfile: 'ARG a1="foo bar" a2=box\nARG a3="$a2-foo"\nFROM busy$a2 AS build\nARG a3 a4="123 456" a1\nRUN echo -n "$a1:$a3:$a4" > /out\nFROM scratch\nCOPY --from=build /out .\n',
  });
  assert.equal(readImageFile(img, 'out'), 'foo bar:box-foo:123 456');
});

port('testQuotedMetaArgs', async () => {
  const img = await h.differential({
    dockerfile: 'ARG a1="box"\nARG a2="$a1-foo"\nFROM busy$a1 AS build\nARG a2\nARG a3="bar-$a2"\nRUN echo -n $a3 > /out\nFROM scratch\nCOPY --from=build /out .\n',
  });
  assert.equal(readImageFile(img, 'out'), 'bar-box-foo');
});

port('testTargetStageNameArg', async () => {
  const dockerfile = [
    'FROM busybox AS base',
    'WORKDIR /out',
    'RUN echo -n "value:$TARGETSTAGE" > /out/first',
    'ARG TARGETSTAGE',
    'RUN echo -n "value:$TARGETSTAGE" > /out/second',
    'FROM scratch AS foo',
    'COPY --from=base /out/ /',
    'FROM scratch',
    'COPY --from=base /out/ /',
    '',
  ].join('\n');
  let img = await h.kiln({ dockerfile, target: 'foo' });
  assert.equal(readImageFile(img, 'first'), 'value:');
  assert.equal(readImageFile(img, 'second'), 'value:foo');
  img = await h.kiln({ dockerfile });
  assert.equal(readImageFile(img, 'second'), 'value:default');
  img = await h.kiln({ dockerfile: `${dockerfile}FROM scratch AS final\nCOPY --from=base /out/ /\n` });
  assert.equal(readImageFile(img, 'first'), 'value:');
  assert.equal(readImageFile(img, 'second'), 'value:final');
});

port('testBuiltinArgs', async () => {
  const dockerfile = 'FROM busybox AS build\nARG FOO\nARG BAR\nARG BAZ=bazcontent\nRUN echo -n $HTTP_PROXY::$NO_PROXY::$FOO::$BAR::$BAZ > /out\nFROM scratch\nCOPY --from=build /out /\n';
  let img = await h.differential({ dockerfile, buildArgs: { FOO: 'foocontents', http_proxy: 'hpvalue', NO_PROXY: 'npvalue' } });
  assert.equal(readImageFile(img, 'out'), 'hpvalue::npvalue::foocontents::::bazcontent');
  // proxy args are not part of the cache key: a change alone keeps the cached result
  img = await h.kiln({ dockerfile, buildArgs: { FOO: 'foocontents', http_proxy: 'hpvalue2' } });
  assert.equal(readImageFile(img, 'out'), 'hpvalue::npvalue::foocontents::::bazcontent');
  img = await h.kiln({ dockerfile, buildArgs: { FOO: 'foocontents2', http_proxy: 'hpvalue2' } });
  assert.equal(readImageFile(img, 'out'), 'hpvalue2::::foocontents2::::bazcontent');
});

port('testDefaultEnvWithArgs', async () => {
  const dockerfile = [
    'ARG image=idlebox',
    'FROM busy${image#idle} AS build',
    'ARG my_arg',
    'ENV my_arg "my_arg=${my_arg:-def_val}"',
    'ENV my_trimmed_arg "${my_arg%%e*}"',
    'COPY myscript.sh myscript.sh',
    'RUN ./myscript.sh $my_arg $my_trimmed_arg',
    'FROM scratch',
    'COPY --from=build /out /out',
    '',
  ].join('\n');
  const files = { 'myscript.sh': { content: '#!/usr/bin/env sh\necho -n $my_arg $* > /out\n', mode: 0o700 } };
  const cases: Array<[Record<string, string> | undefined, string]> = [
    [undefined, 'my_arg=def_val my_arg=def_val my_arg=d'],
    [{ my_arg: '' }, 'my_arg=def_val my_arg=def_val my_arg=d'],
    [{ my_arg: 'override' }, 'my_arg=override my_arg=override my_arg=ov'],
  ];
  // docker 20.10 cannot expand ${image#idle} in FROM: assertion only
  for (const [buildArgs, want] of cases) {
    const img = await h.kiln({ dockerfile, files, buildArgs });
    assert.equal(readImageFile(img, 'out'), want);
  }
});

port('testEmptyStringArgInEnv', async () => {
  const img = await h.differential({ dockerfile: 'FROM busybox AS build\nARG FOO\nARG BAR=\nRUN env > env.txt\nFROM scratch\nCOPY --from=build env.txt .\n' });
  const env = readImageFile(img, 'env.txt');
  assert.match(env, /^BAR=$/m);
  assert.doesNotMatch(env, /^FOO=/m);
});

port('testEnvEmptyFormatting', async () => {
  await h.differential({ dockerfile: `FROM busybox AS build\nENV myenv foo%sbar\nRUN [ "$myenv" = 'foo%sbar' ]\n` });
});
