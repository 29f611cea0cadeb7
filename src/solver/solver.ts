/**
 * The solver: turns graph vertices into layer chains. Each vertex gets a cache key from
 * its definition, its inputs' keys and the content it reads; a key with a record is not
 * run again. Independent vertices run in parallel under a limit.
 */
import { createHash } from 'node:crypto';
import { createReadStream, lstatSync, promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { fromErrno, isErrnoError, KilnError } from '../errors.js';
import type { ContentStore, Lease } from '../oci/store.js';
import { layerDiffId, writeLayer } from '../oci/layer.js';
import { trace, tracing } from '../trace.js';
import { MediaType, type Descriptor } from '../oci/types.js';
import type { CacheRecords } from '../cache/records.js';
import type { Snapshotter } from '../snapshot/snapshotter.js';
import type { ActiveMount } from '../snapshot/types.js';
import { missingStubs, removeStubs, runContainer, resolveUser, type RunSpec } from '../exec/index.js';
import { mountSecrets, type SecretFile } from '../exec/secrets.js';
import type { ExecVertex, FileVertex, Vertex } from '../graph/types.js';
import type { BuildContext } from './context.js';
import { makeDirsSync, rootPathSync } from '../fsroot.js';
import { contextTree, copyInto, mkdirInRoot, rootfsTree, secureResolve, type Owner } from './copy.js';
import { Semaphore } from './semaphore.js';
import { writeFileAtomic } from '../fsutil.js';
import { parseChmod } from './chmod.js';
import { hasWildcard } from './match.js';
import { httpGet, type HttpResponse } from '../net.js';

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
}

function solvedLayer(ref: LayerRef): SolvedLayer {
  return { diffId: ref.diffId, ready: Promise.resolve(ref) };
}

/**
 * Layers up to this many bytes of file content are named by a digest-only pass and stored
 * in the background; bigger ones are written in one pass (reading them twice costs more
 * than the overlap gains).
 */
const BACKGROUND_LAYER_MAX = 64 << 20;
/** Layers up to this size keep their tar bytes from the naming pass, so storing is one write. */
const KEEP_TAR_MAX = 8 << 20;

/** KILN_DIRECT_FILEOPS=0 mounts for every file operation (to compare the two paths). */
const DIRECT_FILE_OPS = process.env.KILN_DIRECT_FILEOPS !== '0';

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

export interface SolverOptions {
  root: string;
  store: ContentStore;
  snapshotter: Snapshotter;
  records: CacheRecords;
  context?: BuildContext;
  parallelism: number;
  sourceDateEpoch?: number;
  signal?: AbortSignal;
  /** Secret values by id, held in memory only (written to a tmpfs for the steps using them). */
  secrets?: Record<string, Uint8Array>;
  progress?: (ev: ProgressEvent) => void;
  /** Keeps the blobs this build uses alive against a concurrent prune. */
  lease?: Lease;
}

/**
 * Files the runtime bind-mounts over the rootfs whose empty stubs a step does not keep, as
 * BuildKit's stub cleaner (moby/buildkit#3307, #3314): only these and the step's own mount
 * targets. The runtime's /dev, /proc and /sys mount points stay in the layer of the first RUN
 * on a base without them, as they do in BuildKit's; so does a working directory it creates.
 */
const STUB_FILES = ['/etc/resolv.conf', '/etc/hosts'];

/** A RUN's hostname unless BUILDKIT_SANDBOX_HOSTNAME says otherwise, as in BuildKit. */
const DEFAULT_HOSTNAME = 'buildkitsandbox';

export class Solver {
  private readonly memo = new Map<string, Promise<SolvedState>>();
  private readonly keyMemo = new Map<string, Promise<{ key: string; filesDigest?: string }>>();
  private readonly limit: Semaphore;
  private nextId = 1;
  readonly steps: StepRecord[] = [];
  /** Cancels every running step when one fails or the caller aborts. */
  private readonly cancel = new AbortController();
  /** The first step failure: what the build reports, not the cancellations it caused. */
  firstError?: unknown;
  /** Bytes of the layers this solve wrote (compressed), for cache accounting. */
  addedBytes = 0;
  /** Layer stores still running after their step finished. */
  private readonly background: Promise<unknown>[] = [];
  /** Layer blobs written but not yet fsynced nor in blobs/ (committed together at the end). */
  private readonly uncommitted: Array<{ tmp: string; digest: string }> = [];
  /** Cache records of executed steps, written once their layers are committed. */
  private readonly pendingRecords: Array<{ key: string; description: string; createdAt: string; ready?: Promise<LayerRef> }> = [];

  constructor(private readonly opts: SolverOptions) {
    this.limit = new Semaphore(Math.max(1, opts.parallelism));
    if (opts.signal?.aborted) this.cancel.abort();
    else opts.signal?.addEventListener('abort', () => this.cancel.abort(), { once: true });
  }

