/**
 * Running an image: the library form of `kiln run`. The image's layers are unpacked (once,
 * shared with builds), mounted read-write over overlayfs for this one container, and the
 * process runs in the OCI runtime; everything is released when it exits.
 */
import { kilnPaths } from './paths.js';
import { KilnError } from './errors.js';
import { ContentStore } from './oci/store.js';
import { loadImage } from './oci/image.js';
import { executionProblem, formatPlatform } from './oci/platform.js';
import type { Platform } from './oci/types.js';
import { Snapshotter } from './snapshot/snapshotter.js';
import { runContainer, type PortMapping, type RunResult } from './exec/index.js';
import { DEFAULT_PATH } from './frontend/plan.js';
import { checkBinds, placeBinds, type BindSpec } from './exec/binds.js';
import { withContainerName } from './container-name.js';

export { parseVolume, type BindSpec } from './exec/binds.js';

export interface RunImageOptions {
  root: string;
  /** Image name, digest or ID in the store. */
  image: string;
  /** The platform to pick from a multi-platform image (default: this machine's); a foreign one runs under emulation. */
  platform?: Platform;
  /** Replaces the image's CMD (and, with `entrypoint`, follows it). */
  args?: string[];
  /** Replaces the image's ENTRYPOINT; "" clears it. */
  entrypoint?: string;
  /** KEY=VALUE entries set over the image's env, in order. */
  env?: string[];
  /** user[:group] (default: the image's USER, else root). */
  user?: string;
  /** Working directory (default: the image's WORKDIR, else /). */
  workdir?: string;
  /** default (a sandboxed namespace with outbound access), none or host. */
  network?: string;
  /** Attach our stdin to the process. */
  stdin?: boolean;
  /** Receives output; when absent, output goes to our stdout/stderr. */
  onOutput?: (chunk: Buffer, stream: 'stdout' | 'stderr') => void;
  /** Host ports forwarded to the container (-p), on the default network. */
  ports?: PortMapping[];
  /** Aborting kills the container (the promise then rejects with an AbortError). */
  signal?: AbortSignal;
  /** Give the process a terminal (our terminal must be there; output goes to it, TERM defaults to xterm). */
  tty?: boolean;
  /** A name unique among the containers running on the root (across processes) while this one runs. */
  name?: string;
  /** Host paths bind-mounted into the container (`-v`). */
  binds?: BindSpec[];
}

/** The process docker would start: entrypoint + cmd, with overrides. */
export function processArgs(entrypoint: string[] | null | undefined, cmd: string[] | null | undefined, override: { entrypoint?: string; args: string[] }): string[] {
  const ep = override.entrypoint !== undefined ? (override.entrypoint === '' ? [] : [override.entrypoint]) : (entrypoint ?? []);
  const c = override.args.length > 0 ? override.args : override.entrypoint !== undefined ? [] : (cmd ?? []);
  return [...ep, ...c];
}

/** The image's env with PATH defaulted (as BuildKit does) and `overrides` (KEY=VALUE) applied in order. */
export function containerEnv(imageEnv: string[] | null | undefined, overrides: string[] = []): string[] {
  const env = [...(imageEnv ?? [])];
  if (!env.some((e) => e.startsWith('PATH='))) env.push(`PATH=${DEFAULT_PATH}`);
  for (const e of overrides) {
    const i = e.indexOf('=');
    if (i <= 0) throw new KilnError(`invalid environment entry ${JSON.stringify(e)}: expected KEY=VALUE`);
    const key = e.slice(0, i);
    const at = env.findIndex((x) => x.startsWith(`${key}=`));
    if (at === -1) env.push(e);
    else env[at] = e;
  }
  return env;
}

/**
 * Runs a command in a new container from an image of the store and gives its exit status
 * (128+N when killed by signal N). The container, its mount and its lease are gone when the
 * promise settles; a prune meanwhile leaves the image's layers alone.
 */
export async function runImage(options: RunImageOptions): Promise<RunResult> {
  return options.name === undefined ? runOnce(options) : withContainerName(options.root, options.name, () => runOnce(options));
}

async function runOnce(options: RunImageOptions): Promise<RunResult> {
  const { root, image } = options;
  const binds = await checkBinds(options.binds ?? []);
  const store = await ContentStore.open(root);
  const img = await loadImage(store, image, options.platform);
  // a foreign image runs only under a binfmt_misc handler: say so before runc's "exec format error"
  const imagePlatform: Platform = { os: img.config.os ?? 'linux', architecture: img.config.architecture ?? 'amd64', ...(img.config.variant ? { variant: img.config.variant } : {}) };
  const problem = executionProblem(imagePlatform);
  if (problem) {
    throw new KilnError(`cannot run ${img.name} (${formatPlatform(imagePlatform)}): ${problem}`, {
      code: 'unsupported',
      hint: 'register QEMU user emulation for it (kiln setup binfmt, as root), or run an image of this machine\'s platform (--platform)',
    });
  }
  const cfg = img.config.config ?? {};
  const args = processArgs(cfg.Entrypoint, cfg.Cmd, { entrypoint: options.entrypoint, args: options.args ?? [] });
  if (args.length === 0) throw new KilnError(`no command specified: image ${image} has no ENTRYPOINT or CMD`, { hint: `kiln run ${image} COMMAND` });
  const env = containerEnv(cfg.Env, options.env);
  if (options.tty && !env.some((e) => e.startsWith('TERM='))) env.push('TERM=xterm');
  const network = options.network ?? 'default';
  if (network !== 'default' && network !== 'host' && network !== 'none') {
    throw new KilnError(`unsupported --network "${network}"`, { code: 'invalid', hint: 'use --network default (sandboxed, the default), none or host' });
  }
  if (options.ports?.length && network !== 'default') {
    throw new KilnError(`cannot publish ports (-p) with --network ${network}`, { code: 'invalid', hint: network === 'host' ? 'with the host network the container listens on the host already: leave out -p' : 'leave out --network none to publish ports' });
  }
  const snapshotter = new Snapshotter(root);
  const diffIds = img.config.rootfs.diff_ids;
  const lease = await store.lease();
  let mount;
  try {
    await lease.add(img.manifestDescriptor.digest, ...img.manifest.layers.map((l) => l.digest));
    await lease.protect({ layers: diffIds });
    const lowers: string[] = [];
    for (let i = 0; i < img.manifest.layers.length; i++) {
      const layer = img.manifest.layers[i];
      lowers.push(await snapshotter.unpackLayer(diffIds[i], () => store.openBlob(layer.digest)));
    }
    mount = await snapshotter.mount(lowers);
  } catch (e) {
    await lease.release();
    throw e;
  }
  try {
    return await runContainer({
      rootfs: mount.merged,
      args,
      env,
      cwd: options.workdir ?? (cfg.WorkingDir || '/'),
      user: options.user ?? cfg.User ?? '',
      network,
      ports: options.ports,
      stdin: options.stdin === true,
      tty: options.tty === true,
      mounts: placeBinds(mount.merged, binds),
      onOutput: options.onOutput,
      signal: options.signal,
      stateRoot: kilnPaths(root).run,
    });
  } finally {
    await mount.release();
    await lease.release();
  }
}
