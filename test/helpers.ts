/** Shared test helpers: temp kiln roots, the busybox base image, running the CLI, peers. */
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, mkdtempSync, openSync, promises as fs } from 'node:fs';
import { processStartTime } from '../src/owner.js';
import { ContentStore } from '../src/oci/store.js';
import { hostPlatform, parsePlatform } from '../src/oci/platform.js';
import type { Descriptor } from '../src/oci/types.js';
import { writeIndex } from '../src/oci/walk.js';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (tests run from dist/test/..., sources live beside). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const kilnBin = path.join(repoRoot, 'bin', 'kiln.js');

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export function haveTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/** A fresh directory under the system temp dir, removed by the returned cleanup. */
export async function tempDir(prefix = 'kiln-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rm(dir, { recursive: true, force: true }) };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runKiln(args: string[], opts: { root: string; cwd?: string; env?: Record<string, string>; input?: string; timeoutMs?: number }): Promise<CliResult> {
  return runCommand(process.execPath, [kilnBin, '--root', opts.root, ...args], opts);
}

export function runCommand(cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string>; input?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd: opts.cwd ?? repoRoot, env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c) => (stdout += String(c)));
    p.stderr.on('data', (c) => (stderr += String(c)));
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    p.on('error', reject);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    // a child that exits without reading its stdin must not fail the test with EPIPE
    p.stdin.on('error', () => undefined);
    p.stdin.end(opts.input ?? '');
  });
}

const baseTars = new Map<string, string>();

/**
 * The busybox rootfs tarball from scripts/make-base-image.sh, made once per process; `arch` (a
 * Debian architecture, e.g. arm64) gives that architecture's busybox (Debian's
 * busybox-static:ARCH, which scripts/setup-host.sh makes fetchable), default this machine's.
 */
export async function busyboxRootfsTar(arch?: string): Promise<string> {
  const key = arch ?? '';
  const made = baseTars.get(key);
  if (made && existsSync(made)) return made;
  const out = path.join(os.tmpdir(), `kiln-test-busybox-${arch ? `${arch}-` : ''}${process.pid}.tar`);
  const r = await runCommand('bash', [path.join(repoRoot, 'scripts', 'make-base-image.sh'), ...(arch ? ['--arch', arch] : []), '--tar-only', out]);
  if (r.code !== 0) throw new Error(`make-base-image failed: ${r.stderr}`);
  baseTars.set(key, out);
  process.on('exit', () => {
    try {
      spawnSync('rm', ['-f', out]);
    } catch {
      // best effort
    }
  });
  return out;
}

/** A kiln root with busybox:latest imported; cleanup unmounts nothing (builds release their mounts). */
export async function rootWithBusybox(): Promise<{ root: string; cleanup: () => Promise<void> }> {
  const { dir, cleanup } = await tempDir('kiln-root-');
  const tar = await busyboxRootfsTar();
  const r = await runKiln(['import', tar, 'busybox:latest'], { root: dir });
  if (r.code !== 0) throw new Error(`kiln import failed: ${r.stderr}`);
  // a test that failed half-way may leave a build's mounts: unmount them (deepest first) so
  // that the root can be removed and no overlay outlives the suite
  const unmountAndClean = async (): Promise<void> => {
    const { mountsUnder } = await import('../src/lifecycle.js');
    for (const mp of mountsUnder(dir).sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', mp], { stdio: 'ignore' });
    await cleanup();
  };
  return { root: dir, cleanup: unmountAndClean };
}

/**
 * Imports a linux/arm64 busybox (Debian's busybox-static:arm64, through scripts/make-base-image.sh
 * --arch arm64) into the kiln root as `name`; gives its manifest descriptor (with its platform).
 */
export async function importArm64Busybox(root: string, name = 'busybox:arm64'): Promise<Descriptor> {
  const tar = await busyboxRootfsTar('arm64');
  const r = await runKiln(['import', '--platform', 'linux/arm64', tar, name], { root });
  if (r.code !== 0) throw new Error(`kiln import (arm64) failed: ${r.stderr}`);
  const store = await ContentStore.open(root);
  const desc = await store.resolve(name);
  if (!desc) throw new Error(`${name} missing after kiln import`);
  return { mediaType: desc.mediaType, digest: desc.digest, size: desc.size, platform: { architecture: 'arm64', os: 'linux' } };
}

/**
 * Makes `name` (default busybox:latest) in the kiln root a two-platform image: an OCI index of
 * this machine's busybox (tagged busybox:<host arch>) and the arm64 one (busybox:arm64), as a
 * multi-platform base pulled from a registry would be. Gives the index descriptor.
 */
export async function multiPlatformBusybox(root: string, name = 'busybox:latest'): Promise<Descriptor> {
  const host = hostPlatform();
  if (host.architecture === 'arm64') throw new Error('multiPlatformBusybox: this machine is arm64; the second platform would be the same');
  const hostName = `busybox:${host.architecture}`;
  const imported = await runKiln(['import', await busyboxRootfsTar(), hostName], { root });
  if (imported.code !== 0) throw new Error(`kiln import failed: ${imported.stderr}`);
  const arm64 = await importArm64Busybox(root);
  const store = await ContentStore.open(root);
  const own = await store.resolve(hostName);
  if (!own) throw new Error(`${hostName} missing after kiln import`);
  const index = await writeIndex(store, [{ mediaType: own.mediaType, digest: own.digest, size: own.size, platform: host }, arm64]);
  await store.setRef(name, index);
  return index;
}

/**
 * A workspace whose busybox:latest is an index for linux/<host arch> and linux/arm64 (see
 * multiPlatformBusybox; busybox:amd64 and busybox:arm64 name each platform's image). arm64 RUN
 * steps also need the binfmt handler: ensureEmulation('linux/arm64').
 */
export async function arm64Workspace(): Promise<Workspace> {
  const ws = await workspace();
  try {
    await multiPlatformBusybox(ws.root);
  } catch (e) {
    await ws.cleanup();
    throw e;
  }
  return ws;
}

/**
 * Makes sure programs of `platform` (default linux/arm64) run here under QEMU user emulation:
 * mounts binfmt_misc and registers Debian's qemu-user-static handler with the F flag when it is
 * missing (idempotent; other suites may share the handler, so it is never removed). Throws when
 * that cannot be done (not root, qemu-user-static missing).
 */
export async function ensureEmulation(platform = 'linux/arm64'): Promise<void> {
  const { ensureBinfmt } = await import('../src/setup.js');
  await ensureBinfmt([parsePlatform(platform)]);
}

/** Writes files (path → content) under dir. */
export async function writeTree(dir: string, files: Record<string, string>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(dir, rel);
    await fs.mkdir(path.dirname(p), { recursive: true });
    await fs.writeFile(p, content);
  }
}