  private get signal(): AbortSignal {
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

  /**
   * Starts the cache mounts of the steps under `target` that run without the cache afresh,
   * as BuildKit prunes them before such a build: every step of the build that mounts the
   * same id then sees the new, empty one. The old content is moved away and deleted.
   */
  async resetCacheMounts(target: Vertex): Promise<void> {
    const names = new Set<string>();
    const seen = new Set<string>();
    const walk = (v: Vertex): void => {
      if (seen.has(v.digest) || v.kind === 'scratch' || v.kind === 'image') return;
      seen.add(v.digest);
      if (v.kind === 'exec' && v.noCache) for (const m of v.mounts) if (m.type === 'cache') names.add(cacheMountName(m));
      inputVertices(v).forEach(walk);
    };
    walk(target);
    if (names.size === 0) return;
    await this.opts.lease?.protect({ mounts: [...names] });
    for (const name of names) {
      const trash = this.opts.store.tempPath('trash');
      const moved = await fs.rename(path.join(this.opts.root, 'cache', 'mounts', name), trash).then(
        () => true,
        (e: unknown) => {
          if (isErrnoError(e) && e.code === 'ENOENT') return false;
          throw e;
        },
      );
      if (moved) await fs.rm(trash, { recursive: true, force: true });
    }
  }

  /** Waits until every started step has finished or released its mounts and containers. */
  async drain(): Promise<void> {
    let size = -1;
    let bg = -1;
    while (size !== this.memo.size || bg !== this.background.length) {
      size = this.memo.size;
      bg = this.background.length;
      await Promise.allSettled([...this.memo.values(), ...this.background]);
    }
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
    const commits = [...this.uncommitted.splice(0), ...extra];
    const records = this.pendingRecords.splice(0);
    if (!keep) {
      await Promise.all(commits.map((c) => fs.rm(c.tmp, { force: true })));
      return;
    }
    if (tracing) trace(`solver: committing ${commits.length} layers`);
    await this.opts.store.commitUnsynced(commits);
    const failed = Symbol('failed');
    await Promise.all(
      records.map(async (r) => {
        const layer = r.ready ? await r.ready.catch(() => failed) : undefined;
        if (layer === failed) return;
        await this.opts.records.put({ key: r.key, description: r.description, layer: layer as LayerRef | undefined, createdAt: r.createdAt });
      }),
    );
    if (tracing) trace('solver: committed');
  }

  /** The finished layers of a solved state (waits for background stores). */
  async layersOf(state: SolvedState): Promise<LayerRef[]> {
    return Promise.all(state.layers.map((l) => l.ready));
  }

  /** Runs `work` after its step, failing the build (as that step) if it fails. */
  private inBackground(v: Vertex, work: Promise<unknown>): void {
    const tracked = work.catch((e: unknown) => {
      if (this.firstError === undefined) {
        this.firstError = atStep(e, v, 'storing the layer of this step');
        this.cancel.abort();
      }
    });
    this.background.push(tracked);
  }

  private emit(ev: ProgressEvent): void {
    this.opts.progress?.(ev);
  }

  private checkAborted(): void {
    if (this.signal.aborted) throw this.cancelledError();
  }

  private cancelledError(): KilnError {
    return this.opts.signal?.aborted
      ? new KilnError('build interrupted', { exitCode: 130 })
      : new KilnError('step cancelled because another step failed');
  }

  private async doSolve(v: Vertex): Promise<SolvedState> {
    this.checkAborted();
    if (v.kind === 'scratch') return { vertex: v, key: v.digest, layers: [], addedLayer: false, cached: true };
    if (v.kind === 'image') {
      await this.opts.lease?.add(v.manifestDigest, ...v.layers.map((l) => l.digest));
      const layers = v.layers.map((descriptor, i) => solvedLayer({ descriptor, diffId: v.diffIds[i] }));
      return { vertex: v, key: hash(['image', v.manifestDigest]), layers, addedLayer: false, cached: true };
    }
    // COPY --link does not read its parent: it runs on an empty root, in parallel with the
    // parent, and its cache key ignores the parent (a base change does not invalidate it)
    const linked = isLinkedCopy(v);
    const inputVs = inputVertices(v);
    const parentPromise = this.solve(inputVs[0]);
    const others = await Promise.all(inputVs.slice(1).map((i) => this.solve(i)));
    const keyInputs = linked ? others : [await parentPromise, ...others];
    const { key, filesDigest } = await this.cacheKey(v, keyInputs, linked).catch((e: unknown) => {
      throw atStep(e, v);
    });
    const base = rootImage(v);
    const step: StepRecord = {
      name: v.name,
      stage: v.stage,
      key,
      kind: v.kind,
      definition: describeDefinition(v),
      filesDigest,
      buildArgs: v.kind === 'exec' ? v.buildArgs : undefined,
      base,
      cached: false,
    };
    const finish = async (layer: SolvedLayer | undefined, cached: boolean, createdAt: string): Promise<SolvedState> => {
      const parent = await parentPromise;
      step.parentKey = parent.key;
      step.parentName = parent.vertex.kind === 'image' ? `FROM ${parent.vertex.ref}` : parent.vertex.name;
      step.cached = cached;
      this.steps.push(step);
      return { vertex: v, key, layers: layer ? [...parent.layers, layer] : parent.layers, addedLayer: layer !== undefined, cached, createdAt };
    };
    if (!v.noCache) {
      const rec = await this.opts.records.get(key);
      if (rec?.layer) await this.opts.lease?.add(rec.layer.descriptor.digest);
      // touching the blob tells a concurrent gc it is in use; a blob already gone is a miss, and
      // so is a record without a layer (kiln once made none for a step that changed nothing)
      if (rec?.layer && (await this.opts.store.touchBlob(rec.layer.descriptor.digest))) {
        this.emit({ type: 'cached', id: this.nextId++, name: v.name });
        return finish(solvedLayer(rec.layer), true, rec.createdAt);
      }
    }
    let createdAt = '';
    const layer = await this.limit.run(async () => {
      this.checkAborted();
      const id = this.nextId++;
      const started = Date.now();
      this.emit({ type: 'start', id, name: v.name, time: started });
      try {
        const baseLayers = linked ? [] : (await parentPromise).layers;
        const made = await this.execute(v, baseLayers, others, id).catch((e: unknown) => {
          throw atStep(e, v);
        });
        createdAt = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
        // the record is written once the layer's blob is durable (settle)
        this.pendingRecords.push({ key, description: v.name, createdAt, ready: made?.ready });
        this.emit({ type: 'done', id, name: v.name, ms: Date.now() - started });
        return made;
      } catch (e) {
        // a step that failed because the build was already being cancelled is not the cause
        const cancelled = this.signal.aborted;
        if (!cancelled && this.firstError === undefined) {
          this.firstError = e;
          this.cancel.abort();
        }
        this.emit({ type: 'error', id, name: v.name, message: cancelled ? 'CANCELED' : e instanceof Error ? e.message : String(e) });
        throw e;
      }
    });
    return finish(layer, false, createdAt);
  }

  /**
   * A step's key: its definition (which holds its inputs' definitions) and the content of its
   * inputs, named by their layer chains, not by their keys. A step re-run without the cache
   * (--no-cache-filter) that makes different files so invalidates what reads them, and one
   * that makes the same files does not; a later build finds the records of either result.
   */
  private cacheKey(v: ExecVertex | FileVertex, inputs: SolvedState[], linked: boolean): Promise<{ key: string; filesDigest?: string }> {
    const chains = inputs.map((i) => chainId(i.layers));
    const memoKey = `${v.digest}|${linked}|${chains.join(',')}`;
    let p = this.keyMemo.get(memoKey);
    if (!p) {
      p = (async () => {
        let definition = linked ? hash(['link', describeDefinition(v)]) : v.digest;
        if (v.kind === 'exec' && v.localDigest) {
          // a bind mount from a stage is keyed on the files of the mounted path only
          definition = v.localDigest;
          let k = 1;
          for (const m of v.mounts) {
            if (!m.from || m.from === 'context') continue;
            const i = k++;
            if (m.type === 'bind') chains[i] = await this.mountedChecksum(inputs[i], m.source ?? '/');
          }
        }
        const parts = [definition, ...chains];
        let filesDigest: string | undefined;
        const ctx = this.opts.context;
        if (v.kind === 'file' && v.action.op === 'copy') {
          const a = v.action;
          if (a.source.from === 'context' && a.source.paths.length > 0) {
            if (!ctx) throw new KilnError('COPY needs a build context, but none was given');
            const sum = await ctx.checksum(a.source.paths, a.excludes);
            parts.push(sum.digest);
            filesDigest = sum.digest;
          }
          for (const inl of a.inline ?? []) parts.push(hash([inl.name, inl.content]));
        }
        if (v.kind === 'exec') {
          for (const m of v.mounts) {
            if (m.type === 'bind' && m.from === 'context' && ctx) parts.push((await ctx.checksum([m.source ?? '.'], [], { owners: true })).digest);
            if (m.type === 'secret') parts.push(`secret:${m.id ?? ''}`);
          }
        }
        return { key: hash(parts), filesDigest };
      })();
      this.keyMemo.set(memoKey, p);
    }
    return p;
  }

  /**
   * A checksum of the files under `source` in a solved state: paths, types, modes, owners,
   * link targets and contents, not times (a re-run making the same files gives the same
   * sum). Kept per layer chain and path under cache/checksums, so a rebuild reads one file.
   */
  private async mountedChecksum(state: SolvedState, source: string): Promise<string> {
    const chain = chainId(state.layers);
    const file = path.join(this.opts.root, 'cache', 'checksums', `${hash([chain, source]).slice(7, 39)}.json`);
    const known = await fs.readFile(file, 'utf8').then(
      (t) => (JSON.parse(t) as { sum?: string }).sum,
      () => undefined,
    );
    if (known) return known;
    const sm = await this.mountState(state.layers, true);
    let sum: string;
    try {
      sum = await treeChecksum(await secureResolve(sm.merged, source));
    } finally {
      await sm.release();
    }
    await fs.mkdir(path.dirname(file), { recursive: true });
    await writeFileAtomic(file, JSON.stringify({ chain, source, sum }));
    return sum;
  }

  /** Mounts the layer chain of a state: lowers unpacked once, an overlay on top. */
  private async mountState(layers: SolvedLayer[], readonly = false): Promise<ActiveMount> {
    const lowers = await this.layerDirs(layers);
    if (tracing) trace(`mountState: ${layers.length} lowers ready`);
    return this.opts.snapshotter.mount(lowers, { readonly });
  }

  /** The unpacked dirs of a layer chain, lowest first (unpacking what is not yet). */
  private async layerDirs(layers: SolvedLayer[]): Promise<string[]> {
    const lowers: string[] = [];
    const store = this.opts.store;
    // leased before they are looked at: a concurrent prune then leaves them alone
    await this.opts.lease?.protect({ layers: layers.map((l) => l.diffId) });
    for (const l of layers) {
      // a layer still being stored is already unpacked (its upper dir was adopted); the blob
      // is only read if that dir is gone, and then only once it is durable
      const open = async function* (): AsyncGenerator<Buffer> {
        const ref = await l.ready;
        for await (const chunk of store.openBlob(ref.descriptor.digest)) yield chunk as Buffer;
      };
      lowers.push(await this.opts.snapshotter.unpackLayer(l.diffId, open));
    }
    return lowers;
  }

  /**
   * Whether a file operation can run without mounting anything: it only creates paths that
   * no layer below has (so an empty upper dir ends up exactly as an overlay's would), needs
   * no names resolved in the image (numeric or no owner), and reads its sources from the
   * context or from one layer of the source stage that nothing above shadows. Returns the
   * source stage's layer dir to read from ('' for none), or undefined to mount as usual.
   */
  private async directSource(v: FileVertex, baseLayers: SolvedLayer[], others: SolvedState[]): Promise<string | undefined> {
    const a = v.action;
    const numeric = (u: string | undefined): boolean => u === undefined || u === '' || /^\d+(:\d+)?$/.test(u);
    let target: string;
    if (a.op === 'mkdir') {
      if (!numeric(a.user)) return undefined;
      target = path.posix.resolve('/', a.path);
    } else {
      if (a.unpackArchives || (a.urls?.length ?? 0) > 0 || a.parents || !numeric(a.chown)) return undefined;
      target = path.posix.resolve(a.cwd || '/', a.dest);
    }
    if (target === '/') return undefined;
    const lowers = await this.layerDirs(baseLayers);
    // every prefix of the target, and the target, must be absent from every layer (a whiteout
    // counts as present: the merged view may differ from an empty dir there)
    const parts = target.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const rel = parts.slice(0, i).join('/');
      if (lowers.some((l) => lstatSync(path.join(l, rel), { throwIfNoEntry: false }) !== undefined)) return undefined;
    }
    if (a.op === 'mkdir' || a.source.paths.length === 0 || a.source.from === 'context') return '';
    const stage = await this.layerDirs(others[0].layers);
    let found: string | undefined;
    for (const p of a.source.paths) {
      const dir = sourceLayer(stage, p);
      if (dir === undefined || (found !== undefined && dir !== found)) return undefined;
      found = dir;
    }
    return found;
  }

