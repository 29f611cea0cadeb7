/**
 * SSH agents for a build (`--ssh default|ID=PATH[,PATH]`, buildx's flag) and the sockets a RUN's
 * `--mount=type=ssh` gets.
 *
 * Each id is backed by an agent socket on the host: `$SSH_AUTH_SOCK` (an id without paths), a
 * socket path given, or an `ssh-agent` kiln starts for the build and loads the key files into
 * (`ssh-add`). A RUN never sees the host socket itself: each ssh mount gets a socket of its own
 * (with the mount's uid, gid and mode) whose connections kiln relays to the id's agent one for
 * one, closing the agent's side when the container's side closes.
 *
 * Everything lives in one directory under the system temp dir (socket paths must stay under
 * 108 bytes, which a kiln root may not allow) named after its owner (`ownedName`): the agents
 * kiln starts die with kiln (PR_SET_PDEATHSIG through setpriv, so also after kill -9), the
 * directory is removed when the build ends or the process exits, and the next build removes
 * what a killed one left (`removeStaleSshDirs`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, promises as fsp, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { KilnError } from '../errors.js';
import { ownedName, ownerInName } from '../lifecycle.js';
import { killRecorded, ownerAlive, processToken } from '../owner.js';

/** One `--ssh` value: an id and the agent sockets or key files behind it (none: `$SSH_AUTH_SOCK`). */
export interface SshSpec {
  id: string;
  paths: string[];
}

/** Parses `default`, `ID`, `ID=PATH[,PATH...]` as buildx's `--ssh`. */
export function parseSshSpec(value: string): SshSpec {
  const eq = value.indexOf('=');
  const id = (eq === -1 ? value : value.slice(0, eq)).trim();
  const paths = eq === -1 ? [] : value.slice(eq + 1).split(',').map((p) => p.trim()).filter(Boolean);
  if (!id || !/^[A-Za-z0-9_.-]+$/.test(id)) {
    throw new KilnError(`invalid --ssh value "${value}": the id must be a word of letters, digits, '.', '_' or '-'`, { code: 'invalid', hint: 'write --ssh default, --ssh ID=PATH_TO_KEY or --ssh ID=PATH_TO_AGENT_SOCKET' });
  }
  if (eq !== -1 && paths.length === 0) throw new KilnError(`invalid --ssh value "${value}": no path after "="`, { code: 'invalid', hint: `write --ssh ${id} to forward $SSH_AUTH_SOCK, or --ssh ${id}=PATH` });
  return { id, paths };
}

/** The agent sockets of one build, by id. */
export interface SshAgents {
  /** The ids the build was given. */
  ids(): string[];
  /** The host socket of the agent for `id`, or undefined when the build has no such id. */
  socket(id: string): string | undefined;
  /** A socket for one RUN mount, relaying to `id`'s agent; closed by the caller after the step. */
  forward(id: string, owner: { uid: number; gid: number; mode: number }): Promise<ForwardedSocket>;
  /** Stops the agents kiln started and removes the sockets (idempotent). */
  close(): Promise<void>;
}

export interface ForwardedSocket {
  path: string;
  close(): Promise<void>;
}

const DIR_KIND = 'kiln-ssh';
const sshDirs = new Set<string>();
const agentPids = new Set<number>();
let exitHook = false;

