/**
 * The build-scoped ssh agents (src/exec/ssh.ts) against real ssh-agent, ssh-add and sshd: key
 * files loaded into an agent of kiln's, $SSH_AUTH_SOCK and socket paths forwarded, relayed
 * sockets with their owner and mode, clear errors, and no agent or directory left behind, also
 * after kill -9.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, promises as fs, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { errorCode } from '../../src/errors.js';
import { parseSshSpec, removeStaleSshDirs, startSshAgents } from '../../src/exec/ssh.js';
import { processStartTime } from '../../src/owner.js';
import { isRoot, repoRoot, tempDir } from '../helpers.js';
import { fingerprint, generateKey, startAgent, startGitServer, type GitServer } from '../ssh-harness.js';

const skip = isRoot() ? false : 'the sshd harness and chown need root';

/** `ssh-add -l` against `sock`, asynchronously: a relay of this very process serves it. */
function sshAddList(sock: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('ssh-add', ['-l'], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, out });
    });
  });
}

function kilnSshDirs(): string[] {
  return readdirSync(os.tmpdir()).filter((n) => n.startsWith(`kiln-ssh-${process.pid}-`));
}

describe('parseSshSpec', () => {
  it('takes default, an id alone, and ID=PATH[,PATH]', () => {
    assert.deepEqual(parseSshSpec('default'), { id: 'default', paths: [] });
    assert.deepEqual(parseSshSpec('gh'), { id: 'gh', paths: [] });
    assert.deepEqual(parseSshSpec('gh=/k/a,/k/b'), { id: 'gh', paths: ['/k/a', '/k/b'] });
  });
  it('refuses an empty id or path', () => {
    for (const bad of ['', '=/k', 'a b=/k', 'gh=']) assert.throws(() => parseSshSpec(bad), (e: unknown) => errorCode(e) === 'invalid', bad);
  });
});