  /** Runs a step over `baseLayers`; `others` are its other inputs (COPY --from, mounts). */
  private async execute(v: ExecVertex | FileVertex, baseLayers: SolvedLayer[], others: SolvedState[], id: number): Promise<SolvedLayer | undefined> {
    const tm = Date.now();
    const direct = v.kind === 'file' && DIRECT_FILE_OPS ? await this.directSource(v, baseLayers, others) : undefined;
    const mount = direct !== undefined ? this.opts.snapshotter.scratch() : await this.mountState(baseLayers);
    const extraMounts: ActiveMount[] = [];
    let keepUpperAs: string | undefined;
    let later: (() => Promise<LayerRef>) | undefined;
    let result: SolvedLayer | undefined;
    try {
      const t0 = Date.now();
      if (v.kind === 'exec') await this.runExec(v, others, mount, extraMounts, id);
      else await this.runFileOp(v, others, mount, extraMounts, direct || undefined);
      const t1 = Date.now();
      // a file operation sets no xattrs, except an ADD unpacking an archive's PAX xattrs
      const unpacks = v.kind === 'file' && v.action.op === 'copy' && (v.action.unpackArchives || v.action.unpackUrls === true);
      const entries = await this.opts.snapshotter.diff(mount.upper, { noNewXattrs: v.kind === 'file' && !unpacks, lowers: mount.lowers });
      const t2 = Date.now();
      // a step that changed nothing still makes a layer (an empty one), as in BuildKit: every
      // RUN, COPY and WORKDIR of a path other than / adds one to the image
      const bytes = entries.reduce((n, e) => n + (e.type === 'file' ? (e.size ?? 0) : 0), 0);
      if (bytes <= BACKGROUND_LAYER_MAX) {
        // name the layer now, adopt the upper dir as its unpacked form, store the blob later
        // (from the tar bytes of the naming pass when small, else from the adopted dir)
        const named = await layerDiffId(entries, { sourceDateEpoch: this.opts.sourceDateEpoch, keepUpTo: KEEP_TAR_MAX });
        const diffId = named.diffId;
        keepUpperAs = diffId;
        const upper = mount.upper;
        const tar = named.tar;
        later = async () => {
          if (tar) return this.storeTar(tar, diffId);
          const dir = this.opts.snapshotter.layerDir(diffId);
          if (!(await this.opts.snapshotter.hasLayer(diffId))) throw new KilnError(`the unpacked layer ${diffId} disappeared before it was stored`);
          const moved = entries.map((e) => (e.sourcePath ? { ...e, sourcePath: path.join(dir, path.relative(upper, e.sourcePath)) } : e));
          return this.storeLayer(moved, diffId);
        };
      } else {
        const ref = await this.storeLayer(entries);
        keepUpperAs = ref.diffId;
        result = solvedLayer(ref);
      }
      if (tracing) trace(`${v.name}: ${direct !== undefined ? 'direct (no mount)' : 'mount'} ${t0 - tm}ms run ${t1 - t0}ms diff ${t2 - t1}ms name ${Date.now() - t2}ms`);
    } finally {
      const tr = Date.now();
      // the upper dir becomes an unpacked layer: leased first, so no prune takes it away
      if (keepUpperAs) await this.opts.lease?.protect({ layers: [keepUpperAs] }).catch(() => undefined);
      for (const m of extraMounts.reverse()) await m.release().catch(() => undefined);
      await mount.release({ keepUpperAs });
      if (tracing) trace(`${v.name}: release ${Date.now() - tr}ms`);
    }
    if (later) {
      const diffId = keepUpperAs!;
      const t = Date.now();
      const ready = later().then((ref) => {
        if (tracing) trace(`${v.name}: layer stored in the background ${Date.now() - t}ms`);
        return ref;
      });
      ready.catch(() => undefined);
      this.inBackground(v, ready);
      result = { diffId, ready };
    }
    return result;
  }