/** Synchronous, at process exit (also after a signal, once lifecycle has stopped the children). */
function onExit(): void {
  for (const pid of agentPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  for (const d of sshDirs) rmSync(d, { recursive: true, force: true });
}

function tempRoot(): string {
  return os.tmpdir();
}

/**
 * Removes the ssh directories of kiln processes that are gone, killing an agent still running
 * there (one recorded with its start time, so a reused pid is left alone).
 */
export function removeStaleSshDirs(root = tempRoot()): void {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(`${DIR_KIND}-`)) continue;
    const owner = ownerInName(name);
    if (!owner || ownerAlive(owner)) continue;
    const dir = path.join(root, name);
    for (const f of safeReaddir(dir)) {
      if (!f.endsWith('.pid')) continue;
      try {
        killRecorded(readFileSync(path.join(dir, f), 'utf8'));
      } catch {
        // gone, or not readable
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

async function statOrUndefined(p: string): Promise<import('node:fs').Stats | undefined> {
  return fsp.stat(p).catch(() => undefined);
}

async function waitFor(check: () => Promise<boolean>, what: () => string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
    if (await check()) return;
    if (Date.now() > deadline) throw new KilnError(what(), { code: 'unavailable' });
    await new Promise((r) => setTimeout(r, delay));
  }
}

/**
 * The ssh-agent to start. Debian installs it setgid (group _ssh), and the kernel clears a
 * parent-death signal when it executes a set-id program: a copy without the set-id bits, in
 * the build's ssh directory, keeps it.
 */
async function agentProgram(dir: string): Promise<string> {
  for (const d of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    if (!d) continue;
    const p = path.join(d, 'ssh-agent');
    const st = await statOrUndefined(p);
    if (!st?.isFile()) continue;
    if ((st.mode & 0o6000) === 0) return p;
    const copy = path.join(dir, 'ssh-agent');
    await fsp.copyFile(p, copy);
    await fsp.chmod(copy, 0o755);
    return copy;
  }
  throw new KilnError('cannot find ssh-agent, which --ssh with key files needs', { code: 'unavailable', hint: 'install openssh-client (apt-get install openssh-client)' });
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    // its own session: no controlling terminal, so ssh-add cannot prompt for a passphrase
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', (e) => resolve({ code: -1, stderr: e.message }));
    child.on('close', (code) => resolve({ code: code ?? -1, stderr: stderr.trim() }));
  });
}

/** The environment of the agent tools: no askpass program, no display. */
function toolEnv(sock: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, SSH_AUTH_SOCK: sock, SSH_ASKPASS_REQUIRE: 'never' };
  delete env.DISPLAY;
  delete env.SSH_ASKPASS;
  return env;
}

/**
 * Sets up the agents for `specs`. A spec without paths forwards `$SSH_AUTH_SOCK` (of `env`);
 * one path that is a socket forwards that socket; key files are loaded into an ssh-agent of
 * this build. Fails with a KilnError naming the flag value when a path is missing or a key
 * cannot be loaded (a passphrase-protected one among them); no key material is ever shown.
 */
