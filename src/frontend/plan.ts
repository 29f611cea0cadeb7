/**
 * Dockerfile → build graph. Resolves stages, ARG scoping, image config evolution and
 * ONBUILD, and emits graph vertices. Only the stages the target needs are planned.
 */
import path from 'node:path';
import { KilnError } from '../errors.js';
import type { Dockerfile, Instruction } from '../dockerfile/ast.js';
import { parseDockerfile } from '../dockerfile/parser.js';
import { ShellLexer } from '../dockerfile/shell.js';
import type { ContainerConfig, Descriptor, HistoryEntry, ImageConfig, Platform } from '../oci/types.js';
import {
  definitionDigest,
  type ExecVertex,
  type FileVertex,
  type MountSpec,
  type Vertex,
} from '../graph/types.js';
import { parseFlags } from './flags.js';
import { locate } from './locate.js';
import { parseDuration } from './duration.js';
import { parseMount } from './mounts.js';
import { formatPlatform, parsePlatform } from './platform.js';
import { closestWord } from './suggest.js';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
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
}

export interface StagePlan {
  name: string;
  index: number;
  state: Vertex;
  config: ImageConfig;
  /** Base image reference, for --explain. */
  baseRef?: string;
  baseDigest?: string;
}

export interface BuildPlan {
  target: StagePlan;
  stagesPlanned: StagePlan[];
  warnings: string[];
  unusedBuildArgs: string[];
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
  private readonly stages: StageDecl[] = [];
  private readonly globalArgs: Array<{ name: string; value?: string }> = [];
  private readonly planned = new Map<number, Promise<StagePlan>>();
  private readonly consumedArgs = new Set<string>();
  private readonly warnings: string[] = [];
  private readonly targetPlatform: Platform;
  private readonly buildArgs: Record<string, string>;

  constructor(
    private readonly df: Dockerfile,
    private readonly opts: PlanOptions,
  ) {
    this.lexer = new ShellLexer(df.directives.escape);
    this.targetPlatform = opts.platform ?? opts.buildPlatform;
    this.buildArgs = opts.buildArgs ?? {};
    this.splitStages();
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
      throw new KilnError(`${this.df.fileName}: no FROM instruction: a Dockerfile must have at least one stage`, {
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
        throw this.err(inst, `invalid name for build stage: "${args[2]}", name can't start with a number or contain symbols`, undefined, args[2]);
      }
      return { image: args[0], name };
    }
    throw this.err(inst, 'FROM requires either one or three arguments: FROM <image> [AS <name>]');
  }