  /** storeLayer for tar bytes already made (and hashed) by the naming pass. */
  private async storeTar(tar: Buffer, diffId: string): Promise<LayerRef> {
    // an uncompressed layer's blob is its tar: the diffId is its digest
    const tmp = await this.opts.store.writeTempUnsynced(tar);
    return this.keepLayer(tmp, { mediaType: MediaType.ociLayerTar, digest: diffId, size: tar.length }, diffId);
  }

  /**
   * Writes a layer blob and keeps it leased; `expectDiffId` checks a digest-only pass.
   * Layers a build makes are stored uncompressed, as docker's own image store keeps them:
   * gzip runs at about 30 MB/s a core, which made compression most of the time of a cold
   * build. Export compresses (deterministically) where the format wants it.
   */
  private async storeLayer(entries: Parameters<typeof writeLayer>[1], expectDiffId?: string): Promise<LayerRef> {
    const written = await writeLayer(this.opts.store, entries, { sourceDateEpoch: this.opts.sourceDateEpoch, compression: 'none', deferCommit: true });
    const ref = await this.keepLayer(written.uncommitted!, written.descriptor, written.diffId);
    if (expectDiffId !== undefined && written.diffId !== expectDiffId) {
      throw new KilnError(`layer content changed while it was stored (expected ${expectDiffId}, wrote ${written.diffId})`);
    }
    return ref;
  }

