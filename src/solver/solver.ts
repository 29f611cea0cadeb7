/**
 * The solver: turns graph vertices into layer chains. It wires the parts together — the
 * scheduler (graph walk, dedup, parallelism, progress), the cache keys, the layer
 * committer (layers, blobs, cache records) and the ops (exec, file, source) with their
 * executor — and keeps the interface the build uses.
 */
import { vertexInputs, type LocalVertex, type Vertex } from '../graph/types.js';
import type { ContentStore, Lease } from '../oci/store.js';
import type { CacheRecords } from '../cache/records.js';
import { resetCacheMounts } from '../cache/gc.js';
import type { Snapshotter } from '../snapshot/snapshotter.js';
import type { BuildContext } from './context.js';
import { LayerCommitter } from './commit.js';
import { CacheKeys } from './keys.js';
import { BuildOps, cacheMountName, HttpSources, localImages, runtimeExecutor, type Executor, type ImageResolver, type OpDeps } from './ops/index.js';
import { Scheduler } from './scheduler.js';
import { StateMounter } from './states.js';
import type { LayerRef, ProgressEvent, SolvedState, StepRecord } from './types.js';

export type { LayerRef, ProgressEvent, SolvedLayer, SolvedState, StepRecord } from './types.js';
export type { Executor, ImageResolver } from './ops/index.js';

export interface SolverOptions {
  root: string;
  store: ContentStore;
  snapshotter: Snapshotter;
  records: CacheRecords;
  /** The build context: the local source "context". */
  context?: BuildContext;
  parallelism: number;
  sourceDateEpoch?: number;
  signal?: AbortSignal;
  /** Secret values by id, held in memory only (written to a tmpfs for the steps using them). */
  secrets?: Record<string, Uint8Array>;
  progress?: (ev: ProgressEvent) => void;
  /** Keeps the blobs this build uses alive against a concurrent prune. */
  lease?: Lease;
  /** Runs RUN steps (default: the host's OCI runtime). */
  executor?: Executor;
  /** Finds image layers (default: the local content store). */
  images?: ImageResolver;
}

export class Solver {
  private readonly scheduler: Scheduler;
  private readonly committer: LayerCommitter;
  private readonly http: HttpSources;

  constructor(private readonly opts: SolverOptions) {
    const tempPath = (kind: string) => opts.store.tempPath(kind);
    this.http = new HttpSources(tempPath);
    const states = new StateMounter(opts.root, opts.store, opts.snapshotter, opts.lease);
    const local = (source?: LocalVertex): BuildContext | undefined => (source === undefined || source.source === 'context' ? opts.context : undefined);
    const deps: OpDeps = {
      root: opts.root,
      executor: opts.executor ?? runtimeExecutor,
      snapshotter: opts.snapshotter,
      states,
      local,
      http: this.http,
      tempPath,
      secrets: opts.secrets,
      lease: opts.lease,
    };
    this.committer = new LayerCommitter({ store: opts.store, snapshotter: opts.snapshotter, records: opts.records, lease: opts.lease, sourceDateEpoch: opts.sourceDateEpoch });
    const keys = new CacheKeys({
      local: async (source, paths, excludes, owners) => (await local(source)?.checksum(paths, excludes, { owners }))?.digest,
      mounted: (state, p) => states.mountedChecksum(state, p),
      http: async (source) => (await this.http.fetch(source)).key,
    });
    this.scheduler = new Scheduler({
      ops: new BuildOps(deps, opts.images ?? localImages(opts.store), this.committer),
      keys,
      cache: this.committer,
      parallelism: opts.parallelism,
      signal: opts.signal,
      progress: opts.progress,
    });
  }

  /** What each solved step read and was keyed on, in the order they finished. */
  get steps(): StepRecord[] {
    return this.scheduler.steps;
  }

  /** The first step failure: what the build reports, not the cancellations it caused. */
  get firstError(): unknown {
    return this.scheduler.firstError;
  }

  /** Bytes of the layers this solve wrote (compressed), for cache accounting. */
  get addedBytes(): number {
    return this.committer.addedBytes;
  }

  solve(v: Vertex): Promise<SolvedState> {
    return this.scheduler.solve(v);
  }

  /**
   * Starts the cache mounts of the steps under `target` that run without the cache afresh,
   * as BuildKit prunes them before such a build: every step of the build that mounts the
   * same id then sees the new, empty one. A mount another running build holds is left to it
   * (cache/gc.ts resetCacheMounts); this build then shares it, as sharing=shared does.
   */
  async resetCacheMounts(target: Vertex): Promise<void> {
    const names = new Set<string>();
    const seen = new Set<string>();
    const walk = (v: Vertex): void => {
      if (seen.has(v.digest)) return;
      seen.add(v.digest);
      if (v.kind === 'exec' && v.noCache) for (const m of v.mounts) if (m.type === 'cache') names.add(cacheMountName(m));
      vertexInputs(v).forEach(walk);
    };
    walk(target);
    if (names.size === 0) return;
    await resetCacheMounts(this.opts.store, names);
    await this.opts.lease?.protect({ mounts: [...names] });
  }

  /** Waits until every started step has finished or released its mounts and containers. */
  drain(): Promise<void> {
    return this.scheduler.drain();
  }

  /**
   * Waits for the layers still being written, commits them and writes the cache records;
   * throws the build's first failure, if any (the steps that succeeded are still kept, so
   * a retry resumes after them). Call after solve() and before using the result.
   */
  async flush(extra: Array<{ tmp: string; digest: string }> = []): Promise<void> {
    await this.settle(true, extra);
    if (this.firstError !== undefined) throw this.firstError;
  }

  /**
   * Waits for every step and background write, then either commits the finished layers and
   * `extra` blobs (one fsync round for all of them, then blobs/ and cache records) or, for
   * an interrupted build, removes them.
   */
  async settle(keep: boolean, extra: Array<{ tmp: string; digest: string }> = []): Promise<void> {
    await this.drain();
    await this.http.cleanup();
    await this.committer.settle(keep, extra);
  }

  /** The finished layers of a solved state (waits for background stores). */
  async layersOf(state: SolvedState): Promise<LayerRef[]> {
    return Promise.all(state.layers.map((l) => l.ready));
  }
}
