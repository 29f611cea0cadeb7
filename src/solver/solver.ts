/**
 * The solver: turns graph vertices into layer chains. It wires the parts together — the
 * scheduler (graph walk, dedup, parallelism, progress), the cache keys, the layer
 * committer (layers, blobs, cache records) and the ops (exec, file, source) with their
 * executor — and keeps the interface the build uses.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isErrnoError } from '../errors.js';
import { vertexInputs, type LocalVertex, type MountSpec, type Vertex } from '../graph/types.js';
import type { ImportedCache, ImportedLayer } from '../cache/imported.js';
import { extractLayer } from '../snapshot/unpack.js';
import { kilnPaths } from '../paths.js';
import type { ContentStore, Lease } from '../oci/store.js';
import type { CacheRecords } from '../cache/records.js';
import { resetCacheMounts } from '../cache/gc.js';
import type { Snapshotter } from '../snapshot/snapshotter.js';
import type { BuildContext } from './context.js';
import { LayerCommitter } from './commit.js';
import { CacheKeys } from './keys.js';
import { BuildOps, cacheMountDir, cacheMountId, cacheMountName, GitSources, HttpSources, localImages, runtimeExecutor, type Executor, type ImageResolver, type OpDeps } from './ops/index.js';
import type { SshAgents } from '../exec/ssh.js';
import { Scheduler } from './scheduler.js';
import { StateMounter } from './states.js';
import { isStep, localLayer, type LayerRef, type ProgressEvent, type SolvedLayer, type SolvedState, type StepRecord, type StepVertex } from './types.js';

export type { LayerRef, ProgressEvent, SolvedLayer, SolvedState, StepRecord } from './types.js';
export type { Executor, ImageResolver } from './ops/index.js';

export interface SolverOptions {
  root: string;
  store: ContentStore;
  snapshotter: Snapshotter;
  records: CacheRecords;
  /** The build context: the local source "context". */
  context?: BuildContext;
  /** Named local contexts (--build-context NAME=DIR) by source name ("named:NAME"). */
  namedContexts?: Map<string, BuildContext>;
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
  /** Imported caches (--cache-from): their step records, and cache mounts to seed. */
  imported?: ImportedCache;
  /**
   * Compute every step's definition key (keys.ts CacheKeys.definition): for a build that
   * imports or exports a shared cache. An imported cache's step is then found by it before
   * the step's inputs are solved.
   */
  definitionKeys?: boolean;
  /** The build's ssh agents (--ssh), for RUN --mount=type=ssh. */
  ssh?: SshAgents;
}

/** A step the solve reached, with what an exported cache records of it. */
export interface SolvedStepResult {
  vertex: StepVertex;
  key: string;
  description: string;
  createdAt: string;
  /** The layer the step added (undefined: none). */
  layer?: SolvedLayer;
  /** Its definition key, with its state's whole layer chain (base first), when the solve computed one. */
  definitionKey?: string;
  chain: SolvedLayer[];
}

/** A RUN --mount=type=cache the solve reached: its id (as the Dockerfile names it) and directory. */
export interface SolvedCacheMount {
  id: string;
  dir: string;
}

export class Solver {
  private readonly scheduler: Scheduler;
  private readonly committer: LayerCommitter;
  private readonly http: HttpSources;
  private readonly git: GitSources;

