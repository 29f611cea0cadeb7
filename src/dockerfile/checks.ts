/**
 * Build checks: BuildKit's build-check rules (docs.docker.com/reference/build-checks),
 * same names, same triggers, same messages, plus kiln's own practice rules. The rules
 * run over the syntax tree the way BuildKit's frontend does: parse-time rules over every
 * stage, dispatch-time rules stage by stage with ARG/ENV scoping (all stages, or only
 * those reachable from `target`). Nothing is pulled or executed.
 */
import path from 'node:path';
import { ignoreMatcher, patternProblem } from '../dockerignore.js';
import type { Dockerfile, Instruction } from './ast.js';
import { ShellLexer, type EscapeToken, type ProcessWordResult } from './shell.js';
import { KilnError } from '../errors.js';
import { ruleInfo } from './checks/rules.js';
import type { BaseImageConfig, CheckFinding, CheckOptions, CheckResult } from './checks/types.js';
import { hostPlatform, parseImageReference, parsePlatform, quote, suggest } from './checks/words.js';
import { predefinedPlatformArgs, tryParsePlatform } from '../oci/platform.js';

export type { BaseImageConfig, CheckFinding, CheckFormat, CheckOptions, CheckResult } from './checks/types.js';
export { RULES, RULES_BY_NAME, type RuleInfo } from './checks/rules.js';
export { formatFindings, toSarif, type SarifLog } from './checks/format.js';

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

// ---------------------------------------------------------------------------
// the model the rules run over

interface Stage {
  index: number;
  from: Instruction;
  /** Base name as written. */
  baseName: string;
  /** Stage name, lowercased; undefined when unnamed. */
  name?: string;
  platformFlag?: string;
  commands: Instruction[];
  /** Base name expanded with the global ARGs (build args applied). */
  resolvedBase?: string;
  /** The earlier stage this one builds on. */
  base?: Stage;
}

interface KeyValue {
  key: string;
  value?: string;
}

interface DispatchState {
  env: Map<string, string>;
  /** ARG keys declared in the stage (and its base stages). */
  buildArgs: Set<string>;
  workdirSet: boolean;
  shellSet: boolean;
  user?: { value: string; inst: Instruction };
  /** Set when the stage's root is an external image whose config we were given. */
  imageUser?: string;
}

const PREDEFINED_NON_ENV = new Set(['BUILDKIT_SBOM_SCAN_CONTEXT', 'BUILDKIT_SBOM_SCAN_STAGE']);
const RESERVED_STAGE_NAMES = new Set(['context', 'scratch']);
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The keyword as written (original casing). */
function writtenKeyword(inst: Instruction): string {
  const m = /^\s*(\S+)/.exec(inst.original);
  return m ? m[1] : inst.keyword;
}

function isSelfConsistentCasing(s: string): boolean {
  return s === s.toLowerCase() || s === s.toUpperCase();
}

/** The value of `--name=value` (last one wins), `''` for a bare `--name`, undefined when absent. */
function flagValue(inst: Instruction, name: string): string | undefined {
  let out: string | undefined;
  for (const f of inst.flags) {
    if (f === `--${name}`) out = '';
    else if (f.startsWith(`--${name}=`)) out = f.slice(name.length + 3);
  }
  return out;
}

function flagValues(inst: Instruction, name: string): string[] {
  return inst.flags.filter((f) => f.startsWith(`--${name}=`)).map((f) => f.slice(name.length + 3));
}

/** ARG words: "K=V" or "K". */
function argPairs(inst: Instruction): KeyValue[] {
  return inst.args.map((w) => {
    const eq = w.indexOf('=');
    return eq === -1 ? { key: w } : { key: w.slice(0, eq), value: w.slice(eq + 1) };
  });
}

/** ENV/LABEL: args are [k1, v1, k2, v2, ...]. */
function keyValuePairs(inst: Instruction): KeyValue[] {
  const out: KeyValue[] = [];
  for (let i = 0; i < inst.args.length; i += 2) out.push({ key: inst.args[i], value: inst.args[i + 1] ?? '' });
  return out;
}