export async function startSshAgents(specs: SshSpec[], env: NodeJS.ProcessEnv = process.env): Promise<SshAgents> {
  removeStaleSshDirs();
  const dir = path.join(tempRoot(), ownedName(DIR_KIND));
  mkdirSync(dir, { mode: 0o700 });
  sshDirs.add(dir);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', onExit);
  }
  const sockets = new Map<string, string>();
  const children: ChildProcess[] = [];
  const forwards = new Set<ForwardedSocket>();
  let closed = false;
  let forwardCount = 0;

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await Promise.all([...forwards].map((f) => f.close()));
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once('exit', () => resolve());
            c.kill('SIGKILL');
          }),
      ),
    );
    for (const c of children) if (c.pid) agentPids.delete(c.pid);
    await fsp.rm(dir, { recursive: true, force: true });
    sshDirs.delete(dir);
  };

  let agentBinary: string | undefined;
  const startAgent = async (n: number): Promise<string> => {
    const sock = path.join(dir, `agent-${n}.sock`);
    agentBinary ??= await agentProgram(dir);
    let exited: string | undefined;
    // setpriv: the agent gets SIGKILL when kiln dies, however it dies
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', agentBinary, '-D', '-a', sock], { stdio: ['ignore', 'ignore', 'pipe'], env: toolEnv(sock) });
    children.push(child);
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', (e) => (exited = e.message));
    child.on('exit', (code, sig) => (exited ??= `exited (${sig ?? code ?? ''})`));
    if (child.pid) {
      agentPids.add(child.pid);
      await fsp.writeFile(path.join(dir, `agent-${n}.pid`), `${processToken(child.pid)}\n`);
    }
    await waitFor(
      async () => {
        if (exited !== undefined) throw new KilnError(`cannot start ssh-agent for --ssh: ${exited}${stderr.trim() ? `: ${stderr.trim()}` : ''}`, { code: 'unavailable', hint: 'install openssh-client (apt-get install openssh-client)' });
        return (await statOrUndefined(sock))?.isSocket() === true;
      },
      () => `ssh-agent did not create its socket ${sock}`,
    );
    return sock;
  };

  try {
    for (const [n, spec] of specs.entries()) {
      if (sockets.has(spec.id)) throw new KilnError(`--ssh ${spec.id} is given twice`, { code: 'invalid', hint: 'give each id once, with all of its keys: --ssh ID=KEY1,KEY2' });
      const flag = `--ssh ${spec.id}${spec.paths.length ? `=${spec.paths.join(',')}` : ''}`;
      if (spec.paths.length === 0) {
        const sock = env.SSH_AUTH_SOCK;
        if (!sock) throw new KilnError(`${flag}: SSH_AUTH_SOCK is not set, so there is no agent to forward`, { code: 'invalid', hint: `start an ssh-agent (eval "$(ssh-agent)"; ssh-add), or give key files: --ssh ${spec.id}=$HOME/.ssh/id_ed25519` });
        const st = await statOrUndefined(sock);
        if (!st?.isSocket()) throw new KilnError(`${flag}: SSH_AUTH_SOCK (${sock}) is not a socket`, { code: 'not-found', hint: 'is the ssh-agent still running? check with ssh-add -l' });
        sockets.set(spec.id, sock);
        continue;
      }
      const kinds = await Promise.all(
        spec.paths.map(async (p) => {
          const st = await statOrUndefined(p);
          if (!st) throw new KilnError(`${flag}: ${p} does not exist`, { code: 'not-found', hint: 'give a private key file or an ssh-agent socket' });
          if (st.isSocket()) return 'socket';
          if (st.isFile()) return 'key';
          throw new KilnError(`${flag}: ${p} is neither a key file nor an agent socket`, { code: 'invalid', hint: 'give a private key file or an ssh-agent socket' });
        }),
      );
      if (kinds.includes('socket')) {
        if (spec.paths.length > 1) throw new KilnError(`${flag}: an agent socket must be the only path of its id`, { code: 'invalid', hint: `give the socket alone (--ssh ${spec.id}=SOCKET), or key files only` });
        sockets.set(spec.id, path.resolve(spec.paths[0]));
        continue;
      }
      const sock = await startAgent(n);
      for (const key of spec.paths) {
        const r = await run('ssh-add', ['-q', path.resolve(key)], toolEnv(sock));
        if (r.code !== 0) {
          // ssh-add names the file and the reason (never the key's contents)
          const why = r.stderr.split('\n').filter(Boolean).pop() ?? `ssh-add exited with ${r.code}`;
          const hint = /passphrase/i.test(why) ? 'kiln cannot ask for a passphrase: load the key into an ssh-agent (ssh-add) and pass --ssh ' + spec.id : 'give an OpenSSH, PEM or PKCS#8 private key without a passphrase';
          throw new KilnError(`${flag}: cannot load the key ${key}: ${why.replace(/^Error loading key "[^"]*":\s*/, '')}`, { code: 'invalid', hint });
        }
      }
      sockets.set(spec.id, sock);
    }
  } catch (e) {
    await close();
    throw e;
  }

  return {
    ids: () => [...sockets.keys()],
    socket: (id) => sockets.get(id),
    async forward(id, owner) {
      const upstream = sockets.get(id);
      if (!upstream || closed) throw new KilnError(`no SSH key "${id}" forwarded to the build`, { code: 'not-found', hint: `pass --ssh ${id} (forwards $SSH_AUTH_SOCK) or --ssh ${id}=PATH_TO_KEY` });
      const f = await relaySocket(path.join(dir, `fwd-${forwardCount++}.sock`), upstream, owner);
      forwards.add(f);
      return {
        path: f.path,
        close: async () => {
          forwards.delete(f);
          await f.close();
        },
      };
    },
    close,
  };
}

/**
 * A socket at `at` (chowned and chmodded as asked) relaying each connection to a connection
 * of its own to `upstream`; when either side closes, both are closed.
 */
export async function relaySocket(at: string, upstream: string, owner: { uid: number; gid: number; mode: number }): Promise<ForwardedSocket> {
  const live = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const agent = net.connect(upstream);
    live.add(client);
    live.add(agent);
    const end = (): void => {
      client.destroy();
      agent.destroy();
      live.delete(client);
      live.delete(agent);
    };
    client.on('error', end).on('close', end);
    agent.on('error', end).on('close', end);
    client.pipe(agent);
    agent.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(at, () => resolve());
  });
  try {
    await fsp.chown(at, owner.uid, owner.gid);
    await fsp.chmod(at, owner.mode & 0o777);
  } catch (e) {
    server.close();
    throw e;
  }
  let closing: Promise<void> | undefined;
  return {
    path: at,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        for (const s of live) s.destroy();
        server.close(() => resolve());
      }).then(() => fsp.rm(at, { force: true }))),
  };
}