  /** A layer blob in a temp file: committed when the solve settles, leased and counted now. */
  private async keepLayer(tmp: string, descriptor: Descriptor, diffId: string): Promise<LayerRef> {
    this.uncommitted.push({ tmp, digest: descriptor.digest });
    await this.opts.lease?.add(descriptor.digest);
    this.addedBytes += descriptor.size;
    return { descriptor, diffId };
  }

  private async runExec(v: ExecVertex, others: SolvedState[], mount: ActiveMount, extra: ActiveMount[], id: number): Promise<void> {
    const rootfs = mount.merged;
    const mounts: NonNullable<RunSpec['mounts']> = [];
    const stubPaths: string[] = [...STUB_FILES];
    const env = [...v.env];
    const secretFiles: Array<{ target: string; file: SecretFile }> = [];
    let inputIdx = 0;
    for (const m of v.mounts) {
      if (m.target) stubPaths.push(m.target);
      if (m.type === 'tmpfs') {
        const options = ['nosuid', 'nodev', 'mode=1777'];
        if (m.size !== undefined) options.push(`size=${m.size}`);
        mounts.push({ destination: m.target, type: 'tmpfs', source: 'tmpfs', options });
      } else if (m.type === 'bind') {
        const writable = m.readonly === false;
        let root: string;
        if (m.from === 'context' || m.from === undefined) {
          if (!this.opts.context) throw new KilnError('RUN --mount=type=bind needs a build context');
          root = this.opts.context.dir;
          if (writable) {
            // writes go to a throwaway upper dir over the context, as BuildKit discards them
            const over = await this.opts.snapshotter.mount([root]);
            extra.push(over);
            root = over.merged;
          }
        } else {
          const st = others[inputIdx++];
          // rw: an overlay of the stage with its own upper dir, dropped after the step
          const sm = await this.mountState(st.layers, !writable);
          extra.push(sm);
          root = sm.merged;
        }
        const source = await secureResolve(root, m.source ?? '.');
        mounts.push({ destination: m.target, type: 'bind', source, options: ['rbind', writable ? 'rw' : 'ro'] });
      } else if (m.type === 'cache') {
        const name = cacheMountName(m);
        await this.opts.lease?.protect({ mounts: [name] });
        const dir = path.join(this.opts.root, 'cache', 'mounts', name);
        const fresh = !(await fs.stat(dir).catch(() => undefined));
        await fs.mkdir(dir, { recursive: true, mode: m.mode ?? 0o755 });
        if (fresh) await fs.chown(dir, m.uid ?? 0, m.gid ?? 0);
        mounts.push({ destination: m.target, type: 'bind', source: dir, options: ['rbind', 'rw'] });
      } else if (m.type === 'secret') {
        const secretId = m.id ?? '';
        const value = this.opts.secrets?.[secretId];
        if (value === undefined) {
          if (m.required) throw new KilnError(`secret ${secretId}: not found (the mount is required, and the build was given no secret of that id)`, { hint: `pass --secret id=${secretId},src=FILE or --secret id=${secretId},env=VAR` });
          continue;
        }
        if (m.env !== undefined) env.push(`${m.env}=${Buffer.from(value).toString('utf8')}`);
        // an env-only secret (env= without target=) has no file
        if (m.target) secretFiles.push({ target: m.target, file: { data: value, uid: m.uid ?? 0, gid: m.gid ?? 0, mode: m.mode ?? 0o400 } });
      } else {
        if (m.required) throw new KilnError('RUN --mount=type=ssh is not supported yet');
      }
    }
    // secrets live on a tmpfs under this step's active dir; so does the runtime spec when it
    // holds a secret in the environment
    let specDir: string | undefined;
    const hasSecretEnv = v.mounts.some((m) => m.type === 'secret' && m.env !== undefined && this.opts.secrets?.[m.id ?? ''] !== undefined);
    if (secretFiles.length > 0 || hasSecretEnv) {
      const sec = await mountSecrets(mount.dir ?? path.dirname(mount.merged), secretFiles.map((f) => f.file));
      extra.push({ merged: sec.dir, upper: sec.dir, work: sec.dir, release: sec.release });
      secretFiles.forEach((f, i) => mounts.push({ destination: f.target, type: 'bind', source: sec.paths[i], options: ['rbind', 'ro'] }));
      if (hasSecretEnv) specDir = sec.dir;
    }
    for (const f of v.inlineFiles ?? []) {
      const dir = this.opts.store.tempPath('inline');
      await fs.mkdir(dir, { recursive: true });
      await fs.writeFile(path.join(dir, path.posix.basename(f.path)), f.content, { mode: f.mode });
      mounts.push({ destination: path.posix.dirname(f.path), type: 'bind', source: dir, options: ['rbind', 'ro'] });
      stubPaths.push(path.posix.dirname(f.path));
      extra.push({ merged: dir, upper: dir, work: dir, release: () => fs.rm(dir, { recursive: true, force: true }) });
    }
    const stubs = await missingStubs(rootfs, stubPaths);
    const result = await runContainer({
      rootfs,
      args: v.args,
      env,
      cwd: v.cwd,
      user: v.user,
      hostname: v.hostname ?? DEFAULT_HOSTNAME,
      network: v.network,
      mounts,
      onOutput: (data, stream) => this.emit({ type: 'log', id, stream, data }),
      signal: this.signal,
      stateRoot: path.join(this.opts.root, 'run'),
      keepMountStubs: true,
      etcHostname: false,
      specDir,
    }).catch((e: unknown) => {
      throw this.signal.aborted ? this.cancelledError() : e;
    });
    if (this.signal.aborted) throw this.cancelledError();
    if (result.exitCode !== 0) {
      const shown = v.args.join(' ');
      const tail = result.outputTail.trimEnd();
      throw new KilnError(`${v.name.replace(/^\[[^\]]*\]\s*/, '')}: process "${shown}" did not complete successfully: exit code: ${result.exitCode}`, {
        location: v.origin,
        detail: tail ? `last lines of output:\n${tail.split('\n').map((l) => `  ${l}`).join('\n')}` : undefined,
      });
    }
    await removeStubs(rootfs, stubs);
  }

