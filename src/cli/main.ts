import { Command, CommanderError } from 'commander';
import { isKilnError } from '../errors.js';
import { resolveRoot } from '../config.js';
import { register as registerBuild } from './build.js';
import { register as registerRun } from './run.js';
import { register as registerDebug } from './debug.js';
import { register as registerCheck } from './check.js';
import { register as registerImages } from './images.js';
import { register as registerTag } from './tag.js';
import { register as registerRmi } from './rmi.js';
import { register as registerPrune } from './prune.js';
import { register as registerImport } from './import.js';
import { register as registerLoad } from './load.js';
import { register as registerSave } from './save.js';
import { register as registerInspect } from './inspect.js';
import { register as registerDu } from './du.js';

/** Options every command sees: global flags resolved. */
export interface GlobalOptions {
  root: string;
}

export type Registrar = (program: Command, globals: () => GlobalOptions) => void;

// Each command lives in its own file and registers itself here.
const registrars: Registrar[] = [
  // registrars:begin
  registerBuild,
  registerRun,
  registerDebug,
  registerCheck,
  registerImages,
  registerTag,
  registerRmi,
  registerPrune,
  registerImport,
  registerLoad,
  registerSave,
  registerInspect,
  registerDu,
  // registrars:end
];

export async function main(argv: string[]): Promise<number> {
  const program = new Command();
  program
    .name('kiln')
    .description('Build, run and ship OCI container images from Dockerfiles, without a daemon.')
    .option('--root <dir>', 'kiln root: image store and cache (env KILN_ROOT)')
    .enablePositionalOptions()
    .showHelpAfterError()
    .exitOverride();
  const globals = (): GlobalOptions => ({ root: resolveRoot(program.opts().root as string | undefined) });
  for (const register of registrars) register(program, globals);
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
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e === 'object' && typeof e.code === 'string' && e.message) {
    // a system error we did not anticipate: still one line, no stack
    process.stderr.write(`error: ${e.message}\n`);
    if (process.env.KILN_DEBUG) process.stderr.write(`${e.stack ?? ''}\n`);
    return 1;
  }
  process.stderr.write(`error: internal error: ${(err as Error)?.message ?? String(err)}\n`);
  if (process.env.KILN_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
  return 70;
}