/** True when ENV/LABEL uses the legacy `KEY value` form (first word without '='). */
function isLegacyKeyValue(inst: Instruction): boolean {
  const rest = inst.original.replace(/^\s*\S+\s*/, '');
  const first = /^\S*/.exec(rest)?.[0] ?? '';
  return rest !== '' && !first.includes('=');
}

/** COPY/ADD sources and destination (heredoc sources keep their `<<NAME` word). */
function sourcesAndDest(inst: Instruction): { sources: string[]; dest: string } {
  const args = inst.args;
  return { sources: args.slice(0, -1), dest: args[args.length - 1] ?? '' };
}

function isHeredocWord(w: string): boolean {
  return /^<<-?/.test(w);
}

function isUrl(src: string): boolean {
  return /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(src) || /^git@[^:]+:/.test(src);
}

const ARCHIVE_RE = /\.(tar|tar\.(gz|bz2|xz|zst|lz4|lzma|z)|tgz|tbz2?|txz|tzst|tlz)$/i;

/** The shell text a RUN executes, heredoc bodies included. */
function runScript(inst: Instruction): string {
  return [inst.args.join(' '), ...inst.heredocs.map((h) => h.content)].join('\n');
}

// ---------------------------------------------------------------------------

export function runChecks(df: Dockerfile, options: CheckOptions = {}): CheckResult {
  const cfg = resolveCheckConfig(df, options);
  const escapeToken: EscapeToken = df.directives.escape;
  const lexer = new ShellLexer(escapeToken);
  const findings: CheckFinding[] = [];
  const severity = cfg.error ? 'error' : 'warning';

  const scoped = new Map<Instruction, CheckConfig>();
  const enabled = (rule: string, scope: Instruction | 'global'): boolean => {
    let c = cfg;
    if (scope !== 'global') {
      c = scoped.get(scope) ?? withCommentConfig(cfg, scope.comments);
      scoped.set(scope, c);
    }
    const info = ruleInfo(rule);
    if (info.experimental) return c.experimentalAll || c.experimental.has(rule);
    return !c.skipAll && !c.skip.has(rule);
  };
  /**
   * Records a finding at `at`. `scope` is the instruction whose `# check=` comment applies
   * (default `at` itself when it is an instruction); 'global' for the rules BuildKit runs
   * over the whole file, which only the directive configures.
   */
  const report = (rule: string, message: string, at: Instruction | { startLine: number; endLine: number }, scope?: Instruction | 'global'): void => {
    if (!enabled(rule, scope ?? ('comments' in at ? at : 'global'))) return;
    const info = ruleInfo(rule);
    const line = df.lines[at.startLine - 1];
    const col = line !== undefined ? Math.max(1, line.search(/\S/) + 1) : undefined;
    findings.push({
      rule,
      message,
      line: at.startLine,
      endLine: at.endLine,
      ...(col !== undefined ? { column: col } : {}),
      severity,
      ...(info.url ? { url: info.url } : {}),
      description: info.explanation,
    });
  };
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
    if (w.rule === 'NoEmptyContinuation') report('NoEmptyContinuation', 'Empty continuation line', { startLine: w.line, endLine: w.line }, 'global');
  }

  // split into global ARGs and stages
  const metaArgs: Instruction[] = [];
  const stages: Stage[] = [];
  for (const inst of df.instructions) {
    if (inst.keyword === 'from') {
      const a = inst.args;
      const named = a.length === 3 && a[1].toLowerCase() === 'as';
      stages.push({
        index: stages.length,
        from: inst,
        baseName: a[0] ?? '',
        name: named ? a[2].toLowerCase() : undefined,
        platformFlag: flagValue(inst, 'platform'),
        commands: [],
      });
    } else if (stages.length === 0) {
      if (inst.keyword === 'arg') metaArgs.push(inst);
    } else {
      stages[stages.length - 1].commands.push(inst);
    }
  }
  const result = (error?: KilnError): CheckResult => {
    const deduped = dedupe(findings);
    return { findings: sortFindings(deduped), failed: error !== undefined || (cfg.error && deduped.length > 0), ...(error ? { error } : {}) };
  };
  if (stages.length === 0) return result();

  /** InvalidDefinitionDescription: the comment right above a named stage or an ARG should start with its name. */
  function checkDescription(inst: Instruction, what: 'ARG' | 'FROM', keys: string[]): void {
    const last = inst.comments[inst.comments.length - 1];
    if (last === undefined || keys.length === 0 || keys.includes(last.split(' ')[0])) return;
    report('InvalidDefinitionDescription', `Comment for ${what} should follow the format: \`# ${keys.length > 1 ? '<arg_key>' : keys[0]} <description>\``, inst);
  }

  // ---- parse-time rules (every stage)
  for (const st of stages) {
    const fromWord = writtenKeyword(st.from);
    const a = st.from.args;
    if (a.length === 3 && a[1].toLowerCase() === 'as') {
      const asWord = a[1];
      const fromLower = fromWord === fromWord.toLowerCase();
      const fromUpper = fromWord === fromWord.toUpperCase();
      if ((fromLower && asWord !== asWord.toLowerCase()) || (!fromLower && fromUpper && asWord !== asWord.toUpperCase())) {
        report('FromAsCasing', `'${asWord}' and '${fromWord}' keywords' casing do not match`, st.from);
      }
      if (a[2] !== a[2].toLowerCase()) report('StageNameCasing', `Stage name '${a[2]}' should be lowercase`, st.from);
    }
    if (st.name !== undefined) checkDescription(st.from, 'FROM', [st.name]);
    for (const c of st.commands) {
      if (c.keyword === 'maintainer') report('MaintainerDeprecated', 'Maintainer instruction is deprecated in favor of using label', c);
      if (c.keyword === 'arg') checkDescription(c, 'ARG', argPairs(c).map((kv) => kv.key));
    }
  }
  for (const inst of metaArgs) checkDescription(inst, 'ARG', argPairs(inst).map((kv) => kv.key));
  // after a parse error BuildKit has run only the rules above, on the instructions before it
  if (options.parseTimeOnly) return result();

  const seenNames = new Set<string>();
  for (const st of stages) {
    if (!st.name) continue;
    if (RESERVED_STAGE_NAMES.has(st.name)) {
      report('ReservedStageName', `Stage name should not use the same name as reserved stage ${quote(st.name)}`, st.from, 'global');
    }
    if (seenNames.has(st.name)) report('DuplicateStageName', `Duplicate stage name ${quote(st.name)}, stage names should be unique`, st.from, 'global');
    seenNames.add(st.name);
  }
  {
    let lower = 0;
    let upper = 0;
    const all = stages.flatMap((st) => [st.from, ...st.commands]);
    for (const inst of all) {
      const k = writtenKeyword(inst);
      if (!isSelfConsistentCasing(k)) continue;
      if (k === k.toLowerCase()) lower++;
      else upper++;
    }
    const majorityLower = lower > upper;
    for (const inst of all) {
      const k = writtenKeyword(inst);
      if (majorityLower && k !== k.toLowerCase()) {
        report('ConsistentInstructionCasing', `Command '${k}' should match the case of the command majority (lowercase)`, inst, 'global');
      } else if (!majorityLower && k !== k.toUpperCase()) {
        report('ConsistentInstructionCasing', `Command '${k}' should match the case of the command majority (uppercase)`, inst, 'global');
      }
    }
  }

  // ---- global ARGs
  const targetPlatform = (options.platform && parsePlatform(options.platform)) || hostPlatform();
  const buildPlatform = hostPlatform();
  const lastNamed = options.target ?? stages[stages.length - 1].name ?? '';
  const predefined: Record<string, string> = { ...predefinedPlatformArgs(targetPlatform, buildPlatform), TARGETSTAGE: lastNamed };
  const buildArgs = options.buildArgs ?? {};
  const metaEnv = (withBuildArgs: boolean): Record<string, string> => {
    const env: Record<string, string> = { ...predefined };
    for (const inst of metaArgs) {
      for (const kv of argPairs(inst)) {
        let value: string | undefined = kv.value;
        if (withBuildArgs && Object.hasOwn(buildArgs, kv.key)) {
          env[kv.key] = buildArgs[kv.key];
          continue;
        }
        if (value === undefined) continue;
        value = expand(value, env)?.result ?? value;
        env[kv.key] = value;
      }
    }
    return env;
  };
  const declaredMetaKeys = new Set(metaArgs.flatMap((i) => argPairs(i).map((kv) => kv.key)));

  // InvalidDefaultArgInFrom: the FROM must work with defaults alone
  const defaultsEnv = metaEnv(false);
  for (const st of stages) {
    const m = expand(st.baseName, defaultsEnv);
    if (!m) continue;
    if (!parseImageReference(m.result)) {
      report('InvalidDefaultArgInFrom', `Default value for ARG ${st.baseName} results in empty or invalid base image name`, st.from, 'global');
    }
  }

  const globalEnv = metaEnv(true);
  const fromArgKeys = new Set([...Object.keys(globalEnv), ...declaredMetaKeys]);
  const reportUndeclaredFromArgs = (m: ProcessWordResult, st: Stage): void => {
    for (const name of m.unmatched) {
      if (fromArgKeys.has(name)) continue;
      const s = suggest(name, fromArgKeys);
      report('UndefinedArgInFrom', `FROM argument '${name}' is not declared${s ? ` (did you mean ${s}?)` : ''}`, st.from);
    }
  };
  const stagesByName = new Map<string, Stage>();
  /** The build's error for a FROM that cannot be resolved (BuildKit stops there: no later stage, no dispatch). */
  const fromError = (st: Stage, message: string, unmatched: Iterable<string>, hint: string): KilnError => {
    const s = [...unmatched].map((n) => suggest(n, Object.keys(globalEnv))).find((x) => x !== undefined);
    return new KilnError(`${message}${s ? ` (did you mean ${s}?)` : ''}`, {
      hint,
      location: { file: df.fileName, line: st.from.startLine, column: 1, sourceLine: df.lines[st.from.startLine - 1] },
    });
  };
  for (const st of stages) {
    const m = expand(st.baseName, globalEnv);
    if (m) {
      reportUndeclaredFromArgs(m, st);
      st.resolvedBase = m.result;
      if (m.result === '') return result(fromError(st, `base name (${st.baseName}) should not be blank`, m.unmatched, 'set the ARG it uses, or give it a default'));
    }
    if (st.platformFlag !== undefined) {
      const pm = expand(st.platformFlag, globalEnv);
      if (pm) {
        reportUndeclaredFromArgs(pm, st);
        if (pm.matched.size === 1 && pm.unmatched.size === 0 && pm.matched.has('TARGETPLATFORM') && pm.result === globalEnv.TARGETPLATFORM) {
          report(
            'RedundantTargetPlatform',
            `Setting platform to predefined ${st.platformFlag} in FROM is redundant as this is the default behavior`,
            st.from,
          );
        }
        if (pm.matched.size === 0 && pm.unmatched.size === 0) {
          const p = parsePlatform(pm.result);
          const stageName = st.name ?? '';
          if (p && !stageName.includes(p.os) && !stageName.includes(p.architecture)) {
            report('FromPlatformFlagConstDisallowed', `FROM --platform flag should not use constant value ${quote(pm.result)}`, st.from);
          }
        }
        if (pm.result === '') {
          return result(fromError(st, `empty platform value from expression ${st.platformFlag}`, pm.unmatched, 'use --platform=$BUILDPLATFORM or an os/arch such as linux/amd64'));
        }
        const parsed = tryParsePlatform(pm.result);
        if ('problem' in parsed) {
          return result(fromError(st, `failed to parse platform ${st.platformFlag}: ${parsed.problem}`, pm.unmatched, 'write os/arch[/variant], e.g. linux/amd64, or use $BUILDPLATFORM'));
        }
      }
    }
    if (st.resolvedBase !== undefined) st.base = stagesByName.get(st.resolvedBase);
    if (st.name) stagesByName.set(st.name, st);
  }

  // ---- which stages are dispatched
  let target = stages[stages.length - 1];
  if (options.target !== undefined) {
    const t = stagesByName.get(options.target.toLowerCase());
    if (!t) {
      throw new KilnError(`target stage ${quote(options.target)} could not be found`, {
        hint: `stages in ${df.fileName}: ${stages.map((s) => s.name).filter(Boolean).join(', ') || '(none named)'}`,
      });
    }
    target = t;
  }
  const dispatched = new Set<Stage>();
  if (options.target === undefined) {
    for (const st of stages) dispatched.add(st);
  } else {
    const visit = (st: Stage): void => {
      if (dispatched.has(st)) return;
      dispatched.add(st);
      if (st.base) visit(st.base);
      for (const dep of stageDependencies(st, stages, stagesByName)) visit(dep);
    };
    visit(target);
  }

  // ---- dispatch-time rules
  const states = new Map<Stage, DispatchState>();
  const dockerignoreMatcher = makeIgnoreMatcher(options.dockerignorePatterns);
  for (const st of stages) {
    if (!dispatched.has(st)) continue;
    let state: DispatchState;
    const parent = st.base ? states.get(st.base) : undefined;
    if (parent) {
      state = {
        env: new Map(parent.env),
        buildArgs: new Set(parent.buildArgs),
        workdirSet: parent.workdirSet,
        shellSet: parent.shellSet,
        user: parent.user,
        imageUser: parent.imageUser,
      };
    } else {
      const config: BaseImageConfig | undefined =
        st.resolvedBase && st.resolvedBase !== 'scratch' ? options.imageConfig?.(st.resolvedBase) : undefined;
      const env = new Map<string, string>();
      for (const e of config?.env ?? []) {
        const eq = e.indexOf('=');
        env.set(eq === -1 ? e : e.slice(0, eq), eq === -1 ? '' : e.slice(eq + 1));
      }
      if (!env.has('PATH')) env.set('PATH', DEFAULT_PATH);
      state = { env, buildArgs: new Set(), workdirSet: false, shellSet: false, imageUser: config?.user };
    }
    states.set(st, state);
    dispatchStage(st, state);
  }

  function envRecord(state: DispatchState): Record<string, string> {
    return Object.fromEntries(state.env);
  }

  /** Expands a word in the stage, reporting UndefinedVar for variables neither set nor declared. */
  function expandReporting(word: string, state: DispatchState, inst: Instruction, raw = false): string | undefined {
    const m = expand(word, envRecord(state), raw);
    if (!m) return undefined;
    for (const name of m.unmatched) {
      if (state.buildArgs.has(name) || PREDEFINED_NON_ENV.has(name)) continue;
      const s = suggest(name, state.env.keys());
      report('UndefinedVar', `Usage of undefined variable '$${name}'${s ? ` (did you mean $${s}?)` : ''}`, inst);
    }
    return m.result;
  }

  function dispatchStage(st: Stage, state: DispatchState): void {
    const trackers = new Map<string, Instruction>();
    let copyAll: Instruction | undefined;
    const installsBeforeCopyAll = new Set<string>();
    for (const inst of st.commands) {
      const kw = inst.keyword;
      // single-word expansion, as the instruction's Expand does before dispatch
      switch (kw) {
        case 'env':
        case 'label':
          for (const kv of keyValuePairs(inst)) {
            expandReporting(kv.key, state, inst);
            if (kv.value !== undefined) expandReporting(kv.value, state, inst);
          }
          break;
        case 'copy':
        case 'add': {
          for (const f of ['chown', 'chmod', 'from', 'checksum']) {
            const v = flagValue(inst, f);
            if (v) expandReporting(v, state, inst);
          }
          for (const w of inst.args) expandReporting(w, state, inst);
          for (const h of inst.heredocs) if (h.expand) expandReporting(h.content, state, inst);
          break;
        }
        case 'workdir':
        case 'user':
        case 'volume':
        case 'stopsignal':
          for (const w of inst.args) expandReporting(w, state, inst);
          break;
        case 'run':
          for (const m of flagValues(inst, 'mount')) expandReporting(m, state, inst, true);
          break;
      }

      switch (kw) {
        case 'env': {
          if (isLegacyKeyValue(inst)) report('LegacyKeyValueFormat', `"${writtenKeyword(inst)} key=value" should be used instead of legacy "${writtenKeyword(inst)} key value" format`, inst);
          const env = envRecord(state);
          const updates: [string, string][] = [];
          for (const kv of keyValuePairs(inst)) {
            const key = expand(kv.key, env)?.result ?? kv.key;
            checkSecret('ENV', key, inst);
            updates.push([key, expand(kv.value ?? '', env)?.result ?? '']);
          }
          for (const [k, v] of updates) state.env.set(k, v);
          break;
        }
        case 'label':
          if (isLegacyKeyValue(inst)) report('LegacyKeyValueFormat', `"${writtenKeyword(inst)} key=value" should be used instead of legacy "${writtenKeyword(inst)} key value" format`, inst);
          break;
        case 'arg':
          for (const kv of argPairs(inst)) {
            checkSecret('ARG', kv.key, inst);
            let value: string | undefined;
            if (Object.hasOwn(buildArgs, kv.key)) value = buildArgs[kv.key];
            else if (kv.value !== undefined) value = expandReporting(kv.value, state, inst) ?? kv.value;
            else if (Object.hasOwn(globalEnv, kv.key)) value = globalEnv[kv.key];
            if (value !== undefined && !PREDEFINED_NON_ENV.has(kv.key)) state.env.set(kv.key, value);
            state.buildArgs.add(kv.key);
          }
          break;
        case 'workdir': {
          const p = expand(inst.args[0] ?? '', envRecord(state))?.result ?? inst.args[0] ?? '';
          if (!state.workdirSet && !p.startsWith('/')) {
            report('WorkdirRelativePath', `Relative workdir ${quote(p)} can have unexpected results if the base image changes`, inst);
          }
          state.workdirSet = true;
          break;
        }
        case 'cmd':
        case 'entrypoint':
        case 'healthcheck': {
          const prev = trackers.get(kw);
          if (prev) {
            report(
              'MultipleInstructionsDisallowed',
              `Multiple ${writtenKeyword(inst)} instructions should not be used in the same stage because only the last one will be used`,
              prev,
              inst,
            );
          }
          trackers.set(kw, inst);
          if (kw !== 'healthcheck' && !inst.json && !state.shellSet) {
            report('JSONArgsRecommended', `JSON arguments recommended for ${writtenKeyword(inst)} to prevent unintended behavior related to OS signals`, inst);
          }
          break;
        }
        case 'shell':
          state.shellSet = true;
          break;
        case 'user':
          state.user = { value: expand(inst.args[0] ?? '', envRecord(state))?.result ?? inst.args[0] ?? '', inst };
          break;
        case 'expose': {
          const env = envRecord(state);
          for (const word of inst.args) {
            let ports: string[];
            try {
              ports = new ShellLexer(escapeToken).processWords(word, env);
            } catch {
              ports = [word];
            }
            for (const p of ports) {
              const slash = p.lastIndexOf('/');
              const proto = slash === -1 ? '' : p.slice(slash + 1);
              const spec = slash === -1 ? p : p.slice(0, slash);
              if (spec.includes(':')) {
                report('ExposeInvalidFormat', `EXPOSE instruction should not define an IP address or host-port mapping, found '${p}'`, inst);
              }
              if (proto !== proto.toLowerCase()) {
                report('ExposeProtoCasing', `Defined protocol '${p}' in EXPOSE instruction should be lowercase`, inst);
              }
            }
          }
          break;
        }
        case 'copy':
        case 'add': {
          const fromContext = kw === 'add' || flagValue(inst, 'from') === undefined;
          const { sources } = sourcesAndDest(inst);
          const env = envRecord(state);
          const expanded = sources.map((s) => (isHeredocWord(s) ? s : (expand(s, env)?.result ?? s)));
          if (fromContext && dockerignoreMatcher) {
            for (const src of expanded) {
              if (isHeredocWord(src) || isUrl(src)) continue;
              const norm = path.posix.normalize(src).replace(/\/+$/, '') || '/';
              const clean = norm.replace(/^(\.\/)+/, '').replace(/^\/+/, '');
              // the context root itself counts as ignored only under a pattern that ignores every entry
              const isRoot = clean === '' || clean === '.';
              if (isRoot ? dockerignoreMatcher.rootIgnored : dockerignoreMatcher.matches(clean)) {
                report('CopyIgnoredFile', `Attempting to ${kw === 'add' ? 'Add' : 'Copy'} file ${quote(isRoot ? norm : clean)} that is excluded by .dockerignore`, inst);
              }
            }
          }
          const copiesAll = fromContext && expanded.some((s) => s === '.' || s === './' || s === '/' || s === './.');
          if (copiesAll) {
            copyAll ??= inst;
            if (options.hasDockerignore === false) {
              report(
                'CopyAllWithoutDockerignore',
                `${writtenKeyword(inst)} copies the whole build context, but the context has no .dockerignore`,
                inst,
              );
            }
          }
          if (kw === 'add' && flagValue(inst, 'checksum') === undefined && flagValue(inst, 'keep-git-dir') === undefined) {
            const local = expanded.filter((s) => !isUrl(s));
            if (local.length === expanded.length && expanded.length > 0 && !local.some((s) => ARCHIVE_RE.test(s))) {
              report('AddInsteadOfCopy', `ADD used for local files (${expanded.join(' ')}); use COPY, which does not unpack or download`, inst);
            }
          }
          break;
        }
        case 'run': {
          const script = runScript(inst);
          for (const tool of dependencyInstalls(script)) {
            if (!copyAll) installsBeforeCopyAll.add(tool.ecosystem);
            else if (!installsBeforeCopyAll.has(tool.ecosystem)) {
              report(
                'DependencyInstallAfterCopyAll',
                `'${tool.command}' runs after '${oneLine(copyAll.original)}' (line ${copyAll.startLine}): any source change re-runs the install`,
                inst,
              );
              break;
            }
          }
          if (/\bapt(?:-get)?\b[^;&|\n]*\binstall\b/.test(script) && !/\brm\s[^;&|\n]*\/var\/lib\/apt\/lists/.test(script)) {
            const cached = flagValues(inst, 'mount').some((m) => /type=cache/.test(m) && /(target|dst|destination)=\/var\/lib\/apt(\/lists)?\/?(,|$)/.test(m));
            if (!cached) {
              report('AptListsNotCleaned', 'apt-get install without removing /var/lib/apt/lists/* in the same RUN leaves the package lists in the layer', inst);
            }
          }
          break;
        }
      }
    }
  }

  function checkSecret(instruction: 'ARG' | 'ENV', key: string, inst: Instruction): void {
    if (SECRET_DENY.test(key) && !SECRET_ALLOW.test(key)) {
      report('SecretsUsedInArgOrEnv', `Do not use ARG or ENV instructions for sensitive data (${instruction} ${quote(key)})`, inst);
    }
  }

  // ---- kiln: BaseImageUnpinned
  for (const st of stages) {
    if (!dispatched.has(st) || st.base || st.resolvedBase === undefined) continue;
    const base = st.resolvedBase;
    if (base === 'scratch' || /\$/.test(base)) continue;
    const ref = parseImageReference(base);
    if (!ref || ref.digest) continue;
    if (!ref.tag) report('BaseImageUnpinned', `Base image ${quote(base)} is not pinned to a tag or digest`, st.from);
    else if (ref.tag === 'latest') report('BaseImageUnpinned', `Base image ${quote(base)} uses the mutable 'latest' tag`, st.from);
  }

  // ---- kiln: FinalStageRunsAsRoot
  {
    const state = states.get(target);
    if (state) {
      const name = target.name ? ` '${target.name}'` : '';
      if (state.user) {
        if (isRootUser(state.user.value)) {
          report('FinalStageRunsAsRoot', `Final stage${name} switches to USER ${state.user.value}: the image runs as root`, state.user.inst);
        }
      } else if (state.imageUser === undefined || isRootUser(state.imageUser)) {
        report('FinalStageRunsAsRoot', `Final stage${name} sets no USER: the image runs as root`, target.from);
      }
    }
  }

  return result();
}

