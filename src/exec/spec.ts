import { readdirSync, readFileSync } from 'node:fs';
import type { ResolvedUser } from './user.js';
import { defaultSeccompProfile, type LinuxSeccomp } from './seccomp.js';
import type { NetworkMode } from './network.js';
import { KilnError } from '../errors.js';

/** The subset of the OCI runtime-spec config.json that kiln writes. */
export interface RuntimeMount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

export interface RuntimeSpec {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number; additionalGids?: number[]; umask?: number };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: { bounding: string[]; effective: string[]; permitted: string[]; inheritable: string[]; ambient: string[] };
    rlimits: Array<{ type: string; hard: number; soft: number }>;
    noNewPrivileges: boolean;
  };
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: RuntimeMount[];
  linux: {
    namespaces: Array<{ type: string; path?: string }>;
    maskedPaths: string[];
    readonlyPaths: string[];
    resources: {
      devices: Array<{ allow: boolean; type?: string; access: string }>;
      memory?: { limit: number; swap?: number };
    };
    devices?: Array<{ path: string; type: string; major: number; minor: number; fileMode: number; uid: number; gid: number }>;
    seccomp?: LinuxSeccomp;
  };
}

/** Docker's default capability set. */
export const DEFAULT_CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

export const MASKED_PATHS = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];

/** Capability names by number (linux/capability.h), for the full set of insecure mode. */
const CAPABILITY_NAMES = [
  'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP', 'LINUX_IMMUTABLE',
  'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER', 'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT',
  'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE', 'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE',
  'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP', 'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ',
  'PERFMON', 'BPF', 'CHECKPOINT_RESTORE',
].map((n) => `CAP_${n}`);

/** Every capability this process holds (its bounding set): what a RUN --security=insecure gets. */
export function allCapabilities(): string[] {
  try {
    const m = /^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) {
      const bits = BigInt(`0x${m[1]}`);
      return CAPABILITY_NAMES.filter((_, i) => ((bits >> BigInt(i)) & 1n) === 1n);
    }
  } catch {
    /* below */
  }
  return [...CAPABILITY_NAMES];
}

/** The device nodes an insecure RUN gets besides docker's defaults (dmesg, fuse, kvm, tun, loop devices), as BuildKit's. */
function insecureDevices(): NonNullable<RuntimeSpec['linux']['devices']> {
  const chr = (p: string, major: number, minor: number) => ({ path: p, type: 'c', major, minor, fileMode: 0o666, uid: 0, gid: 0 });
  const devices = [chr('/dev/kmsg', 1, 11), chr('/dev/cuse', 10, 203), chr('/dev/fuse', 10, 229), chr('/dev/kvm', 10, 232), chr('/dev/net/tun', 10, 200), chr('/dev/loop-control', 10, 237)];
  let loops = 0;
  try {
    for (const n of readdirSync('/dev')) if (/^loop\d+$/.test(n)) loops = Math.max(loops, Number(n.slice(4)) + 1);
  } catch {
    /* no /dev to look at */
  }
  for (let i = 0; i < loops + 8; i++) devices.push({ path: `/dev/loop${i}`, type: 'b', major: 7, minor: i, fileMode: 0o660, uid: 0, gid: 0 });
  return devices;
}

/**
 * Why a memory limit cannot be enforced here (no memory controller in the cgroup hierarchy
 * the runtime uses), or undefined when it can.
 */
export function memoryLimitProblem(): string | undefined {
  try {
    const v2 = readFileSync('/sys/fs/cgroup/cgroup.controllers', 'utf8');
    return v2.split(/\s+/).includes('memory') ? undefined : 'the cgroup v2 hierarchy has no memory controller enabled';
  } catch {
    /* not cgroup v2 at the top: v1 or hybrid */
  }
  try {
    readFileSync('/sys/fs/cgroup/memory/memory.limit_in_bytes');
    return undefined;
  } catch {
    return 'this machine has no cgroup memory controller mounted (/sys/fs/cgroup/memory or a cgroup v2 hierarchy with memory)';
  }
}