  /** Platform ARGs as BuildKit predefines them. */
  private platformArgs(): Record<string, string> {
    const t = this.targetPlatform;
    const b = this.opts.buildPlatform;
    return {
      TARGETPLATFORM: formatPlatform(t),
      TARGETOS: t.os,
      TARGETARCH: t.architecture,
      TARGETVARIANT: t.variant ?? '',
      BUILDPLATFORM: formatPlatform(b),
      BUILDOS: b.os,
      BUILDARCH: b.architecture,
      BUILDVARIANT: b.variant ?? '',
    };
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
        const near = closestWord(t, names);
        throw new KilnError(`target stage "${this.opts.target}" could not be found`, {
          hint: near ? `did you mean "${near}"?` : names.length ? `stages: ${names.join(', ')}` : 'no stage is named (FROM image AS name)',
        });
      }
      targetIndex = found.index;
    }
    const target = await this.planStage(targetIndex);
    const planned = await Promise.all([...this.planned.values()]);
    for (const name of PROXY_ARGS) if (name in this.buildArgs) this.consumedArgs.add(name);
    const unused = Object.keys(this.buildArgs).filter((k) => !this.consumedArgs.has(k) && !(k in this.platformArgs()));
    return { target, stagesPlanned: planned, warnings: this.warnings, unusedBuildArgs: unused };
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
    const image = this.expand(stage.from, rawImage, gscope);
    if (image === '') throw this.err(stage.from, `base name (${rawImage}) should not be blank`, 'set the ARG it uses');
    let platform = this.targetPlatform;
    const platformFlag = fromFlags.string('platform');
    if (platformFlag) platform = parsePlatform(this.expand(stage.from, platformFlag, gscope));
    const stageName = stage.name ?? `stage-${stage.index}`;
    const total = stage.body.length + 1;
    const label = (n: number, text: string) => `[${stageName} ${n}/${total}] ${text}`;

    let state: Vertex;
    let config: ImageConfig;
    let baseRef: string | undefined;
    let baseDigest: string | undefined;
    const parentStage = this.stageRef(image, stage.index);
    if (parentStage) {
      const parent = await this.planStage(parentStage.index);
      state = parent.state;
      config = structuredClone(parent.config);
      baseRef = parent.baseRef;
      baseDigest = parent.baseDigest;
    } else if (image === 'scratch') {
      state = {
        kind: 'scratch',
        digest: definitionDigest({ kind: 'scratch', platform }),
        name: label(1, 'FROM scratch'),
        platform,
      };
      config = { architecture: platform.architecture, os: platform.os, config: { Env: [`PATH=${DEFAULT_PATH}`] }, rootfs: { type: 'layers', diff_ids: [] }, history: [] };
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
        layers: resolved.layers,
        diffIds: resolved.config.rootfs.diff_ids,
        digest: definitionDigest({ kind: 'image', manifest: resolved.manifestDigest }),
        name: label(1, `FROM ${resolved.ref}`),
        platform,
      };
      config = structuredClone(resolved.config);
      config.config ??= {};
      if (!(config.config.Env ?? []).some((e) => e.startsWith('PATH='))) {
        config.config.Env = [...(config.config.Env ?? []), `PATH=${DEFAULT_PATH}`];
      }
      baseRef = resolved.ref;
      baseDigest = resolved.manifestDigest;
    }
    config.history ??= [];
    const cc: ContainerConfig = (config.config ??= {});
    const noCache =
      this.opts.noCache === true ||
      (this.opts.noCacheFilter ?? []).some((f) => f.toLowerCase() === stageName || f === String(stage.index));

    // Stage-local ARG values (name → value); visible to expansion and RUN.
    const stageArgs = new Map<string, string>();
    const triggers = cc.OnBuild ?? [];
    cc.OnBuild = undefined;

    const ctx: StageContext = {
      stage,
      stageName,
      platform,
      state,
      config,
      stageArgs,
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
      if (parsed) await this.dispatch(ctx, parsed, stage.from);
    }
    for (const inst of stage.body) {
      ctx.step += 1;
      await this.dispatch(ctx, inst, inst);
    }
    const finalCc = ctx.config.config ?? {};
    if (finalCc.OnBuild && finalCc.OnBuild.length === 0) finalCc.OnBuild = undefined;
    config.created = this.opts.created;
    return { name: stageName, index: stage.index, state: ctx.state, config, baseRef, baseDigest };
  }

  private expand(inst: Instruction, word: string, env: Record<string, string>): string {
    try {
      return this.lexer.processWord(word, env);
    } catch (e) {
      throw this.err(inst, (e as Error).message, undefined, word);
    }
  }

  /** The environment for expansion: stage ARGs overridden by ENV. */
  private scope(ctx: StageContext): Record<string, string> {
    const scope: Record<string, string> = {};
    for (const [k, v] of ctx.stageArgs) scope[k] = v;
    for (const e of ctx.config.config?.Env ?? []) {
      const i = e.indexOf('=');
      scope[i === -1 ? e : e.slice(0, i)] = i === -1 ? '' : e.slice(i + 1);
    }
    return scope;
  }

  private history(ctx: StageContext, createdBy: string, emptyLayer: boolean): void {
    const h: HistoryEntry = { created: this.opts.created, created_by: createdBy, comment: 'buildkit.dockerfile.v0' };
    if (emptyLayer) h.empty_layer = true;
    ctx.config.history!.push(h);
  }

  private setEnv(cc: ContainerConfig, key: string, value: string): void {
    const env = (cc.Env ??= []);
    const i = env.findIndex((e) => e === key || e.startsWith(`${key}=`));
    if (i === -1) env.push(`${key}=${value}`);
    else env[i] = `${key}=${value}`;
  }

  /** Build args that reach a RUN's environment (not overridden by ENV), as BuildKit passes them. */
  private runBuildArgs(ctx: StageContext): Record<string, string> {
    const envKeys = new Set((ctx.config.config?.Env ?? []).map((e) => e.split('=')[0]));
    const out: Record<string, string> = {};
    for (const [k, v] of ctx.stageArgs) if (!envKeys.has(k)) out[k] = v;
    for (const p of PROXY_ARGS) if (p in this.buildArgs && !envKeys.has(p)) out[p] = this.buildArgs[p];
    return out;
  }

  private shellOf(ctx: StageContext): string[] {
    return ctx.config.config?.Shell ?? ['/bin/sh', '-c'];
  }

  private async dispatch(ctx: StageContext, inst: Instruction, at: Instruction): Promise<void> {
    const cc = (ctx.config.config ??= {});
    const file = this.df.fileName;
    const lines = this.df.lines;
    const noFlags = () => parseFlags(inst, {}, file, lines);
    const origin = { ...locate(at, file, lines) };
    const display = `${inst.keyword.toUpperCase()} ${inst.json ? JSON.stringify(inst.args).replace(/","/g, '", "') : inst.args.join(' ')}`.trim();
    switch (inst.keyword) {
      case 'env': {
        noFlags();
        const pairs: string[] = [];
        for (let i = 0; i + 1 < inst.args.length; i += 2) {
          const key = this.expand(inst, inst.args[i], this.scope(ctx));
          const value = this.expand(inst, inst.args[i + 1], this.scope(ctx));
          this.setEnv(cc, key, value);
          pairs.push(`${key}=${value}`);
        }
        this.history(ctx, `ENV ${pairs.join(' ')}`, true);
        return;
      }
      case 'label': {
        noFlags();
        const pairs: string[] = [];
        cc.Labels ??= {};
        for (let i = 0; i + 1 < inst.args.length; i += 2) {
          const key = this.expand(inst, inst.args[i], this.scope(ctx));
          const value = this.expand(inst, inst.args[i + 1], this.scope(ctx));
          cc.Labels[key] = value;
          pairs.push(`${key}=${value}`);
        }
        this.history(ctx, `LABEL ${pairs.join(' ')}`, true);
        return;
      }
      case 'maintainer':
        noFlags();
        ctx.config.author = inst.args.join(' ');
        this.history(ctx, `MAINTAINER ${ctx.config.author}`, true);
        return;
      case 'arg': {
        noFlags();
        const scope = this.scope(ctx);
        const gscope = this.globalScope();
        const written: string[] = [];
        for (const raw of inst.args) {
          const { name, value } = splitArg(raw);
          let resolved: string | undefined;
          if (name in this.buildArgs) {
            resolved = this.buildArgs[name];
            this.consumedArgs.add(name);
          } else if (value !== undefined) {
            resolved = this.expand(inst, value, scope);
          } else if (name in gscope) {
            resolved = gscope[name];
          }
          if (resolved !== undefined) ctx.stageArgs.set(name, resolved);
          else ctx.stageArgs.delete(name);
          if (resolved !== undefined) scope[name] = resolved;
          written.push(value === undefined ? name : `${name}=${value}`);
        }
        this.history(ctx, `ARG ${written.join(' ')}`, true);
        return;
      }
      case 'workdir': {
        noFlags();
        const raw = this.expand(inst, inst.args[0] ?? '', this.scope(ctx));
        const wd = path.posix.resolve(cc.WorkingDir || '/', raw);
        cc.WorkingDir = wd;
        const v: FileVertex = {
          kind: 'file',
          parent: ctx.state,
          action: { op: 'mkdir', path: wd, mode: 0o755, user: cc.User ?? '' },
          digest: '',
          name: ctx.label(ctx.step, `WORKDIR ${wd}`),
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
        cc.User = this.expand(inst, inst.args[0] ?? '', this.scope(ctx));
        this.history(ctx, `USER ${cc.User}`, true);
        return;
      }
      case 'expose': {
        noFlags();
        cc.ExposedPorts ??= {};
        const scope = this.scope(ctx);
        for (const word of inst.args) {
          for (const port of expandPorts(this.expand(inst, word, scope), (m) => this.err(inst, m, undefined, word))) {
            cc.ExposedPorts[port] = {};
          }
        }
        const keys = Object.keys(cc.ExposedPorts).sort();
        this.history(ctx, `EXPOSE map[${keys.map((k) => `${k}:{}`).join(' ')}]`, true);
        return;
      }
      case 'volume': {
        noFlags();
        cc.Volumes ??= {};
        const scope = this.scope(ctx);
        const vols = inst.args.map((a) => this.expand(inst, a, scope));
        for (const v of vols) {
          if (v.trim() === '') throw this.err(inst, 'VOLUME specified can not be an empty string');
          cc.Volumes[v] = {};
        }
        this.history(ctx, `VOLUME [${vols.join(' ')}]`, true);
        return;
      }
      case 'stopsignal': {
        noFlags();
        const sig = this.expand(inst, inst.args[0] ?? '', this.scope(ctx));
        if (!/^(SIG[A-Z0-9+-]+|\d+)$/.test(sig) && !/^[A-Z]+$/.test(sig)) {
          throw this.err(inst, `invalid signal: ${sig}`, 'use a signal name such as SIGTERM or a number');
        }
        cc.StopSignal = sig;
        this.history(ctx, `STOPSIGNAL ${sig}`, true);
        return;
      }
      case 'shell': {
        noFlags();
        if (!inst.json) throw this.err(inst, 'SHELL requires the arguments to be in JSON form', 'write SHELL ["/bin/bash", "-c"]');
        if (inst.args.length === 0) throw this.err(inst, 'SHELL requires at least one argument');
        cc.Shell = [...inst.args];
        this.history(ctx, `SHELL [${inst.args.join(' ')}]`, true);
        return;
      }
      case 'cmd':
      case 'entrypoint': {
        noFlags();
        const args = inst.json ? [...inst.args] : [...this.shellOf(ctx), inst.args.join(' ')];
        if (inst.keyword === 'cmd') {
          cc.Cmd = args;
          ctx.cmdSet = true;
          this.history(ctx, `CMD ${JSON.stringify(args)}`, true);
        } else {
          cc.Entrypoint = args;
          if (!ctx.cmdSet) cc.Cmd = undefined;
          this.history(ctx, `ENTRYPOINT ${JSON.stringify(args)}`, true);
        }
        return;
      }
      case 'healthcheck': {
        const flags = parseFlags(
          inst,
          { interval: 'string', timeout: 'string', 'start-period': 'string', 'start-interval': 'string', retries: 'string' },
          file,
          lines,
        );
        const first = (inst.args[0] ?? '').toUpperCase();
        if (first === 'NONE') {
          if (inst.args.length > 1 || inst.flags.length > 0) throw this.err(inst, "HEALTHCHECK NONE takes no other arguments");
          cc.Healthcheck = { Test: ['NONE'] };
          this.history(ctx, 'HEALTHCHECK NONE', true);
          return;
        }
        if (first !== 'CMD') throw this.err(inst, `unknown type "${inst.args[0] ?? ''}" in HEALTHCHECK (try CMD)`, 'write HEALTHCHECK [OPTIONS] CMD command, or HEALTHCHECK NONE');
        const rest = inst.args.slice(1);
        const test = inst.json ? ['CMD', ...rest] : ['CMD-SHELL', rest.join(' ')];
        const hc: NonNullable<ContainerConfig['Healthcheck']> = { Test: test };
        const dur = (name: string, key: 'Interval' | 'Timeout' | 'StartPeriod' | 'StartInterval') => {
          const raw = flags.string(name);
          if (raw === undefined) return;
          const ns = parseDuration(raw);
          if (ns === undefined) throw this.err(inst, `invalid duration for --${name}: "${raw}"`, 'use a Go duration such as 30s, 1m30s or 500ms', `--${name}`);
          if (ns !== 0 && ns < 1_000_000) throw this.err(inst, `--${name} cannot be less than 1ms`, undefined, `--${name}`);
          hc[key] = ns;
        };
        dur('interval', 'Interval');
        dur('timeout', 'Timeout');
        dur('start-period', 'StartPeriod');
        dur('start-interval', 'StartInterval');
        const retries = flags.string('retries');
        if (retries !== undefined) {
          if (!/^-?\d+$/.test(retries)) throw this.err(inst, `invalid value for --retries: "${retries}"`, undefined, '--retries');
          const n = Number(retries);
          if (n < 0) throw this.err(inst, '--retries cannot be negative', undefined, '--retries');
          hc.Retries = n;
        }
        cc.Healthcheck = hc;
        this.history(ctx, `HEALTHCHECK ${JSON.stringify(test)}`, true);
        return;
      }
      case 'onbuild': {
        noFlags();
        const trigger = inst.onbuild;
        if (!trigger) throw this.err(inst, 'ONBUILD requires an instruction to trigger');
        if (['onbuild', 'from', 'maintainer'].includes(trigger.keyword)) {
          throw this.err(inst, `${trigger.keyword.toUpperCase()} isn't allowed as an ONBUILD trigger`);
        }
        const text = inst.original.replace(/^\s*onbuild\s+/i, '');
        cc.OnBuild = [...(cc.OnBuild ?? []), text];
        this.history(ctx, `ONBUILD ${text}`, true);
        return;
      }
      case 'run':
        return this.dispatchRun(ctx, inst, origin, display);
      case 'copy':
      case 'add':
        return this.dispatchCopy(ctx, inst, origin, display);
      case 'from':
        throw this.err(inst, 'FROM is not allowed here');
      default:
        throw this.err(inst, `unknown instruction: ${inst.keyword.toUpperCase()}`);
    }
  }

  private async dispatchRun(ctx: StageContext, inst: Instruction, origin: VertexOrigin, display: string): Promise<void> {
    const cc = ctx.config.config!;
    const flags = parseFlags(inst, { mount: 'strings', network: 'string', security: 'string' }, this.df.fileName, this.df.lines);
    const scope = this.scope(ctx);
    const mounts: MountSpec[] = [];
    for (const raw of flags.strings('mount')) {
      const spec = parseMount(this.expand(inst, raw, scope), (m) => this.err(inst, m, undefined, '--mount'));
      if (spec.from && spec.from !== 'context') {
        const fromName = spec.fromName!;
        const st = this.stageRef(fromName, ctx.stage.index);
        spec.from = st
          ? (await this.planStage(st.index)).state
          : await this.imageState(inst, fromName, ctx.platform);
      }
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
    const buildArgs = this.runBuildArgs(ctx);
    const shell = this.shellOf(ctx);
    let args: string[];
    const inlineFiles: ExecVertex['inlineFiles'] = [];
    if (inst.json) {
      args = [...inst.args];
    } else if (inst.heredocs.length > 0) {
      const cmdline = inst.args.join(' ').trim();
      const only = inst.heredocs.length === 1 && /^\d*<<-?\s*(["']?)[^\s"']+\1$/.test(cmdline);
      if (only && inst.heredocs[0].content.startsWith('#!')) {
        const p = `/dev/pipes/${inst.heredocs[0].name}`;
        inlineFiles.push({ path: p, content: inst.heredocs[0].content, mode: 0o755 });
        args = [p];
      } else if (only) {
        args = [...shell, inst.heredocs[0].content];
      } else {
        const bodies = inst.heredocs.map((h) => `${h.content}${h.name}\n`).join('');
        args = [...shell, `${cmdline}\n${bodies}`];
      }
    } else {
      args = [...shell, inst.args.join(' ')];
    }
    const env = [...(cc.Env ?? [])];
    for (const [k, v] of Object.entries(buildArgs)) env.push(`${k}=${v}`);
    const v: ExecVertex = {
      kind: 'exec',
      parent: ctx.state,
      args,
      env,
      cwd: cc.WorkingDir || '/',
      user: cc.User ?? '',
      network: network === 'none' ? 'none' : 'host',
      mounts,
      inlineFiles: inlineFiles.length ? inlineFiles : undefined,
      buildArgs,
      digest: '',
      name: ctx.label(ctx.step, display),
      stage: ctx.stageName,
      origin,
      platform: ctx.platform,
      noCache: ctx.noCache,
    };
    v.digest = definitionDigest({
      kind: 'exec',
      parent: ctx.state.digest,
      args,
      env,
      cwd: v.cwd,
      user: v.user,
      network: v.network,
      mounts: mounts.map((m) => ({ ...m, from: m.from === undefined || m.from === 'context' ? m.from : m.from.digest })),
      inlineFiles,
      platform: ctx.platform,
    });
    ctx.state = v;
    // History text as BuildKit writes it: build args used by the step are prefixed as "|N k=v".
    const used = Object.entries(buildArgs).filter(([k]) => !PROXY_ARGS.includes(k));
    const prefix = used.length ? `|${used.length} ${used.map(([k, val]) => `${k}=${val}`).join(' ')} ` : '';
    this.history(ctx, `RUN ${prefix}${args.join(' ')} # buildkit`, false);
  }

  private async imageState(inst: Instruction, ref: string, platform: Platform): Promise<Vertex> {
    const resolved = await this.opts.resolveImage(ref, platform).catch((e: unknown) => {
      if (e instanceof KilnError) {
        const names = this.stages.flatMap((s) => (s.name ? [s.name] : []));
        const near = closestWord(ref.toLowerCase(), names);
        throw this.err(
          inst,
          `"${ref}" is neither an earlier build stage nor an image in the store`,
          near ? `did you mean the stage "${near}"?` : e.hint,
          ref,
        );
      }
      throw e;
    });
    return {
      kind: 'image',
      ref: resolved.ref,
      manifestDigest: resolved.manifestDigest,
      layers: resolved.layers,
      diffIds: resolved.config.rootfs.diff_ids,
      digest: definitionDigest({ kind: 'image', manifest: resolved.manifestDigest }),
      name: `[internal] load ${resolved.ref}`,
      platform,
    };
  }

  private async dispatchCopy(ctx: StageContext, inst: Instruction, origin: VertexOrigin, _display: string): Promise<void> {
    const isAdd = inst.keyword === 'add';
    const cc = ctx.config.config!;
    const accepted: Record<string, 'string' | 'bool' | 'strings'> = isAdd
      ? { chown: 'string', chmod: 'string', link: 'bool', checksum: 'string', 'keep-git-dir': 'bool', exclude: 'strings' }
      : { from: 'string', chown: 'string', chmod: 'string', link: 'bool', parents: 'bool', exclude: 'strings' };
    const flags = parseFlags(inst, accepted, this.df.fileName, this.df.lines);
    const scope = this.scope(ctx);
    let words = inst.args;
    if (inst.json) words = inst.args;
    const heredocNames = new Set(inst.heredocs.map((h) => h.name));
    const expanded = words.map((w) => (heredocNames.size && /^\d*<<-?/.test(w) ? w : this.expand(inst, w, scope)));
    if (expanded.length < 2) {
      throw this.err(inst, `${inst.keyword.toUpperCase()} requires at least two arguments, but only ${expanded.length} provided`, `write ${inst.keyword.toUpperCase()} <src>... <dest>`);
    }
    const dest = expanded[expanded.length - 1];
    const srcWords = expanded.slice(0, -1);
    const inline: { name: string; content: string }[] = [];
    const paths: string[] = [];
    const urls: string[] = [];
    for (const w of srcWords) {
      const m = /^\d*<<-?(["']?)([^\s"']+)\1$/.exec(w);
      if (m && heredocNames.has(m[2])) {
        const h = inst.heredocs.find((x) => x.name === m[2])!;
        inline.push({ name: h.name, content: h.expand ? this.expand(inst, h.content, scope) : h.content });
      } else if (isAdd && /^https?:\/\//.test(w)) {
        urls.push(w);
      } else if (isAdd && /^git@|\.git(#|$)/.test(w)) {
        throw this.err(inst, `ADD from a git repository is not supported yet: ${w}`, 'clone it in an earlier stage with RUN git clone', w);
      } else {
        paths.push(w);
      }
    }
    if (srcWords.length > 1 && !dest.endsWith('/') && paths.length + urls.length + inline.length > 1) {
      throw this.err(inst, `When using ${inst.keyword.toUpperCase()} with more than one source file, the destination must be a directory and end with a /`, `write ${dest}/`, dest);
    }
    let from: Vertex | 'context' = 'context';
    const fromFlag = flags.string('from');
    if (fromFlag !== undefined) {
      const ref = this.expand(inst, fromFlag, scope);
      const st = this.stageRef(ref, ctx.stage.index);
      if (st) from = (await this.planStage(st.index)).state;
      else {
        const later = this.stages.find((s) => s.name === ref.toLowerCase() && s.index >= ctx.stage.index);
        if (later) {
          throw this.err(inst, `COPY --from=${ref} refers to stage "${ref}", which is defined later (line ${later.from.startLine})`, 'move that stage above this one', `--from=${fromFlag}`);
        }
        from = await this.imageState(inst, ref, ctx.platform);
      }
    }
    const chown = flags.string('chown');
    const chmod = flags.string('chmod');
    if (chmod !== undefined) {
      const c = this.expand(inst, chmod, scope);
      if (!/^[0-7]{3,4}$/.test(c)) throw this.err(inst, `invalid --chmod value "${c}": use octal such as 0755`, undefined, '--chmod');
    }
    const action = {
      op: 'copy' as const,
      source: { from, paths },
      inline: inline.length ? inline : undefined,
      dest,
      cwd: cc.WorkingDir || '/',
      chown: chown === undefined ? undefined : this.expand(inst, chown, scope),
      chmod: chmod === undefined ? undefined : this.expand(inst, chmod, scope),
      unpackArchives: isAdd,
      urls: urls.length ? urls : undefined,
      excludes: flags.strings('exclude').map((e) => this.expand(inst, e, scope)),
      parents: flags.bool('parents') || undefined,
      link: flags.bool('link') || undefined,
    };
    const srcDisplay = [...srcWords].join(' ');
    const v: FileVertex = {
      kind: 'file',
      parent: ctx.state,
      action,
      digest: '',
      name: ctx.label(ctx.step, `${inst.keyword.toUpperCase()} ${fromFlag !== undefined ? `--from=${fromFlag} ` : ''}${srcDisplay} ${dest}`),
      stage: ctx.stageName,
      origin,
      platform: ctx.platform,
      noCache: ctx.noCache,
    };
    v.digest = definitionDigest({
      kind: 'file',
      parent: ctx.state.digest,
      action: { ...action, source: { paths, from: from === 'context' ? 'context' : from.digest } },
    });
    ctx.state = v;
    this.history(ctx, `${isAdd ? 'ADD' : 'COPY'} ${srcDisplay} ${dest} # buildkit`, false);
  }
}

type VertexOrigin = NonNullable<Vertex['origin']>;

interface StageContext {
  stage: StageDecl;
  stageName: string;
  platform: Platform;
  state: Vertex;
  config: ImageConfig;
  stageArgs: Map<string, string>;
  noCache: boolean;
  label: (n: number, text: string) => string;
  step: number;
  cmdSet: boolean;
}

function splitArg(raw: string): { name: string; value?: string } {
  const i = raw.indexOf('=');
  if (i === -1) return { name: raw };
  return { name: raw.slice(0, i), value: raw.slice(i + 1) };
}

/** "80", "80/TCP", "8000-8002/udp" → ["80/tcp"], ... */
export function expandPorts(spec: string, fail: (m: string) => Error): string[] {
  const m = /^(\d+)(?:-(\d+))?(?:\/([A-Za-z]+))?$/.exec(spec);
  if (!m) throw fail(`invalid port specification "${spec}": expected PORT[-PORT][/PROTOCOL]`);
  const proto = (m[3] ?? 'tcp').toLowerCase();
  if (!['tcp', 'udp', 'sctp'].includes(proto)) throw fail(`invalid protocol "${m[3]}" in EXPOSE ${spec}: use tcp, udp or sctp`);
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (lo > 65535 || hi > 65535 || hi < lo) throw fail(`invalid port range "${spec}"`);
  const out: string[] = [];
  for (let p = lo; p <= hi; p++) out.push(`${p}/${proto}`);
  return out;
}
