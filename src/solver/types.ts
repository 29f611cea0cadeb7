/**
 * What the solver's parts hand each other: solved states and their layers, progress
 * events, and the record of what each step was keyed on (kept for --explain).
 */
import type { Descriptor } from '../oci/types.js';
import type { ExecVertex, FileVertex, StepIdentity, Vertex } from '../graph/types.js';

export interface LayerRef {
  descriptor: Descriptor;
  diffId: string;
}

/**
 * A layer in a solved chain. Its diffId (and unpacked dir) is known at once; its blob may
 * still be being compressed and stored in the background, so the next step need not wait.
 */
export interface SolvedLayer {
  diffId: string;
  ready: Promise<LayerRef>;
  /**
   * A layer from an imported cache (--cache-from) whose blob may not be local yet: brings it
   * into the store (once) and resolves to it. Absent for layers the store has.
   */
  fetch?: () => Promise<LayerRef>;
}

/** The layer with its blob in the local store: fetched first when it came from an imported cache. */
export function localLayer(l: SolvedLayer): Promise<LayerRef> {
  return l.fetch ? l.fetch() : l.ready;
}

export function solvedLayer(ref: LayerRef): SolvedLayer {
  return { diffId: ref.diffId, ready: Promise.resolve(ref) };
}

/** A vertex that runs (a RUN, or a file operation) and adds a layer. */
export type StepVertex = ExecVertex | FileVertex;

export function isStep(v: Vertex): v is StepVertex {
  return v.kind === 'exec' || v.kind === 'file';
}

export interface SolvedState {
  vertex: Vertex;
  key: string;
  /** The whole layer chain of this state, base first. */
  layers: SolvedLayer[];
  /** Whether this vertex added a layer (false for steps that changed nothing). */
  addedLayer: boolean;
  cached: boolean;
  /** When this step's result was made (its cache record's time when cached): the history time. */
  createdAt?: string;
  /** The step's definition key (keys.ts CacheKeys.definition), when the solve computes them. */
  definitionKey?: string;
}

export type ProgressEvent =
  | { type: 'start'; id: number; name: string; time: number }
  | { type: 'cached'; id: number; name: string }
  | { type: 'log'; id: number; stream: 'stdout' | 'stderr'; data: Buffer }
  | { type: 'done'; id: number; name: string; ms: number }
  | { type: 'error'; id: number; name: string; message: string };

/** What a step read and was keyed on, kept for `--explain`. */
export interface StepRecord {
  name: string;
  stage?: string;
  /** The step's identity in the Dockerfile (absent in history files of older versions). */
  step?: StepIdentity;
  key: string;
  parentKey?: string;
  parentName?: string;
  kind: Vertex['kind'];
  definition: string;
  /** Checksum of the context files a COPY read; its per-file map is kept by the context. */
  filesDigest?: string;
  /** That map, loaded for `--explain` only (older history files hold it inline). */
  files?: Record<string, string>;
  buildArgs?: Record<string, string>;
  base?: { ref: string; digest: string };
  cached: boolean;
}
