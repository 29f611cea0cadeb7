/**
 * The scheduler: walks the build graph from a target, solving each vertex once however
 * many steps share it, running independent steps in parallel under a limit, and reporting
 * progress. It knows nothing of containers, mounts or the content store: a step's key, its
 * cache lookup and its run are the `StepKeys`, `StepCache` and `Ops` it is given (real ones
 * in the solver, fakes in its unit tests). The first failure cancels every other step and
 * is the error the solve reports, naming the step.
 */
import { KilnError } from '../errors.js';
import { vertexInputs, type ImageVertex, type ScratchVertex, type Vertex } from '../graph/types.js';
import { atStep } from './errors.js';
import { describeDefinition, isLinkedCopy } from './keys.js';
import { Semaphore } from './semaphore.js';
import { isStep, type LayerRef, type ProgressEvent, type SolvedLayer, type SolvedState, type StepRecord, type StepVertex } from './types.js';

/** What a running step is given besides its inputs. */
export interface StepContext {
  /** The step's progress id (its log events carry it). */
  id: number;
  /** Aborted when the build is interrupted or another step failed. */
  signal: AbortSignal;
  log(stream: 'stdout' | 'stderr', data: Buffer): void;
  /** The error a step stopped by `signal` throws. */
  cancelled(): KilnError;
}

/** The work behind vertices: what the scheduler is given to run. */
export interface Ops {
  /** A state no step makes (scratch, an image): its key and layers. */
  source(v: ScratchVertex | ImageVertex): Promise<{ key: string; layers: SolvedLayer[] }>;
  /**
   * Runs a step over `base` (empty for a COPY --link, which does not read its parent);
   * `others` are its other inputs in vertexInputs order (COPY --from, mounted stages).
   * Returns the layer it made (undefined: none).
   */
  run(v: StepVertex, base: SolvedLayer[], others: SolvedState[], ctx: StepContext): Promise<SolvedLayer | undefined>;
}

/** A step's cache key from its definition and its solved inputs (the parent first, unless linked). */
export interface StepKeys {
  key(v: StepVertex, inputs: SolvedState[], linked: boolean): Promise<{ key: string; filesDigest?: string }>;
  /** A step's definition key, computed before its inputs are solved (undefined: it has none). Absent: none are computed. */
  definition?(v: Vertex): Promise<string | undefined>;
}

/** A step's result found by its definition key: its content key and its state's whole layer chain. */
export interface DefinitionHit {
  key: string;
  layers: SolvedLayer[];
  addedLayer: boolean;
  createdAt: string;
}

/** Results of earlier runs, by cache key. */
export interface StepCache {
  /** A usable result recorded for `key` (its layer kept alive for this build), else undefined. */
  lookup(key: string): Promise<{ layer: SolvedLayer; createdAt: string } | undefined>;
  /** Remembers a step's result; `ready` is its stored layer (none for a step that made none). */
  record(r: { key: string; description: string; createdAt: string; ready?: Promise<LayerRef> }): void;
  /** A result recorded for a definition key (an imported cache's), its layers kept alive for this build. */
  lookupDefinition?(definitionKey: string): Promise<DefinitionHit | undefined>;
}

export interface SchedulerOptions {
  ops: Ops;
  keys: StepKeys;
  cache: StepCache;
  parallelism: number;
  signal?: AbortSignal;
  progress?: (ev: ProgressEvent) => void;
}

export class Scheduler {
  private readonly memo = new Map<string, Promise<SolvedState>>();
  private readonly limit: Semaphore;
  private nextId = 1;
  readonly steps: StepRecord[] = [];
  /** Cancels every running step when one fails or the caller aborts. */
  private readonly cancel = new AbortController();
  /** The first step failure: what the build reports, not the cancellations it caused. */
  firstError?: unknown;
  /** Work still running after its step finished (layer stores). */
  private readonly background: Promise<unknown>[] = [];