// BuildKit's secret-name heuristic: a secret-ish token as the whole name or as a _-separated word
const SECRET_TOKENS = ['apikey', 'auth', 'credential', 'credentials', 'key', 'password', 'pword', 'passwd', 'secret', 'token'];
const SECRET_DENY = new RegExp(`(?:_|^)(?:${SECRET_TOKENS.join('|')})(?:_|$)`, 'i');
const SECRET_ALLOW = /(?:_|^)(?:public|file|version)(?:_|$)/i;

function isRootUser(user: string): boolean {
  const name = user.split(':')[0].trim();
  return name === '' || name === 'root' || name === '0';
}

interface InstallCommand {
  ecosystem: string;
  command: string;
}

const INSTALL_PATTERNS: { ecosystem: string; re: RegExp }[] = [
  { ecosystem: 'npm', re: /\bnpm\s+(?:ci|install|i)\b(?![^;&|\n]*\s(?:-g|--global)\b)/ },
  { ecosystem: 'npm', re: /\bpnpm\s+(?:install|i)\b/ },
  { ecosystem: 'npm', re: /\byarn(?:\s+install\b|\s+--|\s*(?:$|&&|;|\|\|))/m },
  { ecosystem: 'pip', re: /\bpip3?\s+install\b[^;&|\n]*\s(?:-r|--requirement)\b/ },
  { ecosystem: 'pip', re: /\bpoetry\s+install\b/ },
  { ecosystem: 'go', re: /\bgo\s+mod\s+download\b/ },
  { ecosystem: 'bundler', re: /\bbundle\s+install\b/ },
  { ecosystem: 'composer', re: /\bcomposer\s+install\b/ },
  { ecosystem: 'cargo', re: /\bcargo\s+(?:build|fetch)\b/ },
];

