import { promises as fs } from 'node:fs';
import path from 'node:path';
import dockerignoreModule from '@balena/dockerignore';
import { fromErrno, KilnError } from './errors.js';

/**
 * @balena/dockerignore is CommonJS (`module.exports = factory`) but its typings say
 * `export default`; under NodeNext the default import is the factory at run time.
 */
export const dockerignore = dockerignoreModule as unknown as typeof dockerignoreModule.default;
export type DockerIgnore = ReturnType<typeof dockerignore>;

/**
 * A pattern as @balena/dockerignore must be given it to match as BuildKit does: the library
 * follows moby 19.03, which turns `+ ( ) | { }` into regular-expression syntax (so `c++` or
 * `foo(1).txt` fail to compile or match the wrong files); BuildKit's patternmatcher
 * matches them literally. Escaping them with `\` gives the literal match.
 */
function literalRegexChars(pattern: string): string {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '\\' && i + 1 < pattern.length) {
      out += c + (pattern[++i] as string);
    } else {
      out += '+()|{}'.includes(c) ? `\\${c}` : c;
    }
  }
  return out;
}

/** A .dockerignore matcher for these patterns (as read by readIgnorePatterns). */
export function ignoreMatcher(patterns: string[]): DockerIgnore {
  return dockerignore({ ignorecase: false }).add(patterns.map(literalRegexChars));
}

/** A matcher for COPY --exclude patterns, which follow .dockerignore's rules. */
export function excludeMatcher(patterns: string[]): (rel: string) => boolean {
  if (patterns.length === 0) return () => false;
  const ig = ignoreMatcher(patterns.map((p) => p.replace(/^\/+/, '')));
  return (rel) => rel !== '' && ig.ignores(rel);
}

/**
 * What is wrong with one ignore pattern, by Go's filepath.Match rules (which BuildKit uses to
 * reject a pattern), or undefined when it is fine: a lone `!`, a `[` class without its `]`,
 * an empty or inverted range, a trailing `\`.
 */
export function patternProblem(pattern: string): string | undefined {
  if (pattern === '!') return 'a "!" alone excludes nothing: write !PATH to re-include a path';
  const chars = Array.from(pattern.startsWith('!') ? pattern.slice(1) : pattern);
  let i = 0;
  const escaped = (): string | undefined => {
    // one class character, maybe \-escaped; undefined when there is none
    let c = chars[i];
    if (c === undefined || c === '-' || c === ']') return undefined;
    if (c === '\\') {
      i++;
      c = chars[i];
      if (c === undefined) return undefined;
    }
    i++;
    return c;
  };
  while (i < chars.length) {
    const c = chars[i];
    if (c === '\\') {
      if (i + 1 >= chars.length) return 'it ends with a lone "\\"';
      i += 2;
      continue;
    }
    if (c !== '[') {
      i++;
      continue;
    }
    i++;
    if (chars[i] === '^') i++;
    let ranges = 0;
    for (;;) {
      if (chars[i] === ']' && ranges > 0) {
        i++;
        break;
      }
      if (i >= chars.length) return 'a "[" has no closing "]" (write \\[ for a literal bracket)';
      const lo = escaped();
      if (lo === undefined) return 'a "[...]" class is empty or malformed';
      let hi = lo;
      if (chars[i] === '-') {
        i++;
        const h = escaped();
        if (h === undefined) return 'a range in "[...]" has no upper end';
        hi = h;
      }
      if (hi < lo) return `the range ${lo}-${hi} is backwards`;
      ranges++;
    }
  }
  return undefined;
}

/**
 * The patterns of an ignore file (empty when there is none), comments and blank lines
 * dropped; a KilnError naming the file, the line and the pattern for a pattern BuildKit
 * rejects. `shown` is how the file is named in messages.
 */
export async function readIgnorePatterns(file: string, shown = file): Promise<string[]> {
  const text = await fs.readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return undefined;
    throw fromErrno(e, `reading ${shown}`, { hint: 'make it a readable file, or remove it' });
  });
  if (text === undefined) return [];
  const patterns: string[] = [];
  text.replace(/^\ufeff/, '').split(/\r?\n/).forEach((raw, n) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const problem = patternProblem(line);
    if (problem) {
      throw new KilnError(`${shown}:${n + 1}: invalid pattern "${line}": ${problem}`, {
        hint: `fix or remove line ${n + 1} of ${path.basename(shown)}`,
      });
    }
    patterns.push(line);
  });
  return patterns;
}
