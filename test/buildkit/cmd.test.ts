/** Port of BuildKit's frontend/dockerfile/dockerfile_cmd_test.go (see test/buildkit/README.md). */
import assert from 'node:assert/strict';
import { port, useHarness } from './harness.js';

const h = useHarness();

port('testCmdShell', async () => {
  // the parent image built first, then used by name: kiln's store plays containerd's part
  const parent = await h.kilnBuild({ dockerfile: 'FROM scratch\nCMD ["test"]\n' });
  assert.equal(parent.code, 0, parent.stderr);
  const img = await h.kiln({ dockerfile: `FROM ${parent.tag}\nSHELL ["ls"]\nENTRYPOINT my entrypoint\n` });
  assert.equal(img.config.config?.Cmd ?? null, null, 'ENTRYPOINT resets the inherited CMD');
  assert.deepEqual(img.config.config?.Entrypoint, ['ls', 'my entrypoint']);
});

port('testDefaultShellAndPath', async () => {
  // linux/amd64 only: kiln builds one platform per build
  const img = await h.differential({ dockerfile: 'FROM scratch\nENTRYPOINT foo bar\nCOPY Dockerfile .\n' }, { layers: true });
  assert.equal(img.layers, 1);
  assert.deepEqual(img.config.config?.Entrypoint, ['/bin/sh', '-c', 'foo bar']);
  assert.deepEqual(img.config.config?.Env, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
});

port('testIgnoreEntrypoint', async () => {
  await h.differential({ dockerfile: 'FROM busybox\nENTRYPOINT ["/nosuchcmd"]\nRUN ["ls"]\n' });
});

port('testInvalidJSONCommands', async () => {
  const r = await h.kilnFails({ dockerfile: 'FROM busybox\nRUN ["echo", "hello"]this is invalid\n' });
  assert.match(r.stderr, /this is invalid/);
  // docker 20.10 drops such an ENTRYPOINT; current BuildKit runs it through the shell
  const img = await h.kiln({ dockerfile: 'FROM busybox\nENTRYPOINT []random string\n' });
  assert.deepEqual(img.config.config?.Entrypoint, ['/bin/sh', '-c', '[]random string']);
});

port('testDockerfileInvalidCommand', async () => {
  const r = await h.kilnFails({ dockerfile: '\tFROM busybox\n\tRUN invalidcmd\n' });
  assert.match(r.stderr, /\/bin\/sh -c invalidcmd/);
  assert.match(r.stderr, /did not complete successfully/);
});

port('testDockerfileInvalidInstruction', async () => {
  const r = await h.kilnFails({ dockerfile: 'FROM scratch\nFNTRYPOINT ["/bin/sh", "-c", "echo invalidinstruction"]\n' });
  assert.match(r.stderr, /unknown instruction: FNTRYPOINT/);
  assert.match(r.stderr, /did you mean ENTRYPOINT\?/);
});