  /** `sourceDir`: read a COPY --from source from this layer dir instead of mounting the stage. */
  private async runFileOp(v: FileVertex, others: SolvedState[], mount: ActiveMount, extra: ActiveMount[], sourceDir?: string): Promise<void> {
    const a = v.action;
    const root = mount.merged;
    if (a.op === 'mkdir') {
      const owner = a.user ? await this.ownerOf(root, a.user) : { uid: 0, gid: 0 };
      await mkdirInRoot(root, a.path, owner);
      return;
    }
    let owner: Owner | undefined;
    if (a.chown) owner = await this.chownOf(root, a.chown);
    const chmod = a.chmod === undefined || a.chmod === '' ? undefined : parseChmod(a.chmod);
    const common = { destRoot: root, dest: a.dest, cwd: a.cwd, owner, chmod, parents: a.parents };
    if (a.source.paths.length > 0) {
      let tree;
      if (a.source.from === 'context') {
        if (!this.opts.context) throw new KilnError('COPY needs a build context, but none was given');
        tree = contextTree(this.opts.context);
      } else if (sourceDir) {
        tree = rootfsTree(sourceDir);
      } else {
        const sm = await this.mountState(others[0].layers, true);
        extra.push(sm);
        tree = rootfsTree(sm.merged);
      }
      await copyInto(tree, a.source.paths, a.excludes ?? [], { ...common, unpackArchives: a.unpackArchives });
    }
    if ((a.inline?.length ?? 0) > 0 || (a.urls?.length ?? 0) > 0) {
      const dir = this.opts.store.tempPath('files');
      await fs.mkdir(dir, { recursive: true });
      extra.push({ merged: dir, upper: dir, work: dir, release: () => fs.rm(dir, { recursive: true, force: true }) });
      const names: string[] = [];
      for (const inl of a.inline ?? []) {
        // a heredoc name is a path in a scratch root (as BuildKit's Mkfile): "../x" stays in it
        const file = rootPathSync(dir, inl.name);
        makeDirsSync(dir, path.dirname(file));
        await fs.writeFile(file, inl.content, { mode: 0o644 });
        names.push(path.relative(dir, file));
      }
      for (const url of a.urls ?? []) names.push(await download(url, dir, a.checksum));
      const tree = { ...rootfsTree(dir), preserveOwner: false };
      await copyInto(tree, names, [], { ...common, unpackArchives: a.unpackUrls === true });
    }
  }

