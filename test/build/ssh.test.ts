/**
 * `kiln build --ssh` with RUN --mount=type=ssh, through the CLI, on real runc: `ssh-add -l`
 * inside RUN sees the keys of the build's agent (key files) or of the forwarded
 * $SSH_AUTH_SOCK, `git clone` over ssh from a real sshd works inside RUN, `required` is
 * enforced, targets/uid/gid/mode are honoured, and neither an interrupted nor a killed build
 * leaves an agent or a socket behind.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, promises as fs, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { processStartTime } from '../../src/owner.js';
import { isRoot, kilnBin, runKiln, workspace, type Workspace } from '../helpers.js';
import { fingerprint, generateKey, startAgent, startGitServer, writeSshToolsRootfs, type GitServer, type KeyPair } from '../ssh-harness.js';

const skip = isRoot() ? false : 'RUN needs root';

/** A RUN that reaches the test's sshd on the host's loopback needs the host network (and, where kiln has entitlements, network.host). */
async function hostNetworkFlags(root: string): Promise<string[]> {
  const help = await runKiln(['build', '--help'], { root });
  return help.stdout.includes('--allow') ? ['--allow', 'network.host'] : [];
}

function sshDirsOf(pid: number): string[] {
  return readdirSync(os.tmpdir()).filter((n) => n.startsWith(`kiln-ssh-${pid}-`));
}

function agentsUnder(prefix: string): number[] {
  const out: number[] = [];
  for (const n of readdirSync('/proc')) {
    if (!/^\d+$/.test(n)) continue;
    try {
      const cmd = spawnSync('cat', [`/proc/${n}/cmdline`], { encoding: 'utf8' }).stdout.split('\0');
      if (cmd.some((a) => a.includes(prefix)) && cmd.some((a) => a.endsWith('ssh-agent'))) out.push(Number(n));
    } catch {
      // gone
    }
  }
  return out;
}

