/**
 * Dockerfile → build graph, as BuildKit's dockerfile2llb converts: the stages (from the
 * shared model in dockerfile/stages.ts), each stage's base (an earlier stage, scratch or an
 * image), ONBUILD triggers, then every instruction dispatched in order over the stage's
 * scope. COPY/ADD are in copy.ts, RUN in run.ts, the image-config instructions in
 * config.ts; ARG and WORKDIR, which change the build state itself, are here. Only the
 * stages the target needs are converted.
 */
import path from 'node:path';
import { KilnError } from '../errors.js';
import type { Dockerfile, Instruction } from '../dockerfile/ast.js';
import { parseDockerfile } from '../dockerfile/parser.js';
import { skippedAt } from '../dockerfile/checks/config.js';
import { ShellLexer } from '../dockerfile/shell.js';
import { displayText, locate, parseFrom, parseStepCommand, type ArgCommand, type SourceText, type ValueCommand } from '../dockerfile/instructions.js';
import {
  argValue,
  DEFAULT_PATH,
  GlobalArgs,
  predefinedArgs,
  splitStages,
  StageScope,
  Stages,
  withDefaultPath,
  type StageDecl,
} from '../dockerfile/stages.js';
import type { HistoryEntry, ImageConfig, Platform } from '../oci/types.js';
import { definitionDigest, type FileVertex, type LocalVertex, type Vertex } from '../graph/types.js';
import { formatPlatform, platformMatches, tryParsePlatform } from '../oci/platform.js';
import { closestWord, withSuggestion } from '../suggest.js';
import {
  dispatchCmdOrEntrypoint,
  dispatchEnv,
  dispatchExpose,
  dispatchHealthcheck,
  dispatchLabel,
  dispatchMaintainer,
  dispatchOnbuild,
  dispatchShell,
  dispatchStopSignal,
  dispatchUser,
  dispatchVolume,
} from './config.js';
import { dispatchCopy } from './copy.js';
import { dispatchRun } from './run.js';
import { stepFields, stepLabel, type Converter, type StageContext, type VertexOrigin } from './state.js';
import type { BuildPlan, NamedContextState, PlanOptions, ResolvedImage, StagePlan } from './plan.js';

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

const EXPANSION_HINT = 'variables are written $NAME, ${NAME}, ${NAME:-default}, ${NAME:+alternative} or ${NAME:?message}; write \\$ for a literal $';

export class Planner implements Converter {
  readonly lexer: ShellLexer;
  readonly heredocLexer: ShellLexer;
  readonly src: SourceText;
  readonly buildArgs: Record<string, string>;
  private readonly stages: Stages;
  private readonly globals: GlobalArgs;
  private readonly planned = new Map<number, Promise<StagePlan>>();
  private readonly consumedArgs = new Set<string>();
  private readonly warnings: string[] = [];
  private readonly warned = new Set<string>();
  /** The scope each planned stage ends with, for stages built FROM it. */
  private readonly finalScopes = new Map<number, StageScope>();
  private readonly targetPlatform: Platform;
  /** SOURCE_DATE_EPOCH from a build arg or the Dockerfile's global ARG default, in seconds. */
  private readonly epoch: number | undefined;
  /** The time history entries and the config get: that epoch, else opts.created. */
  private readonly created: string;