/**
 * A test suite's workspace: a kiln root with busybox:latest, and build contexts made from
 * file maps; `cleanup` removes them all.
 */
export interface Workspace {
  root: string;
  context(files: Record<string, string>): Promise<string>;
  cleanup(): Promise<void>;
}

export async function workspace(): Promise<Workspace> {
  const { root, cleanup: cleanupRoot } = await rootWithBusybox();
  const dirs: Array<() => Promise<void>> = [];
  return {
    root,
    async context(files) {
      const t = await tempDir('kiln-ctx-');
      dirs.push(t.cleanup);
      await writeTree(t.dir, files);
      return t.dir;
    },
    async cleanup() {
      for (const c of dirs) await c();
      await cleanupRoot();
    },
  };
}

let dockerdStarted: Promise<boolean> | undefined;

/** Docker 20.10 client from Debian (not the newer one in /usr/local/bin). */
export const dockerCli = '/usr/bin/docker';

/**
 * A daemon a test started stays up for the rest of the suite (other test files use it) and
 * is stopped when the suite ends: under scripts/run-tests.mjs it is recorded in the file
 * KILN_TEST_DAEMONS names (see scripts/test-daemons.mjs); otherwise it is stopped when this
 * test process exits.
 */
export function keepDaemonForSuite(pid: number, name: string): void {
  const start = processStartTime(pid);
  const file = process.env.KILN_TEST_DAEMONS;
  if (file && start !== undefined) {
    appendFileSync(file, `${pid} ${start} ${name}\n`);
    return;
  }
  process.on('exit', () => {
    if (processStartTime(pid) === start) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
  });
}

/**
 * Starts dockerd (Debian's docker.io) when it is installed and not running; false when
 * unavailable. A dockerd that was already running is used as it is and never stopped.
 */
export function ensureDockerd(): Promise<boolean> {
  dockerdStarted ??= (async () => {
    if (!existsSync(dockerCli) || !haveTool('dockerd') || !isRoot()) return false;
    const ping = () => spawnSync(dockerCli, ['info'], { stdio: 'ignore', timeout: 10_000 }).status === 0;
    if (ping()) return true;
    const log = openSync(path.join(os.tmpdir(), 'kiln-test-dockerd.log'), 'a');
    const child = spawn('dockerd', [], { detached: true, stdio: ['ignore', log, log] });
    closeSync(log);
    child.unref();
    if (child.pid === undefined) return false;
    keepDaemonForSuite(child.pid, 'dockerd');
    for (let i = 0; i < 60; i++) {
      await new Promise((r) => setTimeout(r, 500));
      if (ping()) return true;
    }
    return false;
  })();
  return dockerdStarted;
}
