/**
 * The build graph: what the frontend asks the solver to produce. A vertex is a
 * filesystem state; it knows its inputs and a digest of its own definition, never
 * Dockerfile syntax. The solver turns each vertex into a chain of layers.
 */
import { createHash } from 'node:crypto';
import type { Descriptor, Platform } from '../oci/types.js';

export interface VertexCommon {
  /** sha256 of the vertex's definition and its inputs' digests: stable across runs. */
  digest: string;
  /** Progress name, e.g. "[build 2/4] RUN make". */
  name: string;
  /** Stage this vertex belongs to (for --no-cache-filter and progress). */
  stage?: string;
  /** The Dockerfile step this vertex is: its stage, its place in "[stage n/m]", the instruction as progress shows it. */
  step?: { stage: string; stageIndex: number; index: number; total: number; instruction: string };
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

/** An image already in the content store. */
export interface ImageVertex extends VertexCommon {
  kind: 'image';
  ref: string;
  manifestDigest: string;
  layers: Descriptor[];
  diffIds: string[];
}

export interface MountSpec {
  type: 'bind' | 'cache' | 'tmpfs' | 'secret' | 'ssh';
  target: string;
  /** bind/cache: the state to mount from (default the context for bind). */
  from?: Vertex | 'context';
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
  network: 'host' | 'none';
  /** The sandbox's hostname (BUILDKIT_SANDBOX_HOSTNAME); the solver's default when absent. */
  hostname?: string;
  mounts: MountSpec[];
  /** Files written into a tmpfs before running (heredocs fed to the shell). */
  inlineFiles?: Array<{ path: string; content: string; mode: number }>;
  /** Build args that reached the environment, for --explain. */
  buildArgs: Record<string, string>;
  /**
   * The definition without its inputs' digests (the parent's, and the stage of each bind
   * mount): with a bind mount from a stage, the solver keys the step on that and the content
   * of its inputs (the mounted path's files), so the stage's other steps do not matter.
   */
  localDigest?: string;
}

export interface CopySource {
  /** 'context' for the build context, or another state (COPY --from). */
  from: Vertex | 'context';
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
        /** ADD of URLs: fetched files. */
        urls?: string[];
        /** ADD --checksum: the digest a fetched URL's content must have. */
        checksum?: string;
        /** ADD --unpack=true: fetched archives are unpacked too. */
        unpackUrls?: boolean;
        excludes?: string[];
        parents?: boolean;
        link?: boolean;
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

/** The inputs a vertex depends on. */
export function vertexInputs(v: Vertex): Vertex[] {
  switch (v.kind) {
    case 'scratch':
    case 'image':
      return [];
    case 'exec': {
      const extra = v.mounts.flatMap((m) => (m.from && m.from !== 'context' ? [m.from] : []));
      return [v.parent, ...extra];
    }
    case 'file': {
      const a = v.action;
      if (a.op === 'copy' && a.source.from !== 'context') return [v.parent, a.source.from];
      return [v.parent];
    }
  }
}