  private async ownerOf(root: string, user: string): Promise<Owner> {
    const u = await resolveUser(root, user);
    return { uid: u.uid, gid: u.gid };
  }

  /** --chown=user[:group]: names resolve in the destination rootfs; a lone user means gid = uid. */
  private async chownOf(root: string, spec: string): Promise<Owner> {
    const [userPart, groupPart] = spec.split(':', 2);
    const uid = /^\d+$/.test(userPart) ? Number(userPart) : (await resolveUser(root, userPart)).uid;
    let gid = uid;
    if (groupPart !== undefined && groupPart !== '') {
      gid = /^\d+$/.test(groupPart) ? Number(groupPart) : (await resolveUser(root, `0:${groupPart}`)).gid;
    }
    return { uid, gid };
  }
}

/**
 * A path inside a step's root filesystem (an unpacked layer's fs/, a mount's merged/ or
 * upper/ under the kiln root's snapshots) as the image sees it: "/etc/x in the image".
 */
function inImage(p: string): string {
  const m = /\/snapshots\/(?:layers|active)\/[0-9a-f]+\/(?:fs|merged|upper)(\/.*)?$/.exec(p);
  return m ? `${m[1] ?? '/'} in the image` : p;
}

/** A user error from inside a step, located at the step's Dockerfile line. */
function atStep(e: unknown, v: Vertex, doing?: string): unknown {
  // a system error (a full disk, a name too long) is blamed on the step that met it
  if (isErrnoError(e)) e = fromErrno(e, e.path ? undefined : doing, { showPath: inImage });
  if (!(e instanceof KilnError) || e.location || !v.origin) return e;
  return new KilnError(e.message, { location: v.origin, hint: e.hint, detail: e.detail, exitCode: e.exitCode, cause: e });
}

/** The directory name of a cache mount under cache/mounts: its id (default its target). */
function cacheMountName(m: { id?: string; target: string }): string {
  return hash([m.id ?? m.target]).slice(7, 39);
}

/** Hashes a tree (or one file) as mountedChecksum describes; a missing path hashes as such. */
async function treeChecksum(top: string): Promise<string> {
  const h = createHash('sha256');
  const visit = async (abs: string, rel: string): Promise<void> => {
    const st = await fs.lstat(abs).catch((e: unknown) => {
      if (isErrnoError(e) && e.code === 'ENOENT') return undefined;
      throw e;
    });
    if (!st) {
      h.update(`${rel}\0missing\0`);
      return;
    }
    h.update(`${rel}\0${st.mode}\0${st.uid}:${st.gid}\0`);
    if (st.isSymbolicLink()) h.update(`${await fs.readlink(abs)}\0`);
    else if (st.isFile()) {
      h.update(`${st.size}\0`);
      for await (const chunk of createReadStream(abs)) h.update(chunk as Buffer);
    } else if (st.isDirectory()) {
      for (const name of (await fs.readdir(abs)).sort()) await visit(path.join(abs, name), `${rel}/${name}`);
    }
  };
  await visit(top, '.');
  return `sha256:${h.digest('hex')}`;
}

