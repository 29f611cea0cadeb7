/**
 * Build checks: BuildKit's build-check rules (docs.docker.com/reference/build-checks),
 * same names, same triggers, same messages, plus kiln's own practice rules. The rules
 * run over the syntax tree the way BuildKit's frontend does: parse-time rules over every
 * stage, dispatch-time rules stage by stage with ARG/ENV scoping (all stages, or only
 * those reachable from `target`). Nothing is pulled or executed.
 *
 * The stages and variable scopes are the build's own (dockerfile/stages.ts); the rules are
 * grouped as BuildKit groups them, under checks/: syntax.ts (parse time), from.ts (FROM and
 * the global scope), dispatch.ts (stage dispatch), context.ts (COPY/ADD and the context),
 * practice.ts (kiln's rules).
 */
import type { Dockerfile } from './ast.js';
import { ShellLexer, type ProcessWordResult } from './shell.js';
import { KilnError } from '../errors.js';
import { GlobalArgs, predefinedArgs, splitStages } from './stages.js';
import { resolveCheckConfig } from './checks/config.js';
import { makeIgnoreMatcher } from './checks/context.js';
import { dispatchStage, initialState, stageDependencies, type DispatchState } from './checks/dispatch.js';
import { fromRules, type CheckStage } from './checks/from.js';
import { baseImageRules, finalUserRules } from './checks/practice.js';
import { Reporter } from './checks/report.js';
import { fileRules, parseTimeRules } from './checks/syntax.js';
import type { CheckOptions, CheckResult } from './checks/types.js';
import { hostPlatform, parsePlatform, quote } from './checks/words.js';

export type { BaseImageConfig, CheckFinding, CheckFormat, CheckOptions, CheckResult } from './checks/types.js';
export { RULES, RULES_BY_NAME, type RuleInfo } from './checks/rules.js';
export { formatFindings, toSarif, type SarifLog } from './checks/format.js';
export { parseCheckConfig, resolveCheckConfig, withCommentConfig, type CheckConfig } from './checks/config.js';

export function runChecks(df: Dockerfile, options: CheckOptions = {}): CheckResult {
  const r = new Reporter(df, resolveCheckConfig(df, options));
  const lexer = new ShellLexer(df.directives.escape);
  const expand = (word: string, env: Record<string, string>, raw = false): ProcessWordResult | undefined => {
    try {
      if (!raw) return lexer.processWordWithMatches(word, env);
      const l = new ShellLexer('\\');
      l.skipProcessQuotes = true;
      return l.processWordWithMatches(word, env);
    } catch {
      return undefined; // the build reports malformed words; a check does not
    }
  };

  // NoEmptyContinuation: the parser's warning, at the line that ends the continued instruction (as BuildKit)
  for (const w of df.warnings) {
    if (w.rule === 'NoEmptyContinuation') r.report('NoEmptyContinuation', 'Empty continuation line', { startLine: w.line, endLine: w.line }, 'global');
  }

  const { metaArgs, stages: decls } = splitStages(df);
  if (decls.length === 0) return r.result();
  parseTimeRules(r, metaArgs, decls);
  // after a parse error BuildKit has run only the rules above, on the instructions before it
  if (options.parseTimeOnly) return r.result();
  fileRules(r, decls);

  // ---- the global scope, as the build makes it
  const targetPlatform = (options.platform && parsePlatform(options.platform)) || hostPlatform();
  const globals = new GlobalArgs(
    metaArgs,
    predefinedArgs(targetPlatform, hostPlatform(), options.target || decls[decls.length - 1].name),
    options.buildArgs ?? {},
    (word, env) => expand(word, env)?.result ?? word,
  );
  const { stages, globalEnv, error } = fromRules(r, df, decls, globals, expand);
  if (error) return r.result(error);

  // ---- which stages are dispatched
  let target = stages.list[stages.list.length - 1];
  if (options.target !== undefined) {
    const t = stages.named(options.target);
    if (!t) {
      throw new KilnError(`target stage ${quote(options.target)} could not be found`, {
        hint: `stages in ${df.fileName}: ${stages.names().join(', ') || '(none named)'}`,
      });
    }
    target = t;
  }
  const dispatched = new Set<CheckStage>();
  if (options.target === undefined) {
    for (const st of stages.list) dispatched.add(st);
  } else {
    const visit = (st: CheckStage): void => {
      if (dispatched.has(st)) return;
      dispatched.add(st);
      if (st.base) visit(st.base);
      for (const dep of stageDependencies(st, stages)) visit(dep);
    };
    visit(target);
  }

  // ---- dispatch-time rules
  const states = new Map<CheckStage, DispatchState>();
  const env = { r, options, escapeToken: df.directives.escape, expand, globalEnv, ignore: makeIgnoreMatcher(options.dockerignorePatterns) };
  for (const st of stages.list) {
    if (!dispatched.has(st)) continue;
    const state = initialState(st, st.base ? states.get(st.base) : undefined, options);
    states.set(st, state);
    dispatchStage(env, st, state);
  }

  // ---- kiln's rules over the stages' bases and the final stage
  for (const st of stages.list) if (dispatched.has(st)) baseImageRules(r, st);
  const final = states.get(target);
  if (final) finalUserRules(r, target, final.user, final.imageUser);

  return r.result();
}
