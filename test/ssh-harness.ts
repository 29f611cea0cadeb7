/**
 * Real ssh for tests: key pairs (ssh-keygen), an ssh-agent, and an sshd on 127.0.0.1 serving
 * bare git repositories as `ssh://git@127.0.0.1:PORT/<path>/<name>.git`.
 *
 * The sshd runs as root in a mount namespace of its own (unshare) where /etc/passwd and
 * /etc/group have a `git` user (uid 4242, home = the repositories' directory): the host's
 * account files are not touched. Everything a harness starts is stopped, and its directory
 * removed, by its `stop()`; every port is a free one picked for it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, promises as fs, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './registry/harness.js';

export const GIT_UID = 4242;

/** A directory with a short path (unix sockets must stay under 108 bytes). */
function shortTemp(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): string {
  const r = spawnSync(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}`);
  return r.stdout;
}

export interface KeyPair {
  /** The private key file (mode 0600). */
  private: string;
  public: string;
  /** The public key line. */
  publicLine: string;
}

/** A key pair without a passphrase: ed25519 by default, `rsa-pem` for an RSA key in PKCS#1 PEM (BuildKit's test key). */
export function generateKey(dir: string, name = 'id', type: 'ed25519' | 'rsa-pem' = 'ed25519', passphrase = ''): KeyPair {
  const file = path.join(dir, name);
  const args = type === 'ed25519' ? ['-t', 'ed25519'] : ['-t', 'rsa', '-b', '2048', '-m', 'PEM'];
  run('ssh-keygen', [...args, '-q', '-N', passphrase, '-C', `kiln-test-${name}`, '-f', file]);
  return { private: file, public: `${file}.pub`, publicLine: readFileSync(`${file}.pub`, 'utf8').trim() };
}

/** The SHA256 fingerprint of a public key file, as `ssh-add -l` prints it. */
export function fingerprint(publicKey: string): string {
  return run('ssh-keygen', ['-l', '-E', 'sha256', '-f', publicKey]).split(/\s+/)[1];
}

async function waitUntil(check: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function stopProcess(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export interface Agent {
  socket: string;
  pid: number;
  /** What the agent printed (with `debug`, its `process_message: socket N` lines). */
  output(): string;
  add(key: string): void;
  /** `ssh-add -l` against it. */
  list(): string;
  stop(): Promise<void>;
}

/** A real ssh-agent on a socket of its own (`-d`: debug output, as BuildKit's test runs it). */
export async function startAgent(opts: { debug?: boolean } = {}): Promise<Agent> {
  const dir = shortTemp('kiln-agent-');
  const socket = path.join(dir, 'agent.sock');
  const child = spawn('ssh-agent', [opts.debug ? '-d' : '-D', '-a', socket], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const env = { ...process.env, SSH_AUTH_SOCK: socket };
  const stop = async (): Promise<void> => {
    await stopProcess(child);
    await fs.rm(dir, { recursive: true, force: true });
  };
  try {
    await waitUntil(async () => (await fs.stat(socket).catch(() => undefined))?.isSocket() === true || child.exitCode !== null, 'ssh-agent');
    if (child.exitCode !== null) throw new Error(`ssh-agent exited: ${out}`);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    socket,
    pid: child.pid!,
    output: () => out,
    add: (key) => void run('ssh-add', ['-q', key], { env }),
    list: () => run('ssh-add', ['-l'], { env }),
    stop,
  };
}

export interface GitServer {
  host: string;
  port: number;
  user: string;
  /** The git user's home: the bare repositories live here. */
  home: string;
  /** A key the server accepts (authorized for `git`). */
  clientKey: KeyPair;
  /** The server's host key line for a known_hosts file (`[127.0.0.1]:PORT ssh-ed25519 ...`). */
  knownHostsLine: string;
  /** A known_hosts file holding that line. */
  knownHosts: string;
  /** `ssh://git@127.0.0.1:PORT/<home>/<name>.git` */
  url(name: string): string;
  /** Makes a bare repository `<name>.git` with one commit of `files` on branch main (and a tag v1); returns the commit id. */
  createRepo(name: string, files: Record<string, string>): string;
  /** Adds a commit of `files` to `<name>.git`'s main; returns its id. */
  commit(name: string, files: Record<string, string>): string;
  /** GIT_SSH_COMMAND for a host-side git client using `clientKey` (or the agent) and `knownHosts`. */
  sshCommand(useKey?: boolean): string;
  /** What sshd logged (-e). */
  log(): string;
  stop(): Promise<void>;
}