  constructor(private readonly opts: SchedulerOptions) {
    this.limit = new Semaphore(Math.max(1, opts.parallelism));
    if (opts.signal?.aborted) this.cancel.abort();
    else opts.signal?.addEventListener('abort', () => this.cancel.abort(), { once: true });
  }

  get signal(): AbortSignal {
    return this.cancel.signal;
  }

  solve(v: Vertex): Promise<SolvedState> {
    let p = this.memo.get(v.digest);
    if (!p) {
      p = this.doSolve(v);
      this.memo.set(v.digest, p);
      // a rejected promise that nobody awaits yet must not crash the process
      p.catch(() => undefined);
    }
    return p;
  }

  /** Waits until every started step and its background work has finished. */
  async drain(): Promise<void> {
    let size = -1;
    let bg = -1;
    while (size !== this.memo.size || bg !== this.background.length) {
      size = this.memo.size;
      bg = this.background.length;
      await Promise.allSettled([...this.memo.values(), ...this.background]);
    }
  }

  /** Tracks `work` that runs after its step, failing the build (as that step) if it fails. */
  private inBackground(v: Vertex, work: Promise<unknown>, doing: string): void {
    const tracked = work.catch((e: unknown) => this.fail(atStep(e, v, doing)));
    this.background.push(tracked);
  }

  /** Makes `e` the build's failure unless there is one already, and cancels the other steps. */
  private fail(e: unknown): void {
    if (this.firstError !== undefined) return;
    this.firstError = e;
    this.cancel.abort();
  }

  private emit(ev: ProgressEvent): void {
    this.opts.progress?.(ev);
  }

  private checkAborted(): void {
    if (this.signal.aborted) throw this.cancelledError();
  }

  private stepRecord(v: StepVertex, key: string): StepRecord {
    return {
      name: v.name,
      stage: v.stage,
      step: v.step,
      key,
      kind: v.kind,
      definition: describeDefinition(v),
      buildArgs: v.kind === 'exec' ? v.buildArgs : undefined,
      base: rootImage(v),
      cached: false,
    };
  }

  cancelledError(): KilnError {
    return this.opts.signal?.aborted
      ? new KilnError('build interrupted', { code: 'cancelled', exitCode: 130 })
      : new KilnError('step cancelled because another step failed', { code: 'cancelled' });
  }

  /** The state of `v` if it is solved or being solved, else one an imported cache has for its definition key (nothing runs). */
  async known(v: Vertex): Promise<SolvedState | undefined> {
    const solved = this.memo.get(v.digest);
    if (solved) return solved;
    return isStep(v) ? this.byDefinition(v, await this.definitionKey(v)) : undefined;
  }

  private async definitionKey(v: StepVertex): Promise<string | undefined> {
    if (v.noCache || !this.opts.keys.definition) return undefined;
    return this.opts.keys.definition(v).catch(() => undefined);
  }

  private async byDefinition(v: StepVertex, definitionKey: string | undefined): Promise<SolvedState | undefined> {
    if (definitionKey === undefined || v.noCache) return undefined;
    const hit = await this.opts.cache.lookupDefinition?.(definitionKey);
    if (!hit) return undefined;
    // the chain starts with the base image's layers: the local ones where they are the same
    // (the base is a source, nothing runs), so only the layers steps made come from the cache
    let root: Vertex = v;
    while (isStep(root)) root = root.parent;
    const base = (await this.solve(root)).layers;
    let same = 0;
    while (same < base.length && same < hit.layers.length && base[same].diffId === hit.layers[same].diffId) same++;
    const layers = [...base.slice(0, same), ...hit.layers.slice(same)];
    return { vertex: v, key: hit.key, layers, addedLayer: hit.addedLayer, cached: true, createdAt: hit.createdAt, definitionKey };
  }

