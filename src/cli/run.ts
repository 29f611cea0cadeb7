import path from 'node:path';
import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { collect } from './options.js';
import { KilnError } from '../errors.js';
import { ContentStore } from '../oci/store.js';
import { loadImage } from '../oci/image.js';
import { Snapshotter } from '../snapshot/snapshotter.js';
import { runContainer } from '../exec/index.js';
import { DEFAULT_PATH } from '../frontend/plan.js';

/** The process docker would start: entrypoint + cmd, with overrides. */
export function processArgs(entrypoint: string[] | null | undefined, cmd: string[] | null | undefined, override: { entrypoint?: string; args: string[] }): string[] {
  const ep = override.entrypoint !== undefined ? (override.entrypoint === '' ? [] : [override.entrypoint]) : (entrypoint ?? []);
  const c = override.args.length > 0 ? override.args : override.entrypoint !== undefined ? [] : (cmd ?? []);
  return [...ep, ...c];
}

export const register: Registrar = (program: Command, globals) => {
  program
    .command('run')
    .description('Run a command in a new container from an image (host network; the container is removed when it exits)')
    .argument('<image>', 'image name or id')
    .argument('[command...]', 'command and arguments (replace the image\'s CMD)')
    .option('--rm', 'remove the container when it exits (always the case in kiln)')
    .option('-e, --env <k=v>', 'set an environment variable (repeatable)', collect, [])
    .option('-u, --user <user>', 'user[:group] to run as')
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('--entrypoint <cmd>', 'override the image\'s ENTRYPOINT')
    .option('--network <mode>', 'host (default) or none', 'host')
    .option('-i, --interactive', 'keep standard input open')
    .passThroughOptions()
    .action(async (image: string, command: string[], o: Record<string, unknown>) => {
      const { root } = globals();
      const store = await ContentStore.open(root);
      const img = await loadImage(store, image);
      const cfg = img.config.config ?? {};
      const args = processArgs(cfg.Entrypoint, cfg.Cmd, { entrypoint: o.entrypoint as string | undefined, args: command });
      if (args.length === 0) throw new KilnError(`no command specified: image ${image} has no ENTRYPOINT or CMD`, { hint: `kiln run ${image} COMMAND` });
      const env = [...(cfg.Env ?? [])];
      if (!env.some((e) => e.startsWith('PATH='))) env.push(`PATH=${DEFAULT_PATH}`);
      for (const e of o.env as string[]) {
        const i = e.indexOf('=');
        const key = i === -1 ? e : e.slice(0, i);
        const value = i === -1 ? process.env[e] : e.slice(i + 1);
        if (value === undefined) continue;
        const at = env.findIndex((x) => x.startsWith(`${key}=`));
        if (at === -1) env.push(`${key}=${value}`);
        else env[at] = `${key}=${value}`;
      }
      const network = o.network as string;
      if (network !== 'host' && network !== 'none') throw new KilnError(`unsupported --network "${network}": use host or none`);
      const snapshotter = new Snapshotter(root);
      const diffIds = img.config.rootfs.diff_ids;
      // a prune while the container runs leaves its layers alone
      const lease = await store.lease();
      // SIGINT, SIGTERM and SIGHUP are handled for every command in main.ts
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
        const result = await runContainer({
          rootfs: mount.merged,
          args,
          env,
          cwd: (o.workdir as string | undefined) ?? (cfg.WorkingDir || '/'),
          user: (o.user as string | undefined) ?? cfg.User ?? '',
          network: network as 'host' | 'none',
          stdin: o.interactive === true,
          stateRoot: path.join(root, 'run'),
        });
        process.exitCode = result.exitCode;
      } finally {
        await mount.release();
        await lease.release();
      }
    });
};
