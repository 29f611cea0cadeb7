/**
 * Dockerfile → build graph: the frontend's entry. planBuild converts the stages the target
 * needs (convert.ts: stages and dispatch; copy.ts: COPY/ADD; run.ts and mounts.ts: RUN;
 * config.ts: the image config) over the typed instructions (dockerfile/instructions.ts) and
 * the shared stage and ARG model (dockerfile/stages.ts) the checks use too.
 */
import type { Dockerfile } from '../dockerfile/ast.js';
import type { Descriptor, ImageConfig, Platform } from '../oci/types.js';
import type { ExecVertex, LocalVertex, Vertex } from '../graph/types.js';
import { Planner } from './convert.js';

export { DEFAULT_PATH } from '../dockerfile/stages.js';
export { expandPorts } from './config.js';

export interface ResolvedImage {
  ref: string;
  manifestDigest: string;
  config: ImageConfig;
  layers: Descriptor[];
}

/**
 * What a named context (--build-context NAME=…) stands for: an image (docker-image:// or
 * oci-layout://, already in the store), the empty filesystem (docker-image://scratch) or a
 * local directory (a source vertex the solver reads like the build context).
 */
export type NamedContextState =
  | { kind: 'image'; image: ResolvedImage; label: string }
  | { kind: 'scratch' }
  | { kind: 'local'; source: LocalVertex; label: string };

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
  /** Entitlements the build grants (--allow): network.host, security.insecure. */
  entitlements?: string[];
  /** The network of a RUN without --network (build --network); default: the sandboxed one. */
  network?: 'default' | 'none' | 'host';
  /** Resource limits of every RUN (build --ulimit); part of the step's definition, as BuildKit's. */
  ulimits?: ExecVertex['ulimits'];
  /** Memory limit of every RUN in bytes (build --memory); not part of the cache key. */
  memory?: number;
  /**
   * The named context a stage, base or --from name stands for (--build-context), resolved
   * only when the build uses it; undefined when no context has that name. It takes
   * precedence over a stage or image of the same name, as in BuildKit.
   */
  namedContext?: (name: string, platform: Platform) => Promise<NamedContextState | undefined>;
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
  /** The directory of a named context that replaced this stage: COPY --from reads it as it is. */
  contextSource?: LocalVertex;
}

export interface BuildPlan {
  target: StagePlan;
  stagesPlanned: StagePlan[];
  warnings: string[];
  unusedBuildArgs: string[];
  /** SOURCE_DATE_EPOCH (seconds) given as a build arg or a Dockerfile ARG default. */
  sourceDateEpoch?: number;
}

export async function planBuild(df: Dockerfile, opts: PlanOptions): Promise<BuildPlan> {
  return new Planner(df, opts).plan();
}
