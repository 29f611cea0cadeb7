/**
 * Where a build's definition comes from, as BuildKit's dockerui finds it: the Dockerfile
 * (with the lowercase `dockerfile` fallback) and the ignore file that applies to the context
 * (`<Dockerfile>.dockerignore` beside the Dockerfile first, then `<context>/.dockerignore`).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describeErrno, KilnError } from '../errors.js';
import { parseDockerfile } from '../dockerfile/parser.js';
import type { Dockerfile } from '../dockerfile/ast.js';

export interface DefinitionOptions {
  contextDir: string;
  /** The Dockerfile path (-f); default <context>/Dockerfile. */
  dockerfile?: string;
  /** Dockerfile text that does not come from a file (stdin). */
  dockerfileText?: string;
}

const DEFAULT_NAME = 'Dockerfile';

async function isFile(p: string): Promise<boolean> {
  return fs.stat(p).then((s) => s.isFile(), () => false);
}

/** The path named (or the default), the file to read, and the name the per-Dockerfile ignore file is built from. */
export async function locateDockerfile(opts: DefinitionOptions): Promise<{ named: string; file: string }> {
  const named = opts.dockerfile ?? path.join(opts.contextDir, DEFAULT_NAME);
  if (path.basename(named) === DEFAULT_NAME && !(await isFile(named))) {
    // moby/moby#10858: a lowercase "dockerfile" is accepted where "Dockerfile" is expected
    const lower = path.join(path.dirname(named), DEFAULT_NAME.toLowerCase());
    if (await isFile(lower)) return { named, file: lower };
  }
  return { named, file: named };
}

/** The Dockerfile, parsed; a KilnError saying which file and what to do when it cannot be read. */
export async function readDockerfile(opts: DefinitionOptions): Promise<Dockerfile> {
  if (opts.dockerfileText !== undefined) return parseDockerfile(opts.dockerfileText, DEFAULT_NAME);
  const { file } = await locateDockerfile(opts);
  const display = path.relative(process.cwd(), file) || file;
  const shown = display.startsWith('..') ? file : display;
  const text = await fs.readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    const { what, hint } = describeErrno(e);
    throw new KilnError(`cannot read Dockerfile ${shown}: ${what}`, {
      hint: e.code !== 'ENOENT' ? hint : opts.dockerfile ? 'check the path given to -f' : `put a Dockerfile in ${opts.contextDir}, or pass -f PATH to name another one`,
    });
  });
  return parseDockerfile(text, shown);
}

/**
 * The ignore file for the context: `<Dockerfile>.dockerignore` beside the Dockerfile when it
 * exists (for the default Dockerfile that is <context>/Dockerfile.dockerignore), else
 * <context>/.dockerignore. A Dockerfile from stdin has no ignore file of its own.
 */
export async function ignoreFileFor(opts: DefinitionOptions): Promise<string> {
  if (opts.dockerfileText === undefined) {
    const own = `${opts.dockerfile ?? path.join(opts.contextDir, DEFAULT_NAME)}.dockerignore`;
    if (await isFile(own)) return own;
  }
  return path.join(opts.contextDir, '.dockerignore');
}
