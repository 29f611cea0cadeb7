/**
 * Dockerfile → build graph. Resolves stages, ARG scoping, image config evolution and
 * ONBUILD, and emits graph vertices. Only the stages the target needs are planned.
 */
import { parseChmod } from '../solver/chmod.js';
import path from 'node:path';
import { KilnError } from '../errors.js';
import type { Dockerfile, Instruction } from '../dockerfile/ast.js';
import { parseDockerfile } from '../dockerfile/parser.js';
import { ShellLexer } from '../dockerfile/shell.js';
import type { ContainerConfig, Descriptor, HistoryEntry, ImageConfig, Platform } from '../oci/types.js';
import {
  contextSource,
  definitionDigest,
  httpSource,
  type ExecVertex,
  type FileVertex,
  type LocalVertex,
  type MountSpec,
  type StepIdentity,
  type Vertex,
} from '../graph/types.js';
import { parseFlags } from './flags.js';
import { locate } from './locate.js';
import { parseDuration } from './duration.js';
import { parseMount } from './mounts.js';
import { formatPlatform, predefinedPlatformArgs, tryParsePlatform } from '../oci/platform.js';
import { closestWord, withSuggestion } from '../suggest.js';
import { goDuration, goList, goQuoteList } from './gofmt.js';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Build args BuildKit hands to RUN as proxy settings without an ARG, and never writes to history. */
const PROXY_ARGS = [
  'HTTP_PROXY',
  'http_proxy',
  'HTTPS_PROXY',
  'https_proxy',
  'FTP_PROXY',
  'ftp_proxy',
  'NO_PROXY',
  'no_proxy',
  'ALL_PROXY',
  'all_proxy',
];

export interface ResolvedImage {
  ref: string;
  manifestDigest: string;
  config: ImageConfig;
  layers: Descriptor[];
}

export interface PlanOptions {
  buildArgs?: Record<string, string>;
  target?: string;
  /** Target platform (default: the build platform). */
  platform?: Platform;
  buildPlatform: Platform;
  /** Looks a base image up (in the store). Throws KilnError when it is not there. */
  resolveImage: (ref: string, platform: Platform) => Promise<ResolvedImage>;
  noCache?: boolean;
  noCacheFilter?: string[];
  /** Creation time written to history and config (SOURCE_DATE_EPOCH when set). */
  created: string;
  /**
   * Why a RUN for a platform cannot execute here (platform.ts executionProblem), checked
   * while planning so a foreign-platform build fails at its first RUN, before any work.
   */
  executionProblem?: (platform: Platform) => string | undefined;
}

export interface StagePlan {
  name: string;
  index: number;
  state: Vertex;
  config: ImageConfig;
  /** Base image reference, for --explain. */
  baseRef?: string;
  baseDigest?: string;
  /** How many history entries came from the base image (the rest are this build's). */
  baseHistoryLength: number;
}

export interface BuildPlan {
  target: StagePlan;
  stagesPlanned: StagePlan[];
  warnings: string[];
  unusedBuildArgs: string[];
  /** SOURCE_DATE_EPOCH (seconds) given as a build arg or a Dockerfile ARG default. */
  sourceDateEpoch?: number;
}

interface StageDecl {
  name?: string;
  index: number;
  from: Instruction;
  body: Instruction[];
}

export async function planBuild(df: Dockerfile, opts: PlanOptions): Promise<BuildPlan> {
  return new Planner(df, opts).plan();
}

class Planner {
  private readonly lexer: ShellLexer;
  /**
   * Expands the body of an unquoted COPY/ADD heredoc as BuildKit does: quotes are kept as
   * written, `$` references and backslash escapes are processed (always `\`, whatever the
   * escape directive says).
   */
  private readonly heredocLexer: ShellLexer;
  private readonly stages: StageDecl[] = [];
  private readonly globalArgs: Array<{ name: string; value?: string }> = [];
  private readonly planned = new Map<number, Promise<StagePlan>>();
  private readonly consumedArgs = new Set<string>();
  private readonly warnings: string[] = [];
  private readonly warned = new Set<string>();
  /** The build state each planned stage ends with, for stages built FROM it. */
  private readonly finalStates = new Map<number, { env: string[]; buildArgs: BuildArgDecl[] }>();
  private readonly targetPlatform: Platform;
  private readonly buildArgs: Record<string, string>;
  /** SOURCE_DATE_EPOCH from a build arg or the Dockerfile's global ARG default, in seconds. */
  private readonly epoch: number | undefined;
  /** The time history entries and the config get: that epoch, else opts.created. */
  private readonly created: string;

