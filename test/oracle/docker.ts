/**
 * docker 20.10 as the oracle of the differential tests: the same Dockerfile and context built
 * by kiln and by the engine's BuildKit (`DOCKER_BUILDKIT=1 /usr/bin/docker build`), from the
 * same busybox base, and the results compared (test/oracle/tree.ts reads saved images into
 * file trees, test/oracle/listing.ts lists files inside a running image).
 *
 * One policy for every suite:
 * - a dockerd that is already running is used as it is and never stopped; when none runs, one
 *   is started (test/helpers.ts `ensureDockerd`, recorded so scripts/run-tests.mjs stops it at
 *   the end), unless KILN_TEST_DOCKERD=existing (shared machines: never start one);
 * - the daemon is shared with other suites on the machine, which may stop and start it: a
 *   build that finds it gone says so (`daemonGone`) and the test runs kiln-only, and `ready()`
 *   makes the bases again in a daemon that lost them;
 * - every image the oracle tags is removed by `cleanup()`, and images an earlier process with
 *   the same prefix tagged and could not remove (`<prefix>-<pid>-...` with its pid gone) are
 *   removed at the start. Name bases `<prefix>-<pid>-<name>` too (see `ownName`): a fixed name
 *   is shared with the same suite running in another process, whose cleanup would remove it
 *   under this one's builds.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { dockerCli, ensureDockerd, isRoot, kilnBin, runCommand, tempDir, type CliResult } from '../helpers.js';
import { flattenArchive, type ImageTree } from './tree.js';

/** The environment every oracle build gets: BuildKit, not the legacy builder. */
export const DOCKER_BUILD_ENV = { DOCKER_BUILDKIT: '1' };

/** docker's words when the daemon is not there (stopped by another suite meanwhile). */
const DAEMON_GONE = /connect to the Docker daemon|docker\.sock/i;

export interface DockerResult extends CliResult {
  /** The daemon was not there: no answer from the oracle this time (not a failure of the case). */
  daemonGone: boolean;
}

export interface DockerBuild extends DockerResult {
  tag: string;
}

export interface DockerBuildOptions {
  /** The tag (default: a fresh `<prefix>-<pid>-<n>:latest`); removed by cleanup either way. */
  tag?: string;
  /** Flags before the context (-f FILE, --build-arg, --target, --no-cache, --progress, -q, ...). */
  args?: string[];
  /** More environment for the docker client (secrets passed with env=). */
  env?: Record<string, string>;
  timeoutMs?: number;
}

export interface DockerOracle {
  /** true, or why docker 20.10 cannot be the oracle in this run. */
  readonly available: true | string;
  /**
   * Whether a build can go to docker now: the daemon is up, and the bases are there (made
   * again when a restarted daemon lost them). False when the oracle is not available.
   */
  ready(): Promise<boolean>;
  /** A rootfs tarball as the image `name` (docker import: one layer, an empty config). */
  importRootfs(tarFile: string, name: string): Promise<void>;
  /**
   * An image of a kiln root as the same image in docker (kiln save | docker load: the same
   * config and layer digests). Removed by cleanup only when docker did not have it before.
   */
  loadFromKiln(root: string, image: string): Promise<void>;
  /** `docker build [args] CONTEXT` with BuildKit. */
  build(context: string, opts?: DockerBuildOptions): Promise<DockerBuild>;
  /** `docker save` of one image: a docker archive. */
  save(image: string): Promise<Buffer>;
  /** The image's final file tree and config (an image without layers: its config only). */
  image(image: string): Promise<ImageTree>;
  /** `docker run --rm --network none IMAGE ARGV...` */
  run(image: string, argv: string[]): Promise<DockerResult>;
  /** Removes every image the oracle tagged, imported or loaded. */
  cleanup(): Promise<void>;
}

/** An image name of this process's own under `prefix` (`<prefix>-<pid>-<name>`), removed as stale once the process is gone. */
export function ownName(prefix: string, name: string): string {
  return `${prefix}-${process.pid}-${name}`;
}

/** Runs a command collecting stdout as bytes (a saved image), stderr as text. */
export function runBinary(cmd: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => out.push(c));
    p.stderr.on('data', (c) => (stderr += String(c)));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? 1, stdout: Buffer.concat(out), stderr }));
  });
}

/** `kiln save` of one image of a kiln root: a docker archive. */
export async function saveKilnImage(root: string, image: string): Promise<Buffer> {
  const r = await runBinary(process.execPath, [kilnBin, '--root', root, 'save', image]);
  assert.equal(r.code, 0, `kiln save ${image}: ${r.stderr}`);
  return r.stdout;
}

/** The final file tree and config of an image of a kiln root. */
export async function kilnImageTree(root: string, image: string): Promise<ImageTree> {
  return flattenArchive(await saveKilnImage(root, image));
}

const pingDocker = (): boolean => spawnSync(dockerCli, ['info'], { stdio: 'ignore', timeout: 20_000 }).status === 0;
const dockerHas = (image: string): boolean => spawnSync(dockerCli, ['image', 'inspect', image], { stdio: 'ignore' }).status === 0;

