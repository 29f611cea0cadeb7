import { Command, CommanderError } from 'commander';
import { fromErrno, isErrnoError, isKilnError } from '../errors.js';
import { resolveRoot } from '../config.js';
import { trace } from '../trace.js';
import { VERSION } from '../version.js';
/** Options every command sees: global flags resolved. */
export interface GlobalOptions {
  root: string;
}

export type Registrar = (program: Command, globals: () => GlobalOptions) => void;

/**
 * Each command lives in its own file and registers itself. Only the command being run is
 * loaded (start-up time counts in a no-op rebuild); help and unknown commands load all.
 */
const commands: Record<string, () => Promise<{ register: Registrar }>> = {
  build: () => import('./build.js'),
  run: () => import('./run.js'),
  debug: () => import('./debug.js'),
  check: () => import('./check.js'),
  images: () => import('./images.js'),
  tag: () => import('./tag.js'),
  rmi: () => import('./rmi.js'),
  prune: () => import('./prune.js'),
  import: () => import('./import.js'),
  load: () => import('./load.js'),
  save: () => import('./save.js'),
  inspect: () => import('./inspect.js'),
  du: () => import('./du.js'),
};

/** The command word in argv, skipping global options (and the value of --root). */
function commandWord(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--root') {
      i++;
      continue;
    }
    if (a.startsWith('-')) continue;
    return a;
  }
  return undefined;
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command();
  program
    .name('kiln')
    .description('Build, run and ship OCI container images from Dockerfiles, without a daemon.')
    .option('--root <dir>', 'kiln root: image store and cache (env KILN_ROOT)')
    .version(VERSION, '-V, --version', 'print the kiln version')
    .enablePositionalOptions()
    .showHelpAfterError()
    .exitOverride();
  const globals = (): GlobalOptions => ({ root: resolveRoot(program.opts().root as string | undefined) });
  const word = commandWord(argv);
  const wanted = word !== undefined && word in commands ? [commands[word]] : Object.values(commands);
  trace('main: loading command');
  for (const load of wanted) (await load()).register(program, globals);
  trace('main: command loaded');
  try {
    await program.parseAsync(argv, { from: 'user' });
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (err) {
    return reportError(err);
  }
}

export function reportError(err: unknown): number {
  if (err instanceof CommanderError) {
    // commander already printed its message (help, version, usage errors)
    return err.exitCode;
  }
  if (isKilnError(err)) {
    process.stderr.write(`error: ${err.format()}\n`);
    return err.exitCode;
  }
  if (isErrnoError(err)) {
    // a system error we did not anticipate: in words, with the path, no stack
    process.stderr.write(`error: ${fromErrno(err).format()}\n`);
    if (process.env.KILN_DEBUG) process.stderr.write(`${err.stack ?? ''}\n`);
    return 1;
  }
  process.stderr.write(`error: internal error: ${(err as Error)?.message ?? String(err)}\n`);
  if (process.env.KILN_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
  return 70;
}
