import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { collect } from './options.js';
import { parseVolume, runImage } from '../run.js';
import { KilnError } from '../errors.js';
import { parsePortMapping } from '../exec/index.js';
import { parsePlatform } from '../oci/platform.js';

export const register: Registrar = (program: Command, globals) => {
  program
    .command('run')
    .description('Run a command in a new container from an image (its own network; the container is removed when it exits)')
    .argument('<image>', 'image name or id')
    .argument('[command...]', 'command and arguments (replace the image\'s CMD)')
    .option('--rm', 'remove the container when it exits (always the case in kiln)')
    .option('-e, --env <k=v>', 'set an environment variable (repeatable)', collect, [])
    .option('-u, --user <user>', 'user[:group] to run as')
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('--entrypoint <cmd>', 'override the image\'s ENTRYPOINT')
    .option('--network <mode>', 'default (its own network, outbound access; the default), none (loopback only) or host', 'default')
    .option('-p, --publish <hostPort:containerPort>', 'forward a port of the host to the container, e.g. -p 8080:80 (repeatable; default network)', collect, [])
    .option('-i, --interactive', 'keep standard input open')
    .option('-t, --tty', 'give the process a terminal (with -i: an interactive session; ^C goes to the process)')
    .option('--name <name>', 'a name for the container, unique among the running ones')
    .option('-v, --volume <host:container[:ro]>', 'bind-mount a host path into the container (repeatable)', collect, [])
    .option('--platform <os/arch>', "the platform to run of a multi-platform image (default: this machine's; a foreign one runs under QEMU emulation)")
    .passThroughOptions()
    .action(async (image: string, command: string[], o: Record<string, unknown>) => {
      // -e KEY takes KEY's value from our environment, as docker does (and is left out when unset)
      const env: string[] = [];
      for (const e of o.env as string[]) {
        if (e.includes('=')) env.push(e);
        else if (process.env[e] !== undefined) env.push(`${e}=${process.env[e]}`);
      }
      if (o.tty === true && o.interactive === true && !process.stdin.isTTY) {
        throw new KilnError('the input device is not a TTY: -it needs a terminal on standard input', { hint: 'drop -t to pipe input into the container', code: 'invalid' });
      }
      const binds = (o.volume as string[]).map((v) => parseVolume(v));
      // SIGINT, SIGTERM and SIGHUP are handled for every command in main.ts
      const result = await runImage({
        root: globals().root,
        image,
        platform: o.platform === undefined ? undefined : parsePlatform(o.platform as string, '--platform'),
        args: command,
        entrypoint: o.entrypoint as string | undefined,
        env,
        user: o.user as string | undefined,
        workdir: o.workdir as string | undefined,
        network: o.network as string,
        ports: (o.publish as string[]).map(parsePortMapping),
        stdin: o.interactive === true,
        tty: o.tty === true,
        name: o.name as string | undefined,
        binds,
      });
      process.exitCode = result.exitCode;
    });
};
