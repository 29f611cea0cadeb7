/**
 * The check configuration: BuildKit's `# check=` directive (skip, error, experimental), the
 * per-instruction `# check=` comments, the BUILDKIT_DOCKERFILE_CHECK build arg and the
 * options a caller adds.
 */
import { KilnError } from '../../errors.js';
import type { Dockerfile, Instruction } from '../ast.js';
import type { CheckOptions } from './types.js';
import { quote } from './words.js';

/** The check configuration: BuildKit's `# check=` directive, parsed. */
export interface CheckConfig {
  skip: Set<string>;
  skipAll: boolean;
  error: boolean;
  experimental: Set<string>;
  experimentalAll: boolean;
}

/** Parses a `# check=` value ("skip=A,B;error=true;experimental=all"), as BuildKit's ParseLintOptions. */
export function parseCheckConfig(value: string): CheckConfig {
  const cfg: CheckConfig = { skip: new Set(), skipAll: false, error: false, experimental: new Set(), experimentalAll: false };
  const text = value.trim();
  if (text === '') return cfg;
  for (const part of text.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) throw new Error(`invalid check option ${quote(part)}`);
    const key = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    switch (key) {
      case 'skip':
        if (v === 'all') cfg.skipAll = true;
        else for (const r of v.split(',')) cfg.skip.add(r.trim());
        break;
      case 'error': {
        const b = parseGoBool(v);
        if (b === undefined) throw new Error(`failed to parse check option ${quote(part)}: invalid syntax`);
        cfg.error = b;
        break;
      }
      case 'experimental':
        if (v === 'all') cfg.experimentalAll = true;
        else for (const r of v.split(',')) cfg.experimental.add(r.trim());
        break;
      default:
        throw new Error(`invalid check option ${quote(key)}`);
    }
  }
  return cfg;
}

const CHECK_COMMENT = /^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$/;

/**
 * The configuration for one instruction: `cfg` merged with the first `# check=` among the
 * comment lines right above it (BuildKit's per-instruction check comments). The value ends at
 * the first space, so `# check=skip=all // why` works; a malformed one is ignored. It can
 * skip rules and enable experimental ones, not change `error`.
 */
export function withCommentConfig(cfg: CheckConfig, comments: readonly string[]): CheckConfig {
  for (const comment of comments) {
    const m = CHECK_COMMENT.exec(comment.replace(/^\s+/, ''));
    if (!m || m[1].toLowerCase() !== 'check') continue;
    let local: CheckConfig;
    try {
      local = parseCheckConfig(m[2].split(' ')[0]);
    } catch {
      return cfg;
    }
    return {
      skip: new Set([...cfg.skip, ...local.skip]),
      skipAll: cfg.skipAll || local.skipAll,
      error: cfg.error,
      experimental: new Set([...cfg.experimental, ...local.experimental]),
      experimentalAll: cfg.experimentalAll || local.experimentalAll,
    };
  }
  return cfg;
}

function parseGoBool(v: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

/** The effective configuration: the BUILDKIT_DOCKERFILE_CHECK build arg replaces the directive; options add to it. */
export function resolveCheckConfig(df: Dockerfile, options: CheckOptions = {}): CheckConfig {
  const fromArg = options.buildArgs?.BUILDKIT_DOCKERFILE_CHECK;
  const source = fromArg !== undefined ? fromArg : (df.directives.check ?? '');
  let cfg: CheckConfig;
  try {
    cfg = parseCheckConfig(source);
  } catch (e) {
    const lineIndex = fromArg !== undefined ? -1 : df.lines.findIndex((l) => /^\s*#\s*check\s*=/i.test(l));
    throw new KilnError(`failed to parse check options: ${(e as Error).message}`, {
      location:
        lineIndex >= 0
          ? { file: df.fileName, line: lineIndex + 1, column: 1, sourceLine: df.lines[lineIndex] }
          : undefined,
      hint: 'the check directive takes skip=Rule1,Rule2 (or all), error=true|false and experimental=Rule (or all), separated by ";"',
    });
  }
  for (const r of options.skip ?? []) {
    if (r === 'all') cfg.skipAll = true;
    else cfg.skip.add(r);
  }
  for (const r of options.experimental ?? []) {
    if (r === 'all') cfg.experimentalAll = true;
    else cfg.experimental.add(r);
  }
  if (options.errorOnWarnings !== undefined) cfg.error = options.errorOnWarnings;
  return cfg;
}

/**
 * Whether the build's check configuration (the `# check=` directive or the
 * BUILDKIT_DOCKERFILE_CHECK build arg, and the `# check=` comment above `inst`) skips `rule`
 * there: for the rules the build itself reports (InvalidBaseImagePlatform needs the resolved
 * base). A malformed directive skips nothing here; kiln check and --check report it.
 */
export function skippedAt(df: Dockerfile, rule: string, inst: Instruction, buildArgs: Record<string, string> = {}): boolean {
  let cfg: CheckConfig;
  try {
    cfg = withCommentConfig(resolveCheckConfig(df, { buildArgs }), inst.comments);
  } catch {
    return false;
  }
  return cfg.skipAll || cfg.skip.has(rule);
}
