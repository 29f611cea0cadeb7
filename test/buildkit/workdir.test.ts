/** Port of BuildKit's frontend/dockerfile/dockerfile_workdir_test.go (see test/buildkit/README.md). */
import assert from 'node:assert/strict';
import { port, readImageFile, resolveEntry, useHarness } from './harness.js';

const h = useHarness();

// the busybox-static base has no adduser: the user the Go test adds, written by hand
const addUser = `RUN echo 'user:x:1001:1001::/home/user:/bin/sh' >> /etc/passwd && echo 'user:x:1001:' >> /etc/group`;

port('testWorkdirCreatesDir', async () => {
  const img = await h.differential({ dockerfile: 'FROM scratch\nWORKDIR /foo\nWORKDIR /\n' });
  assert.equal(resolveEntry(img, 'foo').type, 'dir');
});

port('testWorkdirUser', async () => {
  const img = await h.differential({ dockerfile: `FROM busybox\n${addUser}\nUSER user\nWORKDIR /mydir\nRUN [ "$(stat -c "%U %G" /mydir)" == "user user" ]\n` });
  const d = resolveEntry(img, 'mydir');
  assert.deepEqual([d.uid, d.gid], [1001, 1001]);
});

port('testWorkdirCopyIgnoreRelative', async () => {
  const img = await h.differential({ dockerfile: 'FROM scratch AS base\nWORKDIR /foo\nCOPY Dockerfile /\nFROM scratch\nCOPY --from=base Dockerfile .\n' });
  assert.match(readImageFile(img, 'Dockerfile'), /COPY --from=base/);
});

port('testWorkdirExists', async () => {
  await h.differential({ dockerfile: `FROM busybox\n${addUser}\nRUN mkdir /mydir && chown user:user /mydir\nWORKDIR /mydir\nRUN [ "$(stat -c "%U %G" /mydir)" == "user user" ]\n` });
});

port('testWorkdirSourceDateEpochReproducible', async () => {
  const spec = { dockerfile: 'FROM busybox\nWORKDIR /mydir\n', kilnArgs: ['--no-cache', '-q'], env: { SOURCE_DATE_EPOCH: String(Date.UTC(2023, 0, 10, 15, 34, 56) / 1000) } };
  const ids: string[] = [];
  for (let i = 0; i < 2; i++) {
    const ctx = await h.context(spec);
    const r = await h.kilnBuild(spec, ctx);
    assert.equal(r.code, 0, r.stderr);
    ids.push(r.stdout.trim());
  }
  assert.equal(ids[0], ids[1], 'WORKDIR under SOURCE_DATE_EPOCH gives the same image twice');
});
