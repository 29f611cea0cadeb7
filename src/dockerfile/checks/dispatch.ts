/**
 * The dispatch-time rules, run stage by stage over the same scope the build uses
 * (dockerfile/stages.ts): UndefinedVar, LegacyKeyValueFormat, SecretsUsedInArgOrEnv,
 * WorkdirRelativePath, MultipleInstructionsDisallowed, JSONArgsRecommended and the EXPOSE
 * rules here; COPY/ADD's context rules (context.ts) and kiln's RUN rules (practice.ts) are
 * called from the same pass, so findings keep the order of the instructions.
 */
import type { Instruction } from '../ast.js';
import { ShellLexer, type EscapeToken, type ProcessWordResult } from '../shell.js';
import { argPairs, flagValue, flagValues, heredocSource, isLegacyKeyValue, keyValuePairs, writtenKeyword } from '../instructions.js';
import { argValue, StageScope, withDefaultPath, type Stages } from '../stages.js';
import { addRules, copyContextRules, type IgnoreMatcher } from './context.js';
import type { CheckStage } from './from.js';
import { runRules, type InstallOrder } from './practice.js';
import type { Reporter } from './report.js';
import type { BaseImageConfig, CheckOptions } from './types.js';
import { quote } from './words.js';

/** What the rules remember of a stage as it is dispatched (a stage built on it starts from its end). */
export interface DispatchState {
  scope: StageScope;
  workdirSet: boolean;
  shellSet: boolean;
  user?: { value: string; inst: Instruction };
  /** Set when the stage's root is an external image whose config we were given. */
  imageUser?: string;
}

export interface DispatchEnv {
  r: Reporter;
  options: CheckOptions;
  escapeToken: EscapeToken;
  /** Expands a word; undefined when it is malformed (the build reports those, a check does not). */
  expand: (word: string, env: Record<string, string>, raw?: boolean) => ProcessWordResult | undefined;
  globalEnv: Record<string, string>;
  ignore?: IgnoreMatcher;
}

/** The state a stage starts in: its base stage's final state, or its base image's config. */
export function initialState(st: CheckStage, parent: DispatchState | undefined, options: CheckOptions): DispatchState {
  if (parent) {
    return { scope: parent.scope.clone(), workdirSet: parent.workdirSet, shellSet: parent.shellSet, user: parent.user, imageUser: parent.imageUser };
  }
  const config: BaseImageConfig | undefined = st.resolvedBase && st.resolvedBase !== 'scratch' ? options.imageConfig?.(st.resolvedBase) : undefined;
  return { scope: new StageScope(withDefaultPath(config?.env)), workdirSet: false, shellSet: false, imageUser: config?.user };
}