/** Why docker cannot be the oracle here, or true; starts dockerd when the policy allows (see above). */
async function availability(): Promise<true | string> {
  if (!isRoot()) return 'the docker oracle needs root';
  if (!existsSync(dockerCli)) return `docker 20.10 (${dockerCli}) is not installed`;
  if (pingDocker()) return true;
  if (process.env.KILN_TEST_DOCKERD === 'existing') return 'dockerd is not running (KILN_TEST_DOCKERD=existing: none is started)';
  return (await ensureDockerd()) ? true : 'dockerd is not running and cannot be started';
}

/**
 * The oracle for one suite. `prefix` names its tags (`<prefix>-<pid>-<n>`); `disabled`, when
 * set, is why the suite does not want the oracle this run (the oracle is then unavailable).
 */
export async function dockerOracle(opts: { prefix: string; disabled?: string }): Promise<DockerOracle> {
  const available = opts.disabled ?? (await availability());
  const tagged = new Set<string>();
  /** bases by name: how to make each again in a daemon that lost it */
  const bases = new Map<string, () => Promise<void>>();
  /** imported bases: removed with the tags; loaded ones only untagged (`docker rmi`, no -f) */
  const removeAfter = new Set<string>();
  const untagAfter = new Set<string>();
  let n = 0;

  const result = (r: CliResult): DockerResult => ({ ...r, daemonGone: r.code !== 0 && DAEMON_GONE.test(r.stderr) });

  async function removeStale(): Promise<void> {
    const r = await runCommand(dockerCli, ['images', '--format', '{{.Repository}}:{{.Tag}}']);
    const own = new RegExp(`^${opts.prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-(\\d+)-`);
    const stale = r.stdout.split('\n').filter((name) => {
      const m = own.exec(name);
      return m !== null && !existsSync(`/proc/${m[1]}`);
    });
    for (let i = 0; i < stale.length; i += 50) await runCommand(dockerCli, ['rmi', '-f', ...stale.slice(i, i + 50)]);
  }
  if (available === true) await removeStale();

  async function addBase(name: string, make: () => Promise<void>): Promise<void> {
    assert.equal(available, true, `the docker oracle is not available: ${String(available)}`);
    bases.set(name, make);
    await make();
  }

  const oracle: DockerOracle = {
    available,

    async ready() {
      if (available !== true) return false;
      const names = [...bases.keys()];
      if (names.length > 0 && spawnSync(dockerCli, ['image', 'inspect', ...names], { stdio: 'ignore' }).status === 0) return true;
      if (!pingDocker()) return false;
      for (const [name, make] of bases) if (!dockerHas(name)) await make();
      return true;
    },

    async importRootfs(tarFile, name) {
      removeAfter.add(name);
      await addBase(name, async () => {
        const r = await runCommand(dockerCli, ['import', tarFile, name]);
        assert.equal(r.code, 0, `docker import ${name}: ${r.stderr}`);
      });
    },

    async loadFromKiln(root, image) {
      if (available === true && !dockerHas(image)) untagAfter.add(image);
      let saved: Buffer | undefined;
      await addBase(image, async () => {
        saved ??= await saveKilnImage(root, image);
        const t = await tempDir('kiln-oracle-base-');
        try {
          const file = path.join(t.dir, 'image.tar');
          await fs.writeFile(file, saved);
          const r = await runCommand(dockerCli, ['load', '-i', file]);
          assert.equal(r.code, 0, `docker load ${image}: ${r.stderr}`);
        } finally {
          await t.cleanup();
        }
      });
    },

    async build(context, b = {}) {
      const tag = b.tag ?? `${ownName(opts.prefix, String(++n))}:latest`;
      tagged.add(tag);
      const r = await runCommand(dockerCli, ['build', ...(b.args ?? []), '-t', tag, context], {
        env: { ...DOCKER_BUILD_ENV, ...b.env },
        timeoutMs: b.timeoutMs ?? 600_000,
      });
      return { ...result(r), tag };
    },

    async save(image) {
      const r = await runBinary(dockerCli, ['save', image]);
      assert.equal(r.code, 0, `docker save ${image}: ${r.stderr}`);
      return r.stdout;
    },

    async image(image) {
      const r = await runBinary(dockerCli, ['save', image]);
      if (r.code !== 0 && /empty export/.test(r.stderr)) {
        // docker 20.10 cannot save an image without layers: its config from inspect (no history)
        const ins = await runCommand(dockerCli, ['image', 'inspect', image]);
        assert.equal(ins.code, 0, `docker image inspect ${image}: ${ins.stderr}`);
        const [info] = JSON.parse(ins.stdout) as Array<{ Config?: Record<string, unknown>; Os?: string; Architecture?: string; RootFS?: { Layers?: string[] } }>;
        return { fs: new Map(), layers: 0, config: { config: info.Config, os: info.Os, architecture: info.Architecture, rootfs: { diff_ids: info.RootFS?.Layers ?? [] } } };
      }
      assert.equal(r.code, 0, `docker save ${image}: ${r.stderr}`);
      return flattenArchive(r.stdout);
    },

    async run(image, argv) {
      return result(await runCommand(dockerCli, ['run', '--rm', '--network', 'none', image, ...argv]));
    },

    async cleanup() {
      if (available !== true || !pingDocker()) return;
      const names = [...tagged, ...removeAfter];
      for (let i = 0; i < names.length; i += 50) await runCommand(dockerCli, ['rmi', '-f', ...names.slice(i, i + 50)]);
      if (untagAfter.size > 0) await runCommand(dockerCli, ['rmi', ...untagAfter]);
    },
  };
  return oracle;
}