  constructor(
    private readonly df: Dockerfile,
    readonly opts: PlanOptions,
  ) {
    this.src = df;
    this.lexer = new ShellLexer(df.directives.escape);
    // an unquoted COPY/ADD heredoc body: quotes kept as written, `$` references and
    // backslash escapes processed (always `\`, whatever the escape directive says)
    this.heredocLexer = new ShellLexer('\\');
    this.heredocLexer.skipProcessQuotes = true;
    this.targetPlatform = opts.platform ?? opts.buildPlatform;
    this.buildArgs = opts.buildArgs ?? {};
    const split = splitStages(df, df);
    this.stages = new Stages(split.stages);
    const last = split.stages[split.stages.length - 1];
    this.globals = new GlobalArgs(
      split.metaArgs,
      predefinedArgs(this.targetPlatform, opts.buildPlatform, opts.target || last?.name),
      this.buildArgs,
      (word, env) => this.lexer.processWord(word, env),
    );
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
    const raw = given ? this.buildArgs[name] : this.globals.declared().includes(name) ? this.globalScope()[name] : undefined;
    if (given) this.consumedArgs.add(name);
    if (raw === undefined || raw === '' || raw === 'context') return undefined;
    if (/^\+?\d+$/.test(raw) && Number.isSafeInteger(Number(raw))) return Number(raw);
    const hint = 'set it to a Unix timestamp in seconds, e.g. --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)';
    const stage = this.stages.named(raw);
    const message = stage
      ? `invalid SOURCE_DATE_EPOCH: ${raw}: kiln cannot take the epoch from a stage's remote source`
      : `invalid SOURCE_DATE_EPOCH: ${raw}: not a whole number of seconds since 1970`;
    if (given) throw new KilnError(`${message} (from --build-arg)`, { hint });
    const decl = this.df.instructions.find((i) => i.keyword === 'arg' && i.args.some((a) => a.split('=')[0] === name));
    if (decl) throw this.err(decl, message, hint, name);
    throw new KilnError(message, { hint });
  }

  err(inst: Instruction, message: string, hint?: string, needle?: string): KilnError {
    return new KilnError(message, { location: locate(inst, this.df.fileName, this.df.lines, needle), hint });
  }

  private globalScope(): Record<string, string> {
    const scope = this.globals.values();
    for (const name of this.globals.consumed) this.consumedArgs.add(name);
    return scope;
  }

