/**
 * Checking a build context without building it: the library form of `kiln check` (and of
 * `kiln build --check`). Finds the Dockerfile and its ignore file as a build does, and lends
 * the rules the env and user of base images already in the store.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { kilnPaths } from './paths.js';
import { KilnError } from './errors.js';
import { parseDockerfileUntilError } from './dockerfile/parser.js';
import type { Dockerfile } from './dockerfile/ast.js';
import { formatFindings, runChecks, type CheckFormat, type CheckResult } from './dockerfile/checks.js';
import { ignoreFileFor, locateDockerfile } from './frontend/source.js';
import { parsePlatform } from './oci/platform.js';
import { ContentStore } from './oci/store.js';
import { loadImage } from './oci/image.js';

export interface CheckContextOptions {
  /** The kiln root whose store lends base image configs (never created by a check). */
  root: string;
  /** The build context directory, as the user wrote it (messages show it so). */
  contextDir: string;
  /** The Dockerfile (default: <context>/Dockerfile), as the user wrote it. */
  dockerfile?: string;
  /** The Dockerfile's text when it comes from no file (stdin); `dockerfile` is then ignored. */
  dockerfileText?: string;
  /** How `output` is written: text (default), json or sarif. */
  format?: CheckFormat;
  /** Check the build of this stage (default: every stage). */
  target?: string;
  buildArgs?: Record<string, string>;
  /** Target platform, os/arch[/variant] (default: this machine's). */
  platform?: string;
  /** Rules to skip, in addition to the Dockerfile's `# check=skip=`; "all" skips them all. */
  skip?: string[];
  /** Findings make the check fail (like `# check=error=true`). */
  error?: boolean;
}

export interface CheckContextResult extends CheckResult {
  /** The findings, formatted as asked. */
  output: string;
}

const FORMATS: readonly string[] = ['text', 'json', 'sarif'];

/**
 * Runs the checks for a build context. Where the build itself would fail (a syntax error, a
 * FROM that resolves to nothing), the result holds the findings up to that point and the
 * build's `error`, as BuildKit reports them. Bad options (format, platform, a context or
 * Dockerfile that is not there) throw a KilnError.
 */
export async function checkContext(options: CheckContextOptions): Promise<CheckContextResult> {
  const format = options.format ?? 'text';
  if (!FORMATS.includes(format)) throw new KilnError(`unknown --format "${format}": use text, json or sarif`);
  if (options.platform !== undefined) parsePlatform(options.platform, '--platform');
  const { contextDir, dockerfile: fileOpt } = options;
  const context = path.resolve(contextDir);
  const stat = await fs.stat(context).catch(() => undefined);
  if (!stat?.isDirectory()) {
    throw new KilnError(`build context ${contextDir} is not a directory`, { hint: 'pass the directory your COPY paths are relative to' });
  }
  const fromText = options.dockerfileText !== undefined;
  let text: string;
  let fileName: string;
  if (fromText) {
    text = options.dockerfileText as string;
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
  const ignoreFile = await ignoreFileFor({
    contextDir: context,
    dockerfile: !fromText && fileOpt ? path.resolve(fileOpt) : undefined,
    dockerfileText: fromText ? '' : undefined,
  });
  const ignoreText = await readOptional(ignoreFile);
  const result = runChecks(df, {
    skip: (options.skip ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean),
    errorOnWarnings: options.error ? true : undefined,
    buildArgs: options.buildArgs ?? {},
    target: options.target,
    platform: options.platform,
    hasDockerignore: ignoreText !== undefined,
    dockerignorePatterns: ignoreText?.split(/\r?\n/),
    imageConfig: await baseImageConfigs(df, options.root),
    parseTimeOnly: parseError !== undefined,
  });
  const output = formatFindings(result.findings, df, format as CheckFormat);
  const error = parseError ?? result.error;
  return { ...result, output, ...(error ? { error } : {}) };
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

async function baseImageConfigs(df: Dockerfile, root: string): Promise<(ref: string) => { env?: string[]; user?: string } | undefined> {
  const configs = new Map<string, { env?: string[]; user?: string }>();
  // only an existing store: checking must not create a kiln root
  const hasStore = await fs.stat(kilnPaths(root).index).then(() => true, () => false);
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
