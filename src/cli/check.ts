import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { collect, parseKeyValues, readStdin } from './options.js';
import { checkContext } from '../check.js';
import type { CheckFormat } from '../dockerfile/checks.js';

export const register: Registrar = (program: Command, globals) => {
  program
    .command('check')
    .description("Check a Dockerfile against BuildKit's build checks and kiln's practice rules, without building")
    .argument('[context]', 'build context directory', '.')
    .option('-f, --file <path>', 'Dockerfile (default: <context>/Dockerfile; "-" reads stdin)')
    .option('--format <format>', 'output: text, json or sarif', 'text')
    .option('--target <stage>', 'check the build of this stage (default: every stage)')
    .option('--build-arg <k=v>', 'set a build-time variable (repeatable)', collect, [])
    .option('--platform <os/arch>', "target platform (default: this machine's)")
    .option('--skip <rules>', 'skip these rules, comma-separated, or "all" (adds to # check=skip=)', collect, [])
    .option('--error', 'exit 1 when there are findings (like # check=error=true)')
    .action(async (contextDir: string, o: Record<string, unknown>) => {
      const { output, failed } = await checkCommand(contextDir, o, globals().root);
      process.stdout.write(output);
      if (failed) process.exitCode = 1;
    });
};

/**
 * `kiln check` (and `kiln build --check`, with its own options): the library's checkContext
 * with the command's options. Where the build itself would fail, the findings up to that
 * point are written to stdout and the build's error is thrown, as BuildKit does.
 */
export async function checkCommand(contextDir: string, o: Record<string, unknown>, root: string): Promise<{ output: string; failed: boolean }> {
  const file = o.file as string | undefined;
  const result = await checkContext({
    root,
    contextDir,
    ...(file === '-' ? { dockerfileText: await readStdin() } : { dockerfile: file }),
    format: o.format as CheckFormat,
    target: o.target as string | undefined,
    buildArgs: parseKeyValues(o.buildArg as string[], '--build-arg'),
    platform: o.platform as string | undefined,
    skip: o.skip as string[],
    error: o.error === true,
  });
  if (result.error) {
    process.stdout.write(result.output);
    throw result.error;
  }
  return { output: result.output, failed: result.failed };
}