  constructor(
    private readonly df: Dockerfile,
    private readonly opts: PlanOptions,
  ) {
    this.lexer = new ShellLexer(df.directives.escape);
    this.heredocLexer = new ShellLexer('\\');
    this.heredocLexer.skipProcessQuotes = true;
    this.targetPlatform = opts.platform ?? opts.buildPlatform;
    this.buildArgs = opts.buildArgs ?? {};
    this.splitStages();
    this.epoch = this.sourceDateEpoch();
    this.created = this.epoch === undefined ? this.opts.created : new Date(this.epoch * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  }

  /**
   * SOURCE_DATE_EPOCH as BuildKit reads it: a build arg first (an empty one turns it off),
   * else the value of a global ARG of that name. A whole number of seconds; "context" (the
   * local context has no commit time) gives none; anything else is an error.
   */
  private sourceDateEpoch(): number | undefined {
    const name = 'SOURCE_DATE_EPOCH';
    const given = name in this.buildArgs;
    const raw = given ? this.buildArgs[name] : this.globalArgs.some((a) => a.name === name) ? this.globalScope()[name] : undefined;
    if (given) this.consumedArgs.add(name);
    if (raw === undefined || raw === '' || raw === 'context') return undefined;
    if (/^\+?\d+$/.test(raw) && Number.isSafeInteger(Number(raw))) return Number(raw);
    const hint = 'set it to a Unix timestamp in seconds, e.g. --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)';
    const stage = this.stages.find((s) => s.name === raw.toLowerCase());
    const message = stage
      ? `invalid SOURCE_DATE_EPOCH: ${raw}: kiln cannot take the epoch from a stage's remote source`
      : `invalid SOURCE_DATE_EPOCH: ${raw}: not a whole number of seconds since 1970`;
    if (given) throw new KilnError(`${message} (from --build-arg)`, { hint });
    const decl = this.df.instructions.find((i) => i.keyword === 'arg' && i.args.some((a) => splitArg(a).name === name));
    if (decl) throw this.err(decl, message, hint, name);
    throw new KilnError(message, { hint });
  }

  private err(inst: Instruction, message: string, hint?: string, needle?: string): KilnError {
    return new KilnError(message, { location: locate(inst, this.df.fileName, this.df.lines, needle), hint });
  }

  private splitStages(): void {
    let current: StageDecl | undefined;
    for (const inst of this.df.instructions) {
      if (inst.keyword === 'from') {
        const { name } = this.fromParts(inst);
        if (name) {
          const dup = this.stages.find((s) => s.name === name);
          if (dup) throw this.err(inst, `duplicate stage name "${name}"`, `stage ${dup.index} is already called ${name}`);
        }
        current = { name, index: this.stages.length, from: inst, body: [] };
        this.stages.push(current);
        continue;
      }
      if (!current) {
        if (inst.keyword === 'arg') {
          if (inst.args.length === 0) throw this.err(inst, 'ARG requires at least one argument', `write ${NEEDS_ARGUMENTS.arg}`);
          for (const a of inst.args) this.globalArgs.push(splitArg(a));
          continue;
        }
        throw this.err(
          inst,
          `${inst.keyword.toUpperCase()} before FROM: only ARG may come before the first FROM`,
          'start the Dockerfile with FROM <image>',
        );
      }
      current.body.push(inst);
    }
    if (this.stages.length === 0) {
      throw new KilnError(`${this.df.fileName}: dockerfile contains no stages to build (no FROM instruction)`, {
        hint: 'add FROM <image> (or FROM scratch)',
      });
    }
  }

  private fromParts(inst: Instruction): { image: string; name?: string } {
    const args = inst.args;
    if (args.length === 1) return { image: args[0] };
    if (args.length === 3 && args[1].toLowerCase() === 'as') {
      const name = args[2].toLowerCase();
      if (!/^[a-z][a-z0-9-_.]*$/.test(name)) {
        throw this.err(inst, `invalid name for build stage: "${args[2]}", name can't start with a number or contain symbols`, 'start the name with a letter; use letters, digits, "-", "_" and "."', args[2]);
      }
      return { image: args[0], name };
    }
    throw this.err(inst, 'FROM requires either one or three arguments: FROM <image> [AS <name>]', 'write FROM busybox:latest or FROM busybox:latest AS build');
  }

  /**
   * Platform ARGs as BuildKit predefines them, and TARGETSTAGE: the --target given, else the
   * last stage's name, else "default".
   */
  private platformArgs(): Record<string, string> {
    const target = this.opts.target || this.stages[this.stages.length - 1]?.name || 'default';
    return { ...predefinedPlatformArgs(this.targetPlatform, this.opts.buildPlatform), TARGETSTAGE: target };
  }

  private globalScope(): Record<string, string> {
    const scope: Record<string, string> = { ...this.platformArgs() };
    for (const a of this.globalArgs) {
      if (a.name in this.buildArgs) {
        scope[a.name] = this.buildArgs[a.name];
        this.consumedArgs.add(a.name);
      } else if (a.value !== undefined) {
        scope[a.name] = this.lexer.processWord(a.value, scope);
      }
    }
    return scope;
  }

  async plan(): Promise<BuildPlan> {
    let targetIndex = this.stages.length - 1;
    if (this.opts.target) {
      const t = this.opts.target.toLowerCase();
      const found = this.stages.find((s) => s.name === t);
      if (!found) {
        const names = this.stages.flatMap((s) => (s.name ? [s.name] : []));
        throw new KilnError(withSuggestion(`target stage "${this.opts.target}" could not be found`, t, names), {
          hint: names.length ? `--target names a stage (FROM image AS name); this Dockerfile has: ${names.join(', ')}` : 'no stage is named (FROM image AS name)',
        });
      }
      targetIndex = found.index;
    }
    const target = await this.planStage(targetIndex);
    if (this.opts.platform) {
      // an explicit target platform is what the image says it is for, whatever the base said
      // (BuildKit keeps the base's variant only when os and architecture already match)
      const want = this.opts.platform;
      const same = target.config.os === want.os && target.config.architecture === want.architecture;
      target.config.os = want.os;
      target.config.architecture = want.architecture;
      if (want.variant !== undefined) target.config.variant = want.variant;
      else if (!same) delete target.config.variant;
    }
    const planned = await Promise.all([...this.planned.values()]);
    for (const name of [...PROXY_ARGS, 'BUILDKIT_SANDBOX_HOSTNAME']) if (name in this.buildArgs) this.consumedArgs.add(name);
    const unused = Object.keys(this.buildArgs).filter((k) => !this.consumedArgs.has(k) && !(k in this.platformArgs()));
    return { target, stagesPlanned: planned, warnings: this.warnings, unusedBuildArgs: unused, sourceDateEpoch: this.epoch };
  }

  private planStage(index: number): Promise<StagePlan> {
    let p = this.planned.get(index);
    if (!p) {
      p = this.doPlanStage(this.stages[index]);
      this.planned.set(index, p);
    }
    return p;
  }

  /** A stage by name or index, among the stages before `before`. */
  private stageRef(ref: string, before: number): StageDecl | undefined {
    const lower = ref.toLowerCase();
    for (const s of this.stages) {
      if (s.index >= before) break;
      if (s.name === lower) return s;
    }
    if (/^\d+$/.test(ref)) {
      const i = Number(ref);
      if (i < before) return this.stages[i];
    }
    return undefined;
  }

  private async doPlanStage(stage: StageDecl): Promise<StagePlan> {
    const gscope = this.globalScope();
    const fromFlags = parseFlags(stage.from, { platform: 'string' }, this.df.fileName, this.df.lines);
    const { image: rawImage } = this.fromParts(stage.from);
    const image = this.expandFrom(stage.from, rawImage, gscope);
    if (image === '') throw this.err(stage.from, `base name (${rawImage}) should not be blank`, 'set the ARG it uses, or give it a default', rawImage);
    let platform = this.targetPlatform;
    const platformFlag = fromFlags.string('platform');
    if (platformFlag !== undefined) {
      const value = this.expandFrom(stage.from, platformFlag, gscope);
      if (value === '') throw this.err(stage.from, `empty platform value from expression ${platformFlag}`, 'use --platform=$BUILDPLATFORM or an os/arch such as linux/amd64', `--platform=${platformFlag}`);
      const parsed = tryParsePlatform(value, this.opts.buildPlatform);
      if ('problem' in parsed) {
        throw this.err(stage.from, `failed to parse platform ${platformFlag}: ${parsed.problem}`, 'write os/arch[/variant], e.g. linux/amd64, or $BUILDPLATFORM', `--platform=${platformFlag}`);
      }
      platform = parsed.platform;
    }
    const stageName = stage.name ?? `stage-${stage.index}`;
    const total = stage.body.length + 1;
    const label = (n: number, text: string) => ({ name: `[${stageName} ${n}/${total}] ${text}`, step: { stage: stageName, stageIndex: stage.index, index: n, total, instruction: text } });

    let state: Vertex;
    let config: ImageConfig;
    let baseRef: string | undefined;
    let baseDigest: string | undefined;
    let baseHistoryLength = 0;
    const parentStage = this.stageRef(image, stage.index);
    let inherited: { env: string[]; buildArgs: BuildArgDecl[] } | undefined;
    if (parentStage) {
      const parent = await this.planStage(parentStage.index);
      state = parent.state;
      config = structuredClone(parent.config);
      baseRef = parent.baseRef;
      baseDigest = parent.baseDigest;
      baseHistoryLength = parent.baseHistoryLength;
      inherited = this.finalStates.get(parentStage.index);
    } else if (this.laterStage(image, stage.index)) {
      const later = this.laterStage(image, stage.index)!;
      throw this.err(
        stage.from,
        `FROM ${image}: stage "${later.name}" is used before it is defined (line ${later.from.startLine})`,
        'a stage can only build on stages above it: move that stage before this one',
        rawImage,
      );
    } else if (image === 'scratch') {
      state = {
        kind: 'scratch',
        digest: definitionDigest({ kind: 'scratch', platform }),
        ...label(1, 'FROM scratch'),
        platform,
      };
      // BuildKit's emptyImage: PATH and a working directory of "/".
      config = {
        architecture: platform.architecture,
        os: platform.os,
        config: { Env: [`PATH=${DEFAULT_PATH}`], WorkingDir: '/' },
        rootfs: { type: 'layers', diff_ids: [] },
        history: [],
      };
      if (platform.variant) config.variant = platform.variant;
    } else {
      const resolved = await this.opts.resolveImage(image, platform).catch((e: unknown) => {
        if (e instanceof KilnError && !e.location) {
          throw new KilnError(e.message, { location: locate(stage.from, this.df.fileName, this.df.lines, rawImage), hint: e.hint });
        }
        throw e;
      });
      state = {
        kind: 'image',
        ref: resolved.ref,
        manifestDigest: resolved.manifestDigest,
        digest: definitionDigest({ kind: 'image', manifest: resolved.manifestDigest }),
        ...label(1, `FROM ${resolved.ref}`),
        platform,
      };
      config = structuredClone(resolved.config);
      config.config ??= {};
      if (!(config.config.Env ?? []).some((e) => e.startsWith('PATH='))) {
        config.config.Env = [...(config.config.Env ?? []), `PATH=${DEFAULT_PATH}`];
      }
      baseRef = resolved.ref;
      baseDigest = resolved.manifestDigest;
      baseHistoryLength = resolved.config.history?.length ?? 0;
    }
    config.history ??= [];
    const cc: ContainerConfig = (config.config ??= {});
    const noCache =
      this.opts.noCache === true ||
      (this.opts.noCacheFilter ?? []).some((f) => f.toLowerCase() === stageName || f === String(stage.index));

    if (!(cc.Env ?? []).some((e) => e.startsWith('PATH='))) cc.Env = [...(cc.Env ?? []), `PATH=${DEFAULT_PATH}`];
    const triggers = cc.OnBuild ?? [];
    cc.OnBuild = undefined;

    const ctx: StageContext = {
      stage,
      stageName,
      platform,
      state,
      config,
      env: inherited ? [...inherited.env] : [...(cc.Env ?? [])],
      buildArgs: inherited ? [...inherited.buildArgs] : [],
      noCache,
      label,
      step: 1,
      cmdSet: false,
    };

    // ONBUILD triggers of the base image run first, and are not inherited further.
    for (const trigger of triggers) {
      let parsed: Instruction | undefined;
      try {
        parsed = parseDockerfile(trigger, `${this.df.fileName} (ONBUILD of ${image})`).instructions[0];
      } catch (e) {
        throw this.err(stage.from, `invalid ONBUILD trigger in base image ${image}: ${(e as Error).message}`);
      }
      if (!parsed) continue;
      // Errors in a trigger point at the FROM that ran it, as BuildKit reports them.
      parsed.startLine = parsed.endLine = stage.from.startLine;
      await this.dispatch(ctx, parsed, stage.from);
    }
    for (const inst of stage.body) {
      ctx.step += 1;
      await this.dispatch(ctx, inst, inst);
    }
    const finalCc = ctx.config.config ?? {};
    if (finalCc.OnBuild && finalCc.OnBuild.length === 0) finalCc.OnBuild = undefined;
    config.created = this.created;
    this.finalStates.set(stage.index, { env: ctx.env, buildArgs: ctx.buildArgs });
    return { name: stageName, index: stage.index, state: ctx.state, config, baseRef, baseDigest, baseHistoryLength };
  }

  /** A stage named `ref` defined at or after `index` (used too early). */
  private laterStage(ref: string, index: number): StageDecl | undefined {
    const lower = ref.toLowerCase();
    return this.stages.find((s) => s.index >= index && s.name === lower);
  }

  /** Expands a FROM word with the global ARGs, warning (UndefinedArgInFrom) about undeclared ones. */
  private expandFrom(inst: Instruction, word: string, gscope: Record<string, string>): string {
    let res;
    try {
      res = this.lexer.processWordWithMatches(word, gscope);
    } catch (e) {
      throw this.err(inst, (e as Error).message, EXPANSION_HINT, word);
    }
    const declared = this.globalArgs.map((a) => a.name);
    for (const name of res.unmatched) {
      if (declared.includes(name)) continue;
      const near = closestWord(name, [...declared, ...Object.keys(this.platformArgs())]);
      this.warn(inst, name, `UndefinedArgInFrom: FROM argument '${name}' is not declared${near ? ` (did you mean ${near}?)` : ''}`);
    }
    return res.result;
  }

  private warn(inst: Instruction, needle: string, message: string): void {
    const loc = locate(inst, this.df.fileName, this.df.lines, needle);
    const text = `${loc.file}:${loc.line}:${loc.column}: ${message}`;
    if (this.warned.has(text)) return;
    this.warned.add(text);
    this.warnings.push(text);
  }

  /**
   * Expands a word in a stage with the build state's environment, warning as BuildKit's
   * UndefinedVar check does about variables that are neither set nor declared by ARG.
   */
  private expandIn(ctx: StageContext, inst: Instruction, word: string, env = this.scope(ctx), lexer = this.lexer): string {
    let res;
    try {
      res = lexer.processWordWithMatches(word, env);
    } catch (e) {
      throw this.err(inst, (e as Error).message, EXPANSION_HINT, word);
    }
    for (const name of res.unmatched) {
      if (ctx.buildArgs.some((a) => a.key === name)) continue;
      const near = closestWord(name, Object.keys(env));
      this.warn(inst, `$`, `UndefinedVar: Usage of undefined variable '$${name}'${near ? ` (did you mean $${near}?)` : ''}`);
    }
    return res.result;
  }

  /** Expands a word into several (EXPOSE, VOLUME), as ProcessWords does. */
  private expandWordsIn(ctx: StageContext, inst: Instruction, word: string, env = this.scope(ctx)): string[] {
    this.expandIn(ctx, inst, word, env);
    try {
      return this.lexer.processWords(word, env);
    } catch (e) {
      throw this.err(inst, (e as Error).message, EXPANSION_HINT, word);
    }
  }

  private expand(inst: Instruction, word: string, env: Record<string, string>): string {
    try {
      return this.lexer.processWord(word, env);
    } catch (e) {
      throw this.err(inst, (e as Error).message, EXPANSION_HINT, word);
    }
  }

  /** The build state's environment (image ENV, then ARG and ENV values in order) as a map. */
  private scope(ctx: StageContext): Record<string, string> {
    const scope: Record<string, string> = {};
    for (const e of ctx.env) {
      const i = e.indexOf('=');
      scope[i === -1 ? e : e.slice(0, i)] = i === -1 ? '' : e.slice(i + 1);
    }
    return scope;
  }

  /** BuildKit's commitToHistory: steps that run or copy (a new state) end in " # buildkit". */
  private history(ctx: StageContext, createdBy: string, emptyLayer: boolean, newState = false): void {
    const h: HistoryEntry = { created: this.created, created_by: newState ? `${createdBy} # buildkit` : createdBy, comment: 'buildkit.dockerfile.v0' };
    if (emptyLayer) h.empty_layer = true;
    ctx.config.history!.push(h);
  }

  /** Proxy settings from --build-arg, in both spellings, as BuildKit's executor sets them. */
  private proxyEnv(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.buildArgs)) {
      const lower = k.toLowerCase();
      if (!PROXY_ARGS.includes(lower)) continue;
      this.consumedArgs.add(k);
      out[lower.toUpperCase()] = v;
      out[lower] = v;
    }
    return out;
  }

  private shellOf(ctx: StageContext): string[] {
    return ctx.config.config?.Shell ?? ['/bin/sh', '-c'];
  }

  /**
   * ENV/LABEL key-value pairs, every word expanded with the environment from before the
   * instruction (`ENV A=1 B=$A` gives B the old A, as BuildKit documents).
   */
  private expandPairs(ctx: StageContext, inst: Instruction): Array<[string, string]> {
    const before = this.scope(ctx);
    const pairs: Array<[string, string]> = [];
    for (let i = 0; i + 1 < inst.args.length; i += 2) {
      pairs.push([this.expandIn(ctx, inst, inst.args[i], before), this.expandIn(ctx, inst, inst.args[i + 1], before)]);
    }
    return pairs;
  }

  private async dispatch(ctx: StageContext, inst: Instruction, at: Instruction): Promise<void> {
    const cc = (ctx.config.config ??= {});
    const file = this.df.fileName;
    const lines = this.df.lines;
    const noFlags = () => parseFlags(inst, {}, file, lines);
    const origin = { ...locate(at, file, lines) };
    const display = `${inst.keyword.toUpperCase()} ${inst.json ? JSON.stringify(inst.args).replace(/","/g, '", "') : inst.args.join(' ')}`.trim();
    const usage = NEEDS_ARGUMENTS[inst.keyword];
    if (usage !== undefined && inst.args.length === 0) {
      throw this.err(inst, `${inst.keyword.toUpperCase()} requires at least one argument`, `write ${usage}`);
    }
    switch (inst.keyword) {
      case 'env': {
        noFlags();
        // Every word is expanded with the environment from before the instruction:
        // `ENV A=1 B=$A` gives B the old A (BuildKit's documented behaviour).
        const pairs = this.expandPairs(ctx, inst);
        for (const [key, value] of pairs) {
          if (key === '') throw this.err(inst, 'ENV names can not be blank', 'write ENV NAME=value');
          addEnv(ctx.env, key, value);
          cc.Env = addEnv(cc.Env ?? [], key, value);
        }
        this.history(ctx, `ENV ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`, true);
        return;
      }
      case 'label': {
        noFlags();
        const pairs = this.expandPairs(ctx, inst);
        cc.Labels ??= {};
        for (const [key, value] of pairs) {
          if (key === '') throw this.err(inst, 'LABEL names can not be blank', 'write LABEL key=value');
          cc.Labels[key] = value;
        }
        this.history(ctx, `LABEL ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`, true);
        return;
      }
      case 'maintainer':
        noFlags();
        ctx.config.author = inst.args.join(' ');
        this.history(ctx, `MAINTAINER ${ctx.config.author}`, true);
        return;
      case 'arg':
        noFlags();
        return this.dispatchArg(ctx, inst);
      case 'workdir': {
        noFlags();
        const raw = this.expandIn(ctx, inst, inst.args[0] ?? '');
        if (raw === '') throw this.err(inst, 'WORKDIR requires exactly one argument', 'write WORKDIR /path');
        const wd = path.posix.resolve(cc.WorkingDir || '/', raw);
        cc.WorkingDir = wd;
        if (wd === '/') {
          // BuildKit makes no directory (and no layer) for the root.
          this.history(ctx, `WORKDIR ${wd}`, true);
          return;
        }
        const v: FileVertex = {
          kind: 'file',
          parent: ctx.state,
          action: { op: 'mkdir', path: wd, mode: 0o755, user: cc.User ?? '' },
          digest: '',
          ...ctx.label(ctx.step, `WORKDIR ${wd}`),
          stage: ctx.stageName,
          origin,
          platform: ctx.platform,
          noCache: ctx.noCache,
        };
        v.digest = definitionDigest({ kind: 'file', parent: ctx.state.digest, action: v.action });
        ctx.state = v;
        this.history(ctx, `WORKDIR ${wd}`, false);
        return;
      }
      case 'user': {
        noFlags();
        cc.User = this.expandIn(ctx, inst, inst.args[0] ?? '');
        if (cc.User === '') throw this.err(inst, 'USER requires exactly one argument', 'write USER name[:group] or USER uid[:gid]');
        this.history(ctx, `USER ${cc.User}`, true);
        return;
      }
      case 'expose': {
        noFlags();
        const ports: string[] = [];
        for (const word of inst.args) {
          for (const spec of this.expandWordsIn(ctx, inst, word)) {
            ports.push(...expandPorts(spec, (m) => this.err(inst, m, 'write EXPOSE PORT[/tcp|udp|sctp] or a range such as 8000-8010/udp', word)));
          }
        }
        cc.ExposedPorts ??= {};
        for (const p of ports) cc.ExposedPorts[p] = {};
        this.history(ctx, `EXPOSE ${goList(ports)}`, true);
        return;
      }
      case 'volume': {
        noFlags();
        const vols = inst.json ? inst.args.map((a) => this.expandIn(ctx, inst, a)) : inst.args.flatMap((a) => this.expandWordsIn(ctx, inst, a));
        if (vols.length === 0) throw this.err(inst, 'VOLUME requires at least one argument', `write ${NEEDS_ARGUMENTS.volume}`);
        cc.Volumes ??= {};
        for (const v of vols) {
          if (v.trim() === '') throw this.err(inst, 'VOLUME specified can not be an empty string', 'name the mount point, e.g. VOLUME /data');
          cc.Volumes[v] = {};
        }
        this.history(ctx, `VOLUME ${goList(vols)}`, true);
        return;
      }
      case 'stopsignal': {
        noFlags();
        const sig = this.expandIn(ctx, inst, inst.args[0] ?? '');
        if (!isSignal(sig)) {
          throw this.err(inst, `Invalid signal: ${sig}`, 'use a signal name such as SIGTERM (or TERM) or a number such as 15', inst.args[0]);
        }
        cc.StopSignal = sig;
        this.history(ctx, `STOPSIGNAL ${sig}`, true);
        return;
      }
      case 'shell': {
        noFlags();
        if (!inst.json) {
          throw this.err(inst, 'SHELL requires the arguments to be in JSON form', `write SHELL ${JSON.stringify(inst.args.join(' ').split(/\s+/).filter(Boolean))}`);
        }
        if (inst.args.length === 0) throw this.err(inst, 'SHELL requires at least one argument', 'write SHELL ["/bin/sh", "-c"]');
        cc.Shell = [...inst.args];
        this.history(ctx, `SHELL ${goList(inst.args)}`, true);
        return;
      }
      case 'cmd':
      case 'entrypoint': {
        noFlags();
        const args = inst.json ? [...inst.args] : [...this.shellOf(ctx), inst.args.join(' ')];
        // An empty list clears the value (docker's config omits empty lists).
        if (inst.keyword === 'cmd') {
          cc.Cmd = args.length ? args : undefined;
          ctx.cmdSet = true;
          this.history(ctx, `CMD ${goQuoteList(args)}`, true);
        } else {
          cc.Entrypoint = args.length ? args : undefined;
          // An ENTRYPOINT resets the CMD inherited from the base, not one set in this stage.
          if (!ctx.cmdSet) cc.Cmd = undefined;
          this.history(ctx, `ENTRYPOINT ${goQuoteList(args)}`, true);
        }
        return;
      }
      case 'healthcheck':
        return this.dispatchHealthcheck(ctx, inst);
      case 'onbuild': {
        noFlags();
        const trigger = inst.onbuild;
        if (!trigger) throw this.err(inst, 'ONBUILD requires an instruction to trigger', 'write ONBUILD RUN ... (or another instruction)');
        if (trigger.keyword === 'onbuild') {
          throw this.err(inst, 'Chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed', 'write ONBUILD once, followed by the instruction to trigger', trigger.keyword.toUpperCase());
        }
        if (['from', 'maintainer'].includes(trigger.keyword)) {
          throw this.err(inst, `${trigger.keyword.toUpperCase()} isn't allowed as an ONBUILD trigger`, 'ONBUILD can trigger any instruction but FROM, MAINTAINER and ONBUILD', trigger.keyword.toUpperCase());
        }
        // Recorded in the config only: BuildKit writes no history entry for ONBUILD.
        // A heredoc trigger keeps its bodies, so the child build can parse it whole.
        const expression = inst.original.replace(/^\s*onbuild\s*/i, '') + inst.heredocs.map((h) => `\n${h.content}${h.name}`).join('');
        cc.OnBuild = [...(cc.OnBuild ?? []), expression];
        return;
      }
      case 'run':
        return this.dispatchRun(ctx, inst, origin, display);
      case 'copy':
      case 'add':
        return this.dispatchCopy(ctx, inst, origin);
      case 'from':
        throw this.err(inst, 'FROM is not allowed here', 'FROM starts a stage; it cannot be triggered or nested');
      default:
        throw this.err(inst, `unknown instruction: ${inst.keyword.toUpperCase()}`);
    }
  }

  /**
   * ARG as BuildKit dispatches it: a --build-arg wins, then the default (expanded),
   * then the global ARG of the same name; a value is added to the build state's
   * environment (ENV of the same name set earlier is overridden for RUN and
   * expansion, not in the image); history shows the value the ARG got.
   */
  private dispatchArg(ctx: StageContext, inst: Instruction): void {
    const gscope = this.globalScope();
    const written: string[] = [];
    for (const raw of inst.args) {
      const { name, value: dflt } = splitArg(raw);
      if (!/^[^\s=$]+$/.test(name)) throw this.err(inst, `invalid ARG name "${name}"`, 'write ARG NAME or ARG NAME=default', raw);
      let value: string | undefined;
      if (Object.prototype.hasOwnProperty.call(this.buildArgs, name)) {
        value = this.buildArgs[name];
        this.consumedArgs.add(name);
      } else if (dflt !== undefined) {
        value = this.expandIn(ctx, inst, dflt);
      } else if (Object.prototype.hasOwnProperty.call(gscope, name)) {
        value = gscope[name];
      }
      if (value !== undefined) addEnv(ctx.env, name, value);
      ctx.buildArgs.push({ key: name, value });
      written.push(value === undefined ? name : `${name}=${value}`);
    }
    this.history(ctx, `ARG ${written.join(' ')}`, true);
  }

  private dispatchHealthcheck(ctx: StageContext, inst: Instruction): void {
    const cc = ctx.config.config!;
    const flags = parseFlags(
      inst,
      { interval: 'string', timeout: 'string', 'start-period': 'string', 'start-interval': 'string', retries: 'string' },
      this.df.fileName,
      this.df.lines,
    );
    const first = (inst.args[0] ?? '').toUpperCase();
    let hc: NonNullable<ContainerConfig['Healthcheck']>;
    if (first === 'NONE') {
      if (inst.args.length > 1 || inst.flags.length > 0) {
        throw this.err(inst, 'HEALTHCHECK NONE takes no arguments', 'write just HEALTHCHECK NONE to disable the inherited check');
      }
      hc = { Test: ['NONE'] };
    } else {
      if (first !== 'CMD') {
        throw this.err(inst, `Unknown type "${inst.args[0] ?? ''}" in HEALTHCHECK (try CMD)`, 'write HEALTHCHECK [OPTIONS] CMD command, or HEALTHCHECK NONE', inst.args[0] || undefined);
      }
      const rest = inst.args.slice(1);
      if (rest.length === 0 || (rest.length === 1 && rest[0].trim() === '')) {
        throw this.err(inst, 'HEALTHCHECK CMD requires a command', 'write HEALTHCHECK CMD curl -f http://localhost/ || exit 1');
      }
      hc = { Test: inst.json ? ['CMD', ...rest] : ['CMD-SHELL', rest.join(' ')] };
      const dur = (name: string, key: 'Interval' | 'Timeout' | 'StartPeriod' | 'StartInterval') => {
        const raw = flags.string(name);
        if (raw === undefined) return;
        const ns = parseDuration(raw);
        if (ns === undefined) {
          throw this.err(inst, `invalid duration for --${name}: "${raw}"`, 'use a Go duration: a number with a unit, such as 30s, 1m30s or 500ms', `--${name}`);
        }
        if (ns !== 0 && ns < 1_000_000) throw this.err(inst, `Interval "${name}" cannot be less than 1ms`, 'use 1ms or more, or 0 for the default', `--${name}`);
        if (ns < 0) throw this.err(inst, `--${name} cannot be negative`, undefined, `--${name}`);
        hc[key] = ns;
      };
      dur('interval', 'Interval');
      dur('timeout', 'Timeout');
      dur('start-period', 'StartPeriod');
      dur('start-interval', 'StartInterval');
      const retries = flags.string('retries');
      if (retries !== undefined) {
        if (!/^[+-]?\d+$/.test(retries)) throw this.err(inst, `invalid value for --retries: "${retries}"`, 'use a whole number such as 3', '--retries');
        const n = Number(retries);
        if (n < 0) throw this.err(inst, '--retries cannot be negative', 'use 0 (the default) or more', '--retries');
        if (n !== 0) hc.Retries = n;
      }
    }
    cc.Healthcheck = hc;
    // BuildKit writes fmt's %+v of its HealthcheckConfig.
    const d = (n: number | undefined) => goDuration(n ?? 0);
    this.history(
      ctx,
      `HEALTHCHECK {Test:${goList(hc.Test ?? [])} Interval:${d(hc.Interval)} Timeout:${d(hc.Timeout)} StartPeriod:${d(hc.StartPeriod)} StartInterval:${d(hc.StartInterval)} Retries:${hc.Retries ?? 0}}`,
      true,
    );
  }

  private async dispatchRun(ctx: StageContext, inst: Instruction, origin: VertexOrigin, display: string): Promise<void> {
    const cc = ctx.config.config!;
    const flags = parseFlags(inst, { mount: 'strings', network: 'string', security: 'string' }, this.df.fileName, this.df.lines);
    const cannotRun = this.opts.executionProblem?.(ctx.platform);
    if (cannotRun !== undefined) {
      throw this.err(
        inst,
        `RUN for ${formatPlatform(ctx.platform)} cannot execute: ${cannotRun}`,
        ctx.platform.os === 'linux'
          ? 'install QEMU user emulation (apt-get install qemu-user-static binfmt-support), or build for this machine\'s platform (--platform, FROM --platform=$BUILDPLATFORM)'
          : 'kiln builds Linux images: use --platform linux/ARCH',
      );
    }
    const scope = this.scope(ctx);
    const mounts: MountSpec[] = [];
    for (const raw of flags.strings('mount')) {
      const spec = parseMount(raw, (m) => this.err(inst, m, 'write --mount=type=bind|cache|tmpfs|secret|ssh,target=/path[,source=...,from=...]', '--mount'), (w) => this.expandIn(ctx, inst, w, scope), cc.WorkingDir || '/');
      if (spec.fromName !== undefined && spec.fromName !== 'context') {
        spec.from = await this.sourceState(ctx, inst, spec.fromName, `--mount`, 'RUN --mount from=');
      }
      delete spec.fromName;
      mounts.push(spec);
    }
    const network = flags.string('network') ?? 'default';
    if (!['default', 'none', 'host'].includes(network)) {
      throw this.err(inst, `unsupported network mode "${network}"`, 'use --network=default, none or host', '--network');
    }
    const security = flags.string('security');
    if (security !== undefined && security !== 'sandbox') {
      throw this.err(inst, `--security=${security} is not supported: kiln runs every step sandboxed`, undefined, '--security');
    }
    const shell = this.shellOf(ctx);
    let args: string[];
    const inlineFiles: ExecVertex['inlineFiles'] = [];
    if (inst.json) {
      args = [...inst.args];
    } else if (inst.heredocs.length > 0) {
      const cmdline = inst.args.join(' ').trim();
      const only = inst.heredocs.length === 1 && /^\d*<<-?\s*(["']?)[^\s"']+\1$/.test(cmdline);
      if (only && inst.heredocs[0].content.startsWith('#!')) {
        // A script with a shebang: written to /dev/pipes/NAME and run through the shell.
        const p = `/dev/pipes/${inst.heredocs[0].name}`;
        inlineFiles.push({ path: p, content: inst.heredocs[0].content, mode: 0o755 });
        args = [...shell, p];
      } else if (only) {
        args = [...shell, inst.heredocs[0].content];
      } else {
        args = [...shell, cmdline + inst.heredocs.map((h) => `\n${h.content}${h.name}`).join('')];
      }
    } else {
      args = [...shell, inst.args.join(' ')];
    }
    const env = [...ctx.env];
    const proxies = this.proxyEnv();
    const proxyEntries = Object.entries(proxies).filter(([k]) => !(k in scope));
    for (const [k, v] of proxyEntries) env.push(`${k}=${v}`);
    const buildArgs: Record<string, string> = {};
    for (const a of ctx.buildArgs) buildArgs[a.key] = a.key in scope ? scope[a.key] : (a.value ?? '');
    for (const [k, v] of proxyEntries) buildArgs[k] = v;
    const v: ExecVertex = {
      kind: 'exec',
      parent: ctx.state,
      args,
      env,
      cwd: cc.WorkingDir || '/',
      user: cc.User ?? '',
      network: network === 'none' ? 'none' : 'host',
      hostname: this.buildArgs.BUILDKIT_SANDBOX_HOSTNAME || undefined,
      mounts,
      inlineFiles: inlineFiles.length ? inlineFiles : undefined,
      buildArgs,
      digest: '',
      ...ctx.label(ctx.step, display),
      stage: ctx.stageName,
      origin,
      platform: ctx.platform,
      noCache: ctx.noCache,
    };
    const definition = {
      kind: 'exec',
      args,
      // Proxy settings are not part of the cache key, as in BuildKit.
      env: ctx.env,
      cwd: v.cwd,
      user: v.user,
      network: v.network,
      hostname: v.hostname,
      inlineFiles,
      platform: ctx.platform,
    };
    const fromOf = (m: MountSpec, local: boolean): string | undefined =>
      !m.from ? undefined : m.from.kind === 'local' ? m.from.source : local && m.type === 'bind' ? 'stage' : m.from.digest;
    v.digest = definitionDigest({ ...definition, parent: ctx.state.digest, mounts: mounts.map((m) => ({ ...m, from: fromOf(m, false) })) });
    if (mounts.some((m) => m.type === 'bind' && m.from !== undefined && m.from.kind !== 'local')) {
      v.localDigest = definitionDigest({ ...definition, local: true, mounts: mounts.map((m) => ({ ...m, from: fromOf(m, true) })) });
    }
    ctx.state = v;
    this.history(ctx, `RUN ${runCommandString(args, ctx.buildArgs, scope)}`, false, true);
  }

  /**
   * The state a COPY --from or RUN --mount from= names: an earlier stage (by name or
   * index) or an image. A stage defined later is an error that says so.
   */
  private async sourceState(ctx: StageContext, inst: Instruction, ref: string, needle: string, what: string): Promise<Vertex> {
    const st = this.stageRef(ref, ctx.stage.index);
    if (st) return (await this.planStage(st.index)).state;
    const later = this.laterStage(ref, ctx.stage.index);
    if (later) {
      const self = later.index === ctx.stage.index;
      throw this.err(
        inst,
        self
          ? `${what}${ref} refers to the stage it is in ("${later.name}")`
          : `${what}${ref}: cannot copy from stage "${later.name}", it needs to be defined before current stage "${ctx.stageName}" (stage "${later.name}" is used before it is defined, at line ${later.from.startLine})`,
        self ? 'copy from an earlier stage, or split this stage in two' : 'move that stage above this one: a stage can only use stages defined before it',
        needle,
      );
    }
    if (/^\d+$/.test(ref)) {
      throw this.err(inst, `invalid stage index ${ref}: there are ${ctx.stage.index} stages before this one`, 'count stages from 0, or use the stage name', needle);
    }
    return this.imageState(inst, ref, ctx.platform, needle);
  }

  private async imageState(inst: Instruction, ref: string, platform: Platform, needle?: string): Promise<Vertex> {
    const resolved = await this.opts.resolveImage(ref, platform).catch((e: unknown) => {
      if (e instanceof KilnError) {
        const names = this.stages.flatMap((s) => (s.name ? [s.name] : []));
        const near = closestWord(ref.toLowerCase(), names);
        throw this.err(
          inst,
          `"${ref}" is neither an earlier build stage nor an image in the store`,
          near ? `did you mean the stage "${near}"?` : (e.hint ?? (names.length ? `stages defined so far: ${names.join(', ')}` : undefined)),
          needle ?? ref,
        );
      }
      throw e;
    });
    return {
      kind: 'image',
      ref: resolved.ref,
      manifestDigest: resolved.manifestDigest,
      digest: definitionDigest({ kind: 'image', manifest: resolved.manifestDigest }),
      name: `[internal] load ${resolved.ref}`,
      platform,
    };
  }

  private async dispatchCopy(ctx: StageContext, inst: Instruction, origin: VertexOrigin): Promise<void> {
    const isAdd = inst.keyword === 'add';
    const kw = isAdd ? 'ADD' : 'COPY';
    const cc = ctx.config.config!;
    const accepted: Record<string, 'string' | 'bool' | 'strings'> = isAdd
      ? { chown: 'string', chmod: 'string', link: 'bool', checksum: 'string', 'keep-git-dir': 'bool', exclude: 'strings', unpack: 'bool' }
      : { from: 'string', chown: 'string', chmod: 'string', link: 'bool', parents: 'bool', exclude: 'strings' };
    const flags = parseFlags(inst, accepted, this.df.fileName, this.df.lines);
    const scope = this.scope(ctx);
    const heredocNames = new Set(inst.heredocs.map((h) => h.name));
    const heredocWord = (w: string) => {
      const m = /^\d*<<-?(["']?)([^\s"']+)\1$/.exec(w);
      return m && heredocNames.has(m[2]) ? m[2] : undefined;
    };
    const expanded = inst.args.map((w) => (heredocWord(w) !== undefined ? w : this.expandIn(ctx, inst, w, scope)));
    if (expanded.length < 2) {
      throw this.err(inst, `${kw} requires at least two arguments, but only ${expanded.length} provided`, `write ${kw} <src>... <dest>`);
    }
    const dest = expanded[expanded.length - 1];
    const srcWords = expanded.slice(0, -1);
    const inline: { name: string; content: string }[] = [];
    const paths: string[] = [];
    const urls: string[] = [];
    for (const w of srcWords) {
      const name = heredocWord(w);
      if (name !== undefined) {
        const h = inst.heredocs.find((x) => x.name === name)!;
        inline.push({ name: h.name, content: h.expand ? this.expandIn(ctx, inst, h.content, scope, this.heredocLexer) : h.content });
      } else if (isAdd && /^https?:\/\//.test(w) && !/\.git(#|$)/.test(w)) {
        urls.push(w);
      } else if (isAdd && /^git@|^git:\/\/|\.git(#|$)/.test(w)) {
        throw this.err(inst, `ADD from a git repository is not supported yet: ${w}`, 'clone it in an earlier stage with RUN git clone', w);
      } else if (!isAdd && /^https?:\/\//.test(w)) {
        throw this.err(inst, 'source can\'t be a URL for COPY', 'use ADD to fetch a URL', w);
      } else {
        paths.push(w);
      }
    }
    if (srcWords.length > 1 && !dest.endsWith('/')) {
      throw this.err(inst, `When using ${kw} with more than one source file, the destination must be a directory and end with a /`, `write ${dest}/`, dest);
    }
    const checksumFlag = isAdd ? flags.string('checksum') : undefined;
    const checksum = checksumFlag === undefined ? undefined : this.expandIn(ctx, inst, checksumFlag, scope);
    if (checksum !== undefined && checksum !== '') {
      if (srcWords.length !== 1) throw this.err(inst, "checksum can't be specified for multiple sources", 'ADD one source per --checksum', '--checksum');
      if (urls.length !== 1) throw this.err(inst, 'checksum requires HTTP(S) or Git sources', 'drop --checksum for a local file', '--checksum');
      const alg = checksum.includes(':') ? checksum.slice(0, checksum.indexOf(':')) : '';
      if (alg !== '' && !['sha256', 'sha384', 'sha512'].includes(alg)) {
        throw this.err(inst, `unsupported digest algorithm: ${alg}`, 'use a sha256, sha384 or sha512 digest', '--checksum');
      }
      if (!/^(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})$/.test(checksum)) {
        throw this.err(inst, `invalid checksum digest format: ${checksum}`, 'write --checksum=sha256:<64 hex digits>', '--checksum');
      }
    }
    // --unpack: local archives unpack unless =false; URLs only with =true (as BuildKit)
    const unpackFlag = isAdd ? flags.string('unpack') : undefined;
    let from: Vertex | LocalVertex = contextSource();
    const fromFlag = flags.string('from');
    if (fromFlag !== undefined) {
      if (this.lexer.processWord(fromFlag, {}) !== fromFlag) {
        throw this.err(
          inst,
          'variable expansion is not supported for --from',
          'define a new stage with FROM using ARG from global scope as a workaround: ARG SRC=build / FROM ${SRC} AS src / COPY --from=src ...',
          `--from=${fromFlag}`,
        );
      }
      from = await this.sourceState(ctx, inst, fromFlag, `--from=${fromFlag}`, `${kw} --from=`);
    }
    const chown = flags.string('chown') === undefined ? undefined : this.expandIn(ctx, inst, flags.string('chown')!, scope);
    if (chown !== undefined && chown.split(':').length > 2) {
      throw this.err(inst, `invalid --chown=${chown}: expected USER[:GROUP], a name or a number each`, 'write --chown=1000:1000 or --chown=app:app', '--chown');
    }
    const chmod = flags.string('chmod') === undefined ? undefined : this.expandIn(ctx, inst, flags.string('chmod')!, scope);
    if (chmod !== undefined && chmod !== '') {
      try {
        parseChmod(chmod);
      } catch (e) {
        throw this.err(inst, (e as Error).message, 'use an octal mode such as 0755 or 644, or a symbolic one such as u=rwX,go=rX', '--chmod');
      }
    }
    const parents = flags.bool('parents');
    const action = {
      op: 'copy' as const,
      source: { from, paths },
      inline: inline.length ? inline : undefined,
      dest,
      cwd: cc.WorkingDir || '/',
      chown,
      chmod,
      unpackArchives: isAdd && unpackFlag !== 'false',
      urls: urls.length ? urls.map((u) => httpSource(u, checksum || undefined)) : undefined,
      unpackUrls: unpackFlag === 'true' && urls.length > 0 ? true : undefined,
      excludes: flags.strings('exclude').map((e) => this.expandIn(ctx, inst, e, scope)),
      parents: parents || undefined,
      link: flags.bool('link') || undefined,
    };
    const v: FileVertex = {
      kind: 'file',
      parent: ctx.state,
      action,
      digest: '',
      ...ctx.label(ctx.step, `${kw} ${fromFlag !== undefined ? `--from=${fromFlag} ` : ''}${srcWords.join(' ')} ${dest}`),
      stage: ctx.stageName,
      origin,
      platform: ctx.platform,
      noCache: ctx.noCache,
    };
    v.digest = definitionDigest({
      kind: 'file',
      parent: ctx.state.digest,
      action: { ...action, source: { paths, from: from.kind === 'local' ? from.source : from.digest } },
    });
    ctx.state = v;
    // As BuildKit writes it: flags that change the result, sources (URLs and paths in
    // the order written, then heredocs as <<NAME), destination.
    const parts = [kw];
    if (parents) parts.push('--parents');
    if (chown !== undefined && chown !== '') parts.push(`--chown=${chown}`);
    if (chmod !== undefined && chmod !== '') parts.push(`--chmod=${chmod}`);
    for (const w of srcWords) if (heredocWord(w) === undefined) parts.push(w);
    for (const h of inline) parts.push(`<<${h.name}`);
    parts.push(dest);
    this.history(ctx, parts.join(' '), false, true);
  }
}

type VertexOrigin = NonNullable<Vertex['origin']>;

const EXPANSION_HINT = 'variables are written $NAME, ${NAME}, ${NAME:-default}, ${NAME:+alternative} or ${NAME:?message}; write \\$ for a literal $';

/** Instructions BuildKit rejects without arguments, and what a use looks like. */
const NEEDS_ARGUMENTS: Record<string, string> = {
  env: 'ENV NAME=value',
  label: 'LABEL key=value',
  arg: 'ARG NAME[=default]',
  expose: 'EXPOSE 80/tcp',
  volume: 'VOLUME /data',
  healthcheck: 'HEALTHCHECK CMD command, or HEALTHCHECK NONE',
};

/** An ARG a stage declared (or inherited from the stage it is built on), for RUN history. */
interface BuildArgDecl {
  key: string;
  value?: string;
}

interface StageContext {
  stage: StageDecl;
  stageName: string;
  platform: Platform;
  state: Vertex;
  config: ImageConfig;
  /** The build state's environment: image ENV, then ARG and ENV values, in order ("K=V"). */
  env: string[];
  buildArgs: BuildArgDecl[];
  noCache: boolean;
  label: (n: number, text: string) => { name: string; step: StepIdentity };
  step: number;
  cmdSet: boolean;
}

/** Sets K=V in an env list, in place of an earlier K or at the end. */
function addEnv(env: string[], key: string, value: string): string[] {
  const i = env.findIndex((e) => e === key || e.startsWith(`${key}=`));
  if (i === -1) env.push(`${key}=${value}`);
  else env[i] = `${key}=${value}`;
  return env;
}

/** BuildKit's runCommandString: "|N K=V ... " for the stage's ARGs (values as the step sees them), then the command. */
function runCommandString(args: string[], buildArgs: BuildArgDecl[], env: Record<string, string>): string {
  const order: string[] = [];
  const values = new Map<string, string>();
  for (const a of buildArgs) {
    if (!values.has(a.key)) order.push(a.key);
    values.set(a.key, Object.prototype.hasOwnProperty.call(env, a.key) ? env[a.key] : (a.value ?? ''));
  }
  const prefix = order.length ? [`|${order.length}`, ...order.map((k) => `${k}=${values.get(k)}`)] : [];
  return [...prefix, ...args].join(' ');
}

const SIGNALS = new Set([
  'ABRT', 'ALRM', 'BUS', 'CHLD', 'CLD', 'CONT', 'FPE', 'HUP', 'ILL', 'INT', 'IO', 'IOT', 'KILL', 'PIPE', 'POLL', 'PROF', 'PWR',
  'QUIT', 'SEGV', 'STKFLT', 'STOP', 'SYS', 'TERM', 'TRAP', 'TSTP', 'TTIN', 'TTOU', 'UNUSED', 'URG', 'USR1', 'USR2', 'VTALRM',
  'WINCH', 'XCPU', 'XFSZ',
]);

/** moby's signal.ParseSignal: a number, NAME or SIGNAME, or RTMIN+n / RTMAX-n. */
function isSignal(sig: string): boolean {
  if (/^\d+$/.test(sig)) return Number(sig) > 0 && Number(sig) <= 64;
  const name = sig.toUpperCase().replace(/^SIG/, '');
  return SIGNALS.has(name) || /^RTMIN(\+\d+)?$|^RTMAX(-\d+)?$/.test(name);
}

function splitArg(raw: string): { name: string; value?: string } {
  const i = raw.indexOf('=');
  if (i === -1) return { name: raw };
  return { name: raw.slice(0, i), value: raw.slice(i + 1) };
}

/**
 * "80", "80/TCP", "8000-8002/udp" → ["80/tcp"], ... As BuildKit's parsePortSpec, an
 * "[ip:][hostPort:]port" prefix is accepted and only the container port kept.
 */
export function expandPorts(spec: string, fail: (m: string) => Error): string[] {
  const slash = spec.indexOf('/');
  const portPart = slash === -1 ? spec : spec.slice(0, slash);
  const proto = slash === -1 ? 'tcp' : spec.slice(slash + 1).toLowerCase() || 'tcp';
  const parts = portPart.split(':');
  const container = parts[parts.length - 1];
  if (container === '') throw fail(`no port specified: ${spec}<empty>`);
  if (!['tcp', 'udp', 'sctp'].includes(proto)) throw fail(`invalid proto: ${proto} in "${spec}": use tcp, udp or sctp`);
  const m = /^(\d+)(?:-(\d+))?$/.exec(container);
  if (!m) throw fail(`invalid containerPort: ${container} in "${spec}"`);
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (lo > 65535 || hi > 65535) throw fail(`invalid containerPort: ${container}: ports go up to 65535`);
  if (hi < lo) throw fail(`invalid range specified for port: ${container}`);
  const out: string[] = [];
  for (let p = lo; p <= hi; p++) out.push(`${p}/${proto}`);
  return out;
}
