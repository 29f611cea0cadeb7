import { trace } from '../trace.js';
import { ownerAlive, ownerToken } from '../owner.js';
import { registerProcess } from '../lifecycle.js';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, promises as fsp, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { isatty } from 'node:tty';
import { errnoCode, KilnError } from '../errors.js';
import { buildRuntimeSpec, memoryLimitProblem, type RuntimeMount, type Ulimit } from './spec.js';
import { startSandboxNetwork, type NetworkMode, type PortMapping, type SandboxNetwork } from './network.js';
import { resolveInRoot, resolveUser, type ResolvedUser } from './user.js';
import { missingStubs, removeStubs } from './stubs.js';

export interface RuntimeInfo {
  name: 'runc' | 'crun';
  path: string;
}

export interface RunSpec {
  rootfs: string;
  args: string[];
  env: string[];
  cwd: string;
  user: string;
  hostname?: string;
  /** default: a sandboxed namespace with outbound access (network.ts); none: loopback only; host: the host's. */
  network: NetworkMode;
  mounts?: Array<{ destination: string; type: 'bind' | 'tmpfs'; source: string; options: string[] }>;
  readonlyRootfs?: boolean;
  /**
   * Give the process a terminal: a pty the runtime allocates and copies to and from ours (one
   * of our stdin, stdout and stderr must be a terminal), with our terminal's size and its
   * changes (SIGWINCH); ours is in raw mode meanwhile. Output goes there: no onOutput then.
   */
  tty?: boolean;
  /** Attach the process's stdin to ours (with `tty`: our terminal's input). */
  stdin?: boolean;
  /** Receives output; when absent, output goes to our stdout/stderr. */
  onOutput?: (chunk: Buffer, stream: 'stdout' | 'stderr') => void;
  signal?: AbortSignal;
  /** Where runtime state and bundles go, e.g. <kilnRoot>/run. */
  stateRoot: string;
  /** Leave the mount points the runtime creates (a build step removes its own, by BuildKit's rules). */
  keepMountStubs?: boolean;
  /** Bind /etc/hostname (default true; BuildKit's RUN does not). */
  etcHostname?: boolean;
  /** A tmpfs dir for config.json (linked from the bundle): a spec holding secret env vars stays off disk. */
  specDir?: string;
  /** Ports of the host forwarded into the sandboxed network (network 'default' only). */
  ports?: PortMapping[];
  /** 'insecure': all capabilities, no seccomp (RUN --security=insecure). */
  security?: 'sandbox' | 'insecure';
  /** Process resource limits (--ulimit). */
  ulimits?: Ulimit[];
  /** Memory limit in bytes (--memory). */
  memory?: number;
}

export interface RunResult {
  exitCode: number;
  signal?: string;
  /** The last ~20 lines of combined stdout and stderr. */
  outputTail: string;
}

const TAIL_LINES = 20;
const TAIL_BYTES = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Containers of this process, killed and deleted synchronously when the process is signalled.

interface LiveContainer {
  runtime: RuntimeInfo;
  runtimeRoot: string;
  bundle: string;
  network?: SandboxNetwork;
}

const live = new Map<string, LiveContainer>();
const HANDLED_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function onFatalSignal(sig: NodeJS.Signals): void {
  for (const [id, c] of live) {
    spawnSync(c.runtime.path, ['--root', c.runtimeRoot, 'kill', id, 'KILL'], { stdio: 'ignore', timeout: 5000 });
    spawnSync(c.runtime.path, ['--root', c.runtimeRoot, 'delete', '--force', id], { stdio: 'ignore', timeout: 5000 });
    c.network?.closeSync();
    rmSync(c.bundle, { recursive: true, force: true });
  }
  live.clear();
  uninstallHandlers();
  // nobody else handles it: die by the signal as we would have without our handler
  if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
}

function installHandlers(): void {
  for (const s of HANDLED_SIGNALS) if (!process.listeners(s).includes(onFatalSignal)) process.on(s, onFatalSignal);
}

function uninstallHandlers(): void {
  for (const s of HANDLED_SIGNALS) process.removeListener(s, onFatalSignal);
}

// ---------------------------------------------------------------------------------------------

function runQuiet(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', (e) => resolve({ code: -1, stdout, stderr: e.message }));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr: stderr.trim() }));
  });
}