/** An sshd on 127.0.0.1 (a free port) serving git repositories for the user `git`. */
export async function startGitServer(): Promise<GitServer> {
  const dir = shortTemp('kiln-sshd-');
  const home = path.join(dir, 'git');
  await fs.mkdir(home, { mode: 0o755 });
  await fs.chmod(dir, 0o755);
  await fs.chown(home, GIT_UID, GIT_UID);
  const hostKey = generateKey(dir, 'host_ed25519');
  const clientKey = generateKey(dir, 'client_ed25519');
  await fs.writeFile(path.join(dir, 'authorized_keys'), `${clientKey.publicLine}\n`, { mode: 0o644 });
  await fs.writeFile(path.join(dir, 'passwd'), `${readFileSync('/etc/passwd', 'utf8').trimEnd()}\ngit:x:${GIT_UID}:${GIT_UID}:git:${home}:/bin/sh\n`);
  await fs.writeFile(path.join(dir, 'group'), `${readFileSync('/etc/group', 'utf8').trimEnd()}\ngit:x:${GIT_UID}:\n`);
  const port = await freePort();
  const config = [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${hostKey.private}`,
    `PidFile ${path.join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
    'AllowUsers git',
    'PermitRootLogin no',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'StrictModes no',
    'PrintMotd no',
    'AcceptEnv LANG',
    'LogLevel VERBOSE',
  ];
  await fs.writeFile(path.join(dir, 'sshd_config'), `${config.join('\n')}\n`);
  // sshd's privilege separation directory
  await fs.mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const script = `mount --bind ${dir}/passwd /etc/passwd && mount --bind ${dir}/group /etc/group && exec /usr/sbin/sshd -D -e -f ${dir}/sshd_config`;
  const child = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout?.on('data', (c: Buffer) => (log += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (log += c.toString()));
  const stop = async (): Promise<void> => {
    await stopProcess(child);
    await fs.rm(dir, { recursive: true, force: true });
  };
  try {
    await waitUntil(() => /Server listening on 127\.0\.0\.1 port/.test(log) || child.exitCode !== null, 'sshd to listen');
    if (child.exitCode !== null) throw new Error(`sshd exited (${child.exitCode}): ${log}`);
  } catch (e) {
    await stop();
    throw e;
  }
  const knownHostsLine = `[127.0.0.1]:${port} ${hostKey.publicLine.split(' ').slice(0, 2).join(' ')}`;
  const knownHosts = path.join(dir, 'known_hosts');
  await fs.writeFile(knownHosts, `${knownHostsLine}\n`);
  const asGit = (args: string[], cwd?: string): string => {
    const env = { ...process.env, GIT_AUTHOR_NAME: 'kiln', GIT_AUTHOR_EMAIL: 'kiln@example.com', GIT_COMMITTER_NAME: 'kiln', GIT_COMMITTER_EMAIL: 'kiln@example.com', GIT_AUTHOR_DATE: '2024-01-01T00:00:00Z', GIT_COMMITTER_DATE: '2024-01-01T00:00:00Z', HOME: dir };
    return run('git', args, { env, cwd }).trim();
  };
  const commit = (name: string, files: Record<string, string>): string => {
    const work = mkdtempSync(path.join(dir, 'work-'));
    try {
      const bare = path.join(home, `${name}.git`);
      asGit(['clone', '-q', bare, work]);
      asGit(['checkout', '-q', '-B', 'main'], work);
      for (const [rel, content] of Object.entries(files)) {
        mkdirSync(path.dirname(path.join(work, rel)), { recursive: true });
        writeFileSync(path.join(work, rel), content);
      }
      asGit(['add', '-A'], work);
      asGit(['commit', '-q', '-m', `update ${Object.keys(files).join(' ')}`], work);
      asGit(['push', '-q', 'origin', 'main'], work);
      const id = asGit(['rev-parse', 'HEAD'], work);
      run('chown', ['-R', `${GIT_UID}:${GIT_UID}`, bare]);
      return id;
    } finally {
      spawnSync('rm', ['-rf', work]);
    }
  };
  return {
    host: '127.0.0.1',
    port,
    user: 'git',
    home,
    clientKey,
    knownHostsLine,
    knownHosts,
    url: (name) => `ssh://git@127.0.0.1:${port}${home}/${name}.git`,
    createRepo(name, files) {
      const bare = path.join(home, `${name}.git`);
      asGit(['init', '-q', '--bare', '-b', 'main', bare]);
      const id = commit(name, files);
      asGit(['--git-dir', bare, 'tag', 'v1', id]);
      run('chown', ['-R', `${GIT_UID}:${GIT_UID}`, bare]);
      return id;
    },
    commit,
    sshCommand: (useKey = true) => `ssh -o UserKnownHostsFile=${knownHosts} -o StrictHostKeyChecking=yes -o BatchMode=yes${useKey ? ` -o IdentitiesOnly=yes -i ${clientKey.private}` : ''}`,
    log: () => log,
    stop,
  };
}

/**
 * A build context whose `rootfs/` holds the host's ssh, ssh-add, ssh-keyscan and git with the
 * shared libraries they load (from the host's Debian packages), to COPY over busybox: a RUN
 * base that can clone over ssh, running in the container like any other image's binaries.
 */
export async function writeSshToolsRootfs(rootfs: string): Promise<void> {
  const bins = ['/usr/bin/ssh', '/usr/bin/ssh-add', '/usr/bin/ssh-keyscan', '/usr/bin/git'];
  const files = new Set<string>(bins);
  for (const b of bins) {
    const out = run('ldd', [b]);
    for (const line of out.split('\n')) {
      const m = /(\/\S+)\s+\(0x/.exec(line);
      if (m) files.add(m[1]);
    }
  }
  for (const f of files) {
    const real = await fs.realpath(f);
    const dest = path.join(rootfs, f);
    await fs.mkdir(path.dirname(dest), { recursive: true });
    await fs.copyFile(real, dest);
    await fs.chmod(dest, 0o755);
  }
  // an account for uid 0 with a home, which ssh wants; git's ssh transport needs no helper
  await fs.mkdir(path.join(rootfs, 'root', '.ssh'), { recursive: true, mode: 0o700 });
}
