/**
 * The rules over FROM and the global scope: InvalidDefaultArgInFrom, UndefinedArgInFrom,
 * RedundantTargetPlatform, FromPlatformFlagConstDisallowed; and each stage's base, as FROM
 * resolves it with the global ARGs (the error the build stops with when it cannot be).
 */
import { KilnError } from '../../errors.js';
import type { Dockerfile } from '../ast.js';
import type { ProcessWordResult } from '../shell.js';
import { flagValue } from '../instructions.js';
import { Stages, type GlobalArgs, type StageDecl } from '../stages.js';
import type { Reporter } from './report.js';
import { parseImageReference, parsePlatform, quote, suggest } from './words.js';
import { tryParsePlatform } from '../../oci/platform.js';

/** A stage as the dispatch-time rules see it: its FROM resolved with the global ARGs. */
export interface CheckStage extends StageDecl {
  platformFlag?: string;
  /** Base name expanded with the global ARGs (build args applied). */
  resolvedBase?: string;
  /** The earlier stage this one builds on. */
  base?: CheckStage;
}

export type ExpandMatches = (word: string, env: Record<string, string>) => ProcessWordResult | undefined;

/**
 * Runs the FROM rules and resolves each stage's base. Returns the build's error for a FROM
 * that cannot be resolved (BuildKit stops there: no later stage, no dispatch).
 */
export function fromRules(
  r: Reporter,
  df: Dockerfile,
  decls: readonly StageDecl[],
  globals: GlobalArgs,
  expand: ExpandMatches,
): { stages: Stages<CheckStage>; globalEnv: Record<string, string>; error?: KilnError } {
  const list: CheckStage[] = decls.map((d) => ({ ...d, platformFlag: flagValue(d.from, 'platform') }));
  const stages = new Stages(list);
  // InvalidDefaultArgInFrom: the FROM must work with defaults alone
  const defaultsEnv = globals.values(false);
  for (const st of list) {
    const m = expand(st.image, defaultsEnv);
    if (!m) continue;
    if (!parseImageReference(m.result)) {
      r.report('InvalidDefaultArgInFrom', `Default value for ARG ${st.image} results in empty or invalid base image name`, st.from, 'global');
    }
  }

  const globalEnv = globals.values(true);
  const reportUndeclaredFromArgs = (m: ProcessWordResult, st: CheckStage): void => {
    for (const { name, suggestion } of globals.undeclared(m.unmatched)) {
      r.report('UndefinedArgInFrom', `FROM argument '${name}' is not declared${suggestion ? ` (did you mean ${suggestion}?)` : ''}`, st.from);
    }
  };
  const fromError = (st: CheckStage, message: string, unmatched: Iterable<string>, hint: string): KilnError => {
    const s = [...unmatched].map((n) => suggest(n, Object.keys(globalEnv))).find((x) => x !== undefined);
    return new KilnError(`${message}${s ? ` (did you mean ${s}?)` : ''}`, {
      hint,
      location: { file: df.fileName, line: st.from.startLine, column: 1, sourceLine: df.lines[st.from.startLine - 1] },
    });
  };
  for (const st of list) {
    const m = expand(st.image, globalEnv);
    if (m) {
      reportUndeclaredFromArgs(m, st);
      st.resolvedBase = m.result;
      if (m.result === '') {
        return { stages, globalEnv, error: fromError(st, `base name (${st.image}) should not be blank`, m.unmatched, 'set the ARG it uses, or give it a default') };
      }
    }
    if (st.platformFlag !== undefined) {
      const pm = expand(st.platformFlag, globalEnv);
      if (pm) {
        reportUndeclaredFromArgs(pm, st);
        if (pm.matched.size === 1 && pm.unmatched.size === 0 && pm.matched.has('TARGETPLATFORM') && pm.result === globalEnv.TARGETPLATFORM) {
          r.report('RedundantTargetPlatform', `Setting platform to predefined ${st.platformFlag} in FROM is redundant as this is the default behavior`, st.from);
        }
        if (pm.matched.size === 0 && pm.unmatched.size === 0) {
          const p = parsePlatform(pm.result);
          const stageName = st.name ?? '';
          if (p && !stageName.includes(p.os) && !stageName.includes(p.architecture)) {
            r.report('FromPlatformFlagConstDisallowed', `FROM --platform flag should not use constant value ${quote(pm.result)}`, st.from);
          }
        }
        if (pm.result === '') {
          const error = fromError(st, `empty platform value from expression ${st.platformFlag}`, pm.unmatched, 'use --platform=$BUILDPLATFORM or an os/arch such as linux/amd64');
          return { stages, globalEnv, error };
        }
        const parsed = tryParsePlatform(pm.result);
        if ('problem' in parsed) {
          const error = fromError(st, `failed to parse platform ${st.platformFlag}: ${parsed.problem}`, pm.unmatched, 'write os/arch[/variant], e.g. linux/amd64, or use $BUILDPLATFORM');
          return { stages, globalEnv, error };
        }
      }
    }
    // the stage FROM names, as the build finds it
    if (st.resolvedBase !== undefined) st.base = stages.earlier(st.resolvedBase, st.index);
  }
  return { stages, globalEnv };
}
