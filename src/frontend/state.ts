/**
 * What the dispatchers share while a stage is converted: the stage's build state
 * (StageContext) and the converter's services (Converter) that copy.ts, run.ts and
 * config.ts call back into. convert.ts implements Converter.
 */
import type { KilnError } from '../errors.js';
import type { Instruction } from '../dockerfile/ast.js';
import type { ShellLexer } from '../dockerfile/shell.js';
import type { SourceText } from '../dockerfile/instructions.js';
import type { StageDecl, StageScope } from '../dockerfile/stages.js';
import type { ImageConfig, Platform } from '../oci/types.js';
import type { LocalVertex, Vertex, VertexCommon } from '../graph/types.js';
import type { PlanOptions } from './plan.js';

export type VertexOrigin = NonNullable<Vertex['origin']>;

/** The step identity fields every vertex of a step carries. */
export type StepFields = Pick<VertexCommon, 'name' | 'stage' | 'step' | 'origin' | 'platform' | 'noCache'>;

export interface StageContext {
  stage: StageDecl;
  stageName: string;
  platform: Platform;
  state: Vertex;
  config: ImageConfig;
  /** The build state's environment and the ARGs the stage declared. */
  scope: StageScope;
  noCache: boolean;
  /** This step's place in "[stage n/m]" (1 is FROM). */
  step: number;
  total: number;
  cmdSet: boolean;
}

/** The progress label "[stage n/m] TEXT". */
export function stepLabel(ctx: Pick<StageContext, 'stageName' | 'total'>, n: number, text: string): string {
  return `[${ctx.stageName} ${n}/${ctx.total}] ${text}`;
}

/** Name, step identity, origin and platform for a vertex made by the current step. */
export function stepFields(ctx: StageContext, instruction: string, origin: VertexOrigin): StepFields {
  return {
    name: stepLabel(ctx, ctx.step, instruction),
    stage: ctx.stageName,
    step: { stage: ctx.stageName, stageIndex: ctx.stage.index, index: ctx.step, total: ctx.total, instruction },
    origin,
    platform: ctx.platform,
    noCache: ctx.noCache,
  };
}

/** The converter's services the per-instruction dispatchers use. */
export interface Converter {
  readonly src: SourceText;
  readonly opts: PlanOptions;
  readonly buildArgs: Readonly<Record<string, string>>;
  /** The Dockerfile's lexer (its escape directive). */
  readonly lexer: ShellLexer;
  /** Expands COPY/ADD heredoc bodies: quotes kept, `$` and backslash escapes processed. */
  readonly heredocLexer: ShellLexer;
  err(inst: Instruction, message: string, hint?: string, needle?: string): KilnError;
  /** Expands a word in the stage (UndefinedVar warnings included). */
  expandIn(ctx: StageContext, inst: Instruction, word: string, env?: Record<string, string>, lexer?: ShellLexer): string;
  /** Expands a word into several (EXPOSE, VOLUME). */
  expandWordsIn(ctx: StageContext, inst: Instruction, word: string, env?: Record<string, string>): string[];
  /** Appends a history entry (BuildKit's commitToHistory). */
  history(ctx: StageContext, createdBy: string, emptyLayer: boolean, newState?: boolean): void;
  /** The state COPY --from or RUN --mount from= names: a named context, an earlier stage or an image. */
  sourceState(ctx: StageContext, inst: Instruction, ref: string, needle: string, what: string): Promise<Vertex | LocalVertex>;
  /** Proxy settings from --build-arg, in both spellings. */
  proxyEnv(): Record<string, string>;
}
