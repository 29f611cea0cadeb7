/** Port of BuildKit's frontend/dockerfile/dockerfile_cache_test.go (see test/buildkit/README.md). */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { port, readImageFile, useHarness } from './harness.js';

const h = useHarness();

port('testReproducibleIDs', async () => {
  const spec = { dockerfile: 'FROM busybox\nENV foo=bar\nCOPY foo /\nRUN echo bar > bar\n', files: { foo: { content: 'foo-contents', mode: 0o600 } }, kilnArgs: ['-q'] };
  const a = await h.kilnBuild(spec);
  const b = await h.kilnBuild(spec);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  assert.equal(a.stdout.trim(), b.stdout.trim());
});

port('testNoCache', async () => {
  const dockerfile = [
    'FROM busybox AS s0',
    'RUN cat /dev/urandom | head -c 100 | sha256sum | tee unique',
    'FROM busybox AS s1',
    'RUN cat /dev/urandom | head -c 100 | sha256sum | tee unique2',
    'FROM scratch',
    'COPY --from=s0 unique /',
    'COPY --from=s1 unique2 /',
    '',
  ].join('\n');
  const read = async (kilnArgs: string[]) => {
    const img = await h.kiln({ dockerfile, kilnArgs });
    return [readImageFile(img, 'unique'), readImageFile(img, 'unique2')];
  };
  const [u1, u2] = await read([]);
  const [u1b, u2b] = await read(['--no-cache']);
  assert.notEqual(u1b, u1);
  assert.notEqual(u2b, u2);
  const [u1c, u2c] = await read(['--no-cache-filter', 's1']);
  assert.equal(u1c, u1b, 'stage s0 is taken from the cache');
  assert.notEqual(u2c, u2b, 'stage s1 runs again');
});

port('testCacheMountModeNoCache', async () => {
  const dockerfile = 'FROM busybox AS base\nARG FOO=abc\nRUN --mount=type=cache,target=/cache,mode=0773 touch /cache/$FOO && ls -l /cache | wc -l > /out\nFROM scratch\nCOPY --from=base /out /\n';
  let img = await h.kiln({ dockerfile });
  assert.equal(readImageFile(img, 'out'), '2\n');
  // --no-cache starts the cache mount afresh too
  img = await h.kiln({ dockerfile, buildArgs: { FOO: 'def' }, noCache: true });
  assert.equal(readImageFile(img, 'out'), '2\n');
  img = await h.kiln({ dockerfile, buildArgs: { FOO: 'ghi' } });
  assert.equal(readImageFile(img, 'out'), '3\n');
});

port('testWildcardRenameCache', async () => {
  const spec = { dockerfile: 'FROM busybox\nCOPY file* /files/\nRUN ls /files/file1\n', files: { file1: { content: 'foo', mode: 0o600 } } };
  const ctx = await h.context(spec);
  const first = await h.kilnBuild(spec, ctx);
  assert.equal(first.code, 0, first.stderr);
  await fs.rename(path.join(ctx.dir, 'file1'), path.join(ctx.dir, 'file2'));
  const second = await h.kilnBuild(spec, ctx);
  assert.notEqual(second.code, 0, 'the rename invalidates the COPY, and the RUN fails');
});
