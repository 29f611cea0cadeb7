/**
 * ADD of a git repository over ssh, from a real sshd on 127.0.0.1 (test/ssh-harness.ts),
 * authenticated by the build's --ssh agent (the "default" id, as BuildKit's git source):
 * key files loaded into kiln's own agent, or $SSH_AUTH_SOCK forwarded. Without an agent, or
 * with a key the server refuses, a clear error that shows no key.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { generateKey, startAgent, startGitServer, type Agent, type GitServer } from '../ssh-harness.js';
import { haveTool, isRoot, runKiln, tempDir, workspace, type Workspace } from '../helpers.js';

const skip = !isRoot() ? 'needs root' : !haveTool('git') || !haveTool('ssh-agent') || !haveTool('/usr/sbin/sshd') ? 'git, ssh-agent or sshd not installed' : false;

describe('ADD <git repository> over ssh', { skip }, () => {
  let ws: Workspace;
  let server: GitServer;
  let agent: Agent | undefined;
  let commit: string;

  before(async () => {
    ws = await workspace();
    server = await startGitServer();
    commit = server.createRepo('app', { 'README.md': 'over ssh\n', 'src/main.sh': 'echo main\n' });
  });
  after(async () => {
    await agent?.stop();
    await server?.stop();
    await ws?.cleanup();
  });

  const build = async (dockerfile: string, args: string[], env: Record<string, string> = {}) => {
    const dir = await ws.context({ Dockerfile: dockerfile });
    return runKiln(['build', '--progress', 'json', ...args, dir], { root: ws.root, env: { SSH_AUTH_SOCK: '', ...env } });
  };

  it('fetches with a key file given to --ssh default=KEY, and keys the step on the commit', async () => {
    const df = `FROM busybox:latest\nADD ${server.url('app')}#main:src /src\n`;
    const r = await build(df, ['-t', 'addssh:key', '--ssh', `default=${server.clientKey.private}`]);
    assert.equal(r.code, 0, `${r.stderr}\n${server.log()}`);
    const out = await runKiln(['run', 'addssh:key', 'sh', '-c', 'ls /src; cat /src/main.sh'], { root: ws.root });
    assert.equal(out.stdout, 'main.sh\necho main\n');
    // the same commit: cached (the ref is still asked for, over ssh)
    const again = await build(df, ['-t', 'addssh:key', '--ssh', `default=${server.clientKey.private}`]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /"type":"cached"[^\n]*ADD ssh:/);
    // a new commit on main: the step runs again
    // the harness commits as root (its HOME: the server's dir) in the git user's repository,
    // which git refuses unless marked safe
    await fs.writeFile(path.join(path.dirname(server.home), '.gitconfig'), '[safe]\n\tdirectory = *\n');
    server.commit('app', { 'src/main.sh': 'echo changed\n' });
    const moved = await build(df, ['-t', 'addssh:key', '--ssh', `default=${server.clientKey.private}`]);
    assert.equal(moved.code, 0, moved.stderr);
    assert.equal((await runKiln(['run', 'addssh:key', 'cat', '/src/main.sh'], { root: ws.root })).stdout, 'echo changed\n');
  });

  it('forwards $SSH_AUTH_SOCK with --ssh default', async () => {
    agent = await startAgent();
    agent.add(server.clientKey.private);
    const r = await build(`FROM busybox:latest\nADD --checksum=${commit} ${server.url('app')}#v1 /app\n`, ['-t', 'addssh:agent', '--ssh', 'default'], { SSH_AUTH_SOCK: agent.socket });
    assert.equal(r.code, 0, `${r.stderr}\n${server.log()}`);
    assert.equal((await runKiln(['run', 'addssh:agent', 'cat', '/app/README.md'], { root: ws.root })).stdout, 'over ssh\n');
  });

  it('fails clearly without an agent, and with a key the server refuses (showing no key)', async () => {
    const df = `FROM busybox:latest\nADD ${server.url('app')}#main /app\n`;
    const none = await build(df, []);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /Dockerfile:2:1: ADD ssh:\S+ is over ssh, but the build has no ssh agent/);
    assert.match(none.stderr, /hint: build with --ssh default/);
    const t = await tempDir('kiln-stranger-');
    try {
      const stranger = generateKey(t.dir, 'stranger');
      const denied = await build(df, ['--ssh', `default=${stranger.private}`]);
      assert.notEqual(denied.code, 0);
      assert.match(denied.stderr, /Dockerfile:2:1: could not read the refs of ssh:\S+: .*Permission denied/);
      const secret = readFileSync(stranger.private, 'utf8').split('\n')[1];
      assert.ok(!denied.stderr.includes(secret), 'the private key is not in the output');
      assert.doesNotMatch(denied.stderr, /\n\s+at /);
    } finally {
      await t.cleanup();
    }
  });
});