describe('kiln build --ssh', { skip }, () => {
  let ws: Workspace;
  let key: KeyPair;
  let keys: string;
  before(async () => {
    ws = await workspace();
    keys = await ws.context({});
    key = generateKey(keys, 'id_build');
    // a base with ssh, ssh-add and git: the host's binaries and libraries over busybox
    const ctx = await ws.context({ Dockerfile: 'FROM busybox\nCOPY rootfs/ /\n' });
    await writeSshToolsRootfs(path.join(ctx, 'rootfs'));
    const r = await runKiln(['build', '-q', '-t', 'sshtools:latest', ctx], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await ws?.cleanup();
  });

  it('loads key files into an agent of the build: ssh-add -l inside RUN lists them, at /run/buildkit/ssh_agent.0', async () => {
    const fp = fingerprint(key.public);
    const ctx = await ws.context({
      Dockerfile: `FROM sshtools
RUN --mount=type=ssh ssh-add -l > /keys && echo "$SSH_AUTH_SOCK" > /sock && [ -S /run/buildkit/ssh_agent.0 ] && [ "$(stat -c '%u %g %a' $SSH_AUTH_SOCK)" = "0 0 600" ]
RUN [ ! -e /run/buildkit ] && [ -z "$SSH_AUTH_SOCK" ]
`,
    });
    const r = await runKiln(['build', '-q', '--ssh', `default=${key.private}`, '-t', 'ssh-keys:1', ctx], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
    const keysOut = await runKiln(['run', 'ssh-keys:1', 'cat', '/keys', '/sock'], { root: ws.root });
    assert.equal(keysOut.code, 0, keysOut.stderr);
    assert.ok(keysOut.stdout.includes(fp), keysOut.stdout);
    assert.match(keysOut.stdout, /\/run\/buildkit\/ssh_agent\.0\n$/);
    assert.ok(!r.stderr.includes(await fs.readFile(key.private, 'utf8')));
  });

  it('forwards $SSH_AUTH_SOCK for --ssh default, several ids to numbered or given targets', async () => {
    const agent = await startAgent();
    try {
      const other = generateKey(keys, 'id_other');
      agent.add(other.private);
      const ctx = await ws.context({
        Dockerfile: `FROM sshtools
RUN --mount=type=ssh --mount=type=ssh,id=second,target=/tmp/second.sock,uid=1000,mode=0700 \\
    ssh-add -l > /default && SSH_AUTH_SOCK=/tmp/second.sock ssh-add -l > /second && [ "$SSH_AUTH_SOCK" = /run/buildkit/ssh_agent.0 ] \\
    && [ "$(stat -c '%u %a' /tmp/second.sock)" = "1000 700" ]
RUN --mount=type=ssh,id=nothere --mount=type=ssh,id=second [ ! -e /run/buildkit/ssh_agent.0 ] && [ -S /run/buildkit/ssh_agent.1 ] && [ "$SSH_AUTH_SOCK" = /run/buildkit/ssh_agent.0 ]
`,
      });
      const r = await runKiln(['build', '-q', '--ssh', 'default', '--ssh', `second=${key.private}`, '-t', 'ssh-fwd:1', ctx], { root: ws.root, env: { SSH_AUTH_SOCK: agent.socket } });
      assert.equal(r.code, 0, r.stderr);
      const out = await runKiln(['run', 'ssh-fwd:1', 'cat', '/default', '/second'], { root: ws.root });
      assert.equal(out.code, 0, out.stderr);
      const [first, second] = out.stdout.trim().split('\n');
      assert.ok(first.includes(fingerprint(other.public)), first);
      assert.ok(second.includes(fingerprint(key.public)), second);
    } finally {
      await agent.stop();
    }
  });

  it('enforces required, and refuses what is not a key', async () => {
    const ctx = await ws.context({ Dockerfile: 'FROM busybox\nRUN --mount=type=ssh,required true\n' });
    const r = await runKiln(['build', '-q', ctx], { root: ws.root });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /no SSH key "default" forwarded from the client/);
    assert.match(r.stderr, /Dockerfile:2/);
    assert.match(r.stderr, /--ssh default/);
    const optional = await ws.context({ Dockerfile: 'FROM busybox\nRUN --mount=type=ssh [ ! -e /run/buildkit/ssh_agent.0 ] && [ "$SSH_AUTH_SOCK" = /run/buildkit/ssh_agent.0 ]\n' });
    const ok = await runKiln(['build', '-q', optional], { root: ws.root });
    assert.equal(ok.code, 0, ok.stderr);
    const junk = path.join(keys, 'junk');
    await fs.writeFile(junk, 'definitely not a key\n');
    const bad = await runKiln(['build', '-q', '--ssh', `default=${junk}`, optional], { root: ws.root });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--ssh default=.*junk: cannot load the key/);
    assert.ok(!bad.stderr.includes('definitely not a key'));
    const noSock = await runKiln(['build', '-q', '--ssh', 'default', optional], { root: ws.root, env: { SSH_AUTH_SOCK: '' } });
    assert.notEqual(noSock.code, 0);
    assert.match(noSock.stderr, /SSH_AUTH_SOCK is not set/);
    const badSource = await ws.context({ Dockerfile: 'FROM busybox\nRUN --mount=type=ssh,source=x true\n' });
    const bs = await runKiln(['build', '-q', badSource], { root: ws.root });
    assert.match(bs.stderr, /ssh does not support source/);
  });

  describe('git clone over ssh inside RUN', () => {
    let server: GitServer;
    before(async () => {
      server = await startGitServer();
    });
    after(async () => {
      await server?.stop();
    });

    it('clones a repository from the test sshd with the key the build loaded', async () => {
      const commit = server.createRepo('app', { 'README.md': 'cloned over ssh\n', 'src/main.c': 'int main(void){return 0;}\n' });
      const ctx = await ws.context({
        known_hosts: `${server.knownHostsLine}\n`,
        Dockerfile: `FROM sshtools
COPY known_hosts /root/.ssh/known_hosts
RUN --network=host --mount=type=ssh GIT_SSH_COMMAND="ssh -o StrictHostKeyChecking=yes -o BatchMode=yes" git clone -q ${server.url('app')} /src && git -C /src rev-parse HEAD > /commit && rm -rf /src/.git
`,
      });
      const flags = await hostNetworkFlags(ws.root);
      const r = await runKiln(['build', '-q', ...flags, '--ssh', `default=${server.clientKey.private}`, '-t', 'cloned:1', ctx], { root: ws.root });
      assert.equal(r.code, 0, `${r.stderr}\n${server.log()}`);
      const out = await runKiln(['run', 'cloned:1', 'cat', '/src/README.md', '/commit'], { root: ws.root });
      assert.equal(out.stdout, `cloned over ssh\n${commit}\n`);
      // without the key the clone is refused
      const denied = await runKiln(['build', '-q', '--no-cache', ...flags, '--ssh', `default=${key.private}`, ctx], { root: ws.root });
      assert.notEqual(denied.code, 0);
      assert.match(denied.stderr, /Permission denied|Could not read from remote repository/);
    });
  });

  for (const how of ['SIGTERM', 'SIGKILL'] as const) {
    it(`${how} during a RUN with an ssh mount leaves no agent and no socket${how === 'SIGKILL' ? ' after the next build' : ''}`, async () => {
      const ctx = await ws.context({ Dockerfile: 'FROM busybox\nRUN --mount=type=ssh touch /tmp/started && sleep 60\n' });
      const child = spawn(process.execPath, [kilnBin, '--root', ws.root, 'build', '--progress', 'plain', '--no-cache', '--ssh', `default=${key.private}`, ctx], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      child.stderr.on('data', (c: Buffer) => (err += c.toString()));
      child.stdout.resume();
      const exited = new Promise((r) => child.once('exit', r));
      try {
        const deadline = Date.now() + 60_000;
        let agents: number[] = [];
        while (Date.now() < deadline) {
          const dirs = sshDirsOf(child.pid!);
          agents = dirs.length ? agentsUnder(dirs[0]) : [];
          if (agents.length && /sleep 60/.test(err) && existsSync(path.join(os.tmpdir(), dirs[0], 'fwd-0.sock'))) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        assert.equal(agents.length, 1, `the build's agent runs: ${err}`);
        const dir = sshDirsOf(child.pid!)[0];
        child.kill(how);
        await exited;
        for (let i = 0; i < 200 && processStartTime(agents[0]) !== undefined; i++) await new Promise((r) => setTimeout(r, 20));
        assert.equal(processStartTime(agents[0]), undefined, 'the agent died with kiln');
        if (how === 'SIGKILL') {
          // kill -9 leaves the directory to the next build (any build on the machine removes it)
          const next = await runKiln(['build', '-q', await ws.context({ Dockerfile: 'FROM busybox\nRUN true\n' })], { root: ws.root });
          assert.equal(next.code, 0, next.stderr);
        }
        assert.equal(existsSync(path.join(os.tmpdir(), dir)), false, 'no ssh directory is left');
      } finally {
        child.kill('SIGKILL');
      }
    });
  }
});