/** Stages a stage reads from besides its base: COPY --from and RUN --mount from= (earlier stages, as the build finds them). */
export function stageDependencies(st: CheckStage, stages: Stages<CheckStage>): CheckStage[] {
  const out: CheckStage[] = [];
  const lookup = (ref: string): void => {
    const dep = stages.earlier(ref, st.index);
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

// BuildKit's secret-name heuristic: a secret-ish token as the whole name or as a _-separated word
const SECRET_TOKENS = ['apikey', 'auth', 'credential', 'credentials', 'key', 'password', 'pword', 'passwd', 'secret', 'token'];
const SECRET_DENY = new RegExp(`(?:_|^)(?:${SECRET_TOKENS.join('|')})(?:_|$)`, 'i');
const SECRET_ALLOW = /(?:_|^)(?:public|file|version)(?:_|$)/i;

function checkSecret(r: Reporter, instruction: 'ARG' | 'ENV', key: string, inst: Instruction): void {
  if (SECRET_DENY.test(key) && !SECRET_ALLOW.test(key)) {
    r.report('SecretsUsedInArgOrEnv', `Do not use ARG or ENV instructions for sensitive data (${instruction} ${quote(key)})`, inst);
  }
}

/** Runs the dispatch-time rules over one stage's instructions, updating `state`. */
export function dispatchStage(e: DispatchEnv, st: CheckStage, state: DispatchState): void {
  const { r, expand } = e;
  const trackers = new Map<string, Instruction>();
  const order: InstallOrder = { installsBeforeCopyAll: new Set() };
  /** Expands a word in the stage, reporting UndefinedVar for variables neither set nor declared. */
  const expandReporting = (word: string, inst: Instruction, raw = false): string | undefined => {
    const m = expand(word, state.scope.values(), raw);
    if (!m) return undefined;
    for (const { name, suggestion } of state.scope.undefinedVars(m.unmatched)) {
      r.report('UndefinedVar', `Usage of undefined variable '$${name}'${suggestion ? ` (did you mean $${suggestion}?)` : ''}`, inst);
    }
    return m.result;
  };
  const expandQuiet = (word: string): string => expand(word, state.scope.values())?.result ?? word;
  const legacyKeyValue = (inst: Instruction): void => {
    if (isLegacyKeyValue(inst)) {
      r.report('LegacyKeyValueFormat', `"${writtenKeyword(inst)} key=value" should be used instead of legacy "${writtenKeyword(inst)} key value" format`, inst);
    }
  };

  for (const inst of st.commands) {
    const kw = inst.keyword;
    // single-word expansion, as the instruction's Expand does before dispatch
    switch (kw) {
      case 'env':
      case 'label':
        for (const kv of keyValuePairs(inst)) {
          expandReporting(kv.key, inst);
          expandReporting(kv.value, inst);
        }
        break;
      case 'copy':
      case 'add': {
        for (const f of ['chown', 'chmod', 'from', 'checksum']) {
          const v = flagValue(inst, f);
          if (v) expandReporting(v, inst);
        }
        for (const w of inst.args) expandReporting(w, inst);
        for (const h of inst.heredocs) if (h.expand) expandReporting(h.content, inst);
        break;
      }
      case 'workdir':
      case 'user':
      case 'volume':
      case 'stopsignal':
        for (const w of inst.args) expandReporting(w, inst);
        break;
      case 'run':
        for (const m of flagValues(inst, 'mount')) expandReporting(m, inst, true);
        break;
    }

    switch (kw) {
      case 'env': {
        legacyKeyValue(inst);
        const updates: [string, string][] = [];
        for (const kv of keyValuePairs(inst)) {
          const key = expandQuiet(kv.key);
          checkSecret(r, 'ENV', key, inst);
          updates.push([key, expand(kv.value, state.scope.values())?.result ?? '']);
        }
        for (const [k, v] of updates) state.scope.setEnv(k, v);
        break;
      }
      case 'label':
        legacyKeyValue(inst);
        break;
      case 'arg':
        for (const kv of argPairs(inst)) {
          checkSecret(r, 'ARG', kv.key, inst);
          const { value } = argValue(kv, e.options.buildArgs ?? {}, e.globalEnv, (w) => expandReporting(w, inst) ?? w);
          state.scope.declareArg(kv.key, value);
        }
        break;
      case 'workdir': {
        const p = expandQuiet(inst.args[0] ?? '');
        if (!state.workdirSet && !p.startsWith('/')) {
          r.report('WorkdirRelativePath', `Relative workdir ${quote(p)} can have unexpected results if the base image changes`, inst);
        }
        state.workdirSet = true;
        break;
      }
      case 'cmd':
      case 'entrypoint':
      case 'healthcheck': {
        const prev = trackers.get(kw);
        if (prev) {
          r.report(
            'MultipleInstructionsDisallowed',
            `Multiple ${writtenKeyword(inst)} instructions should not be used in the same stage because only the last one will be used`,
            prev,
            inst,
          );
        }
        trackers.set(kw, inst);
        if (kw !== 'healthcheck' && !inst.json && !state.shellSet) {
          r.report('JSONArgsRecommended', `JSON arguments recommended for ${writtenKeyword(inst)} to prevent unintended behavior related to OS signals`, inst);
        }
        break;
      }
      case 'shell':
        state.shellSet = true;
        break;
      case 'user':
        state.user = { value: expandQuiet(inst.args[0] ?? ''), inst };
        break;
      case 'expose':
        exposeRules(e, inst, state.scope.values());
        break;
      case 'copy':
      case 'add': {
        const words = inst.args.slice(0, -1).map((s) => (heredocSource(inst, s) ? s : expandQuiet(s)));
        const sources = words.filter((_, i) => !heredocSource(inst, inst.args[i]));
        if (copyContextRules(r, inst, sources, e.ignore, e.options)) order.copyAll ??= inst;
        addRules(r, inst, words);
        break;
      }
      case 'run':
        runRules(r, inst, order);
        break;
    }
  }
}

/** ExposeInvalidFormat and ExposeProtoCasing, on the ports as expanded. */
function exposeRules(e: DispatchEnv, inst: Instruction, env: Record<string, string>): void {
  for (const word of inst.args) {
    let ports: string[];
    try {
      ports = new ShellLexer(e.escapeToken).processWords(word, env);
    } catch {
      ports = [word];
    }
    for (const p of ports) {
      const slash = p.lastIndexOf('/');
      const proto = slash === -1 ? '' : p.slice(slash + 1);
      const spec = slash === -1 ? p : p.slice(0, slash);
      if (spec.includes(':')) {
        e.r.report('ExposeInvalidFormat', `EXPOSE instruction should not define an IP address or host-port mapping, found '${p}'`, inst);
      }
      if (proto !== proto.toLowerCase()) {
        e.r.report('ExposeProtoCasing', `Defined protocol '${p}' in EXPOSE instruction should be lowercase`, inst);
      }
    }
  }
}
