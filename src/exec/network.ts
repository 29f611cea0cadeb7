/**
 * The sandboxed network of a container: a network namespace of its own, reaching out through
 * a user-mode network stack on the host (pasta from passt, else slirp4netns), which connects
 * to what the container asks for from the host's side. What the host reaches (a package
 * mirror, a registry, the host's resolver) the container reaches; the host's loopback
 * services it does not: the helper is told never to map an address to the host's loopback
 * (pasta --no-map-gw and no "spliced" loopback forwarding; slirp4netns --disable-host-loopback).
 *
 * The namespace is a bind mount of an nsfs file in the container's bundle directory (the
 * runtime joins it by path), so the reaper that removes a dead kiln's bundles unmounts it too.
 * The helper runs in the foreground as our child, with a parent-death signal (setpriv
 * --pdeathsig KILL): it dies with kiln, even by kill -9. Its pid and start time are kept in the
 * bundle (`helper`), for the reaper should anything survive; pasta also quits by itself once
 * the namespace file is gone.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { promises as fsp, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fromErrno, isErrnoError, KilnError } from '../errors.js';
import { processToken } from '../owner.js';
import { findRuntimeBinary } from './runtime.js';

/** How a container is networked: its own sandboxed namespace, none (loopback only) or the host's. */
export type NetworkMode = 'default' | 'none' | 'host';

export type NetworkHelperName = 'pasta' | 'slirp4netns';

/** A published port: connections to the host's `host` port reach the container's `container` port. */
export interface PortMapping {
  host: number;
  container: number;
  protocol: 'tcp' | 'udp';
  /** The host address to listen on (default: every address). */
  address?: string;
}

export interface SandboxNetwork {
  helper: NetworkHelperName;
  /** The nsfs file the runtime joins (linux.namespaces[].path). */
  netns: string;
  /** The resolv.conf the container gets. */
  resolvConf: string;
  /** Stops the helper and removes the namespace. */
  close(): Promise<void>;
  /** The same, synchronously (a signal handler). */
  closeSync(): void;
}

/** The helper's record in the bundle: "pid starttime", read by the reaper (lifecycle.ts). */
export const HELPER_FILE = 'helper';
const NETNS_FILE = 'netns';
/** Where DNS queries are forwarded to the host's resolver when the host's is on its loopback. */
const PASTA_DNS = '169.254.1.1';
const SLIRP_DNS = '10.0.2.3';
const READY_TIMEOUT_MS = 10_000;
/** The container's side, the same with either helper (slirp4netns's fixed addresses). */
const IFNAME = 'eth0';
const SANDBOX_ADDRESS = '10.0.2.100';
const SANDBOX_GATEWAY = '10.0.2.2';

/** The host's nameservers, split into those a namespace can reach and those on the host's loopback. */
export function hostNameservers(text: string): { reachable: string[]; loopback: string[]; rest: string[] } {
  const reachable: string[] = [];
  const loopback: string[] = [];
  const rest: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m) {
      if (line.trim() !== '') rest.push(line);
      continue;
    }
    const addr = m[1];
    if (/^127\./.test(addr) || addr === '::1' || addr === '0.0.0.0') loopback.push(addr);
    else reachable.push(addr);
  }
  return { reachable, loopback, rest };
}

function readHostResolv(): string {
  try {
    return readFileSync('/etc/resolv.conf', 'utf8');
  } catch {
    return '';
  }
}

/**
 * The container's resolv.conf for its own namespace: the host's, with nameservers on the
 * host's loopback replaced by the helper's DNS forwarder (`forwarder`).
 */
export function sandboxResolvConf(hostText: string, forwarder: string): string {
  const { reachable, loopback, rest } = hostNameservers(hostText);
  const servers = reachable.length > 0 ? reachable : loopback.length > 0 || hostText.trim() === '' ? [forwarder] : [];
  return [...rest, ...servers.map((s) => `nameserver ${s}`)].join('\n') + '\n';
}

/** Parses `-p [IPV4:]HOSTPORT:CONTAINERPORT[/tcp|udp]` (docker's form) or `-p PORT`. */
export function parsePortMapping(spec: string): PortMapping {
  const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3}):(?=\d+:))?(?:(\d+):)?(\d+)(?:\/(tcp|udp))?$/.exec(spec.trim());
  const bad = (): KilnError =>
    new KilnError(`invalid port mapping "${spec}"`, { code: 'invalid', hint: 'write -p [IP:]HOSTPORT:CONTAINERPORT, e.g. -p 8080:80 or -p 127.0.0.1:8080:80 (add /udp for UDP)' });
  if (!m) throw bad();
  const container = Number(m[3]);
  const host = m[2] === undefined ? container : Number(m[2]);
  for (const p of [host, container]) if (!Number.isInteger(p) || p < 1 || p > 65535) throw bad();
  if (m[1] !== undefined && m[1].split('.').some((o) => Number(o) > 255)) throw bad();
  return { host, container, protocol: (m[4] as 'tcp' | 'udp' | undefined) ?? 'tcp', ...(m[1] !== undefined ? { address: m[1] } : {}) };
}