function dependencyInstalls(script: string): InstallCommand[] {
  const out: InstallCommand[] = [];
  for (const p of INSTALL_PATTERNS) {
    const m = p.re.exec(script);
    if (m) out.push({ ecosystem: p.ecosystem, command: m[0].trim().replace(/\s*(&&|;|\|\|)$/, '') });
  }
  return out;
}

function oneLine(s: string): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > 60 ? `${t.slice(0, 57)}...` : t;
}

/** Stages a stage reads from besides its base: COPY --from and RUN --mount from=. */
function stageDependencies(st: Stage, stages: Stage[], byName: Map<string, Stage>): Stage[] {
  const out: Stage[] = [];
  const lookup = (ref: string): void => {
    const byIndex = /^\d+$/.test(ref) ? stages[Number(ref)] : undefined;
    const dep = byIndex ?? byName.get(ref.toLowerCase());
    if (dep) out.push(dep);
  };
  for (const c of st.commands) {
    if (c.keyword === 'copy') {
      const f = flagValue(c, 'from');
      if (f) lookup(f);
    } else if (c.keyword === 'run') {
      for (const m of flagValues(c, 'mount')) {
        const from = /(?:^|,)from=([^,]+)/.exec(m);
        if (from) lookup(from[1]);
      }
    }
  }
  return out;
}

function makeIgnoreMatcher(patterns: string[] | undefined): { matches: (p: string) => boolean; rootIgnored: boolean } | undefined {
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

function dedupe(findings: CheckFinding[]): CheckFinding[] {
  const seen = new Set<string>();
  return findings.filter((f) => {
    const k = `${f.rule}\0${f.line}\0${f.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function sortFindings(findings: CheckFinding[]): CheckFinding[] {
  return findings
    .map((f, i) => ({ f, i }))
    .sort((a, b) => a.f.line - b.f.line || a.i - b.i)
    .map((x) => x.f);
}