describe('startSshAgents', { skip }, () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  before(async () => {
    tmp = await tempDir('kiln-sshkeys-');
  });
  after(async () => {
    await tmp.cleanup();
  });

  it('loads key files into an agent of its own, which close() stops', async () => {
    const a = generateKey(tmp.dir, 'a');
    const b = generateKey(tmp.dir, 'b', 'rsa-pem');
    const agents = await startSshAgents([{ id: 'default', paths: [a.private, b.private] }]);
    const sock = agents.socket('default')!;
    const listed = await sshAddList(sock);
    assert.equal(listed.code, 0, listed.out);
    assert.match(listed.out, new RegExp(fingerprint(a.public).replace(/[+/]/g, '\\$&')));
    assert.match(listed.out, new RegExp(fingerprint(b.public).replace(/[+/]/g, '\\$&')));
    assert.deepEqual(agents.ids(), ['default']);
    const dir = path.dirname(sock);
    const pid = Number((await fs.readFile(path.join(dir, 'agent-0.pid'), 'utf8')).split(' ')[0]);
    assert.ok(processStartTime(pid), 'the agent runs');
    await agents.close();
    assert.equal(processStartTime(pid), undefined, 'the agent is stopped');
    assert.equal(existsSync(dir), false, 'its directory is removed');
    assert.deepEqual(kilnSshDirs(), []);
  });

  it('forwards $SSH_AUTH_SOCK and a socket path, through relayed sockets with the owner and mode asked for', async () => {
    const agent = await startAgent();
    try {
      const k = generateKey(tmp.dir, 'fwd');
      agent.add(k.private);
      const agents = await startSshAgents([{ id: 'default', paths: [] }, { id: 'other', paths: [agent.socket] }], { SSH_AUTH_SOCK: agent.socket });
      try {
        assert.equal(agents.socket('default'), agent.socket);
        assert.equal(agents.socket('other'), agent.socket);
        const f = await agents.forward('other', { uid: 100, gid: 102, mode: 0o741 });
        const st = await fs.stat(f.path);
        assert.ok(st.isSocket());
        assert.equal(st.uid, 100);
        assert.equal(st.gid, 102);
        assert.equal(st.mode & 0o7777, 0o741);
        // three clients one after the other: each relayed connection closes with its client
        for (let i = 0; i < 3; i++) {
          const r = await sshAddList(f.path);
          assert.equal(r.code, 0, r.out);
          assert.match(r.out, /kiln-test-fwd/);
        }
        await f.close();
        assert.equal(existsSync(f.path), false);
        await assert.rejects(agents.forward('nope', { uid: 0, gid: 0, mode: 0o600 }), (e: unknown) => errorCode(e) === 'not-found' && /no SSH key "nope"/.test(String(e)));
      } finally {
        await agents.close();
      }
    } finally {
      await agent.stop();
    }
  });

  it('gives clear errors, never showing a key', async () => {
    await assert.rejects(startSshAgents([{ id: 'default', paths: [] }], {}), (e: unknown) => errorCode(e) === 'invalid' && /SSH_AUTH_SOCK is not set/.test(String(e)));
    await assert.rejects(startSshAgents([{ id: 'k', paths: [path.join(tmp.dir, 'missing')] }]), (e: unknown) => errorCode(e) === 'not-found' && /--ssh k=.*missing does not exist/.test(String(e)));
    const locked = generateKey(tmp.dir, 'locked', 'ed25519', 'a passphrase');
    const text = await fs.readFile(locked.private, 'utf8');
    await assert.rejects(startSshAgents([{ id: 'k', paths: [locked.private] }]), (e: unknown) => {
      const msg = `${String(e)} ${(e as { hint?: string }).hint ?? ''}`;
      assert.equal(errorCode(e), 'invalid');
      assert.match(msg, /cannot load the key/);
      assert.ok(!msg.includes(text.split('\n')[1]), 'no key material in the message');
      return true;
    });
    const junk = path.join(tmp.dir, 'junk');
    await fs.writeFile(junk, 'not a key\n', { mode: 0o600 });
    await assert.rejects(startSshAgents([{ id: 'k', paths: [junk] }]), (e: unknown) => errorCode(e) === 'invalid' && /cannot load the key .*junk/.test(String(e)));
    await assert.rejects(startSshAgents([{ id: 'k', paths: [tmp.dir] }]), /neither a key file nor an agent socket/);
    await assert.rejects(startSshAgents([{ id: 'a', paths: [] }, { id: 'a', paths: [] }], { SSH_AUTH_SOCK: '/nonexistent' }), /given twice|not a socket/);
    // every failed start cleaned up after itself
    assert.deepEqual(kilnSshDirs(), []);
  });

  it('an agent dies with the kiln process that started it, even by kill -9, and the next start removes its directory', async () => {
    const k = generateKey(tmp.dir, 'k9');
    const script = `
      import { startSshAgents } from ${JSON.stringify(path.join(repoRoot, 'dist', 'src', 'exec', 'ssh.js'))};
      const a = await startSshAgents([{ id: 'default', paths: [${JSON.stringify(k.private)}] }]);
      process.stdout.write(a.socket('default') + '\\n');
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const deadline = Date.now() + 20_000;
    while (!out.includes('\n') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const sock = out.trim();
    assert.ok(sock.endsWith('.sock'), `got ${out}`);
    const dir = path.dirname(sock);
    const agentPid = Number((await fs.readFile(path.join(dir, 'agent-0.pid'), 'utf8')).split(' ')[0]);
    assert.ok(processStartTime(agentPid));
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    for (let i = 0; i < 200 && processStartTime(agentPid) !== undefined; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(processStartTime(agentPid), undefined, 'the agent died with its kiln process');
    // (kill -9 leaves the directory; any kiln build on the machine may remove it from now on)
    removeStaleSshDirs();
    assert.equal(existsSync(dir), false, 'the next start removed it');
  });
});

describe('the git-over-ssh harness', { skip }, () => {
  let server: GitServer;
  before(async () => {
    server = await startGitServer();
  });
  after(async () => {
    await server?.stop();
  });

  it('serves a bare repository that a host git clones over ssh with the client key', async () => {
    const id = server.createRepo('hello', { 'README.md': 'hello over ssh\n' });
    const t = await tempDir('kiln-clone-');
    try {
      const r = spawnSync('git', ['clone', '-q', server.url('hello'), path.join(t.dir, 'c')], { env: { ...process.env, GIT_SSH_COMMAND: server.sshCommand() }, encoding: 'utf8' });
      assert.equal(r.status, 0, `${r.stderr}\n${server.log()}`);
      assert.equal(await fs.readFile(path.join(t.dir, 'c', 'README.md'), 'utf8'), 'hello over ssh\n');
      const head = spawnSync('git', ['-C', path.join(t.dir, 'c'), 'rev-parse', 'HEAD'], { encoding: 'utf8' }).stdout.trim();
      assert.equal(head, id);
      // a key it does not know is refused
      const stranger = generateKey(t.dir, 'stranger');
      const cmd = server.sshCommand(false) + ` -o IdentitiesOnly=yes -i ${stranger.private}`;
      const denied = spawnSync('git', ['ls-remote', server.url('hello')], { env: { ...process.env, GIT_SSH_COMMAND: cmd, SSH_AUTH_SOCK: '' }, encoding: 'utf8' });
      assert.notEqual(denied.status, 0);
      assert.match(denied.stderr, /Permission denied/);
    } finally {
      await t.cleanup();
    }
  });
});