/** A mapping as pasta's -t/-u take it: [ADDRESS/]HOSTPORT:CONTAINERPORT. */
function pastaPort(p: PortMapping): string {
  return `${p.address ? `${p.address}/` : ''}${p.host}:${p.container}`;
}

function helperArgs(name: NetworkHelperName, netns: string, ports: PortMapping[], dnsForward: boolean): string[] {
  if (name === 'pasta') {
    const tcp = ports.filter((p) => p.protocol === 'tcp').map(pastaPort);
    const udp = ports.filter((p) => p.protocol === 'udp').map(pastaPort);
    return [
      'pasta',
      '--foreground',
      '--quiet',
      '--config-net',
      // an address of its own (as slirp4netns's): the host's addresses are then remote ones,
      // reached through the helper as any other
      '--ns-ifname', IFNAME,
      '--address', SANDBOX_ADDRESS,
      '--netmask', '24',
      '--gateway', SANDBOX_GATEWAY,
      // the gateway is not mapped to the host's loopback
      '--no-map-gw',
      // IPv4 only, as docker's default bridge (and slirp4netns here): setting IPv6 up costs a
      // tenth of a second per step
      '--ipv4-only',
      // published ports only (pasta's default forwards every port bound in the namespace)
      ...(tcp.length ? tcp.flatMap((t) => ['-t', t]) : ['-t', 'none']),
      ...(udp.length ? udp.flatMap((u) => ['-u', u]) : ['-u', 'none']),
      // nothing of the host's loopback is forwarded into the namespace
      '-T', 'none',
      '-U', 'none',
      ...(dnsForward ? ['--dns-forward', PASTA_DNS] : []),
      // stay root (pasta drops to nobody otherwise): a change of user would clear the
      // parent-death signal that ties it to kiln; it gives up its capabilities all the same
      '--runas', '0:0',
      '--netns', netns,
    ];
  }
  // published ports are added through its API socket once it is up (addHostForwards)
  const api = ports.length ? [`--api-socket=${path.join(path.dirname(netns), SLIRP_API)}`] : [];
  return ['slirp4netns', '--configure', '--mtu=65520', '--disable-host-loopback', '--netns-type=path', '--ready-fd=3', '--exit-fd=4', ...api, netns, IFNAME];
}

const SLIRP_API = 'slirp.sock';

/** Asks slirp4netns (its API socket) to forward each published port to the container. */
async function addHostForwards(apiSocket: string, ports: PortMapping[]): Promise<void> {
  for (const p of ports) {
    const request = { execute: 'add_hostfwd', arguments: { proto: p.protocol, host_addr: p.address ?? '0.0.0.0', host_port: p.host, guest_addr: SANDBOX_ADDRESS, guest_port: p.container } };
    const answer = await new Promise<string>((resolve, reject) => {
      const sock = net.createConnection(apiSocket);
      let text = '';
      sock.on('connect', () => sock.end(JSON.stringify(request)));
      sock.on('data', (c: Buffer) => (text += c.toString()));
      sock.on('error', reject);
      sock.on('close', () => resolve(text));
    });
    let reply: { error?: { desc?: string } } = {};
    try {
      reply = JSON.parse(answer) as typeof reply;
    } catch {
      reply = { error: { desc: answer.trim() || 'no answer' } };
    }
    if (reply.error) throw new Error(`cannot publish port ${p.host}: ${reply.error.desc ?? JSON.stringify(reply.error)}`);
  }
}

const unusable = new Map<NetworkHelperName, string>();

/** The helpers to try, in order: KILN_NETWORK_HELPER when set, else pasta then slirp4netns. */
function candidates(): NetworkHelperName[] {
  const forced = process.env.KILN_NETWORK_HELPER;
  if (forced) {
    if (forced !== 'pasta' && forced !== 'slirp4netns') {
      throw new KilnError(`KILN_NETWORK_HELPER=${forced}: unknown network helper`, { code: 'invalid', hint: 'set KILN_NETWORK_HELPER to pasta or slirp4netns, or unset it' });
    }
    return [forced];
  }
  return ['pasta', 'slirp4netns'];
}

async function run(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', (e) => resolve({ code: -1, stderr: e.message }));
    child.on('close', (code) => resolve({ code: code ?? -1, stderr: stderr.trim() }));
  });
}

function umountNetns(file: string): void {
  // a helper may still hold it: detach it (the namespace goes when its last user does)
  spawnSync('umount', ['-l', file], { stdio: 'ignore', timeout: 10_000 });
  rmSync(file, { force: true });
}

/**
 * Makes the namespace under `dir` (the container's bundle) and starts a helper for it.
 * Tries pasta, then slirp4netns (or only KILN_NETWORK_HELPER); a helper that fails to start is
 * not tried again by this process.
 */
