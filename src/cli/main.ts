import { Command, CommanderError } from 'commander';
import os from 'node:os';
import { fromErrno, isErrnoError, isKilnError } from '../errors.js';
import { reapStale, releaseOwnResources } from '../lifecycle.js';
import { releaseHeldLocks, setLockWaitReporter } from '../oci/lock.js';
import { resolveRoot } from '../config.js';
import { trace } from '../trace.js';
import { VERSION } from '../version.js';
/** Options every command sees: global flags resolved. */
export interface GlobalOptions {
  root: string;
  /** --insecure-registry HOST (repeatable): plain HTTP or unverified TLS allowed for these hosts. */
  insecureRegistries: string[];
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
  pull: () => import('./pull.js'),
  du: () => import('./du.js'),
  login: () => import('./login.js'),
  logout: () => import('./login.js'),
  push: () => import('./push.js'),
  setup: () => import('./setup.js'),
  imagetools: () => import('./imagetools.js'),
  sbom: () => import('./sbom.js'),
  scan: () => import('./scan.js'),
  attestations: () => import('./attestations.js'),
  'generate-key-pair': () => import('./sign.js'),
  sign: () => import('./sign.js'),
  verify: () => import('./sign.js'),
};

/** The command word in argv, skipping global options (and the value of --root). */
function commandWord(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--root' || a === '--insecure-registry') {
      i++;
      continue;
    }
    if (a.startsWith('-')) continue;
    return a;
  }
  return undefined;
}

/** Commands that never touch the kiln root. */
const ROOTLESS = new Set(['check', 'debug', 'help', 'setup', 'generate-key-pair']);

let interrupting = false;

/**
 * SIGINT, SIGTERM and SIGHUP (a terminal's ^C, a CI runner cancelling a job, a closed
 * session: often sent to kiln alone, not its process group) stop the command: its
 * containers are killed and deleted, its mounts unmounted, its active snapshots, temp files,
 * lease and locks removed, all synchronously, then kiln exits with 128 + the signal number.
 * A second signal during that cleanup exits at once (the next command reaps what is left).
 */
function onInterrupt(sig: NodeJS.Signals): void {
  const code = 128 + (os.constants.signals[sig] ?? 0);
  if (interrupting) process.exit(code);
  interrupting = true;
  try {
    releaseOwnResources();
    releaseHeldLocks();
  } finally {
    process.stderr.write(`interrupted (${sig}): stopped, and removed its containers, mounts and temp files\n`);
    process.exit(code);
  }
}

export function installInterruptHandlers(): void {
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) if (!process.listeners(sig).includes(onInterrupt)) process.on(sig, onInterrupt);
}

export async function main(argv: string[]): Promise<number> {
  installInterruptHandlers();
  setLockWaitReporter((message) => process.stderr.write(`${message}\n`));
  const program = new Command();
  program
    .name('kiln')
    .description('Build, run and ship OCI container images from Dockerfiles, without a daemon.')
    .option('--root <dir>', 'kiln root: image store and cache (env KILN_ROOT)')
    .option('--insecure-registry <host>', 'allow plain HTTP (or unverified TLS) to this registry host[:port] (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .version(VERSION, '-V, --version', 'print the kiln version')
    .enablePositionalOptions()
    .showHelpAfterError()
    .exitOverride();
  const globals = (): GlobalOptions => ({
    root: resolveRoot(program.opts().root as string | undefined),
    insecureRegistries: (program.opts().insecureRegistry as string[] | undefined) ?? [],
  });
  const word = commandWord(argv);
  // what killed kiln processes left on this root goes first (one readdir when nothing did)
  program.hook('preAction', () => {
    if (word !== undefined && !ROOTLESS.has(word)) reapStale(globals().root);
    trace('main: stale resources reaped');
  });
  const wanted = word !== undefined && word in commands ? [commands[word]] : Object.values(commands);
  trace('main: loading command');
  for (const load of wanted) (await load()).register(program, globals);
  trace('main: command loaded');
  let code: number;
  try {
    await program.parseAsync(argv, { from: 'user' });
    code = process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (err) {
    code = reportError(err);
  }
  // the caller exits the process: what is still queued for a slow reader (kiln save | ...) must go first
  await flushed(process.stdout);
  await flushed(process.stderr);
  return code;
}

/** Resolves once everything written to `stream` so far has been handed to the OS (or the stream is gone). */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || stream.writableEnded) return resolve();
    stream.write('', () => resolve());
  });
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
