/**
 * The build graph: what the frontend asks the solver to produce. A vertex is a
 * filesystem state; it knows its inputs and a digest of its own definition, never
 * Dockerfile syntax. The solver turns each vertex into a chain of layers.
 */
import { createHash } from 'node:crypto';
import type { Platform } from '../oci/types.js';

/**
 * Which Dockerfile step a vertex is, as the frontend numbers them: the progress label
 * "[build 2/4] RUN make" is made from it, and the solver and --explain read it instead of
 * parsing that label.
 */
export interface StepIdentity {
  /** The stage's name, or "stage-N" for an unnamed one. */
  stage: string;
  /** The stage's position in the Dockerfile, 0-based. */
  stageIndex: number;
  /** The step's position in its stage, 1-based (FROM is 1). */
  index: number;
  /** Steps in the stage, FROM included. */
  total: number;
  /** The instruction as progress shows it, e.g. "RUN make". */
  instruction: string;
}

export interface VertexCommon {
  /** sha256 of the vertex's definition and its inputs' digests: stable across runs. */
  digest: string;
  /** Progress name, e.g. "[build 2/4] RUN make". */
  name: string;
  /** Stage this vertex belongs to (for --no-cache-filter and progress). */
  stage?: string;
  /** The Dockerfile step this vertex is (absent for vertices no step names, e.g. an image a COPY --from reads). */
  step?: StepIdentity;
  /** Where it came from in the Dockerfile, for errors (file:line). */
  origin?: { file: string; line: number; column: number; sourceLine?: string };
  platform: Platform;
  /** Force a re-run, ignoring cache records (--no-cache / --no-cache-filter). */
  noCache?: boolean;
}

/** The empty filesystem. */
export interface ScratchVertex extends VertexCommon {
  kind: 'scratch';
}

/**
 * An image, named by the manifest the frontend resolved its config from. Its layers are
 * looked up by the solver's ImageResolver when a step needs them (locally today; from a
 * registry later), so planning never reads more than the config.
 */
export interface ImageVertex extends VertexCommon {
  kind: 'image';
  ref: string;
  manifestDigest: string;
}

/** Fields of the vertices that are not made by a step: no platform of their own. */
type SourceCommon = Omit<VertexCommon, 'platform'> & { platform?: Platform };

/**
 * A local directory the build is given: "context" is the build context (COPY without
 * --from, RUN --mount=type=bind without from=); "named:NAME" is a named context
 * (--build-context NAME=DIR, namedLocalSource).
 * What a step reads of it is keyed by the content of the paths it reads, not by the vertex.
 */
export interface LocalVertex extends SourceCommon {
  kind: 'local';
  source: string;
}

/** A file fetched over HTTP(S) (ADD <url>): keyed by the content fetched, not by the URL. */
export interface HttpVertex extends SourceCommon {
  kind: 'http';
  url: string;
  /** ADD --checksum: the digest the content must have. */
  checksum?: string;
}

/**
 * A git repository (ADD <git url>): keyed by the commit its ref resolves to (ls-remote), not
 * by the URL; checked out (sources/git.ts) only when a step that adds it runs.
 */
export interface GitVertex extends SourceCommon {
  kind: 'git';
  remote: string;
  /** A branch, tag, full ref name or commit; absent: the remote's default branch. */
  ref?: string;
  subdir?: string;
  keepGitDir?: boolean;
  /** ADD --checksum or `?commit=`: what the resolved commit must start with. */
  checksum?: string;
  /** false: submodules are not checked out (`?submodules=false`). */
  submodules?: boolean;
  /** `?mtime=commit`: every file gets the commit's time (default: the checkout's). */
  mtime?: 'checkout' | 'commit';
}

/** The vertices a step reads files from without their being a filesystem state of the build. */
export type SourceVertex = LocalVertex | HttpVertex | GitVertex;

