/**
 * Graphs and ops for the solver's unit tests: vertices made by hand, and ops that record
 * what they were asked to do instead of running containers (no root, no runc).
 */
import { contextSource, definitionDigest, httpSource, type ExecVertex, type FileVertex, type GitVertex, type LocalVertex, type MountSpec, type ScratchVertex, type StepIdentity, type Vertex } from '../../src/graph/types.js';
import type { KeyReader } from '../../src/solver/keys.js';
import type { Ops, StepCache, StepContext } from '../../src/solver/scheduler.js';
import type { LayerRef, SolvedLayer, SolvedState, StepVertex } from '../../src/solver/types.js';
import { MediaType } from '../../src/oci/types.js';

const platform = { os: 'linux', architecture: 'amd64' };

export function scratch(): ScratchVertex {
  return { kind: 'scratch', digest: definitionDigest({ kind: 'scratch' }), name: '[stage-0 1/1] FROM scratch', platform };
}

function identity(instruction: string, index = 2): { name: string; step: StepIdentity } {
  return { name: `[app ${index}/9] ${instruction}`, step: { stage: 'app', stageIndex: 0, index, total: 9, instruction } };
}

/** A RUN of `cmd` over `parent`. */
export function run(parent: Vertex, cmd: string, extra: { mounts?: MountSpec[]; index?: number } = {}): ExecVertex {
  const mounts = extra.mounts ?? [];
  const args = ['/bin/sh', '-c', cmd];
  const v: ExecVertex = {
    kind: 'exec',
    parent,
    args,
    env: [],
    cwd: '/',
    user: '',
    network: 'host',
    mounts,
    buildArgs: {},
    digest: '',
    ...identity(`RUN ${cmd}`, extra.index),
    origin: { file: 'Dockerfile', line: extra.index ?? 2, column: 1, sourceLine: `RUN ${cmd}` },
    platform,
  };
  v.digest = definitionDigest({ kind: 'exec', args, parent: parent.digest, mounts: mounts.map((m) => ({ ...m, from: m.from?.digest })) });
  return v;
}

/** A COPY of `paths` from `from` (the context by default) over `parent`. */
export function copy(parent: Vertex, paths: string[], extra: { from?: Vertex | LocalVertex | GitVertex; link?: boolean; urls?: string[]; gits?: GitVertex[] } = {}): FileVertex {
  const from = extra.from ?? contextSource();
  const action = {
    op: 'copy' as const,
    source: { from, paths },
    dest: '/dest/',
    cwd: '/',
    unpackArchives: false,
    link: extra.link,
    urls: extra.urls?.map((u) => httpSource(u)),
    gits: extra.gits,
  };
  const v: FileVertex = { kind: 'file', parent, action, digest: '', ...identity(`COPY ${paths.join(' ')} /dest/`), platform };
  v.digest = definitionDigest({ kind: 'file', parent: parent.digest, action: { ...action, source: { paths, from: from.digest } } });
  return v;
}

/** A layer whose blob is "stored" at once. */
export function layer(diffId: string): SolvedLayer {
  const ref: LayerRef = { diffId, descriptor: { mediaType: MediaType.ociLayerTar, digest: diffId, size: 1 } };
  return { diffId, ready: Promise.resolve(ref) };
}

/** A promise and the function that settles it. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

export interface RunCall {
  vertex: StepVertex;
  base: string[];
  others: string[];
}

/**
 * Ops that make one layer per step, named after the step, and record each call. `hooks`
 * run inside a step (by instruction), to hold it, fail it or watch its signal.
 */
export class FakeOps implements Ops {
  readonly calls: RunCall[] = [];
  running = 0;
  maxRunning = 0;
  readonly started: string[] = [];

  constructor(private readonly hooks: Record<string, (ctx: StepContext) => Promise<void>> = {}) {}

  async source(v: Vertex & { kind: 'scratch' | 'image' }): Promise<{ key: string; layers: SolvedLayer[] }> {
    return { key: v.digest, layers: [] };
  }

  async run(v: StepVertex, base: SolvedLayer[], others: SolvedState[], ctx: StepContext): Promise<SolvedLayer | undefined> {
    const name = v.step?.instruction ?? v.name;
    this.calls.push({ vertex: v, base: base.map((l) => l.diffId), others: others.map((o) => o.vertex.name) });
    this.started.push(name);
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    try {
      await this.hooks[name]?.(ctx);
      ctx.log('stdout', Buffer.from(`ran ${name}\n`));
      return layer(`sha256:${Buffer.from(name).toString('hex')}`);
    } finally {
      this.running--;
    }
  }
}

/** Cache records in memory. */
export class MemoryCache implements StepCache {
  readonly records = new Map<string, { layer: SolvedLayer; createdAt: string }>();
  readonly pending: Array<{ key: string; ready?: Promise<LayerRef> }> = [];

  async lookup(key: string): Promise<{ layer: SolvedLayer; createdAt: string } | undefined> {
    return this.records.get(key);
  }

  record(r: { key: string; description: string; createdAt: string; ready?: Promise<LayerRef> }): void {
    this.pending.push(r);
  }

  /** Writes the pending records, as the committer does when a solve settles. */
  async commit(): Promise<void> {
    for (const r of this.pending.splice(0)) {
      const ref = r.ready ? await r.ready : undefined;
      if (ref) this.records.set(r.key, { layer: { diffId: ref.diffId, ready: Promise.resolve(ref) }, createdAt: '2026-01-01T00:00:00Z' });
    }
  }
}

/** A KeyReader over in-memory content: context files by path, stage files by layer chain, URL content. */
export class FakeReader implements KeyReader {
  files: Record<string, string> = {};
  urls: Record<string, string> = {};
  readonly localCalls: Array<{ paths: string[]; owners: boolean }> = [];

  async local(_source: LocalVertex, paths: string[], _excludes: string[], owners: boolean): Promise<string | undefined> {
    this.localCalls.push({ paths, owners });
    return `ctx:${paths.map((p) => `${p}=${this.files[p] ?? 'missing'}`).join(',')}`;
  }

  async mounted(state: SolvedState, p: string): Promise<string> {
    return `mounted:${state.layers.map((l) => l.diffId).join('+')}:${p}`;
  }

  async http(source: { url: string }): Promise<string> {
    return `http:${this.urls[source.url] ?? ''}`;
  }

  /** Each git source's commit, by remote (what ls-remote would say). */
  commits: Record<string, string> = {};

  async git(source: GitVertex): Promise<string> {
    return `git:${this.commits[source.remote] ?? 'none'}:${source.subdir ?? ''}`;
  }
}
