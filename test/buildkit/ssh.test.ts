/** Port of BuildKit's frontend/dockerfile/dockerfile_ssh_test.go (see test/buildkit/README.md). */
import assert from 'node:assert/strict';
import path from 'node:path';
import { tempDir } from '../helpers.js';
import { generateKey, startAgent, startGitServer, writeSshToolsRootfs } from '../ssh-harness.js';
import { port, useHarness } from './harness.js';

const h = useHarness();

port('testSSHSocketParams', async (t) => {
  // BuildKit's key: RSA 2048 in PKCS#1 PEM, given as a path (an agent of the build holds it)
  const keys = await tempDir('kiln-bkport-ssh-');
  t.after(keys.cleanup);
  const key = generateKey(keys.dir, 'key', 'rsa-pem');
  await h.differential({
    dockerfile: 'FROM busybox\nRUN --mount=type=ssh,mode=741,uid=100,gid=102 [ "$(stat -c "%u %g %f" $SSH_AUTH_SOCK)" = "100 102 c1e1" ]\n',
    ssh: [`default=${key.private}`],
  }, { ignore: ['/run/buildkit'] });
});

port('testSSHFileDescriptorsClosed', async (t) => {
  // The Go test runs `ssh -T git@github.com` three times through a forwarded ssh-agent -d and
  // checks from the agent's debug output that each connection was closed before the next
  // (it always serves "socket 1"). Here the server is the test's own sshd on 127.0.0.1 and the
  // ssh client comes from the host's packages (alpine's apk is not reachable): kiln only.
  const server = await startGitServer();
  t.after(() => server.stop());
  const agent = await startAgent({ debug: true });
  t.after(() => agent.stop());
  agent.add(server.clientKey.private);
  const tools = await h.context({ dockerfile: 'FROM busybox\nCOPY rootfs/ /\n' });
  await writeSshToolsRootfs(path.join(tools.dir, 'rootfs'));
  const base = await h.kilnBuild({}, tools);
  assert.equal(base.code, 0, base.stderr);
  const help = await h.kilnCommand(['build', '--help']);
  const r = await h.kilnBuild({
    dockerfile: `FROM ${base.tag}
RUN --network=host --mount=type=ssh mkdir -p -m 0600 ~/.ssh \\
 && ssh-keyscan -p ${server.port} 127.0.0.1 >> ~/.ssh/known_hosts \\
 && for i in $(seq 1 3); do \\
        ssh -T -p ${server.port} git@127.0.0.1 true; \\
    done; \\
    exit 0;
`,
    ssh: [`default=${agent.socket}`],
    kilnArgs: help.stdout.includes('--allow') ? ['--allow', 'network.host'] : [],
  });
  assert.equal(r.code, 0, r.stderr);
  const out = agent.output();
  assert.match(out, /process_message: socket 1/);
  assert.doesNotMatch(out, /process_message: socket 2/);
  assert.doesNotMatch(out, /process_message: socket 3/);
  // and the three logins really went through the agent
  assert.equal((server.log().match(/Accepted publickey for git/g) ?? []).length, 3, server.log());
});