/** A git source vertex (the digest names its definition; the key, the commit it resolves to). */
export function gitSource(def: Omit<GitVertex, 'kind' | 'digest' | 'name'>): GitVertex {
  const d = { kind: 'git' as const, ...def };
  return { ...d, digest: definitionDigest(d), name: `${def.remote}${def.ref || def.subdir ? `#${def.ref ?? ''}${def.subdir ? `:${def.subdir}` : ''}` : ''}` };
}

/** The build context as a source vertex. */
export function contextSource(): LocalVertex {
  return { kind: 'local', source: 'context', digest: definitionDigest({ kind: 'local', source: 'context' }), name: 'context' };
}

/** A local directory given as the named context NAME (--build-context NAME=DIR). */
export function namedLocalSource(name: string): LocalVertex {
  const source = `named:${name}`;
  return { kind: 'local', source, digest: definitionDigest({ kind: 'local', source }), name: `[context ${name}]` };
}

/** An HTTP source vertex for `url` (the digest names the URL and checksum; the key, the content). */
export function httpSource(url: string, checksum?: string): HttpVertex {
  return { kind: 'http', url, checksum, digest: definitionDigest({ kind: 'http', url, checksum }), name: url };
}

export interface MountSpec {
  type: 'bind' | 'cache' | 'tmpfs' | 'secret' | 'ssh';
  target: string;
  /** bind/cache: the state to mount from, or the context (a local source); bind defaults to the context. */
  from?: Vertex | LocalVertex;
  source?: string;
  readonly?: boolean;
  id?: string;
  sharing?: 'shared' | 'private' | 'locked';
  mode?: number;
  uid?: number;
  gid?: number;
  required?: boolean;
  /** tmpfs: the size limit in bytes. */
  size?: number;
  /** secret: also (or, without a target, only) expose the value as this environment variable. */
  env?: string;
}

/** A RUN: a process over the parent filesystem; its changes become a layer. */
export interface ExecVertex extends VertexCommon {
  kind: 'exec';
  parent: Vertex;
  args: string[];
  env: string[];
  cwd: string;
  user: string;
  /** default: the sandboxed network (its own namespace with outbound access); none; host. */
  network: 'default' | 'host' | 'none';
  /** The sandbox's hostname (BUILDKIT_SANDBOX_HOSTNAME); the solver's default when absent. */
  hostname?: string;
  mounts: MountSpec[];
  /** Files written into a tmpfs before running (heredocs fed to the shell). */
  inlineFiles?: Array<{ path: string; content: string; mode: number }>;
  /** Build args that reached the environment, for --explain. */
  buildArgs: Record<string, string>;
  /** RUN --security=insecure: all capabilities, no seccomp filter (needs the security.insecure entitlement). */
  security?: 'insecure';
  /** Process resource limits (build --ulimit). */
  ulimits?: Array<{ name: string; soft: number; hard: number }>;
  /** Memory limit in bytes (build --memory); not part of the definition. */
  memory?: number;
  /**
   * The definition without its inputs' digests (the parent's, and the stage of each bind
   * mount): with a bind mount from a stage, the solver keys the step on that and the content
   * of its inputs (the mounted path's files), so the stage's other steps do not matter.
   */
  localDigest?: string;
}

export interface CopySource {
  /** The build context (a local source), another state (COPY --from), or a repository (not supported yet). */
  from: Vertex | LocalVertex | GitVertex;
  /** Source paths or wildcard patterns relative to the source root. */
  paths: string[];
}

export interface InlineFile {
  /** Heredoc file (COPY <<EOF /dest): its name as destination basename. */
  name: string;
  content: string;
}

/** COPY / ADD / WORKDIR: file operations on the parent filesystem. */
export interface FileVertex extends VertexCommon {
  kind: 'file';
  parent: Vertex;
  action:
    | {
        op: 'copy';
        source: CopySource;
        inline?: InlineFile[];
        dest: string;
        /** Working directory that a relative dest is resolved against. */
        cwd: string;
        chown?: string;
        chmod?: string;
        /** ADD: unpack local tar archives. */
        unpackArchives: boolean;
        /** ADD of URLs: fetched files, each an HTTP source (with ADD --checksum, the digest its content must have). */
        urls?: HttpVertex[];
        /** ADD --unpack=true: fetched archives are unpacked too. */
        unpackUrls?: boolean;
        excludes?: string[];
        parents?: boolean;
        link?: boolean;
        /** ADD of git repositories: each checkout's files (or its subdir's) copied to dest. */
        gits?: GitVertex[];
      }
    | { op: 'mkdir'; path: string; mode: number; user: string };
}

export type Vertex = ScratchVertex | ImageVertex | ExecVertex | FileVertex;

/** Stable digest of a JSON-able definition. */
export function definitionDigest(def: unknown): string {
  return `sha256:${createHash('sha256').update(stableStringify(def)).digest('hex')}`;
}

/** JSON with object keys sorted, so equal definitions hash equally. */
export function stableStringify(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${stableStringify(obj[k])}`).join(',')}}`;
}

/** Whether a step input is a source vertex rather than a filesystem state. */
export function isSource(v: Vertex | SourceVertex): v is SourceVertex {
  return v.kind === 'local' || v.kind === 'http' || v.kind === 'git';
}

/** The filesystem states a vertex depends on: its parent first, then COPY --from or mounted stages. */
export function vertexInputs(v: Vertex): Vertex[] {
  switch (v.kind) {
    case 'scratch':
    case 'image':
      return [];
    case 'exec': {
      const extra = v.mounts.flatMap((m) => (m.from && !isSource(m.from) ? [m.from] : []));
      return [v.parent, ...extra];
    }
    case 'file': {
      const a = v.action;
      if (a.op === 'copy' && !isSource(a.source.from)) return [v.parent, a.source.from];
      return [v.parent];
    }
  }
}