  async plan(): Promise<BuildPlan> {
    let targetIndex = this.stages.list.length - 1;
    if (this.opts.target) {
      const found = this.stages.named(this.opts.target);
      if (!found) {
        const names = this.stages.names();
        throw new KilnError(withSuggestion(`target stage "${this.opts.target}" could not be found`, this.opts.target.toLowerCase(), names), {
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
    const unused = Object.keys(this.buildArgs).filter((k) => !this.consumedArgs.has(k) && !(k in this.globals.predefined));
    return { target, stagesPlanned: planned, warnings: this.warnings, unusedBuildArgs: unused, sourceDateEpoch: this.epoch };
  }

  private planStage(index: number): Promise<StagePlan> {
    let p = this.planned.get(index);
    if (!p) {
      p = this.doPlanStage(this.stages.list[index]);
      this.planned.set(index, p);
    }
    return p;
  }

  private async doPlanStage(stage: StageDecl): Promise<StagePlan> {
    const gscope = this.globalScope();
    const from = parseFrom(stage.from, this.src);
    const rawImage = from.image;
    const image = this.expandFrom(stage.from, rawImage, gscope);
    if (image === '') throw this.err(stage.from, `base name (${rawImage}) should not be blank`, 'set the ARG it uses, or give it a default', rawImage);
    let platform = this.targetPlatform;
    if (from.platform !== undefined) {
      const value = this.expandFrom(stage.from, from.platform, gscope);
      if (value === '') throw this.err(stage.from, `empty platform value from expression ${from.platform}`, 'use --platform=$BUILDPLATFORM or an os/arch such as linux/amd64', `--platform=${from.platform}`);
      const parsed = tryParsePlatform(value, this.opts.buildPlatform);
      if ('problem' in parsed) {
        throw this.err(stage.from, `failed to parse platform ${from.platform}: ${parsed.problem}`, 'write os/arch[/variant], e.g. linux/amd64, or $BUILDPLATFORM', `--platform=${from.platform}`);
      }
      platform = parsed.platform;
    }
    const stageName = stage.name ?? `stage-${stage.index}`;
    const total = stage.commands.length + 1;
    const fromStep = (instruction: string) => ({
      name: stepLabel({ stageName, total }, 1, instruction),
      step: { stage: stageName, stageIndex: stage.index, index: 1, total, instruction },
    });

    const noCache =
      this.opts.noCache === true ||
      (this.opts.noCacheFilter ?? []).some((f) => f.toLowerCase() === stageName || f === String(stage.index));

    // a named context of the stage's own name replaces the whole stage, its instructions
    // included (BuildKit: the named context wins over the stage)
    if (stage.name !== undefined) {
      const own = await this.namedContext(stage.from, stage.name, platform, stage.name);
      if (own) {
        // the stage takes the platform of the image standing for it (BuildKit's)
        const cfg = own.kind === 'image' ? own.image.config : undefined;
        const ownPlatform: Platform = cfg?.os && cfg.architecture ? { os: cfg.os, architecture: cfg.architecture, ...(cfg.variant ? { variant: cfg.variant } : {}) } : platform;
        const base = this.contextBase(own, stage.name, ownPlatform, fromStep(`FROM ${own.kind === 'scratch' ? 'scratch' : own.label}`), { stageName, noCache, origin: locate(stage.from, this.df.fileName, this.df.lines) });
        base.config.created = this.created;
        this.finalScopes.set(stage.index, new StageScope([...(base.config.config?.Env ?? [])]));
        return { name: stageName, index: stage.index, ...base };
      }
    }

    let state: Vertex;
    let config: ImageConfig;
    let baseRef: string | undefined;
    let baseDigest: string | undefined;
    let baseHistoryLength = 0;
    const parentStage = this.stages.earlier(image, stage.index);
    let inherited: StageScope | undefined;
    const named = parentStage ? undefined : await this.namedContext(stage.from, image, platform, rawImage);
    if (named) {
      // FROM a named context: its image (ONBUILD triggers included), scratch or directory
      ({ state, config, baseRef, baseDigest, baseHistoryLength } = this.contextBase(named, image, platform, fromStep(`FROM ${named.kind === 'scratch' ? 'scratch' : named.label}`), {
        stageName,
        noCache,
        origin: locate(stage.from, this.df.fileName, this.df.lines),
      }));
    } else if (parentStage) {
      const parent = await this.planStage(parentStage.index);
      state = parent.state;
      config = structuredClone(parent.config);
      baseRef = parent.baseRef;
      baseDigest = parent.baseDigest;
      baseHistoryLength = parent.baseHistoryLength;
      inherited = this.finalScopes.get(parentStage.index);
    } else if (this.stages.later(image, stage.index)) {
      const later = this.stages.later(image, stage.index)!;
      throw this.err(
        stage.from,
        `FROM ${image}: stage "${later.name}" is used before it is defined (line ${later.from.startLine})`,
        'a stage can only build on stages above it: move that stage before this one',
        rawImage,
      );
    } else if (image === 'scratch') {
      state = { kind: 'scratch', digest: definitionDigest({ kind: 'scratch', platform }), ...fromStep('FROM scratch'), platform };
      config = emptyImage(platform);
    } else {
      const resolved = await this.opts.resolveImage(image, platform).catch((e: unknown) => {
        if (e instanceof KilnError && !e.location) {
          throw new KilnError(e.message, { location: locate(stage.from, this.df.fileName, this.df.lines, rawImage), hint: e.hint });
        }
        throw e;
      });
      // BuildKit's InvalidBaseImagePlatform: a base (a single-platform manifest) of another platform
      const pulled = resolved.config.os && resolved.config.architecture ? { os: resolved.config.os, architecture: resolved.config.architecture, variant: resolved.config.variant } : undefined;
      if (pulled && !platformMatches(platform, pulled) && !skippedAt(this.df, 'InvalidBaseImagePlatform', stage.from, this.buildArgs)) {
        this.warn(stage.from, rawImage, `InvalidBaseImagePlatform: Base image ${image} was pulled with platform "${formatPlatform(pulled)}", expected "${formatPlatform(platform)}" for current build`);
      }
      state = {
        kind: 'image',
        ref: resolved.ref,
        manifestDigest: resolved.manifestDigest,
        digest: definitionDigest({ kind: 'image', manifest: resolved.manifestDigest }),
        ...fromStep(`FROM ${resolved.ref}`),
        platform,
      };
      config = structuredClone(resolved.config);
      config.config ??= {};
      config.config.Env = withDefaultPath(config.config.Env);
      baseRef = resolved.ref;
      baseDigest = resolved.manifestDigest;
      baseHistoryLength = resolved.config.history?.length ?? 0;
    }
    config.history ??= [];
    const cc = (config.config ??= {});

    cc.Env = withDefaultPath(cc.Env);
    const triggers = cc.OnBuild ?? [];
    cc.OnBuild = undefined;

    const ctx: StageContext = {
      stage,
      stageName,
      platform,
      state,
      config,
      scope: inherited ? inherited.clone() : new StageScope([...cc.Env]),
      noCache,
      step: 1,
      total,
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
    for (const inst of stage.commands) {
      ctx.step += 1;
      await this.dispatch(ctx, inst, inst);
    }
    const finalCc = ctx.config.config ?? {};
    if (finalCc.OnBuild && finalCc.OnBuild.length === 0) finalCc.OnBuild = undefined;
    config.created = this.created;
    this.finalScopes.set(stage.index, ctx.scope);
    return { name: stageName, index: stage.index, state: ctx.state, config, baseRef, baseDigest, baseHistoryLength };
  }

  /** Expands a FROM word with the global ARGs, warning (UndefinedArgInFrom) about undeclared ones. */
  private expandFrom(inst: Instruction, word: string, gscope: Record<string, string>): string {
    let res;
    try {
      res = this.lexer.processWordWithMatches(word, gscope);
    } catch (e) {
      throw this.err(inst, (e as Error).message, EXPANSION_HINT, word);
    }
    for (const { name, suggestion } of this.globals.undeclared(res.unmatched)) {
      this.warn(inst, name, `UndefinedArgInFrom: FROM argument '${name}' is not declared${suggestion ? ` (did you mean ${suggestion}?)` : ''}`);
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
  expandIn(ctx: StageContext, inst: Instruction, word: string, env = ctx.scope.values(), lexer = this.lexer): string {
    let res;
    try {
      res = lexer.processWordWithMatches(word, env);
    } catch (e) {
      throw this.err(inst, (e as Error).message, EXPANSION_HINT, word);
    }
    for (const { name, suggestion } of ctx.scope.undefinedVars(res.unmatched, env)) {
      this.warn(inst, `$`, `UndefinedVar: Usage of undefined variable '$${name}'${suggestion ? ` (did you mean $${suggestion}?)` : ''}`);
    }
    return res.result;
  }

  expandWordsIn(ctx: StageContext, inst: Instruction, word: string, env = ctx.scope.values()): string[] {
    this.expandIn(ctx, inst, word, env);
    try {
      return this.lexer.processWords(word, env);
    } catch (e) {
      throw this.err(inst, (e as Error).message, EXPANSION_HINT, word);
    }
  }

  /** BuildKit's commitToHistory: steps that run or copy (a new state) end in " # buildkit". */
  history(ctx: StageContext, createdBy: string, emptyLayer: boolean, newState = false): void {
    const h: HistoryEntry = { created: this.created, created_by: newState ? `${createdBy} # buildkit` : createdBy, comment: 'buildkit.dockerfile.v0' };
    if (emptyLayer) h.empty_layer = true;
    ctx.config.history!.push(h);
  }

  proxyEnv(): Record<string, string> {
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

  private async dispatch(ctx: StageContext, inst: Instruction, at: Instruction): Promise<void> {
    ctx.config.config ??= {};
    const origin = { ...locate(at, this.df.fileName, this.df.lines) };
    const cmd = parseStepCommand(inst, this.src);
    switch (cmd.keyword) {
      case 'env':
        return dispatchEnv(this, ctx, cmd);
      case 'label':
        return dispatchLabel(this, ctx, cmd);
      case 'maintainer':
        return dispatchMaintainer(this, ctx, cmd);
      case 'arg':
        return this.dispatchArg(ctx, cmd);
      case 'workdir':
        return this.dispatchWorkdir(ctx, cmd, origin);
      case 'user':
        return dispatchUser(this, ctx, cmd);
      case 'expose':
        return dispatchExpose(this, ctx, cmd);
      case 'volume':
        return dispatchVolume(this, ctx, cmd);
      case 'stopsignal':
        return dispatchStopSignal(this, ctx, cmd);
      case 'shell':
        return dispatchShell(this, ctx, cmd);
      case 'cmd':
      case 'entrypoint':
        return dispatchCmdOrEntrypoint(this, ctx, cmd);
      case 'healthcheck':
        return dispatchHealthcheck(this, ctx, cmd);
      case 'onbuild':
        return dispatchOnbuild(ctx, cmd);
      case 'run':
        return dispatchRun(this, ctx, cmd, origin, displayText(inst));
      case 'copy':
      case 'add':
        return dispatchCopy(this, ctx, cmd, origin);
    }
  }

  /**
   * ARG as BuildKit dispatches it (stages.ts argValue): a --build-arg wins, then the default
   * (expanded), then the global ARG of the same name; a value is added to the build state's
   * environment (ENV of the same name set earlier is overridden for RUN and expansion, not
   * in the image); history shows the value the ARG got.
   */
  private dispatchArg(ctx: StageContext, cmd: ArgCommand): void {
    const gscope = this.globalScope();
    const written: string[] = [];
    for (const [i, arg] of cmd.args.entries()) {
      const name = arg.key;
      if (!/^[^\s=$]+$/.test(name)) throw this.err(cmd.inst, `invalid ARG name "${name}"`, 'write ARG NAME or ARG NAME=default', cmd.inst.args[i]);
      const { value, fromBuildArg } = argValue(arg, this.buildArgs, gscope, (w) => this.expandIn(ctx, cmd.inst, w));
      if (fromBuildArg) this.consumedArgs.add(name);
      ctx.scope.declareArg(name, value);
      written.push(value === undefined ? name : `${name}=${value}`);
    }
    this.history(ctx, `ARG ${written.join(' ')}`, true);
  }

  private dispatchWorkdir(ctx: StageContext, cmd: ValueCommand, origin: VertexOrigin): void {
    const cc = ctx.config.config!;
    const raw = this.expandIn(ctx, cmd.inst, cmd.value);
    if (raw === '') throw this.err(cmd.inst, 'WORKDIR requires exactly one argument', 'write WORKDIR /path');
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
      ...stepFields(ctx, `WORKDIR ${wd}`, origin),
    };
    v.digest = definitionDigest({ kind: 'file', parent: ctx.state.digest, action: v.action });
    ctx.state = v;
    this.history(ctx, `WORKDIR ${wd}`, false);
  }

  /**
   * The state a COPY --from or RUN --mount from= names: an earlier stage (by name or
   * index) or an image. A stage defined later is an error that says so.
   */
  async sourceState(ctx: StageContext, inst: Instruction, ref: string, needle: string, what: string): Promise<Vertex | LocalVertex> {
    const st = this.stages.earlier(ref, ctx.stage.index);
    if (st) {
      // a stage a named context replaces: a directory is read as it is, not as a stage's copy
      const planned = await this.planStage(st.index);
      return planned.contextSource ?? planned.state;
    }
    const named = /^\d+$/.test(ref) ? undefined : await this.namedContext(inst, ref, ctx.platform, needle);
    if (named) {
      if (named.kind === 'local') return named.source;
      if (named.kind === 'scratch') return { kind: 'scratch', digest: definitionDigest({ kind: 'scratch', platform: ctx.platform }), name: `[context ${ref}] scratch`, platform: ctx.platform };
      return imageVertex(named.image, `[context ${ref}] ${named.label}`, ctx.platform);
    }
    const later = this.stages.later(ref, ctx.stage.index);
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

  /** An image COPY --from or --mount from= names; `[internal]` vertices are not a step of their own. */
  private async imageState(inst: Instruction, ref: string, platform: Platform, needle?: string): Promise<Vertex> {
    const resolved = await this.opts.resolveImage(ref, platform).catch((e: unknown) => {
      if (e instanceof KilnError) {
        const names = this.stages.names();
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
    return imageVertex(resolved, `[internal] load ${resolved.ref}`, platform);
  }

  /**
   * The named context `name` stands for, if the build has one (never for scratch or the
   * build context itself, as in BuildKit); its errors point at the instruction naming it.
   */
  private async namedContext(inst: Instruction, name: string, platform: Platform, needle: string): Promise<NamedContextState | undefined> {
    const lookup = this.opts.namedContext;
    if (!lookup || /^(scratch|context)$/i.test(name)) return undefined;
    return lookup(name, platform).catch((e: unknown) => {
      if (e instanceof KilnError && !e.location) {
        throw new KilnError(e.message, { code: e.code, location: locate(inst, this.df.fileName, this.df.lines, needle), hint: e.hint, cause: e });
      }
      throw e;
    });
  }

  /**
   * A stage's base from a named context: an image as FROM gives it, scratch, or a directory
   * (the empty image with the directory's files as its one layer, as BuildKit's local source
   * under a stage).
   */
  private contextBase(
    named: NamedContextState,
    name: string,
    platform: Platform,
    from: { name: string; step: NonNullable<Vertex['step']> },
    where: { stageName: string; noCache: boolean; origin: VertexOrigin },
  ): Omit<StagePlan, 'name' | 'index'> {
    if (named.kind === 'image') {
      const resolved = named.image;
      const config = structuredClone(resolved.config);
      config.config ??= {};
      config.config.Env = withDefaultPath(config.config.Env);
      // BuildKit drops the base's creation time: the build sets its own
      delete config.created;
      return {
        state: { ...imageVertex(resolved, from.name, platform), step: from.step },
        config,
        baseRef: resolved.ref,
        baseDigest: resolved.manifestDigest,
        baseHistoryLength: resolved.config.history?.length ?? 0,
      };
    }
    const scratch: Vertex = { kind: 'scratch', digest: definitionDigest({ kind: 'scratch', platform }), ...from, platform };
    const config = emptyImage(platform);
    if (named.kind === 'scratch') return { state: scratch, config, baseHistoryLength: 0 };
    const action = { op: 'copy' as const, source: { from: named.source, paths: ['.'] }, dest: '/', cwd: '/', unpackArchives: false };
    const copy: FileVertex = {
      kind: 'file',
      parent: scratch,
      action,
      digest: definitionDigest({ kind: 'file', parent: scratch.digest, action: { ...action, source: { paths: ['.'], from: named.source.source } } }),
      name: from.name,
      stage: where.stageName,
      step: from.step,
      origin: where.origin,
      platform,
      noCache: where.noCache,
    };
    config.history!.push({ created: this.created, created_by: `FROM ${name} (${named.label}) # buildkit`, comment: 'buildkit.dockerfile.v0' });
    return { state: copy, config, baseHistoryLength: 0, contextSource: named.source };
  }
}

/** BuildKit's emptyImage: PATH and a working directory of "/". */
function emptyImage(platform: Platform): ImageConfig {
  const config: ImageConfig = {
    architecture: platform.architecture,
    os: platform.os,
    config: { Env: [`PATH=${DEFAULT_PATH}`], WorkingDir: '/' },
    rootfs: { type: 'layers', diff_ids: [] },
    history: [],
  };
  if (platform.variant) config.variant = platform.variant;
  return config;
}

function imageVertex(resolved: ResolvedImage, name: string, platform: Platform): Vertex {
  return {
    kind: 'image',
    ref: resolved.ref,
    manifestDigest: resolved.manifestDigest,
    digest: definitionDigest({ kind: 'image', manifest: resolved.manifestDigest }),
    name,
    platform,
  };
}
