/**
 * One model of a Dockerfile's stages and variable scopes, for the build (frontend/) and
 * the checks (dockerfile/checks/) alike, so the two can never disagree about what a
 * variable is or which stage a name means: the stages with their FROM, the global ARGs
 * before the first FROM, the predefined platform ARGs, and each stage's scope (the build
 * state's environment and the ARGs it declared), with the rules that read them (an ARG's
 * value, UndefinedVar, UndefinedArgInFrom). How words are expanded (and what a malformed
 * one does) stays with the caller, which passes its expander in.
 */
import { KilnError } from '../errors.js';
import type { Dockerfile, Instruction } from './ast.js';
import { argPairs, fromWords, NEEDS_ARGUMENTS, parseFromWords, locate, type KeyValue, type SourceText } from './instructions.js';
import { closestWord } from '../suggest.js';
import { predefinedPlatformArgs } from '../oci/platform.js';
import type { Platform } from '../oci/types.js';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** ARGs BuildKit declares without putting their value in the environment. */
export const NON_ENV_ARGS: ReadonlySet<string> = new Set(['BUILDKIT_SBOM_SCAN_CONTEXT', 'BUILDKIT_SBOM_SCAN_STAGE']);

export interface StageDecl {
  index: number;
  from: Instruction;
  /** The base image (or stage) as written. */
  image: string;
  /** The stage name (AS name), lowercased; undefined when unnamed. */
  name?: string;
  /** The stage's instructions after FROM. */
  commands: Instruction[];
}

export interface StageSplit {
  /** The ARG instructions before the first FROM. */
  metaArgs: Instruction[];
  stages: StageDecl[];
}

/**
 * Splits a Dockerfile into its global ARGs and its stages. With `strict` it throws the
 * build's errors, in file order: an invalid FROM, a duplicate stage name, an empty ARG or
 * another instruction before the first FROM, no FROM at all. Without it nothing throws
 * (the checks read what is there).
 */
export function splitStages(df: Dockerfile, strict?: SourceText): StageSplit {
  const metaArgs: Instruction[] = [];
  const stages: StageDecl[] = [];
  const err = (inst: Instruction, message: string, hint: string) =>
    new KilnError(message, { location: locate(inst, strict!.fileName, strict!.lines), hint });
  for (const inst of df.instructions) {
    if (inst.keyword === 'from') {
      const { image, stageName: name } = strict ? parseFromWords(inst, strict) : fromWords(inst);
      if (strict && name) {
        const dup = stages.find((s) => s.name === name);
        if (dup) throw err(inst, `duplicate stage name "${name}"`, `stage ${dup.index} is already called ${name}`);
      }
      stages.push({ index: stages.length, from: inst, image, name, commands: [] });
    } else if (stages.length > 0) {
      stages[stages.length - 1].commands.push(inst);
    } else if (inst.keyword === 'arg') {
      if (strict && inst.args.length === 0) throw err(inst, 'ARG requires at least one argument', `write ${NEEDS_ARGUMENTS.arg}`);
      metaArgs.push(inst);
    } else if (strict) {
      throw err(inst, `${inst.keyword.toUpperCase()} before FROM: only ARG may come before the first FROM`, 'start the Dockerfile with FROM <image>');
    }
  }
  if (strict && stages.length === 0) {
    throw new KilnError(`${df.fileName}: dockerfile contains no stages to build (no FROM instruction)`, { hint: 'add FROM <image> (or FROM scratch)' });
  }
  return { metaArgs, stages };
}

/** Stage look-ups by name or index, the build's and the checks' alike. */
export class Stages<S extends StageDecl = StageDecl> {
  constructor(readonly list: readonly S[]) {}

  /** The names of the named stages, in order. */
  names(): string[] {
    return this.list.flatMap((s) => (s.name ? [s.name] : []));
  }

  /** The stage called `name` (any case), the first one when several are. */
  named(name: string): S | undefined {
    const lower = name.toLowerCase();
    return this.list.find((s) => s.name === lower);
  }

  /** A stage by name or index among the stages before `before` (what FROM, COPY --from and --mount from= may use). */
  earlier(ref: string, before: number): S | undefined {
    const lower = ref.toLowerCase();
    for (const s of this.list) {
      if (s.index >= before) break;
      if (s.name === lower) return s;
    }
    if (/^\d+$/.test(ref)) {
      const i = Number(ref);
      if (i < before) return this.list[i];
    }
    return undefined;
  }

  /** A stage named `ref` defined at or after `index` (used too early). */
  later(ref: string, index: number): S | undefined {
    const lower = ref.toLowerCase();
    return this.list.find((s) => s.index >= index && s.name === lower);
  }
}

/**
 * The predefined ARGs: the platform ones (BuildKit's defaultArgs) and TARGETSTAGE, the stage
 * being built (the --target given, else the last stage's name, else "default").
 */
export function predefinedArgs(target: Platform, build: Platform, targetStage: string | undefined): Record<string, string> {
  return { ...predefinedPlatformArgs(target, build), TARGETSTAGE: targetStage || 'default' };
}

/** Expands a word with an environment; the caller decides what a malformed word does. */
export type ExpandWord = (word: string, env: Record<string, string>) => string;