/** Creates a missing working directory (and missing parents) owned by the user, as docker does. */
async function ensureCwd(rootfs: string, cwd: string, user: ResolvedUser): Promise<void> {
  const target = await resolveInRoot(rootfs, cwd);
  const missing: string[] = [];
  let p = target;
  const root = path.resolve(rootfs);
  while (p !== root && p.startsWith(root)) {
    if (lstatSync(p, { throwIfNoEntry: false })) break;
    missing.unshift(p);
    p = path.dirname(p);
  }
  for (const dir of missing) {
    await fsp.mkdir(dir, { mode: 0o755 });
    await fsp.lchown(dir, user.uid, user.gid);
  }
}

function signalName(n: number): string | undefined {
  for (const [name, num] of Object.entries(os.constants.signals)) if (num === n) return name;
  return undefined;
}

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  const e = new Error('the run was aborted');
  e.name = 'AbortError';
  return e;
}

/**
 * With a tty the runtime copies between our terminal and the container's pty (and sets our
 * terminal's size on it): one of our stdin, stdout and stderr must be a terminal.
 */
function assertTerminal(spec: RunSpec): void {
  if (!spec.tty) return;
  if (spec.onOutput) throw new KilnError('a run with a tty writes to the terminal: onOutput cannot be used with tty', { code: 'invalid' });
  if ([0, 1, 2].some((fd) => isatty(fd))) return;
  throw new KilnError('cannot allocate a tty: kiln is not attached to a terminal (stdin, stdout and stderr are all redirected)', {
    hint: 'drop -t, or run kiln in a terminal (from a script: script -qec "kiln run -t ..." /dev/null)',
    code: 'invalid',
  });
}

/** Runs one process in `spec.rootfs` with the given OCI runtime. */
export async function runWithRuntime(runtime: RuntimeInfo, spec: RunSpec): Promise<RunResult> {
  trace('runc: start');
  if (spec.signal?.aborted) throw abortError(spec.signal);
  assertTerminal(spec);
  const stateRoot = path.resolve(spec.stateRoot);
  const runtimeRoot = path.join(stateRoot, 'runtime');
  const id = `kiln-${process.pid}-${randomBytes(6).toString('hex')}`;
  const bundle = path.join(stateRoot, 'bundles', id);
  const rootfs = path.resolve(spec.rootfs);
  const rootSt = await fsp.stat(rootfs).catch(() => undefined);
  if (!rootSt?.isDirectory()) throw new KilnError(`cannot run: root filesystem ${rootfs} does not exist`, { code: 'not-found' });

  // the kiln root's run/ dir: the process is recorded there, so its containers get reaped
  if (path.basename(stateRoot) === 'run') registerProcess(path.dirname(stateRoot));
  // the bundle is a few small local files: synchronous calls are cheaper than round trips
  mkdirSync(bundle, { recursive: true, mode: 0o700 });
  mkdirSync(runtimeRoot, { recursive: true, mode: 0o700 });
  writeFileSync(path.join(bundle, 'owner'), ownerToken());
  let stubs: string[] = [];
  let started = false;
  let network: SandboxNetwork | undefined;
  try {
    if (spec.memory !== undefined) {
      const problem = memoryLimitProblem();
      if (problem) throw new KilnError(`cannot limit memory to ${spec.memory} bytes: ${problem}`, { code: 'unsupported', hint: 'build without --memory, or on a machine whose cgroups have the memory controller' });
    }
    if (spec.ports?.length && spec.network !== 'default') {
      throw new KilnError(`cannot publish ports with --network ${spec.network}`, { code: 'invalid', hint: spec.network === 'host' ? 'with the host network the container listens on the host already: leave out -p' : 'use the default network to publish ports' });
    }
    const user = await resolveUser(rootfs, spec.user);
    const cwd = path.posix.resolve('/', spec.cwd || '/');
    const hostname = spec.hostname ?? 'kiln';
    if (!spec.readonlyRootfs) await ensureCwd(rootfs, cwd, user);

    const etcFiles = {
      hosts: path.join(bundle, 'hosts'),
      resolvConf: path.join(bundle, 'resolv.conf'),
      hostname: spec.etcHostname === false ? undefined : path.join(bundle, 'hostname'),
    };
    writeFileSync(etcFiles.hosts, `127.0.0.1\tlocalhost ${hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`);
    if (etcFiles.hostname) writeFileSync(etcFiles.hostname, `${hostname}\n`);
    let hostResolv = Buffer.alloc(0);
    if (spec.network === 'default') {
      live.set(id, { runtime, runtimeRoot, bundle });
      installHandlers();
      network = await startSandboxNetwork(bundle, { ports: spec.ports });
      live.set(id, { runtime, runtimeRoot, bundle, network });
      hostResolv = Buffer.from(network.resolvConf);
    } else if (spec.network === 'host') {
      try {
        hostResolv = readFileSync('/etc/resolv.conf');
      } catch {
        /* no resolver configured on the host: an empty file */
      }
    }
    writeFileSync(etcFiles.resolvConf, hostResolv);

    const userMounts: RuntimeMount[] = (spec.mounts ?? []).map((m) =>
      m.type === 'bind'
        ? {
            destination: m.destination,
            type: 'bind',
            source: path.resolve(m.source),
            options: m.options.some((o) => o === 'bind' || o === 'rbind') ? m.options : ['rbind', ...m.options],
          }
        : { destination: m.destination, type: 'tmpfs', source: m.source || 'tmpfs', options: m.options },
    );
    const config = buildRuntimeSpec({
      rootfs,
      args: spec.args,
      env: spec.env,
      cwd,
      user,
      hostname,
      network: spec.network,
      readonlyRootfs: spec.readonlyRootfs ?? false,
      tty: spec.tty ?? false,
      etcFiles,
      mounts: userMounts,
      netnsPath: network?.netns,
      security: spec.security,
      ulimits: spec.ulimits,
      memory: spec.memory,
    });
    // the pty starts with our terminal's size (the runtime resizes it only after the process has started)
    const size = spec.tty ? terminalSize() : undefined;
    if (size) Object.assign(config.process, { consoleSize: size });
    if (!spec.keepMountStubs) stubs = await missingStubs(rootfs, config.mounts.map((m) => m.destination));
    if (spec.specDir) {
      const file = path.join(spec.specDir, `${id}.json`);
      writeFileSync(file, JSON.stringify(config, null, 2), { mode: 0o600 });
      symlinkSync(file, path.join(bundle, 'config.json'));
    } else {
      writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(config, null, 2));
    }

    live.set(id, { runtime, runtimeRoot, bundle, network });
    installHandlers();
    started = true;
    trace('runc: prepared');
    return await invoke(runtime, runtimeRoot, bundle, id, spec);
  } finally {
    live.delete(id);
    if (live.size === 0) uninstallHandlers();
    trace('runc: exited');
    // `run` deletes its container when the process exits; only a runtime that was killed or
    // failed half-way leaves state behind (its state dir is named after the container)
    if (started && (await fsp.stat(path.join(runtimeRoot, id)).then(() => true, () => false))) {
      await runQuiet(runtime.path, ['--root', runtimeRoot, 'delete', '--force', id]);
    }
    await network?.close();
    await fsp.rm(bundle, { recursive: true, force: true });
    await removeStubs(rootfs, stubs);
    trace('runc: cleaned');
  }
}