/** Names the content of a layer chain: the diffIds of its layers, base first. */
function chainId(layers: SolvedLayer[]): string {
  return hash(['chain', ...layers.map((l) => l.diffId)]);
}

function hash(parts: string[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(`${p}\0`);
  return `sha256:${h.digest('hex')}`;
}

function inputVertices(v: ExecVertex | FileVertex): Vertex[] {
  if (v.kind === 'exec') return [v.parent, ...v.mounts.flatMap((m) => (m.from && m.from !== 'context' ? [m.from] : []))];
  const a = v.action;
  if (a.op === 'copy' && a.source.from !== 'context') return [v.parent, a.source.from];
  return [v.parent];
}

/** COPY --link with numeric (or no) --chown: nothing in the parent is needed to run it. */
function isLinkedCopy(v: ExecVertex | FileVertex): boolean {
  if (v.kind !== 'file' || v.action.op !== 'copy' || !v.action.link) return false;
  const chown = v.action.chown;
  return chown === undefined || /^\d+(:\d+)?$/.test(chown);
}

function rootImage(v: Vertex): { ref: string; digest: string } | undefined {
  let cur: Vertex | undefined = v;
  while (cur && (cur.kind === 'exec' || cur.kind === 'file')) cur = cur.parent;
  return cur?.kind === 'image' ? { ref: cur.ref, digest: cur.manifestDigest } : undefined;
}

function describeDefinition(v: ExecVertex | FileVertex): string {
  if (v.kind === 'exec') return JSON.stringify({ args: v.args, env: v.env, cwd: v.cwd, user: v.user, network: v.network, mounts: v.mounts.map((m) => ({ ...m, from: m.from === undefined || m.from === 'context' ? m.from : m.from.name })) });
  const a = v.action;
  if (a.op === 'mkdir') return JSON.stringify(a);
  return JSON.stringify({ ...a, source: { paths: a.source.paths, from: a.source.from === 'context' ? 'context' : a.source.from.name } });
}

/**
 * The one layer dir (of `layers`, lowest first) a COPY --from source can be read from
 * directly: the topmost layer holding the path, reached through real directories, with no
 * layer above holding the path or any parent of it (one could be an opaque directory or a
 * whiteout) and, for a directory, no layer below holding it (its content would merge).
 * Undefined when any of that does not hold: the caller mounts the stage instead.
 */
function sourceLayer(layers: string[], pattern: string): string | undefined {
  if (hasWildcard(pattern)) return undefined;
  const parts = pattern.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0 || parts.includes('..')) return undefined;
  const rel = parts.join('/');
  const present = (l: string, r: string): Stats | undefined => lstatSync(path.join(l, r), { throwIfNoEntry: false });
  let top = -1;
  for (let i = layers.length - 1; i >= 0; i--) {
    if (present(layers[i], rel)) {
      top = i;
      break;
    }
  }
  if (top < 0) return undefined;
  const st = present(layers[top], rel)!;
  if (!st.isFile() && !st.isDirectory()) return undefined;
  for (let i = 1; i < parts.length; i++) {
    const prefix = parts.slice(0, i).join('/');
    if (!present(layers[top], prefix)?.isDirectory()) return undefined;
    for (let j = top + 1; j < layers.length; j++) if (present(layers[j], prefix)) return undefined;
  }
  if (st.isDirectory()) for (let j = 0; j < top; j++) if (present(layers[j], rel)) return undefined;
  return layers[top];
}

/** Fetches `url` into `dir`; with ADD --checksum, the content must have that digest (as BuildKit checks). */
async function download(url: string, dir: string, checksum?: string): Promise<string> {
  let res: HttpResponse;
  try {
    res = await httpGet(url);
  } catch (e) {
    throw new KilnError(`ADD could not fetch ${url}: ${(e as Error).message}`);
  }
  if (res.status < 200 || res.status > 299) throw new KilnError(`ADD could not fetch ${url}: HTTP ${res.status}`);
  if (checksum !== undefined) {
    const alg = checksum.slice(0, checksum.indexOf(':'));
    const got = `${alg}:${createHash(alg).update(res.body).digest('hex')}`;
    if (got !== checksum) throw new KilnError(`ADD ${url}: digest mismatch ${got}: ${checksum}`, { hint: 'the file changed, or --checksum is wrong' });
  }
  const name = path.posix.basename(new URL(url).pathname) || 'index.html';
  const file = path.join(dir, name);
  await fs.writeFile(file, res.body, { mode: 0o600 });
  const lm = res.headers['last-modified'];
  if (lm) {
    const t = new Date(lm);
    if (!Number.isNaN(t.getTime())) await fs.utimes(file, t, t);
  }
  return name;
}