/** A variable reference nothing declares, and the closest name that exists (BuildKit's did-you-mean). */
export interface UndeclaredVar {
  name: string;
  suggestion?: string;
}

/** The global scope: predefined ARGs and the ARGs before the first FROM, with --build-arg values. */
export class GlobalArgs {
  /** Build args this scope took a value from (the rest may be unused). */
  readonly consumed = new Set<string>();
  readonly args: KeyValue[];

  constructor(
    metaArgs: readonly Instruction[],
    readonly predefined: Readonly<Record<string, string>>,
    private readonly buildArgs: Readonly<Record<string, string>>,
    private readonly expand: ExpandWord,
  ) {
    this.args = metaArgs.flatMap(argPairs);
  }

  /** The names the global ARGs declare, in order. */
  declared(): string[] {
    return this.args.map((a) => a.key);
  }

  /**
   * The values FROM (and a stage's ARG without a default) sees: the predefined ARGs, then
   * each global ARG's --build-arg value (unless `withBuildArgs` is false: the defaults
   * alone) or its default, expanded with what is declared above it.
   */
  values(withBuildArgs = true): Record<string, string> {
    const scope: Record<string, string> = { ...this.predefined };
    for (const a of this.args) {
      if (withBuildArgs && Object.hasOwn(this.buildArgs, a.key)) {
        scope[a.key] = this.buildArgs[a.key];
        this.consumed.add(a.key);
      } else if (a.value !== undefined) {
        scope[a.key] = this.expand(a.value, scope);
      }
    }
    return scope;
  }

  /** UndefinedArgInFrom: the names among `unmatched` that no global ARG declares. */
  undeclared(unmatched: Iterable<string>): UndeclaredVar[] {
    const declared = this.declared();
    const candidates = [...declared, ...Object.keys(this.predefined)];
    const out: UndeclaredVar[] = [];
    for (const name of unmatched) {
      if (declared.includes(name)) continue;
      out.push({ name, suggestion: closestWord(name, candidates) });
    }
    return out;
  }
}

/** Sets K=V in an env list, in place of an earlier K or at the end. */
export function addEnv(env: string[], key: string, value: string): string[] {
  const i = env.findIndex((e) => e === key || e.startsWith(`${key}=`));
  if (i === -1) env.push(`${key}=${value}`);
  else env[i] = `${key}=${value}`;
  return env;
}

/** An image's environment with PATH set (BuildKit's default PATH when the image has none). */
export function withDefaultPath(env: readonly string[] | undefined): string[] {
  const out = [...(env ?? [])];
  if (!out.some((e) => e.startsWith('PATH='))) out.push(`PATH=${DEFAULT_PATH}`);
  return out;
}

/**
 * A stage's scope as its instructions are dispatched: the build state's environment (the
 * base image's ENV, then ARG and ENV values in order) and the ARGs the stage declared (with
 * those of the stage it is built on).
 */
export class StageScope {
  constructor(
    /** "K=V" entries in order, as RUN gets them. */
    readonly env: string[],
    /** The ARGs declared, in order, with the value each got (undefined when it got none). */
    readonly args: KeyValue[] = [],
  ) {}

  clone(): StageScope {
    return new StageScope([...this.env], this.args.map((a) => ({ ...a })));
  }

  /** The environment as a map, for expansion. */
  values(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const e of this.env) {
      const i = e.indexOf('=');
      out[i === -1 ? e : e.slice(0, i)] = i === -1 ? '' : e.slice(i + 1);
    }
    return out;
  }

  setEnv(key: string, value: string): void {
    addEnv(this.env, key, value);
  }

  isDeclared(name: string): boolean {
    return this.args.some((a) => a.key === name);
  }

  /** Declares an ARG; a value enters the environment (but not for BuildKit's non-env ARGs). */
  declareArg(key: string, value: string | undefined): void {
    if (value !== undefined && !NON_ENV_ARGS.has(key)) this.setEnv(key, value);
    this.args.push({ key, value });
  }

  /**
   * UndefinedVar: the names among `unmatched` that are neither set nor declared by ARG, each
   * with the closest name set in `env` (default this scope's environment).
   */
  undefinedVars(unmatched: Iterable<string>, env: Record<string, string> = this.values()): UndeclaredVar[] {
    const out: UndeclaredVar[] = [];
    for (const name of unmatched) {
      if (this.isDeclared(name) || NON_ENV_ARGS.has(name)) continue;
      out.push({ name, suggestion: closestWord(name, Object.keys(env)) });
    }
    return out;
  }
}

/**
 * The value a stage's ARG gets, as BuildKit dispatches it: a --build-arg wins, then the
 * default (expanded in the stage by `expandDefault`), then the global ARG of that name.
 */
export function argValue(
  arg: KeyValue,
  buildArgs: Readonly<Record<string, string>>,
  global: Readonly<Record<string, string>>,
  expandDefault: (word: string) => string,
): { value?: string; fromBuildArg: boolean } {
  if (Object.hasOwn(buildArgs, arg.key)) return { value: buildArgs[arg.key], fromBuildArg: true };
  if (arg.value !== undefined) return { value: expandDefault(arg.value), fromBuildArg: false };
  if (Object.hasOwn(global, arg.key)) return { value: global[arg.key], fromBuildArg: false };
  return { fromBuildArg: false };
}