function invoke(runtime: RuntimeInfo, runtimeRoot: string, bundle: string, id: string, spec: RunSpec): Promise<RunResult> {
  return new Promise<RunResult>((resolve, reject) => {
    const inheritOutput = spec.tty === true && !spec.onOutput;
    // a tty without stdin: the runtime puts our terminal in raw mode all the same, so that
    // ^C and ^\ reach no one; they are passed on to the container's terminal (which makes
    // them SIGINT and SIGQUIT there), as docker passes the signals on; other keys are dropped
    const keysOnly = spec.tty === true && !spec.stdin && process.stdin.isTTY === true;
    let child: ChildProcess;
    try {
      child = spawn(runtime.path, ['--root', runtimeRoot, 'run', '--bundle', bundle, id], {
        stdio: [spec.stdin ? 'inherit' : keysOnly ? 'pipe' : 'ignore', inheritOutput ? 'inherit' : 'pipe', inheritOutput ? 'inherit' : 'pipe'],
        // its own process group: a terminal's ^C reaches us, and we kill the container ourselves;
        // with a tty the runtime stays in ours (the terminal's foreground group), where the
        // terminal's SIGWINCH reaches it, and the terminal is raw: ^C goes to the container
        detached: !spec.tty,
      });
    } catch (e) {
      reject(e);
      return;
    }
    const stopKeys = keysOnly && child.stdin ? forwardSignalKeys(child.stdin) : undefined;
    let tail = '';
    const onData = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
      tail += chunk.toString('utf8');
      if (tail.length > TAIL_BYTES) tail = tail.slice(-TAIL_BYTES);
      if (spec.onOutput) spec.onOutput(chunk, stream);
      else (stream === 'stdout' ? process.stdout : process.stderr).write(chunk);
    };
    child.stdout?.on('data', onData('stdout'));
    child.stderr?.on('data', onData('stderr'));

    let aborted = false;
    let killTimer: NodeJS.Timeout | undefined;
    const onAbort = (): void => {
      aborted = true;
      const tryKill = async (attempt: number): Promise<void> => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const r = await runQuiet(runtime.path, ['--root', runtimeRoot, 'kill', id, 'KILL']);
        if (r.code === 0) return;
        // not created yet, or the runtime hangs: retry, then kill the runtime process itself
        if (attempt >= 20) child.kill('SIGKILL');
        else killTimer = setTimeout(() => void tryKill(attempt + 1), 100);
      };
      void tryKill(0);
    };
    spec.signal?.addEventListener('abort', onAbort, { once: true });

    child.on('error', (e: NodeJS.ErrnoException) => {
      spec.signal?.removeEventListener('abort', onAbort);
      reject(
        new KilnError(`cannot start the OCI runtime ${runtime.path}: ${e.message}`, {
          hint: 'install runc (apt-get install runc) or set KILN_RUNTIME',
          code: errnoCode(e.code ?? ''),
          cause: e,
        }),
      );
    });
    child.on('close', (code, sig) => {
      spec.signal?.removeEventListener('abort', onAbort);
      stopKeys?.();
      if (killTimer) clearTimeout(killTimer);
      if (aborted && spec.signal) {
        reject(abortError(spec.signal));
        return;
      }
      const lines = tail.split('\n');
      if (lines.length && lines[lines.length - 1] === '') lines.pop();
      const outputTail = lines.slice(-TAIL_LINES).join('\n');
      let exitCode: number;
      if (code !== null) exitCode = code;
      else exitCode = 128 + (sig ? (os.constants.signals[sig] ?? 0) : 0);
      const signal = exitCode > 128 && exitCode <= 128 + 64 ? signalName(exitCode - 128) : undefined;
      resolve(signal ? { exitCode, signal, outputTail } : { exitCode, outputTail });
    });
  });
}