  private async doSolve(v: Vertex): Promise<SolvedState> {
    this.checkAborted();
    if (!isStep(v)) {
      const { key, layers } = await this.opts.ops.source(v).catch((e: unknown) => {
        throw atStep(e, v);
      });
      return { vertex: v, key, layers, addedLayer: false, cached: true };
    }
    // an imported cache may have the step by its definition: then no input is solved
    const definitionKey = await this.definitionKey(v);
    const byDefinition = await this.byDefinition(v, definitionKey);
    if (byDefinition) {
      this.emit({ type: 'cached', id: this.nextId++, name: v.name });
      this.steps.push({ ...this.stepRecord(v, byDefinition.key), parentName: parentName(v.parent), cached: true });
      return byDefinition;
    }
    // COPY --link does not read its parent: it runs on an empty root, in parallel with the
    // parent, and its cache key ignores the parent (a base change does not invalidate it)
    const linked = isLinkedCopy(v);
    const inputVs = vertexInputs(v);
    const parentPromise = this.solve(inputVs[0]);
    const others = await Promise.all(inputVs.slice(1).map((i) => this.solve(i)));
    const keyInputs = linked ? others : [await parentPromise, ...others];
    const { key, filesDigest } = await this.opts.keys.key(v, keyInputs, linked).catch((e: unknown) => {
      throw atStep(e, v);
    });
    const step: StepRecord = { ...this.stepRecord(v, key), filesDigest };
    const finish = async (layer: SolvedLayer | undefined, cached: boolean, createdAt: string): Promise<SolvedState> => {
      const parent = await parentPromise;
      step.parentKey = parent.key;
      step.parentName = parentName(parent.vertex);
      step.cached = cached;
      this.steps.push(step);
      return { vertex: v, key, layers: layer ? [...parent.layers, layer] : parent.layers, addedLayer: layer !== undefined, cached, createdAt, definitionKey };
    };
    if (!v.noCache) {
      const hit = await this.opts.cache.lookup(key);
      if (hit) {
        this.emit({ type: 'cached', id: this.nextId++, name: v.name });
        return finish(hit.layer, true, hit.createdAt);
      }
    }
    let createdAt = '';
    const layer = await this.limit.run(async () => {
      this.checkAborted();
      const id = this.nextId++;
      const started = Date.now();
      this.emit({ type: 'start', id, name: v.name, time: started });
      try {
        const base = linked ? [] : (await parentPromise).layers;
        const ctx: StepContext = {
          id,
          signal: this.signal,
          log: (stream, data) => this.emit({ type: 'log', id, stream, data }),
          cancelled: () => this.cancelledError(),
        };
        const made = await this.opts.ops.run(v, base, others, ctx).catch((e: unknown) => {
          throw atStep(e, v);
        });
        if (made) this.inBackground(v, made.ready, 'storing the layer of this step');
        createdAt = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
        // the record is written once the layer's blob is durable (when the solve commits)
        this.opts.cache.record({ key, description: v.name, createdAt, ready: made?.ready });
        this.emit({ type: 'done', id, name: v.name, ms: Date.now() - started });
        return made;
      } catch (e) {
        // a step that failed because the build was already being cancelled is not the cause
        const cancelled = this.signal.aborted;
        if (!cancelled) this.fail(e);
        this.emit({ type: 'error', id, name: v.name, message: cancelled ? 'CANCELED' : e instanceof Error ? e.message : String(e) });
        throw e;
      }
    });
    return finish(layer, false, createdAt);
  }
}

/** How --explain names a step's parent. */
function parentName(parent: Vertex): string {
  return parent.kind === 'image' ? `FROM ${parent.ref}` : parent.name;
}

/** The image a step's parent chain starts from, for --explain. */
function rootImage(v: Vertex): { ref: string; digest: string } | undefined {
  let cur: Vertex | undefined = v;
  while (cur && isStep(cur)) cur = cur.parent;
  return cur?.kind === 'image' ? { ref: cur.ref, digest: cur.manifestDigest } : undefined;
}
