import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { collect, parseKeyValues, readStdin } from './options.js';
import { KilnError } from '../errors.js';
import { parseDockerfileUntilError } from '../dockerfile/parser.js';
import { ignoreFileFor, locateDockerfile } from '../frontend/source.js';
import type { Dockerfile } from '../dockerfile/ast.js';
import { ContentStore } from '../oci/store.js';
import { loadImage } from '../oci/image.js';
import { formatFindings, runChecks, type CheckFormat } from '../dockerfile/checks.js';
import { parsePlatform } from '../oci/platform.js';

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

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
      const { output, failed } = await checkContext(contextDir, o, globals().root);
      process.stdout.write(output);
      if (failed) process.exitCode = 1;
    });
};

/**
 * Runs the checks for a context (the options are those of `kiln check`; `kiln build --check`
 * passes its own). Base images found in the store lend their env and user to the rules.
 * Where the build itself would fail (a syntax error, a FROM that resolves to nothing), the
 * findings up to that point are written to stdout and the build's error is thrown.
 */
export async function checkContext(contextDir: string, o: Record<string, unknown>, root: string): Promise<{ output: string; failed: boolean }> {
  const format = o.format as string;
  if (!['text', 'json', 'sarif'].includes(format)) {
    throw new KilnError(`unknown --format "${format}": use text, json or sarif`);
  }
  const platform = o.platform as string | undefined;
  if (platform !== undefined) parsePlatform(platform, '--platform');
  const context = path.resolve(contextDir);
  const stat = await fs.stat(context).catch(() => undefined);
  if (!stat?.isDirectory()) {
    throw new KilnError(`build context ${contextDir} is not a directory`, { hint: 'pass the directory your COPY paths are relative to' });
  }
  const fileOpt = o.file as string | undefined;
  let text: string;
  let fileName: string;
  if (fileOpt === '-') {
    text = await readStdin();
    fileName = 'Dockerfile';
  } else {
    const { file } = await locateDockerfile({ contextDir: context, dockerfile: fileOpt ? path.resolve(fileOpt) : undefined });
    const content = await readOptional(file);
    if (content === undefined) {
      throw new KilnError(`Dockerfile not found: ${fileOpt ?? path.join(contextDir, 'Dockerfile')}`, {
        hint: 'pass its path with -f, or run kiln check in the directory that has it',
      });
    }
    text = content;
    fileName = fileOpt && path.resolve(fileOpt) === file ? fileOpt : path.relative(process.cwd(), file) || 'Dockerfile';
  }
  const { dockerfile: df, error: parseError } = parseDockerfileUntilError(text, fileName);
  const ignoreText = await readOptional(await ignoreFileFor({ contextDir: context, dockerfile: fileOpt && fileOpt !== '-' ? path.resolve(fileOpt) : undefined, dockerfileText: fileOpt === '-' ? '' : undefined }));
  const skip = (o.skip as string[]).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
  const result = runChecks(df, {
    skip,
    errorOnWarnings: o.error ? true : undefined,
    buildArgs: parseKeyValues(o.buildArg as string[], '--build-arg'),
    target: o.target as string | undefined,
    platform,
    hasDockerignore: ignoreText !== undefined,
    dockerignorePatterns: ignoreText?.split(/\r?\n/),
    imageConfig: await baseImageConfigs(df, root),
    parseTimeOnly: parseError !== undefined,
  });
  const output = formatFindings(result.findings, df, format as CheckFormat);
  const error = parseError ?? result.error;
  if (error) {
    // as BuildKit, the findings up to the error are still reported, then the build's error
    process.stdout.write(output);
    throw error;
  }
  return { output, failed: result.failed };
}

async function baseImageConfigs(df: Dockerfile, root: string): Promise<(ref: string) => { env?: string[]; user?: string } | undefined> {
  const configs = new Map<string, { env?: string[]; user?: string }>();
  // only an existing store: checking must not create a kiln root
  const hasStore = await fs.stat(path.join(root, 'index.json')).then(() => true, () => false);
  const store = hasStore ? await ContentStore.open(root).catch(() => undefined) : undefined;
  if (store) {
    for (const inst of df.instructions) {
      if (inst.keyword !== 'from' || !inst.args[0] || inst.args[0].includes('$')) continue;
      const img = await loadImage(store, inst.args[0]).catch(() => undefined);
      if (img) configs.set(inst.args[0], { env: img.config.config?.Env, user: img.config.config?.User });
    }
  }
  return (ref) => configs.get(ref);
}