export async function startSandboxNetwork(dir: string, options: { ports?: PortMapping[] } = {}): Promise<SandboxNetwork> {
  const netns = path.join(dir, NETNS_FILE);
  const reasons: string[] = [];
  for (const name of candidates()) {
    const known = unusable.get(name);
    if (known !== undefined) {
      reasons.push(`${name}: ${known}`);
      continue;
    }
    if (!(await findRuntimeBinary(name))) {
      unusable.set(name, 'not installed');
      reasons.push(`${name}: not installed`);
      continue;
    }
    await fsp.writeFile(netns, '');
    const made = await run('unshare', [`--net=${netns}`, 'true']);
    if (made.code !== 0) {
      rmSync(netns, { force: true });
      throw new KilnError(`cannot create a network namespace: ${made.stderr || `unshare exited with ${made.code}`}`, {
        code: 'unsupported',
        hint: 'the sandboxed RUN network needs root (or CAP_SYS_ADMIN) and util-linux unshare; use --network=none, or --network=host with --allow network.host',
      });
    }
    let network: SandboxNetwork | undefined;
    try {
      network = await startHelper(name, dir, netns, options.ports ?? []);
      if (name === 'slirp4netns' && options.ports?.length) await addHostForwards(path.join(dir, SLIRP_API), options.ports);
      return network;
    } catch (e) {
      if (network) {
        // it runs, but a port cannot be published (taken, or not allowed): that is the answer
        await network.close();
        throw new KilnError((e as Error).message, { code: 'unavailable', hint: 'publish another host port (-p HOSTPORT:CONTAINERPORT), or stop what listens on it' });
      }
      umountNetns(netns);
      const reason = (e as Error).message;
      unusable.set(name, reason);
      reasons.push(`${name}: ${reason}`);
    }
  }
  throw new KilnError(`no network helper works for the sandboxed network: ${reasons.join('; ')}`, {
    code: 'unsupported',
    hint: 'install passt (pasta) or slirp4netns (apt-get install passt slirp4netns); or run the step with --network=none, or with --network=host and --allow network.host',
  });
}

function startHelper(name: NetworkHelperName, dir: string, netns: string, ports: PortMapping[]): Promise<SandboxNetwork> {
  const hostResolv = readHostResolv();
  const { reachable } = hostNameservers(hostResolv);
  const dnsForward = name === 'pasta' && reachable.length === 0;
  const pidFile = path.join(dir, 'helper.pid');
  const args = helperArgs(name, netns, ports, dnsForward);
  if (name === 'pasta') args.push('--pid', pidFile);
  const child: ChildProcess = spawn('setpriv', ['--pdeathsig', 'KILL', '--', ...args], {
    // slirp4netns: fd 3 tells it is ready, fd 4 closing (our exit) tells it to quit
    stdio: name === 'slirp4netns' ? ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] : ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
    if (stderr.length > 4096) stderr = stderr.slice(-4096);
  });
  const resolvConf = sandboxResolvConf(hostResolv, name === 'pasta' ? PASTA_DNS : SLIRP_DNS);
  let closed = false;
  const closeSync = (): void => {
    if (closed) return;
    closed = true;
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    umountNetns(netns);
    rmSync(path.join(dir, HELPER_FILE), { force: true });
  };
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const network: SandboxNetwork = {
    helper: name,
    netns,
    resolvConf,
    closeSync,
    close: async () => {
      closeSync();
      await exited;
    },
  };
  return new Promise<SandboxNetwork>((resolve, reject) => {
    let settled = false;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearInterval(poll);
      if (err) {
        closed = true;
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        reject(err);
        return;
      }
      // recorded for the reaper; on a full disk the network is dropped and the step fails clearly
      // (an exception here would escape from an event handler and end the process)
      try {
        if (child.pid !== undefined) writeFileSync(path.join(dir, HELPER_FILE), `${processToken(child.pid)}\n`);
      } catch (e) {
        closeSync();
        reject(isErrnoError(e) ? fromErrno(e, `recording the ${name} network helper of a RUN step`) : e);
        return;
      }
      resolve(network);
    };
    const describe = (what: string): Error => new Error(`${what}${stderr.trim() ? `: ${stderr.trim().split('\n').filter((l) => !/syslog/.test(l)).slice(-2).join(' ')}` : ''}`);
    child.once('error', (e) => finish(describe(`cannot start ${name} (${e.message})`)));
    child.once('close', (code, sig) => finish(describe(`${name} exited (${sig ?? `code ${code}`}) before the network was up`)));
    const timer = setTimeout(() => finish(describe(`${name} did not bring the network up within ${READY_TIMEOUT_MS / 1000}s`)), READY_TIMEOUT_MS);
    let poll: NodeJS.Timeout | undefined;
    if (name === 'slirp4netns') {
      const ready = child.stdio[3] as NodeJS.ReadableStream | null;
      ready?.once('data', () => finish());
    } else {
      // pasta writes its pid file once the namespace's interface is configured
      poll = setInterval(() => {
        try {
          if (readFileSync(pidFile, 'utf8').trim() !== '') finish();
        } catch {
          // not yet
        }
      }, 5);
    }
  });
}
