import { constants, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { kilnPaths } from '../paths.js';
import { KilnError } from '../errors.js';
import { runWithRuntime, type RuntimeInfo } from './container.js';
import { writeFileAtomic } from '../fsutil.js';
import { ownedName, registerProcess } from '../lifecycle.js';

export interface DetectedRuntime extends RuntimeInfo {
  /** Candidates tried before this one, and why they did not work. */
  rejected?: Array<{ candidate: string; reason: string }>;
}

const EXTRA_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

async function isExecutable(p: string): Promise<boolean> {
  try {
    const st = await fsp.stat(p);
    if (!st.isFile()) return false;
    await fsp.access(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Finds a runtime binary: a path as given, or a name looked up in PATH (plus the sbin dirs). */
export async function findRuntimeBinary(candidate: string): Promise<RuntimeInfo | undefined> {
  const name: 'runc' | 'crun' = path.basename(candidate).includes('crun') ? 'crun' : 'runc';
  if (candidate.includes('/')) {
    const p = path.resolve(candidate);
    return (await isExecutable(p)) ? { name, path: p } : undefined;
  }
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...EXTRA_PATH];
  for (const d of dirs) {
    const p = path.join(d, candidate);
    if (await isExecutable(p)) return { name, path: p };
  }
  return undefined;
}

/**
 * Runs a trivial container (`true` from the host's /usr, bind-mounted read-only) with the
 * runtime. Resolves to undefined when it works, or to the reason it does not. With a kiln
 * root, the probe's files live in its tmp/ under an owned name, so that a kill -9 during the
 * probe leaves nothing the next command does not take away; without one, in the system's.
 */
export async function probeRuntime(runtime: RuntimeInfo, root?: string): Promise<string | undefined> {
  let dir: string;
  if (root) {
    registerProcess(root);
    dir = path.join(kilnPaths(root).tmp, ownedName('probe'));
    await fsp.mkdir(dir, { recursive: true });
  } else {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'kiln-probe-'));
  }
  try {
    const rootfs = path.join(dir, 'rootfs');
    await fsp.mkdir(rootfs);
    const mounts: Array<{ destination: string; type: 'bind'; source: string; options: string[] }> = [];
    for (const top of ['usr', 'bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32']) {
      const host = `/${top}`;
      const st = await fsp.lstat(host).catch(() => undefined);
      if (!st) continue;
      if (st.isSymbolicLink()) await fsp.symlink(await fsp.readlink(host), path.join(rootfs, top));
      else if (st.isDirectory()) mounts.push({ destination: host, type: 'bind', source: host, options: ['rbind', 'ro'] });
    }
    const output: string[] = [];
    const res = await runWithRuntime(runtime, {
      rootfs,
      args: ['true'],
      env: [],
      cwd: '/',
      user: '',
      network: 'host',
      mounts,
      stateRoot: path.join(dir, 'state'),
      onOutput: (c) => output.push(c.toString('utf8')),
      signal: AbortSignal.timeout(30_000),
    });
    if (res.exitCode === 0) return undefined;
    const text = output.join('').trim();
    return text ? text.split('\n').slice(-3).join(' ') : `exit code ${res.exitCode}`;
  } catch (e) {
    return (e as Error).message;
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

/** Tries candidates in order; the first that runs a container wins (probing under `root`, if given). */
export async function detectRuntimeFrom(candidates: string[], root?: string): Promise<DetectedRuntime> {
  const rejected: Array<{ candidate: string; reason: string }> = [];
  for (const c of candidates) {
    const rt = await findRuntimeBinary(c);
    if (!rt) {
      rejected.push({ candidate: c, reason: 'not installed' });
      continue;
    }
    const reason = await probeRuntime(rt, root);
    if (reason === undefined) return rejected.length ? { ...rt, rejected } : rt;
    rejected.push({ candidate: c, reason });
  }
  throw new KilnError(
    `no working OCI runtime: ${rejected.map((r) => `${r.candidate}: ${r.reason}`).join('; ')}`,
    { hint: 'install runc (Debian/Ubuntu: apt-get install runc; Fedora: dnf install runc), run kiln as root, or set KILN_RUNTIME to a working runtime', code: 'unsupported' },
  );
}

let cached: Promise<DetectedRuntime> | undefined;

/**
 * The OCI runtime to use: KILN_RUNTIME (a name or a path) when set, else the first of runc,
 * crun that actually runs a container here. Cached per process, and with `stateDir` on disk
 * too: the probe container costs a fifth of a second, so a later process reuses the answer
 * while the binaries and the boot (cgroup layout) are the same.
 */
export function detectRuntime(stateDir?: string): Promise<DetectedRuntime> {
  if (!cached) {
    cached = stateDir && !process.env.KILN_RUNTIME ? detectWithDiskCache(stateDir) : detectUncached(stateDir && path.dirname(stateDir));
    cached.catch(() => {
      cached = undefined;
    });
  }
  return cached;
}

async function runtimeFingerprint(): Promise<string> {
  const parts = [await fsp.readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => 'no-boot-id')];
  for (const name of ['runc', 'crun']) {
    const rt = await findRuntimeBinary(name);
    const st = rt ? await fsp.stat(rt.path).catch(() => undefined) : undefined;
    parts.push(st ? `${rt!.path}:${st.size}:${st.mtimeMs}:${st.ino}` : `${name}:none`);
  }
  return parts.join('|').replace(/\s+/g, '');
}

async function detectWithDiskCache(stateDir: string): Promise<DetectedRuntime> {
  const file = path.join(stateDir, 'runtime.json');
  const fingerprint = await runtimeFingerprint();
  const saved = await fsp
    .readFile(file, 'utf8')
    .then((t) => JSON.parse(t) as { fingerprint: string; runtime: DetectedRuntime })
    .catch(() => undefined);
  if (saved?.fingerprint === fingerprint && saved.runtime?.path) return saved.runtime;
  // the state dir is <root>/run: the probe runs under the root's tmp/
  const runtime = await detectUncached(path.dirname(stateDir));
  await writeFileAtomic(file, JSON.stringify({ fingerprint, runtime }));
  return runtime;
}

async function detectUncached(root?: string): Promise<DetectedRuntime> {
  const forced = process.env.KILN_RUNTIME;
  if (forced) {
    const rt = await findRuntimeBinary(forced);
    if (!rt) {
      throw new KilnError(`KILN_RUNTIME=${forced}: no such executable`, {
        hint: 'set KILN_RUNTIME to runc, crun or the path of an OCI runtime binary, or unset it',
        code: 'not-found',
      });
    }
    return rt;
  }
  return detectRuntimeFrom(['runc', 'crun'], root);
}

/** Forgets the cached detection (tests, or after installing a runtime). */
export function resetRuntimeCache(): void {
  cached = undefined;
}