/** Our terminal's size, from stdout or stderr (as the runtime reads it), when one is a terminal. */
function terminalSize(): { height: number; width: number } | undefined {
  for (const s of [process.stdout, process.stderr]) {
    if (!s.isTTY) continue;
    const [width, height] = s.getWindowSize();
    if (width > 0 && height > 0) return { height, width };
  }
  return undefined;
}

/** ^C and ^\: the keys a terminal turns into SIGINT and SIGQUIT. */
const SIGNAL_KEYS = new Set([0x03, 0x1c]);

/** Passes ^C and ^\ typed on our terminal to `to`; returns a function that stops reading. */
function forwardSignalKeys(to: Writable): () => void {
  const onKeys = (chunk: Buffer): void => {
    const keys = chunk.filter((b) => SIGNAL_KEYS.has(b));
    if (keys.length > 0) to.write(keys);
  };
  // the runtime gone first: nothing more to pass on
  to.on('error', () => undefined);
  process.stdin.on('data', onKeys);
  return () => {
    process.stdin.removeListener('data', onKeys);
    process.stdin.pause();
  };
}

/** Kills and deletes containers (and their bundles) whose owner process is gone. */
export async function cleanupStaleWith(runtime: RuntimeInfo | undefined, stateRoot: string): Promise<void> {
  const root = path.resolve(stateRoot);
  const runtimeRoot = path.join(root, 'runtime');
  const bundles = path.join(root, 'bundles');
  const names = await fsp.readdir(bundles).catch(() => [] as string[]);
  const kept = new Set<string>();
  for (const id of names) {
    const dir = path.join(bundles, id);
    const owner = await fsp.readFile(path.join(dir, 'owner'), 'utf8').catch(() => '');
    if (owner && ownerAlive(owner)) {
      kept.add(id);
      continue;
    }
    if (runtime) {
      await runQuiet(runtime.path, ['--root', runtimeRoot, 'kill', id, 'KILL']);
      await runQuiet(runtime.path, ['--root', runtimeRoot, 'delete', '--force', id]);
    }
    await fsp.rm(dir, { recursive: true, force: true });
  }
  if (!runtime) return;
  // containers whose bundle is gone belong to nobody
  const list = await runQuiet(runtime.path, ['--root', runtimeRoot, 'list', '--format', 'json']);
  if (list.code !== 0) return;
  let containers: Array<{ id: string }> = [];
  try {
    containers = (JSON.parse(list.stdout || 'null') as Array<{ id: string }> | null) ?? [];
  } catch {
    return;
  }
  for (const c of containers) {
    if (kept.has(c.id) || live.has(c.id)) continue;
    // a bundle made since we listed them: its owner is starting it right now
    const owner = await fsp.readFile(path.join(bundles, c.id, 'owner'), 'utf8').catch(() => '');
    if (owner && ownerAlive(owner)) continue;
    await runQuiet(runtime.path, ['--root', runtimeRoot, 'delete', '--force', c.id]);
  }
}
