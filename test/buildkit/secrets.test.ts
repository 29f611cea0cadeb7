/** Port of BuildKit's frontend/dockerfile/dockerfile_secrets_test.go (see test/buildkit/README.md). */
import assert from 'node:assert/strict';
import { port, useHarness } from './harness.js';

const h = useHarness();

port('testSecretFileParams', async () => {
  await h.differential({
    dockerfile: 'FROM busybox\nRUN --mount=type=secret,required=false,mode=741,uid=100,gid=102,target=/mysecret [ "$(stat -c "%u %g %f" /mysecret)" = "100 102 81e1" ]\nRUN [ ! -f /mysecret ] # check no stub left behind\n',
    secrets: { mysecret: 'pw' },
  });
});

port('testSecretRequiredWithoutValue', async () => {
  const r = await h.differentialFails({ dockerfile: 'FROM busybox \n\t\tRUN --mount=type=secret,required,id=mysecret foo' });
  assert.match(r.stderr, /secret mysecret: not found/);
});

port('testSecretAsEnviron', async () => {
  // env= needs Dockerfile 1.10 (not docker 20.10): assertion only
  const r = await h.kilnBuild({
    dockerfile: 'FROM busybox\nENV SECRET_ENV=foo\nRUN --mount=type=secret,id=mysecret,env=SECRET_ENV [ "$SECRET_ENV" == "pw" ] && [ ! -f /run/secrets/mysecret ] || false\n',
    secrets: { mysecret: 'pw' },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!r.stderr.includes('[ "pw"'), 'the secret value is not shown in the step name');
});

port('testSecretAsEnvironWithFileMount', async () => {
  await h.kiln({
    dockerfile: 'FROM busybox\nRUN --mount=type=secret,id=mysecret,target=/run/secrets/secret,env=SECRET_ENV [ "$SECRET_ENV" == "pw" ] && [ -f /run/secrets/secret ] || false\n',
    secrets: { mysecret: 'pw' },
  });
});