/** A resource limit of the process (`--ulimit`): name as docker writes it (nofile, nproc, ...). */
export interface Ulimit {
  name: string;
  soft: number;
  hard: number;
}

export const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Whether this process holds a capability (bit number), from /proc/self/status. */
function hasCapability(bit: number): boolean {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m !== null && ((BigInt(`0x${m[1]}`) >> BigInt(bit)) & 1n) === 1n;
  } catch {
    return false;
  }
}

const CAP_SYS_RESOURCE = 24;

/**
 * Docker's RLIMIT_NOFILE (1048576), bounded by what the runtime may set: without
 * CAP_SYS_RESOURCE it cannot raise the hard limit above ours.
 */
export function maxOpenFiles(): number {
  let limit = 1048576;
  try {
    const nrOpen = Number(readFileSync('/proc/sys/fs/nr_open', 'utf8').trim());
    if (Number.isInteger(nrOpen) && nrOpen > 0) limit = Math.min(limit, nrOpen);
  } catch {
    /* keep the default */
  }
  if (!hasCapability(CAP_SYS_RESOURCE)) {
    try {
      const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
      if (m && m[2] !== 'unlimited') limit = Math.min(limit, Number(m[2]));
    } catch {
      /* keep the default */
    }
  }
  return limit;
}

export interface SpecInput {
  rootfs: string;
  args: string[];
  env: string[];
  cwd: string;
  user: ResolvedUser;
  hostname: string;
  network: NetworkMode;
  readonlyRootfs: boolean;
  tty: boolean;
  /** Host files bind-mounted at /etc/hosts, /etc/resolv.conf and (unless absent) /etc/hostname. */
  etcFiles: { hosts: string; resolvConf: string; hostname?: string };
  mounts: RuntimeMount[];
  /** The network namespace to join (the sandboxed network); without it, 'none' gets a new one. */
  netnsPath?: string;
  /** 'insecure': every capability, no seccomp filter, no masked paths, host devices (RUN --security=insecure). */
  security?: 'sandbox' | 'insecure';
  /** Process resource limits (--ulimit), over docker's RLIMIT_NOFILE. */
  ulimits?: Ulimit[];
  /** A memory limit in bytes (--memory), enforced through the runtime's cgroup. */
  memory?: number;
}

/** Env with docker's defaults: PATH and HOME when the caller has none. */
export function withDefaultEnv(env: string[], home: string): string[] {
  const out = [...env];
  const has = (k: string) => out.some((e) => e.startsWith(`${k}=`));
  if (!has('PATH')) out.unshift(DEFAULT_PATH);
  if (!has('HOME')) out.push(`HOME=${home}`);
  return out;
}