  constructor(private readonly opts: SolverOptions) {
    const tempPath = (kind: string) => opts.store.tempPath(kind);
    this.http = new HttpSources(tempPath, kilnPaths(opts.root).cacheHttp, opts.signal);
    // ADD over ssh uses the agent of the build's "default" ssh id, as BuildKit's git source
    this.git = new GitSources({ cacheDir: kilnPaths(opts.root).cacheGit, locksDir: kilnPaths(opts.root).locks, tempPath, signal: opts.signal, sshAuthSock: async () => opts.ssh?.socket('default') });
    const states = new StateMounter(opts.root, opts.store, opts.snapshotter, opts.lease);
    const local = (source?: LocalVertex): BuildContext | undefined => (source === undefined || source.source === 'context' ? opts.context : opts.namedContexts?.get(source.source));
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
      ssh: opts.ssh,
      git: this.git,
    };
    this.committer = new LayerCommitter({ store: opts.store, snapshotter: opts.snapshotter, records: opts.records, lease: opts.lease, sourceDateEpoch: opts.sourceDateEpoch, imported: opts.imported });
    const cacheKeys = new CacheKeys({
      local: async (source, paths, excludes, owners) => (await local(source)?.checksum(paths, excludes, { owners }))?.digest,
      mounted: (state, p) => states.mountedChecksum(state, p),
      http: async (source) => (await this.http.fetch(source)).key,
      git: (source) => this.git.key(source),
    });
    const keys = opts.definitionKeys ? cacheKeys : { key: cacheKeys.key.bind(cacheKeys) };
    const ops = new BuildOps(deps, opts.images ?? localImages(opts.store), this.committer);
    const imported = opts.imported;
    const seeder = imported ? new MountSeeder(opts.root, opts.store, imported, opts.lease) : undefined;
    this.scheduler = new Scheduler({
      // a step that runs with a cache mount an imported cache holds gets it seeded first
      ops: seeder
        ? {
            source: (v) => ops.source(v),
            run: async (v, base, others, ctx) => {
              if (v.kind === 'exec') for (const m of v.mounts) if (m.type === 'cache') await seeder.seed(m);
              return ops.run(v, base, others, ctx);
            },
          }
        : ops,
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
    await this.git.cleanup();
    await this.committer.settle(keep, extra);
  }

  /** The finished layers of a solved state (waits for background stores, fetches imported ones). */
  async layersOf(state: SolvedState): Promise<LayerRef[]> {
    return Promise.all(state.layers.map(localLayer));
  }

  /**
   * Every step under `target`, or with `finalStage` only the target's own chain of parents:
   * what --cache-to mode=max and mode=min export. A step found in an imported cache by its
   * definition key had its inputs left unsolved: a step under it is taken from the imported
   * cache too (by its own definition key), and left out when it is not there. Call after the solve.
   */
  async solvedSteps(target: Vertex, finalStage = false): Promise<SolvedStepResult[]> {
    const out: SolvedStepResult[] = [];
    for (const v of reachableSteps(target, finalStage)) {
      const s = await this.scheduler.known(v);
      if (!s) continue;
      out.push({
        vertex: v,
        key: s.key,
        description: v.name,
        createdAt: s.createdAt ?? '',
        layer: s.addedLayer ? s.layers[s.layers.length - 1] : undefined,
        definitionKey: s.definitionKey,
        chain: s.layers,
      });
    }
    return out;
  }

  /** The cache mounts of the RUN steps under `target`, by id, with their directories. */
  cacheMounts(target: Vertex): SolvedCacheMount[] {
    const byId = new Map<string, SolvedCacheMount>();
    for (const v of reachableSteps(target, false)) {
      if (v.kind !== 'exec') continue;
      for (const m of v.mounts) if (m.type === 'cache') byId.set(cacheMountId(m), { id: cacheMountId(m), dir: cacheMountDir(this.opts.root, cacheMountName(m)) });
    }
    return [...byId.values()];
  }
}

/** The step vertices under `target`, inputs before the steps reading them; `chainOnly`: its parent chain alone. */
function reachableSteps(target: Vertex, chainOnly: boolean): StepVertex[] {
  const out: StepVertex[] = [];
  const seen = new Set<string>();
  const visit = (v: Vertex): void => {
    if (seen.has(v.digest)) return;
    seen.add(v.digest);
    if (!isStep(v)) return;
    if (chainOnly) visit(v.parent);
    else vertexInputs(v).forEach(visit);
    out.push(v);
  };
  visit(target);
  return out;
}

/**
 * Seeds cache mounts from imported caches: a mount whose directory is absent or empty gets the
 * imported contents before the first step that mounts it runs (once per build), so a fresh
 * runner starts with its package caches warm; a mount with contents of its own is left alone.
 */
class MountSeeder {
  private readonly seeded = new Map<string, Promise<void>>();

  constructor(
    private readonly root: string,
    private readonly store: Pick<ContentStore, 'openBlob' | 'tempPath'>,
    private readonly imported: ImportedCache,
    private readonly lease?: Lease,
  ) {}

  seed(m: MountSpec): Promise<void> {
    const layer = this.imported.mount(cacheMountId(m));
    if (!layer) return Promise.resolve();
    const name = cacheMountName(m);
    let p = this.seeded.get(name);
    if (!p) {
      p = this.fill(m, name, layer);
      this.seeded.set(name, p);
    }
    return p;
  }

  private async fill(m: MountSpec, name: string, layer: ImportedLayer): Promise<void> {
    await this.lease?.protect({ mounts: [name] });
    const dir = cacheMountDir(this.root, name);
    const entries = await fs.readdir(dir).catch(() => undefined);
    if (entries && entries.length > 0) return;
    await layer.fetch();
    // unpacked in the store's temp dir (the reaper's, should this process die), then renamed in
    const tmp = this.store.tempPath('seed-mount');
    await fs.mkdir(tmp, { recursive: true, mode: m.mode ?? 0o755 });
    try {
      await fs.chown(tmp, m.uid ?? 0, m.gid ?? 0);
      await extractLayer(this.store.openBlob(layer.descriptor.digest), tmp, `cache mount ${cacheMountId(m)}`, layer.diffId);
      // an empty directory made meanwhile is replaced; one a step has filled is kept
      await fs.mkdir(path.dirname(dir), { recursive: true });
      await fs.rmdir(dir).catch(() => undefined);
      await fs.rename(tmp, dir).catch((e: unknown) => {
        if (!isErrnoError(e) || (e.code !== 'ENOTEMPTY' && e.code !== 'EEXIST')) throw e;
      });
    } finally {
      await fs.rm(tmp, { recursive: true, force: true });
    }
  }
}
