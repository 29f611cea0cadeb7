/**
 * The rules about what COPY and ADD take from the build context: CopyIgnoredFile (BuildKit's),
 * CopyAllWithoutDockerignore and AddInsteadOfCopy (kiln's).
 */
import path from 'node:path';
import { ignoreMatcher, patternProblem } from '../../dockerignore.js';
import { flagValue, writtenKeyword } from '../instructions.js';
import type { Instruction } from '../ast.js';
import type { Reporter } from './report.js';
import type { CheckOptions } from './types.js';
import { quote } from './words.js';

export interface IgnoreMatcher {
  matches: (p: string) => boolean;
  rootIgnored: boolean;
}

export function makeIgnoreMatcher(patterns: string[] | undefined): IgnoreMatcher | undefined {
  // a pattern BuildKit rejects fails the build itself; the check leaves it out
  const lines = (patterns ?? []).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#') && patternProblem(l) === undefined);
  // exclusions (!pattern) make static answers unreliable; BuildKit skips the rule then
  if (lines.length === 0 || lines.some((l) => l.startsWith('!'))) return undefined;
  const ig = ignoreMatcher(lines);
  const matches = (p: string): boolean => {
    const parts = p.split('/');
    for (let i = parts.length; i > 0; i--) {
      if (ig.ignores(parts.slice(0, i).join('/'))) return true;
    }
    return false;
  };
  return { matches, rootIgnored: lines.some((l) => ['*', '**', '**/*'].includes(l)) };
}

export function isUrl(src: string): boolean {
  return /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(src) || /^git@[^:]+:/.test(src);
}

const ARCHIVE_RE = /\.(tar|tar\.(gz|bz2|xz|zst|lz4|lzma|z)|tgz|tbz2?|txz|tzst|tlz)$/i;

/**
 * The context rules for one COPY/ADD. `sources` are its source words, expanded (heredoc
 * words are not sources and are left out). True when it copies the whole context.
 */
export function copyContextRules(
  r: Reporter,
  inst: Instruction,
  sources: readonly string[],
  ignore: IgnoreMatcher | undefined,
  options: CheckOptions,
): boolean {
  const kw = inst.keyword;
  const fromContext = kw === 'add' || flagValue(inst, 'from') === undefined;
  if (fromContext && ignore) {
    for (const src of sources) {
      if (isUrl(src)) continue;
      const norm = path.posix.normalize(src).replace(/\/+$/, '') || '/';
      const clean = norm.replace(/^(\.\/)+/, '').replace(/^\/+/, '');
      // the context root itself counts as ignored only under a pattern that ignores every entry
      const isRoot = clean === '' || clean === '.';
      if (isRoot ? ignore.rootIgnored : ignore.matches(clean)) {
        r.report('CopyIgnoredFile', `Attempting to ${kw === 'add' ? 'Add' : 'Copy'} file ${quote(isRoot ? norm : clean)} that is excluded by .dockerignore`, inst);
      }
    }
  }
  const copiesAll = fromContext && sources.some((s) => s === '.' || s === './' || s === '/' || s === './.');
  if (copiesAll && options.hasDockerignore === false) {
    r.report('CopyAllWithoutDockerignore', `${writtenKeyword(inst)} copies the whole build context, but the context has no .dockerignore`, inst);
  }
  return copiesAll;
}

/** AddInsteadOfCopy: ADD of local files that are not archives. `words` are all its source words, expanded. */
export function addRules(r: Reporter, inst: Instruction, words: readonly string[]): void {
  if (inst.keyword !== 'add' || flagValue(inst, 'checksum') !== undefined || flagValue(inst, 'keep-git-dir') !== undefined) return;
  const local = words.filter((s) => !isUrl(s));
  if (local.length === words.length && words.length > 0 && !local.some((s) => ARCHIVE_RE.test(s))) {
    r.report('AddInsteadOfCopy', `ADD used for local files (${words.join(' ')}); use COPY, which does not unpack or download`, inst);
  }
}
