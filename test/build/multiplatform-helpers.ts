/**
 * What the multi-platform tests need besides a workspace: a busybox:latest that is an index of
 * linux/amd64 and linux/arm64 (Debian's busybox-static for each, through
 * scripts/make-base-image.sh), and QEMU's aarch64 binfmt_misc handler so arm64 RUN steps execute.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { repoRoot, runCommand, runKiln } from '../helpers.js';
import { ContentStore } from '../../src/oci/store.js';
import { writeIndex } from '../../src/oci/walk.js';
import { executionProblem } from '../../src/oci/platform.js';
import type { Descriptor, ImageManifest, ImageConfig } from '../../src/oci/types.js';

const BINFMT = '/proc/sys/fs/binfmt_misc';

/**
 * Makes sure linux/arm64 programs run here: mounts binfmt_misc when it is not, and registers
 * Debian's qemu-aarch64 handler (its line from /usr/lib/binfmt.d, which has the F flag, so the
 * interpreter needs not be inside the container) when none is registered. Gives why not, or
 * undefined when they run. A handler that is already there (another test's, `kiln setup
 * binfmt`'s) is left as it is, and nothing is unregistered afterwards: it is the machine's.
 */
export function ensureArm64Emulation(): string | undefined {
  if (process.arch === 'arm64') return undefined;
  if (executionProblem({ os: 'linux', architecture: 'arm64' }) === undefined) return undefined;
  if (!existsSync(path.join(BINFMT, 'register'))) {
    const m = spawnSync('mount', ['-t', 'binfmt_misc', 'binfmt_misc', BINFMT], { encoding: 'utf8' });
    if (m.status !== 0) return `cannot mount binfmt_misc: ${m.stderr.trim()}`;
  }
  const conf = ['/usr/lib/binfmt.d/qemu-aarch64.conf'].find((f) => existsSync(f));
  if (!conf) return 'qemu-user-static is not installed (no /usr/lib/binfmt.d/qemu-aarch64.conf)';
  if (!existsSync(path.join(BINFMT, 'qemu-aarch64'))) {
    const line = readFileSync(conf, 'utf8').split('\n').find((l) => l.startsWith(':qemu-aarch64:'));
    if (!line) return `${conf} has no qemu-aarch64 line`;
    try {
      writeFileSync(path.join(BINFMT, 'register'), line);
    } catch (e) {
      // registered meanwhile by someone else: fine when it works now
      if (!existsSync(path.join(BINFMT, 'qemu-aarch64'))) return `cannot register the qemu-aarch64 handler: ${(e as Error).message}`;
    }
  }
  return executionProblem({ os: 'linux', architecture: 'arm64' });
}

/**
 * Turns the root's busybox:latest (linux/amd64, from workspace()) into an index of linux/amd64
 * and linux/arm64: the arm64 one is imported as busybox:arm64 first. Gives both manifests.
 */
export async function multiPlatformBusybox(root: string): Promise<{ amd64: Descriptor; arm64: Descriptor; index: Descriptor }> {
  const r = await runCommand('bash', [path.join(repoRoot, 'scripts', 'make-base-image.sh'), 'busybox:arm64', '--arch', 'arm64', '--root', root]);
  if (r.code !== 0) throw new Error(`make-base-image --arch arm64 failed: ${r.stderr}`);
  const store = await ContentStore.open(root);
  const withPlatform = async (name: string): Promise<Descriptor> => {
    const d = await store.resolve(name);
    if (!d) throw new Error(`${name} is not in the store`);
    const m = await store.readJSON<ImageManifest>(d.digest);
    const c = await store.readJSON<ImageConfig>(m.config.digest);
    return { ...d, platform: { os: c.os, architecture: c.architecture, ...(c.variant ? { variant: c.variant } : {}) } };
  };
  const amd64 = await withPlatform('busybox:latest');
  const arm64 = await withPlatform('busybox:arm64');
  const index = await writeIndex(store, [amd64, arm64]);
  await store.setRef('busybox:latest', index);
  return { amd64, arm64, index };
}

/** `kiln inspect` of a name, parsed. */
export interface Inspected {
  digest: string;
  index?: { digest: string; manifests: Descriptor[] };
  manifest: ImageManifest;
  config: ImageConfig;
}

export async function inspectJSON(root: string, args: string[]): Promise<Inspected> {
  const r = await runKiln(['inspect', ...args], { root });
  if (r.code !== 0) throw new Error(`kiln inspect ${args.join(' ')} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Inspected;
}