export function buildRuntimeSpec(input: SpecInput): RuntimeSpec {
  const insecure = input.security === 'insecure';
  const caps = insecure ? allCapabilities() : [...DEFAULT_CAPABILITIES];
  const nofile = maxOpenFiles();
  const rlimits = [{ type: 'RLIMIT_NOFILE', hard: nofile, soft: nofile }];
  for (const u of input.ulimits ?? []) {
    const type = `RLIMIT_${u.name.toUpperCase()}`;
    const at = rlimits.findIndex((r) => r.type === type);
    const limit = { type, hard: u.hard, soft: u.soft };
    if (at === -1) rlimits.push(limit);
    else rlimits[at] = limit;
  }
  const mounts: RuntimeMount[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', insecure ? 'rw' : 'ro'] },
    // the container's own cgroup (its limits), read-only, as containerd's default spec
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', insecure ? 'rw' : 'ro'] },
    { destination: '/etc/resolv.conf', type: 'bind', source: input.etcFiles.resolvConf, options: ['rbind', 'ro'] },
    { destination: '/etc/hosts', type: 'bind', source: input.etcFiles.hosts, options: ['rbind', 'ro'] },
    ...(input.etcFiles.hostname ? [{ destination: '/etc/hostname', type: 'bind', source: input.etcFiles.hostname, options: ['rbind', 'ro'] }] : []),
    ...input.mounts,
  ];
  const namespaces: RuntimeSpec['linux']['namespaces'] = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  if (input.netnsPath) namespaces.push({ type: 'network', path: input.netnsPath });
  else if (input.network !== 'host') namespaces.push({ type: 'network' });
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: input.tty,
      user: {
        uid: input.user.uid,
        gid: input.user.gid,
        ...(input.user.additionalGids.length ? { additionalGids: input.user.additionalGids } : {}),
      },
      args: input.args,
      env: withDefaultEnv(input.env, input.user.home),
      cwd: input.cwd,
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: insecure ? caps : [], ambient: insecure ? caps : [] },
      rlimits,
      noNewPrivileges: false,
    },
    root: { path: input.rootfs, readonly: input.readonlyRootfs },
    hostname: input.hostname,
    mounts,
    linux: {
      namespaces,
      maskedPaths: insecure ? [] : MASKED_PATHS,
      readonlyPaths: insecure ? [] : READONLY_PATHS,
      resources: {
        devices: insecure
          ? [
              { allow: true, type: 'c', access: 'rwm' },
              { allow: true, type: 'b', access: 'rwm' },
            ]
          : [{ allow: false, access: 'rwm' }],
        // swap as much as memory: the limit is the limit (docker's default doubles it with swap)
        ...(input.memory !== undefined ? { memory: { limit: input.memory, swap: input.memory } } : {}),
      },
      ...(insecure ? { devices: insecureDevices() } : { seccomp: defaultSeccompProfile(caps) }),
    },
  };
}

/** The resource limits --ulimit takes (docker's names). */
const ULIMIT_NAMES = ['as', 'core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack'];

/** Parses `--ulimit name=soft[:hard]` (hard defaults to soft), as docker does. */
export function parseUlimit(spec: string): Ulimit {
  const m = /^([a-z]+)=(\d+)(?::(\d+))?$/.exec(spec.trim());
  const hint = `write --ulimit NAME=SOFT[:HARD] with a limit of ${ULIMIT_NAMES.join(', ')}, e.g. --ulimit nofile=1024:2048`;
  if (!m) throw new KilnError(`invalid --ulimit "${spec}"`, { code: 'invalid', hint });
  if (!ULIMIT_NAMES.includes(m[1])) throw new KilnError(`invalid --ulimit "${spec}": unknown limit "${m[1]}"`, { code: 'invalid', hint });
  const soft = Number(m[2]);
  const hard = m[3] === undefined ? soft : Number(m[3]);
  if (!Number.isSafeInteger(soft) || !Number.isSafeInteger(hard)) throw new KilnError(`invalid --ulimit "${spec}": the value is too large`, { code: 'invalid', hint });
  if (soft > hard) throw new KilnError(`invalid --ulimit "${spec}": the soft limit ${soft} is above the hard limit ${hard}`, { code: 'invalid', hint });
  return { name: m[1], soft, hard };
}

/** The smallest memory limit docker accepts (6 MiB): below it a container cannot start. */
const MIN_MEMORY = 6 * 1024 * 1024;

/** Parses `--memory 512m` (b, k, m, g; binary units, as docker). */
export function parseMemory(spec: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmg]?)b?$/i.exec(spec.trim());
  const hint = 'write --memory with a unit, e.g. --memory 512m or --memory 2g (at least 6m)';
  if (!m) throw new KilnError(`invalid --memory "${spec}"`, { code: 'invalid', hint });
  const unit = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as '' | 'b' | 'k' | 'm' | 'g'];
  const bytes = Math.floor(Number(m[1]) * unit);
  if (bytes < MIN_MEMORY) throw new KilnError(`--memory ${spec} is below the minimum of 6 MiB`, { code: 'invalid', hint });
  return bytes;
}
